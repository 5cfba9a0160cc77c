"""What the benchmark runs and watches: the stack, per-process CPU and memory, the bus.

`BenchStack` starts a nats-server, the Kubernetes API stand-in (in this process) and the four
services as processes, like the end-to-end harness. `ProcStat` reads a process's CPU time
(utime + stime from /proc/<pid>/stat) and resident memory (VmRSS, VmHWM from
/proc/<pid>/status). `BusRecorder` subscribes on its own thread and keeps the arrival time of
every message on the subjects it is given, with the payload where asked.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nats

from certlc_dev.devenv import identities
from certlc_dev.devenv.nats_server import NatsServer
from certlc_dev.devenv.stack import ServiceSet, seed_datastores
from certlc_dev.kubesim import KubeSim

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class ProcStat:
    pid: int

    def cpu_seconds(self) -> float:
        """User + system CPU time of the process so far."""
        text = Path(f"/proc/{self.pid}/stat").read_text()
        fields = text.rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS

    def _status_kb(self, key: str) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
        return 0

    def children(self) -> list[ProcStat]:
        """The direct child processes (e.g. the watcher's checker); none once it has exited."""
        kids: list[ProcStat] = []
        tasks = Path(f"/proc/{self.pid}/task")
        if not tasks.is_dir():
            return kids
        for task in tasks.iterdir():
            try:
                kids.extend(ProcStat(int(pid)) for pid in (task / "children").read_text().split())
            except FileNotFoundError:
                continue
        return kids

    def rss_mb(self) -> float:
        return self._status_kb("VmRSS") / 1024

    def peak_rss_mb(self) -> float:
        return self._status_kb("VmHWM") / 1024


@dataclass
class Recorded:
    at: float
    subject: str
    data: bytes = b""


class BusRecorder:
    """Records (monotonic time, subject[, payload]) of messages on `subjects`."""

    def __init__(self, url: str, subjects: Sequence[str], keep_data: Sequence[str] = ()) -> None:
        self.url = url
        self.subjects = tuple(subjects)
        self.keep_data = tuple(keep_data)
        self.messages: list[Recorded] = []
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        nc = await nats.connect(self.url, max_reconnect_attempts=-1)

        async def record(msg: Any) -> None:
            keep = any(msg.subject.startswith(p) for p in self.keep_data)
            self.messages.append(
                Recorded(time.monotonic(), msg.subject, bytes(msg.data) if keep else b"")
            )

        for subject in self.subjects:
            await nc.subscribe(subject, cb=record)
        await nc.flush()
        self._ready.set()
        await self._stop.wait()
        await nc.drain()

    def start(self) -> BusRecorder:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("bus recorder did not connect")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def matching(self, fragment: str, since: float = 0.0) -> list[Recorded]:
        return [m for m in list(self.messages) if fragment in m.subject and m.at >= since]


@dataclass
class BenchStack:
    """nats-server + stand-in (+ the services once `start_services` ran)."""

    workdir: Path
    settings: Mapping[str, str] = field(default_factory=dict)
    ready_delay: float = 0.1
    nats: NatsServer | None = None
    sim: KubeSim | None = None
    services: ServiceSet | None = None
    kubeconfig: Path | None = None
    kubeconfigs: dict[str, Path] = field(default_factory=dict)

    def start_infra(self) -> KubeSim:
        self.nats = NatsServer(self.workdir / "jetstream").start()
        self.sim = KubeSim(ready_delay=self.ready_delay, gc=True, rbac=True).start()
        self.kubeconfig = self.sim.write_kubeconfig(self.workdir / "kubeconfig")
        # Each service with its own ServiceAccount token, under deploy/'s RBAC, as deployed.
        self.kubeconfigs = identities.install(self.sim, self.workdir)
        seed_datastores(self.sim, postgres=False)
        return self.sim

    def make_services(self, replicas: Mapping[str, int] | None = None) -> ServiceSet:
        assert self.nats is not None
        assert self.kubeconfig is not None
        self.services = ServiceSet(
            nats_url=self.nats.url,
            kubeconfig=str(self.kubeconfig),
            kubeconfigs=self.kubeconfigs,
            log_dir=self.workdir / "logs",
            settings=dict(self.settings),
            replicas=replicas,
        )
        return self.services

    def pids(self) -> dict[str, ProcStat]:
        """Each service process by name; a second replica as `<name>-1`, and so on."""
        assert self.services is not None
        return {
            p.name if p.instance == 0 else f"{p.name}-{p.instance}": ProcStat(p.proc.pid)
            for p in self.services.processes
            if p.proc
        }

    @property
    def url(self) -> str:
        assert self.nats is not None
        return self.nats.url

    def stop(self) -> None:
        if self.services is not None:
            self.services.stop()
        if self.sim is not None:
            self.sim.stop()
        if self.nats is not None:
            self.nats.stop()
            self.nats.cleanup()


def workdir(keep: bool) -> Path:
    path = Path(tempfile.mkdtemp(prefix="certlc-bench-"))
    if not keep:
        atexit.register(shutil.rmtree, path, True)
    return path


def wait_for(check: Any, timeout: float, what: str, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)
