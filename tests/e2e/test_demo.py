"""`certlc-dev demo` as a new user meets it: one demo per work directory, ports that stay, an
env file that puts `certlc` on PATH, the health and metrics ports printed."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from certlc_dev.cli.demo import PORT_NAMES, STAND_IN_PODS, plan_ports
from tests.e2e.harness import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]
ROOT = Path(__file__).resolve().parents[2]


class Demo:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.out = workdir.parent / f"{workdir.name}.out"
        self._log = self.out.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "certlc_dev.cli.main", "demo", "--workdir", str(workdir)],
            cwd=ROOT,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def output(self) -> str:
        return self.out.read_text()

    def wait_running(self) -> None:
        wait_for(
            lambda: "Ctrl-C stops everything" in self.output() or self.proc.poll() is not None,
            90,
            "the demo to be ready",
        )
        assert self.proc.poll() is None, self.output()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        code = self.proc.wait(60)
        self._log.close()
        assert code == 0, self.output()


@contextmanager
def running_demo(workdir: Path) -> Iterator[Demo]:
    demo = Demo(workdir)
    try:
        demo.wait_running()
        yield demo
    finally:
        demo.stop()


def ports_of(workdir: Path) -> dict[str, int]:
    return dict(json.loads((workdir / "ports.json").read_text()))


def test_second_demo_refused_env_on_path_ports_kept(tmp_path: Path) -> None:
    workdir = tmp_path / "demo"
    with running_demo(workdir) as first:
        # A second demo in the same work directory is refused, naming the running one.
        second = subprocess.run(
            [sys.executable, "-m", "certlc_dev.cli.main", "demo", "--workdir", str(workdir)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert second.returncode == 2, second.stdout + second.stderr
        assert f"a demo is already running in {workdir} (pid {first.proc.pid})" in second.stderr
        ports = ports_of(workdir)
        assert set(ports) == set(PORT_NAMES)
        # Every service's health and metrics endpoints are printed.
        out = first.output()
        for name in ("watcher", "lifecycle", "issuer", "rollout"):
            base = f"http://127.0.0.1:{ports[name]}"
            assert re.search(rf"{name}\s+health {base}/readyz\s+metrics {base}/metrics", out), out
        # The env file puts certlc on PATH and points it at the demo.
        # The demo is announced once certlc has issued the TCP's Secrets, so all are valid.
        shell = subprocess.run(
            ["bash", "-c", f"source {workdir / 'env'} && command -v certlc && certlc status"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert shell.returncode == 0, shell.stdout + shell.stderr
        assert shell.stdout.splitlines()[0] == str(Path(sys.executable).parent / "certlc")
        assert "k8s-126" in shell.stdout
    assert "rm -rf" in first.output()
    assert STAND_IN_PODS in first.output()

    # The next start keeps every port while they are free ...
    with running_demo(workdir) as again:
        assert ports_of(workdir) == ports
        assert "NOTE:" not in again.output()
    # ... and says which changed when one is taken.
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past TIME_WAIT
        squatter.bind(("127.0.0.1", ports["watcher"]))
        squatter.listen()
        with running_demo(workdir) as moved:
            now = ports_of(workdir)
            assert now["watcher"] != ports["watcher"]
            assert {k: v for k, v in now.items() if k != "watcher"} == {
                k: v for k, v in ports.items() if k != "watcher"
            }
            assert f"watcher: port {ports['watcher']} is taken, now {now['watcher']}" in (
                moved.output()
            )


def test_plan_ports_reuses_free_ports_and_reports_changes() -> None:
    taken = {2000}
    fresh = iter([3000, 3000, 3001, 3002])
    ports, changes = plan_ports(
        {"nats": 1000, "kube": 2000, "watcher": 1000},
        ["nats", "kube", "watcher", "issuer"],
        lambda port: port not in taken,
        lambda: next(fresh),
    )
    assert ports == {"nats": 1000, "kube": 3000, "watcher": 3001, "issuer": 3002}
    assert changes == [
        "kube: port 2000 is taken, now 3000",
        "watcher: port 1000 is taken, now 3001",
    ]
