"""The seed walkthrough, scripted with kubectl against `certlc-dev demo` (the README's demo)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.harness import wait_for
from tests.e2e.test_pipeline import KUBECONFIGS, SEED_SECRETS, X509

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module", params=[1, 2], ids=["one-replica", "two-replicas"])
def demo(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[dict[str, str]]:
    """The demo with one, or two, processes of every service (replicas share the work)."""
    workdir = Path(tmp_path_factory.mktemp("demo"))
    log = (workdir / "demo.out").open("wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "certlc_dev.cli.main",
            "demo",
            "--workdir",
            str(workdir),
            "--ready-delay",
            "1",
            "--replicas",
            str(request.param),
        ],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        env_file = workdir / "env"
        wait_for(lambda: env_file.exists() or proc.poll() is not None, 90, "the demo to be ready")
        assert proc.poll() is None, (workdir / "demo.out").read_text()
        exports = dict(re.findall(r"export (\w+)=(\S+)", env_file.read_text()))
        assert set(exports) == {"KUBECONFIG", "NATS_URL", "PATH"}
        yield {name: exports[name] for name in ("KUBECONFIG", "NATS_URL")}
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(60)
        log.close()
        output = (workdir / "demo.out").read_text()
        assert code == 0, output
        assert "stopping" in output


def kubectl(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        ["kubectl", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def table(output: str) -> list[list[str]]:
    return [re.split(r"\s{2,}", line.strip()) for line in output.strip().splitlines()]


def secrets_table(env: dict[str, str]) -> dict[str, tuple[str, int, str]]:
    rows = table(kubectl(env, "get", "secret"))
    if not rows:  # "No resources found" goes to stderr
        return {}
    assert rows[0] == ["NAME", "TYPE", "DATA", "AGE"]
    return {r[0]: (r[1], int(r[2]), r[3]) for r in rows[1:]}


def pods(env: dict[str, str]) -> list[list[str]]:
    rows = table(kubectl(env, "get", "pods"))
    if not rows:
        return []
    assert rows[0] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    return rows[1:]


def settled_pods(env: dict[str, str], other_than: set[str]) -> set[str]:
    """Wait for two Running 4/4 pods of one new template hash; their hash."""

    def check() -> set[str] | None:
        rows = pods(env)
        hashes = {r[0].rsplit("-", 2)[1] for r in rows}
        ok = len(rows) == 2 and all(r[1:4] == ["4/4", "Running", "0"] for r in rows)
        return hashes if ok and len(hashes) == 1 and not hashes & other_than else None

    return wait_for(check, 60, "two fresh Running pods")


def test_the_seed_walkthrough(demo: dict[str, str]) -> None:
    env = demo
    shown = wait_for(lambda: s if len(s := secrets_table(env)) == 13 else None, 60, "13 Secrets")
    assert {n.removeprefix("k8s-126-"): (t, d) for n, (t, d, _) in shown.items()} == SEED_SECRETS
    first = settled_pods(env, set())
    for row in pods(env):
        assert re.fullmatch(r"k8s-126-[bcdfghjklmnpqrstvwxz2456789]{8,10}-[a-z0-9]{5}", row[0])

    for label, names in (("x509", X509), ("kubeconfig", KUBECONFIGS)):
        out = kubectl(
            env,
            "delete",
            "secret",
            "-l",
            f"kamaji.clastix.io/certificate_lifecycle_controller={label}",
        )
        assert sorted(out.strip().splitlines()) == sorted(
            f'secret "k8s-126-{n}" deleted' for n in names
        )
        again = wait_for(
            lambda: s if len(s := secrets_table(env)) == 13 else None, 30, "the Secrets back"
        )
        assert set(again) == set(shown)
        first = settled_pods(env, first)

    watch = subprocess.Popen(
        ["kubectl", "get", "tcp", "-w"],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(1.0)
        assert (
            kubectl(env, "delete", "secret", "k8s-126-ca").strip() == 'secret "k8s-126-ca" deleted'
        )
        settled_pods(env, first)
        wait_for(lambda: "Ready" in kubectl(env, "get", "tcp", "k8s-126"), 30, "Ready")
        time.sleep(1.5)
    finally:
        watch.terminate()
        seen, _ = watch.communicate(timeout=10)
    rows = table(seen)
    assert rows[0] == [
        "NAME",
        "VERSION",
        "STATUS",
        "CONTROL-PLANE ENDPOINT",
        "KUBECONFIG",
        "DATASTORE",
        "AGE",
    ]
    statuses = [r[2] for r in rows[1:]]
    assert statuses[0] == "Ready"
    assert "CertificateAuthorityRotating" in statuses
    assert statuses[-1] == "Ready"
    assert statuses.index("CertificateAuthorityRotating") < len(statuses) - 1
    for r in rows[1:]:
        assert r[:2] == ["k8s-126", "v1.26.0"]
        assert r[3:6] == ["172.18.255.200:6443", "k8s-126-admin-kubeconfig", "default"]
