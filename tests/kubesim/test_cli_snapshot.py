"""Snapshots (save/load) and the `certlc-dev kube-sim` command as a separate process."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

from certlc_dev.kubesim import KubeSim
from certlc_dev.kubesim.snapshot import SnapshotError
from tests.fixtures.kube import api_client, run_kubectl
from tests.kubesim.helpers import admin, secret, tcp, tcp_status, wait_for


def test_state_survives_a_restart_through_the_snapshot(
    kube_sim_factory: Any, tmp_path: Path
) -> None:
    path = tmp_path / "state.json"
    first: KubeSim = kube_sim_factory(snapshot=path)
    created = first.create(secret("a", {"k": "v"}))
    first.create({**tcp("t"), "status": tcp_status("t")}, keep_status=True)
    last_rv = first.resource_version()
    first.stop()
    document = json.loads(path.read_text())
    assert document["resourceVersion"] == str(last_rv)

    second: KubeSim = kube_sim_factory(snapshot=path)
    restored = second.get("secrets", "a")
    assert restored["metadata"]["uid"] == created["metadata"]["uid"]
    assert restored["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]
    assert second.get("tcp", "t")["status"] == tcp_status("t")
    api = api_client(second.write_kubeconfig(tmp_path / "kc"))
    try:
        core = client.CoreV1Api(api)
        later = core.create_namespaced_secret("default", secret("b"))
        assert int(later.metadata.resource_version) == last_rv + 1
        raw = core.list_namespaced_secret(
            "default",
            watch=True,
            timeout_seconds=1,
            resource_version=str(last_rv - 1),
            _preload_content=False,
        )
        assert json.loads(raw.data.decode().splitlines()[0])["object"]["code"] == 410
    finally:
        api.close()


def test_snapshot_on_demand_through_the_admin_api(kube_sim_factory: Any, tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    sim: KubeSim = kube_sim_factory(snapshot=path)
    sim.create(secret("a"))
    assert admin(sim, "POST", "/_sim/snapshot") == (200, {"path": str(path)})
    assert any(i["metadata"]["name"] == "a" for i in json.loads(path.read_text())["items"])


def test_periodic_snapshots(kube_sim_factory: Any, tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    sim: KubeSim = kube_sim_factory(snapshot=path, snapshot_interval=0.1)
    sim.create(secret("a"))
    wait_for(
        lambda: (
            path.exists()
            and any(i["metadata"]["name"] == "a" for i in json.loads(path.read_text())["items"])
        )
    )


def test_a_corrupt_snapshot_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text('{"format": "something else"}')
    with pytest.raises(SnapshotError):
        KubeSim(https=False, snapshot=path).start()


def _start_cli(tmp_path: Path, *extra: str) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "certlc_dev.cli.main",
            "kube-sim",
            "--port",
            "0",
            "--kubeconfig",
            str(tmp_path / "kubeconfig"),
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert process.stdout is not None
    line = process.stdout.readline().strip()
    return process, line


def _finish(process: subprocess.Popen[str], sig: signal.Signals) -> int:
    process.send_signal(sig)
    try:
        return process.wait(timeout=20)
    finally:
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_cli_serves_kubectl_and_exits_cleanly(tmp_path: Path, sig: signal.Signals) -> None:
    snapshot = tmp_path / "state.json"
    process, line = _start_cli(
        tmp_path, "--snapshot", str(snapshot), "--token", "certlc=secret-token"
    )
    try:
        assert line.startswith("kube-sim listening on https://127.0.0.1:"), line
        port = int(line.rsplit(":", 1)[1])
        assert port > 0
        kubeconfig = tmp_path / "kubeconfig"
        assert "secret-token" in kubeconfig.read_text()
        home = tmp_path / "home"
        home.mkdir()
        out = run_kubectl(
            kubeconfig, home, "create", "secret", "generic", "a", "--from-literal=k=v"
        ).stdout
        assert out.strip() == "secret/a created"
        api = api_client(kubeconfig)
        try:
            assert client.CoreV1Api(api).read_namespaced_secret("a", "default").data
        finally:
            api.close()
    finally:
        code = _finish(process, sig)
    assert code == 0
    names = [i["metadata"]["name"] for i in json.loads(snapshot.read_text())["items"]]
    assert "a" in names


def test_cli_plain_http_with_gc(tmp_path: Path) -> None:
    process, line = _start_cli(tmp_path, "--http", "--gc", "--ready-delay", "0")
    try:
        assert line.startswith("kube-sim listening on http://127.0.0.1:"), line
        api = api_client(tmp_path / "kubeconfig")
        try:
            core = client.CoreV1Api(api)
            core.create_namespaced_secret("default", secret("a"))
            with pytest.raises(ApiException) as caught:
                core.read_namespaced_secret("b", "default")
            assert caught.value.status == 404
        finally:
            api.close()
    finally:
        assert _finish(process, signal.SIGTERM) == 0


def test_cli_with_rbac_refuses_a_service_account_until_it_is_bound(tmp_path: Path) -> None:
    process, line = _start_cli(tmp_path, "--rbac")
    try:
        assert line.startswith("kube-sim listening on https://"), line
        kubeconfig = tmp_path / "kubeconfig"
        home = tmp_path / "home"
        home.mkdir()
        run_kubectl(kubeconfig, home, "create", "serviceaccount", "robot")
        token = run_kubectl(kubeconfig, home, "create", "token", "robot").stdout.strip()
        robot = tmp_path / "robot"
        robot.write_text(kubeconfig.read_text().replace(_token_of(kubeconfig), token))
        refused = run_kubectl(robot, home, "get", "secrets", check=False)
        assert refused.returncode == 1
        assert "system:serviceaccount:default:robot" in refused.stderr
        assert 'cannot list resource "secrets"' in refused.stderr
        run_kubectl(
            kubeconfig,
            home,
            "create",
            "clusterrole",
            "secret-reader",
            "--verb=list",
            "--resource=secrets",
        )
        run_kubectl(
            kubeconfig,
            home,
            "create",
            "clusterrolebinding",
            "robot-reads",
            "--clusterrole=secret-reader",
            "--serviceaccount=default:robot",
        )
        listed = run_kubectl(robot, home, "get", "secrets", "-o", "name", check=False)
        assert listed.returncode == 0, listed.stderr
    finally:
        assert _finish(process, signal.SIGTERM) == 0


def _token_of(kubeconfig: Path) -> str:
    document = yaml.safe_load(kubeconfig.read_text())
    return str(document["users"][0]["user"]["token"])
