"""kubectl 1.32 against the stand-in: discovery, server-side tables, writes, watches."""

from __future__ import annotations

import json
import os
import queue
import re
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from certlc_dev.kubesim import KubeSim
from tests.fixtures.kube import kubectl_binary
from tests.kubesim.helpers import datastore, deployment, secret, tcp, tcp_status, wait_for

Kubectl = Callable[..., subprocess.CompletedProcess[str]]


def _rows(output: str) -> list[list[str]]:
    """Table output split on runs of 2+ spaces (column values here have no double spaces)."""
    return [re.split(r"\s{2,}", line.strip()) for line in output.strip().splitlines()]


def test_version_and_api_resources(kubectl: Kubectl) -> None:
    version = json.loads(kubectl("version", "-o", "json").stdout)
    assert version["serverVersion"]["gitVersion"] == "v1.32.0-kubesim"
    resources = kubectl("api-resources", "--no-headers").stdout
    assert "tenantcontrolplanes" in resources
    tcp_line = next(line for line in resources.splitlines() if line.startswith("tenantcontrol"))
    assert tcp_line.split()[:5] == [
        "tenantcontrolplanes",
        "tcp",
        "kamaji.clastix.io/v1alpha1",
        "true",
        "TenantControlPlane",
    ]


def test_get_secret_prints_server_side_columns(kubectl: Kubectl, kube_sim: KubeSim) -> None:
    kube_sim.create(secret("a", {"x": "1", "y": "2"}))
    kube_sim.create(secret("t", {"tls.crt": "c", "tls.key": "k"}, type_="kubernetes.io/tls"))
    rows = _rows(kubectl("get", "secret").stdout)
    assert rows[0] == ["NAME", "TYPE", "DATA", "AGE"]
    assert [r[:3] for r in rows[1:]] == [["a", "Opaque", "2"], ["t", "kubernetes.io/tls", "2"]]
    assert rows[1][3].endswith("s")


def test_get_tcp_prints_the_kamaji_printer_columns(kubectl: Kubectl, kube_sim: KubeSim) -> None:
    kube_sim.create({**tcp("k8s-126"), "status": tcp_status("k8s-126")}, keep_status=True)
    rows = _rows(kubectl("get", "tcp").stdout)
    assert rows[0] == [
        "NAME",
        "VERSION",
        "STATUS",
        "CONTROL-PLANE ENDPOINT",
        "KUBECONFIG",
        "DATASTORE",
        "AGE",
    ]
    assert rows[1][:6] == [
        "k8s-126",
        "v1.30.0",
        "Ready",
        "10.0.0.5:6443",
        "k8s-126-admin-kubeconfig",
        "default",
    ]
    plain = json.loads(kubectl("get", "tcp", "k8s-126", "-o", "json").stdout)
    assert plain["kind"] == "TenantControlPlane"


def test_get_datastores(kubectl: Kubectl, kube_sim: KubeSim) -> None:
    kube_sim.create(datastore("default"))
    rows = _rows(kubectl("get", "datastores").stdout)
    assert rows[0] == ["NAME", "DRIVER", "READY", "AGE"]
    assert rows[1][:2] == ["default", "etcd"]


def test_delete_secrets_by_label(kubectl: Kubectl, kube_sim: KubeSim) -> None:
    for name in ("a", "b"):
        kube_sim.create(secret(name, labels={"kamaji.clastix.io/name": "k8s-126"}))
    kube_sim.create(secret("keep"))
    out = kubectl("delete", "secret", "-l", "kamaji.clastix.io/name=k8s-126").stdout
    assert out.splitlines() == ['secret "a" deleted', 'secret "b" deleted']
    assert [s["metadata"]["name"] for s in kube_sim.list("secrets")] == ["keep"]


def test_get_pods_shows_ready_containers(kubectl: Kubectl, kube_sim: KubeSim) -> None:
    kube_sim.create(deployment("k8s-126", replicas=2, containers=4))
    wait_for(
        lambda: (
            all(p.get("status", {}).get("phase") == "Running" for p in kube_sim.list("pods"))
            and len(kube_sim.list("pods")) == 2
        )
    )
    rows = _rows(kubectl("get", "pods").stdout)
    assert rows[0] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert [r[1:4] for r in rows[1:]] == [["4/4", "Running", "0"], ["4/4", "Running", "0"]]
    assert all(r[0].startswith("k8s-126-") for r in rows[1:])
    done = kubectl("rollout", "status", "deployment/k8s-126", "--timeout=20s").stdout
    assert 'deployment "k8s-126" successfully rolled out' in done
    deploy = _rows(kubectl("get", "deployment").stdout)
    assert deploy[0] == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert deploy[1][:4] == ["k8s-126", "2/2", "2", "2"]


def test_create_apply_patch_and_label(kubectl: Kubectl, kube_sim: KubeSim, tmp_path: Path) -> None:
    manifest = tmp_path / "objects.yaml"
    items = [
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "stringData": {"a": "b"}},
        tcp("t"),
    ]
    manifest.write_text(yaml.safe_dump_all(items))
    assert "created" in kubectl("apply", "-f", str(manifest)).stdout
    items[1]["spec"]["kubernetes"]["version"] = "v1.31.0"
    manifest.write_text(yaml.safe_dump_all(items))
    assert "configured" in kubectl("apply", "-f", str(manifest)).stdout
    assert kube_sim.get("tcp", "t")["spec"]["kubernetes"]["version"] == "v1.31.0"
    kubectl(
        "patch",
        "tcp",
        "t",
        "--type=merge",
        "--subresource=status",
        "-p",
        '{"status":{"controlPlaneEndpoint":"1.2.3.4:6443"}}',
    )
    assert kube_sim.get("tcp", "t")["status"]["controlPlaneEndpoint"] == "1.2.3.4:6443"
    created = tmp_path / "second.yaml"
    created.write_text(yaml.safe_dump(tcp("second")))
    assert kubectl("create", "-f", str(created)).stdout.strip() == (
        "tenantcontrolplane.kamaji.clastix.io/second created"
    )
    kubectl("label", "secret", "s", "certs=yes")
    kubectl("annotate", "secret", "s", "certs.kamaji.clastix.io/rotate=")
    read = kube_sim.get("secrets", "s")
    assert read["metadata"]["labels"] == {"certs": "yes"}
    assert read["metadata"]["annotations"]["certs.kamaji.clastix.io/rotate"] == ""


def test_errors_are_reported_like_a_real_server(kubectl: Kubectl) -> None:
    result = kubectl("get", "secret", "nope", check=False)
    assert result.returncode == 1
    assert result.stderr.strip() == 'Error from server (NotFound): secrets "nope" not found'
    result = kubectl("get", "tcp", "nope", check=False)
    assert result.stderr.strip() == (
        'Error from server (NotFound): tenantcontrolplanes.kamaji.clastix.io "nope" not found'
    )


def test_get_tcp_watch_streams_table_rows(
    kube_sim: KubeSim, kube_config: Path, tmp_path: Path
) -> None:
    kube_sim.create(tcp("first"))
    env = dict(os.environ, KUBECONFIG=str(kube_config), HOME=str(tmp_path))
    process = subprocess.Popen(
        [kubectl_binary(), f"--cache-dir={tmp_path / 'cache'}", "get", "tcp", "-w"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line.rstrip("\n"))

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        header = lines.get(timeout=30)
        assert header.split()[:3] == ["NAME", "VERSION", "STATUS"]
        assert lines.get(timeout=30).split()[:2] == ["first", "v1.30.0"]
        kube_sim.create(tcp("second", "v1.31.0"))
        assert lines.get(timeout=30).split()[:2] == ["second", "v1.31.0"]
        kube_sim.update_status("tcp", "first", tcp_status("first", "Upgrading"))
        updated = lines.get(timeout=30)
        assert updated.split()[:3] == ["first", "v1.30.0", "Upgrading"]
    finally:
        process.terminate()
        process.wait(timeout=10)
        reader.join(timeout=10)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


def test_kubectl_sees_tables_while_the_client_sees_json(
    kube_sim: KubeSim, kube_api: Any, kubectl: Kubectl
) -> None:
    kube_sim.create(secret("a"))
    listed = client.CoreV1Api(kube_api).list_namespaced_secret("default")
    assert listed.kind == "SecretList"
    assert [s.metadata.name for s in listed.items] == ["a"]
    assert _rows(kubectl("get", "secret", "a").stdout)[1][0] == "a"


def test_an_invalid_token_is_refused(kube_sim: KubeSim, kubectl: Kubectl, tmp_path: Path) -> None:
    bad = kube_sim.write_kubeconfig(tmp_path / "bad", token="wrong")
    result = kubectl("get", "secret", kubeconfig=bad, check=False)
    assert result.returncode == 1
    assert "error: You must be logged in to the server" in result.stderr


@pytest.mark.parametrize("https", [False])
def test_kubectl_over_plain_http(kube_sim_factory: Any, tmp_path: Path, https: bool) -> None:
    sim: KubeSim = kube_sim_factory(https=https)
    sim.create(secret("a"))
    config = sim.write_kubeconfig(tmp_path / "kc")
    env = dict(os.environ, KUBECONFIG=str(config), HOME=str(tmp_path))
    result = subprocess.run(
        [kubectl_binary(), f"--cache-dir={tmp_path / 'c'}", "get", "secret"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
    )
    assert _rows(result.stdout)[1][:2] == ["a", "Opaque"]
    assert sim.url.startswith("http://")


def test_scale_and_rollout_restart(kubectl: Kubectl, kube_sim: KubeSim) -> None:
    kube_sim.create(deployment("cp", replicas=1, containers=1))
    kube_sim.wait_for_rollout("cp")
    assert (
        kubectl("scale", "deployment", "cp", "--replicas=2").stdout.strip()
        == "deployment.apps/cp scaled"
    )
    assert kube_sim.wait_for_rollout("cp")["status"]["readyReplicas"] == 2
    first_sets = {rs["metadata"]["name"] for rs in kube_sim.list("replicasets")}
    kubectl("rollout", "restart", "deployment/cp")
    kube_sim.wait_for_rollout("cp")
    sets = {rs["metadata"]["name"]: rs for rs in kube_sim.list("replicasets")}
    (new,) = set(sets) - first_sets
    assert sets[new]["spec"]["replicas"] == 2
    assert (
        kube_sim.get("deployments", "cp")["metadata"]["annotations"][
            "deployment.kubernetes.io/revision"
        ]
        == "2"
    )


def test_create_core_objects_sent_as_protobuf(kubectl: Kubectl, kube_sim: KubeSim) -> None:
    kubectl("create", "namespace", "tenants")
    kubectl("create", "secret", "generic", "creds", "-n", "tenants", "--from-literal=user=admin")
    kubectl("create", "serviceaccount", "certlc", "-n", "tenants")
    created = kube_sim.get("secrets", "creds", "tenants")
    assert created["data"] == {"user": "YWRtaW4="}
    assert created["type"] == "Opaque"
    assert kube_sim.get("serviceaccounts", "certlc", "tenants")["metadata"]["name"] == "certlc"
