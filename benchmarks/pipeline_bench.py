"""certlc speed and memory targets, measured on this machine: `python -m benchmarks.pipeline_bench`.

Four scenarios, each against a fresh nats-server, the Kubernetes API stand-in (in this process)
and the four services as separate processes:

- deletion: 100 TCPs managed; 100 trials, each deleting the four x509 Secrets of one TCP; time
  until all four are back, and until the Deployment's pod template is patched (p50/p99).
- renewal: 50 TCPs issued by certlc; every leaf certificate (x509 + kubeconfig targets, 8 per
  TCP) rotated at once through the rotate API; certificates per second against a plain loop of
  `mint_secret_data` over the same kinds, in one process per core (the machine's limit) and
  in this process alone (measured before and after).
- overhead: the renewal with ECDSA-P256 keys (100 TCPs, 800 certificates), whose generation is
  cheap: certificates per second of the pipeline itself, and the CPU of every process meanwhile.
- scale: 1,000 TCPs (13,000 valid Secrets, seeded straight into the stand-in); time from
  starting the services to steady state, resident memory per service, idle CPU per service.

Prints a table of figures with targets and PASS/FAIL. See docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import statistics
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import nats

from benchmarks.fleet import KeyPool, seed_fleet
from benchmarks.probes import BenchStack, BusRecorder, ProcStat, wait_for, workdir
from certlc_dev.devenv.stack import seed_tenant
from libs.contracts.api import RotateRequest, Target
from libs.contracts.codec import encode
from libs.pki import SecretKind, TcpSpec, mint_secret_data, signer_from_secret_data
from libs.runtime.config import Settings
from libs.runtime.settings import format_duration

X509 = (
    SecretKind.APISERVER,
    SecretKind.APISERVER_KUBELET_CLIENT,
    SecretKind.FRONT_PROXY_CLIENT,
    SecretKind.KONNECTIVITY_CERTIFICATE,
)
KUBECONFIGS = (
    SecretKind.ADMIN_KUBECONFIG,
    SecretKind.CONTROLLER_MANAGER_KUBECONFIG,
    SecretKind.SCHEDULER_KUBECONFIG,
    SecretKind.KONNECTIVITY_KUBECONFIG,
)
SERVICES = ("watcher", "lifecycle", "issuer", "rollout")


@dataclass
class Row:
    scenario: str
    figure: str
    value: str
    target: str = ""
    ok: bool | None = None

    @property
    def verdict(self) -> str:
        return "" if self.ok is None else ("PASS" if self.ok else "FAIL")


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)

    def add(
        self, scenario: str, figure: str, value: str, target: str = "", ok: bool | None = None
    ) -> None:
        self.rows.append(Row(scenario, figure, value, target, ok))
        print(
            f"  {figure}: {value}"
            + (f"  (target {target}: {self.rows[-1].verdict})" if target else ""),
            flush=True,
        )

    def table(self) -> str:
        head = ("scenario", "figure", "measured", "target", "")
        rows = [head] + [(r.scenario, r.figure, r.value, r.target, r.verdict) for r in self.rows]
        widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
        lines = [
            "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
        ]
        lines.insert(1, "  ".join("-" * w for w in widths))
        return "\n".join(lines)


def log(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (p99 of 100 values is the 99th smallest)."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 100))))
    return ordered[rank - 1]


# --- deletion -------------------------------------------------------------------------------


def _labels(deployment: dict[str, Any]) -> dict[str, str]:
    return dict(deployment["spec"]["template"]["metadata"].get("labels") or {})


def deletion_trial(stack: BenchStack, tcp: str, timeout: float = 30.0) -> tuple[float, float]:
    """Delete the four x509 Secrets of `tcp`; (seconds until all four are back, seconds until
    the Deployment's pod template changed), from the first delete. Timed by a subscription on
    the stand-in's store, so no polling delay is added."""
    sim = stack.sim
    assert sim is not None
    names = {f"{tcp}-{k.value}" for k in X509}
    template = _labels(sim.get("deployments", tcp))
    sub = sim.store.subscribe_all([sim.resource("secrets"), sim.resource("deployments")])
    try:
        start = time.monotonic()
        for name in sorted(names):
            sim.delete("secrets", name)
        back: set[str] = set()
        t_back = t_patch = None
        while t_back is None or t_patch is None:
            if time.monotonic() - start > timeout:
                raise TimeoutError(f"trial on {tcp}: back {sorted(back)}, patched {t_patch}")
            for change in sub.take(0.5):
                now = time.monotonic()
                obj = change.new.obj
                name = obj["metadata"]["name"]
                if change.rt.plural == "secrets" and change.type == "ADDED" and name in names:
                    back.add(name)
                    if back == names:
                        t_back = now - start
                elif (
                    change.rt.plural == "deployments"
                    and name == tcp
                    and t_patch is None
                    and _labels(obj) != template
                ):
                    t_patch = now - start
        return t_back, t_patch
    finally:
        sim.store.unsubscribe(sub)


def wait_quiet(
    stats: dict[str, ProcStat], *, window: float = 1.0, budget: float = 0.03, timeout: float = 120.0
) -> float:
    """Block until the services together used at most `budget` CPU seconds over `window`;
    returns the monotonic time the quiet window began."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        begin = time.monotonic()
        before = sum(s.cpu_seconds() for s in stats.values())
        time.sleep(window)
        if sum(s.cpu_seconds() for s in stats.values()) - before <= budget:
            return begin
    raise TimeoutError("the services never went quiet")


def run_deletion(args: argparse.Namespace, report: Report) -> None:
    log(
        f"deletion: {args.deletion_tcps} TCPs, {args.trials} trials "
        f"(CERTLC_SETTLE={args.settle}, CERTLC_ROLLOUT_SETTLE={args.rollout_settle})"
    )
    stack = BenchStack(workdir(args.keep), settings=_settings(args), ready_delay=0.1)
    try:
        sim = stack.start_infra()
        fleet = seed_fleet(sim, args.deletion_tcps, KeyPool(), deployments=True)
        log(f"seeded {fleet.secrets} Secrets; starting the services")
        stack.make_services().start(timeout=120)
        wait_quiet(stack.pids(), window=1.5)
        back: list[float] = []
        patched: list[float] = []
        for i in range(args.trials):
            tcp = fleet.names[i % len(fleet.names)]
            t_back, t_patch = deletion_trial(stack, tcp)
            back.append(t_back)
            patched.append(t_patch)
            if (i + 1) % 20 == 0:
                log(
                    f"  {i + 1} trials; slowest so far: back {max(back):.3f} s (trial "
                    f"{back.index(max(back)) + 1}), patched {max(patched):.3f} s (trial "
                    f"{patched.index(max(patched)) + 1})"
                )
            time.sleep(args.gap)
        scenario = f"deletion ({len(back)} trials, {args.deletion_tcps} TCPs)"
        p99b, p99p = percentile(back, 99), percentile(patched, 99)
        report.add(scenario, "all four Secrets back, p50", f"{statistics.median(back):.3f} s")
        report.add(scenario, "all four Secrets back, p99", f"{p99b:.3f} s", "<= 1 s", p99b <= 1.0)
        report.add(scenario, "all four Secrets back, max", f"{max(back):.3f} s")
        report.add(scenario, "Deployment patched, p50", f"{statistics.median(patched):.3f} s")
        report.add(scenario, "Deployment patched, p99", f"{p99p:.3f} s", "<= 2 s", p99p <= 2.0)
        report.add(scenario, "Deployment patched, max", f"{max(patched):.3f} s")
    finally:
        stack.stop()


# --- renewal --------------------------------------------------------------------------------


def mint_loop(count: int) -> float:
    """Certificates per second of a plain loop: RSA-2048 key + signature via
    `mint_secret_data`, over the renewal's kinds in turn (x509 and kubeconfig), each a re-issue
    of an existing Secret as the issuer's is (so admin-kubeconfig gets Kamaji's four
    kubeconfigs, four keys, as the issuer writes them)."""
    now = datetime.now(UTC)
    tcp = TcpSpec(name="bench", namespace="default", address="172.18.255.200")
    ca = mint_secret_data(SecretKind.CA, tcp, now=now)
    front_proxy = mint_secret_data(SecretKind.FRONT_PROXY_CA, tcp, now=now)
    signers = {
        SecretKind.CA: signer_from_secret_data(SecretKind.CA, ca),
        SecretKind.FRONT_PROXY_CA: signer_from_secret_data(SecretKind.FRONT_PROXY_CA, front_proxy),
    }
    kinds = (*X509, *KUBECONFIGS)

    def signer_of(kind: SecretKind) -> Any:
        proxy = kind is SecretKind.FRONT_PROXY_CLIENT
        return signers[SecretKind.FRONT_PROXY_CA if proxy else SecretKind.CA]

    current = {k: mint_secret_data(k, tcp, now=now, signer=signer_of(k)) for k in kinds}
    start = time.perf_counter()
    for i in range(count):
        kind = kinds[i % len(kinds)]
        mint_secret_data(kind, tcp, now=now, signer=signer_of(kind), current=current[kind])
    return count / (time.perf_counter() - start)


def mint_loop_cores(count: int, processes: int) -> float:
    """The machine's limit: `mint_loop` in `processes` processes at once (one per core), the
    sum of their rates."""
    with multiprocessing.get_context("fork").Pool(processes) as pool:
        return sum(pool.map(mint_loop, [count] * processes))


async def _rotate_all(url: str, tcps: Sequence[str]) -> list[bytes]:
    nc = await nats.connect(url)
    try:
        requests = [
            encode(
                RotateRequest(namespace="default", tcp=tcp, target=target, requester="benchmark")
            )
            for tcp in tcps
            for target in (Target.X509, Target.KUBECONFIG)
        ]
        replies = await asyncio.gather(
            *(nc.request("certlc.api.v1.rotate", r, timeout=30) for r in requests)
        )
        for reply in replies:
            if reply.headers and reply.headers.get("Nats-Service-Error-Code"):
                raise RuntimeError(f"rotate request refused: {reply.headers}")
        return [bytes(r.data) for r in replies]
    finally:
        await nc.close()


def _issued_settled(recorder: BusRecorder, quiet: float) -> bool:
    audit = recorder.matching("certlc.audit.")
    return bool(audit) and time.monotonic() - audit[-1].at > quiet


def renew_once(stack: BenchStack, recorder: BusRecorder, tcps: Sequence[str]) -> tuple[int, float]:
    """Rotate every leaf of `tcps` at once; (certificates issued, seconds from the first request
    to the last certificate written)."""
    expected = len(tcps) * (len(X509) + len(KUBECONFIGS))
    start = time.monotonic()
    asyncio.run(_rotate_all(stack.url, tcps))
    issued = wait_for(
        lambda: (
            found
            if len(found := recorder.matching(".certificate-issued", start)) >= expected
            else None
        ),
        300,
        f"{expected} certificates issued",
    )
    return len(issued), issued[-1].at - start


@contextmanager
def issued_fleet(
    args: argparse.Namespace, n: int, settings: dict[str, str]
) -> Iterator[tuple[BenchStack, Any, BusRecorder, list[str]]]:
    """A stack whose `n` TCPs certlc has issued and that has settled: (stack, its services, a
    recorder of the audit events, the TCP names)."""
    stack = BenchStack(
        workdir(args.keep), settings={**_settings(args), **settings}, ready_delay=0.1
    )
    try:
        sim = stack.start_infra()
        services = stack.make_services().start(timeout=120)
        recorder = BusRecorder(stack.url, ["certlc.audit.>"]).start()
        tcps = [f"renew-{i:03d}" for i in range(n)]
        for name in tcps:
            seed_tenant(sim, name)
        wait_for(
            lambda: len(sim.list("secrets", "default")) >= 13 * n, 600, "the fleet issued", 0.5
        )
        wait_for(lambda: _issued_settled(recorder, 3.0), 300, "the fleet settled", 0.5)
        log(f"{n} TCPs issued by certlc; measuring")
        try:
            yield stack, services, recorder, tcps
        finally:
            recorder.stop()
    finally:
        stack.stop()


def run_overhead(args: argparse.Namespace, report: Report) -> None:
    """The pipeline's own cost: the mass renewal with ECDSA-P256 keys, whose generation is
    cheap, so that NATS, the Kubernetes writes, the audit events and the re-checks show."""
    n = args.overhead_tcps
    log(f"overhead: {n} TCPs with ECDSA-P256 keys, then every leaf rotated at once")
    with issued_fleet(args, n, {"CERTLC_KEY_ALGORITHM": "ECDSA-P256"}) as (stack, _, rec, tcps):
        scenario = f"overhead, ECDSA-P256 ({n} TCPs, {n * 8} certificates)"
        pids = stack.pids()
        assert stack.nats is not None
        if (nats_pid := stack.nats.pid) is not None:
            pids["nats-server"] = ProcStat(nats_pid)
        pids["stand-in (this process)"] = ProcStat(os.getpid())
        cpu0 = {name: p.cpu_seconds() for name, p in pids.items()}
        count, seconds = renew_once(stack, rec, tcps)
        cpu = {name: p.cpu_seconds() - cpu0[name] for name, p in pids.items()}
        rate = count / seconds
        report.add(
            scenario,
            "issuer throughput",
            f"{rate:.1f} cert/s ({count} in {seconds:.1f} s)",
            ">= 300 cert/s",
            rate >= 300,
        )
        busy = ", ".join(f"{name} {100 * c / seconds:.0f} %" for name, c in cpu.items())
        report.add(scenario, "CPU busy meanwhile (of a core)", busy)


def run_renewal(args: argparse.Namespace, report: Report) -> None:
    n = args.renewal_tcps
    log(f"renewal: {n} TCPs issued by certlc, then every leaf rotated at once")
    with issued_fleet(args, n, {}) as (stack, services, recorder, tcps):
        scenario = f"renewal ({n} TCPs, {n * 8} certificates)"
        _renewal_round(args, stack, recorder, tcps, report, scenario, "warm issuer")
        if args.cold:
            services.restart("issuer")
            wait_for(lambda: _issued_settled(recorder, 3.0), 300, "the fleet settled", 0.5)
            _renewal_round(
                args, stack, recorder, tcps, report, scenario, "issuer just restarted", target=False
            )


def _renewal_round(
    args: argparse.Namespace,
    stack: BenchStack,
    recorder: BusRecorder,
    tcps: Sequence[str],
    report: Report,
    scenario: str,
    label: str,
    *,
    target: bool = True,
) -> None:
    cores = os.cpu_count() or 1
    loop_before = mint_loop(args.loop_certs)
    cores_before = mint_loop_cores(args.loop_certs, cores)
    issuer = stack.pids()["issuer"]
    cpu0 = issuer.cpu_seconds()
    count, seconds = renew_once(stack, recorder, tcps)
    issuer_cpu = issuer.cpu_seconds() - cpu0
    wait_for(lambda: _issued_settled(recorder, 3.0), 300, "the renewal settled", 0.5)
    loop_after = mint_loop(args.loop_certs)
    cores_after = mint_loop_cores(args.loop_certs, cores)
    loop = 2 / (1 / loop_before + 1 / loop_after)  # same number of certificates in each run
    limit = 2 / (1 / cores_before + 1 / cores_after)
    rate = count / seconds
    ratio = rate / loop
    of_limit = rate / limit
    report.add(
        scenario, f"{label}: issuer throughput", f"{rate:.2f} cert/s ({count} in {seconds:.1f} s)"
    )
    report.add(
        scenario,
        f"{label}: plain mint loop",
        f"{loop:.2f} cert/s (before {loop_before:.2f}, after {loop_after:.2f})",
    )
    report.add(
        scenario, f"{label}: issuer CPU busy", f"{100 * issuer_cpu / seconds:.0f} % of a core"
    )
    report.add(
        scenario,
        f"{label}: plain mint loop, {cores} processes",
        f"{limit:.2f} cert/s (before {cores_before:.2f}, after {cores_after:.2f})",
    )
    report.add(scenario, f"{label}: throughput / one-process loop", f"{ratio:.2f}")
    report.add(
        scenario,
        f"{label}: throughput / {cores}-process loop (the limit)",
        f"{of_limit:.2f}",
        ">= 0.9" if target else "",
        of_limit >= 0.9 if target else None,
    )


# --- scale ----------------------------------------------------------------------------------


class CpuSampler:
    """Samples the CPU time of the services and their children every `interval` seconds on a
    thread. A process that exits keeps its last reading, so totals never go down."""

    def __init__(self, stats: Callable[[], dict[str, ProcStat]], interval: float = 0.1) -> None:
        self.stats = stats
        self.interval = interval
        self.seen: dict[tuple[str, int], float] = {}  # (service, pid) -> CPU seconds
        self.samples: list[tuple[float, float]] = []  # (monotonic, total CPU seconds)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _read(self) -> None:
        for name, stat in self.stats().items():
            for proc in (stat, *stat.children()):
                try:
                    self.seen[(name, proc.pid)] = proc.cpu_seconds()
                except FileNotFoundError:
                    continue

    def _run(self) -> None:
        while not self._stop.is_set():
            self._read()
            self.samples.append((time.monotonic(), sum(self.seen.values())))
            self._stop.wait(self.interval)

    def start(self) -> CpuSampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self._read()

    def per_service(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for (name, _), cpu in self.seen.items():
            out[name] = out.get(name, 0.0) + cpu
        return out

    def quiet_since(self, after: float, window: float, budget: float) -> float | None:
        """The start of the first `window`-long stretch after `after` in which the services
        used at most `budget` CPU seconds together, if there is one yet."""
        samples = [s for s in self.samples if s[0] >= after]
        for i, (t0, c0) in enumerate(samples):
            for t1, c1 in samples[i + 1 :]:
                if c1 - c0 > budget:
                    break
                if t1 - t0 >= window:
                    return t0
        return None


def _metric_lines(port: int, name: str) -> list[str]:
    """The lines of a service's /metrics that start with `name`."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as r:
        return [x for x in r.read().decode().splitlines() if x.startswith(name)]


def _metric_series(port: int, name: str) -> int:
    return len(_metric_lines(port, name + "{"))


def _metric_value(port: int, name: str) -> float:
    lines = _metric_lines(port, name)
    return float(lines[0].rsplit(" ", 1)[1]) if lines else 0.0


OWNED = 'certlc_partitions_owned{service="lifecycle"}'


def scale_targets(n: int) -> tuple[float, float, float]:
    """(steady state s, VmRSS MB per process, idle CPU % of a core) for a fleet of `n`: the
    10,000-TCP targets from that size on, the 1,000-TCP ones below."""
    return (40.0, 600.0, 1.0) if n >= 10_000 else (10.0, 200.0, 2.0)


def run_scale(args: argparse.Namespace, report: Report) -> None:
    n = args.scale_tcps
    replicas = args.lifecycle_replicas
    log(f"scale: {n} TCPs ({13 * n} Secrets) seeded straight into the stand-in")
    stack = BenchStack(workdir(args.keep), settings=_settings(args), ready_delay=0.1)
    steady_target, rss_target, idle_target = scale_targets(n)
    try:
        sim = stack.start_infra()
        started = time.monotonic()
        fleet = seed_fleet(sim, n, KeyPool(), progress=lambda i: log(f"  {i} TCPs seeded"))
        took = time.monotonic() - started
        log(f"seeded {fleet.secrets} Secrets in {took:.0f} s; starting the services")
        recorder = BusRecorder(
            stack.url, ["certlc.events.watcher.synced", "certlc.rotate.>"]
        ).start()
        services = stack.make_services({"lifecycle": replicas})
        sampler = CpuSampler(stack.pids)
        assert stack.nats is not None
        others = {
            "nats-server": ProcStat(stack.nats.pid or 0),
            "stand-in": ProcStat(os.getpid()),
        }
        start_cpu = {name: stat.cpu_seconds() for name, stat in others.items()}
        t0 = time.monotonic()
        for process in services.processes:
            process.start()
        sampler.start()  # from the first moment, so the watcher's checker child is counted
        services.wait_ready(300)
        t_ready = time.monotonic()
        synced = wait_for(lambda: recorder.matching("watcher.synced"), 300, "WatcherSynced")
        t_synced = synced[0].at
        steady = wait_for(
            lambda: sampler.quiet_since(max(t_ready, t_synced), window=1.0, budget=0.05),
            args.steady_timeout,
            "steady state",
            0.2,
        )
        sampler.stop()
        stats = stack.pids()
        names = list(stats)  # every process: a second lifecycle replica is lifecycle-1
        startup_cpu = sampler.per_service()
        startup_cpu.update({n: st.cpu_seconds() - start_cpu[n] for n, st in others.items()})
        rss = {name: stats[name].rss_mb() for name in names}
        peak = {name: stats[name].peak_rss_mb() for name in names}
        for name in names:  # a service's child processes count as the service
            for child in stats[name].children():
                rss[name] += child.rss_mb()
                peak[name] += child.peak_rss_mb()
        log(f"steady after {steady - t0:.1f} s; measuring idle CPU for {args.idle:.0f} s")
        cpu0 = {name: stats[name].cpu_seconds() for name in names}
        w0 = time.monotonic()
        time.sleep(args.idle)
        idle = {
            name: 100 * (stats[name].cpu_seconds() - cpu0[name]) / (time.monotonic() - w0)
            for name in names
        }
        rotations = len(recorder.matching("certlc.rotate."))
        recorder.stop()
        lifecycles = services.by_name("lifecycle")
        series = sum(
            _metric_series(p.port, "certlc_certificate_expiration_timestamp_seconds")
            for p in lifecycles
        )
        scenario = f"scale ({n} TCPs, {fleet.secrets} Secrets, {replicas} lifecycle)"
        total = steady - t0
        report.add(scenario, "services started -> all /readyz", f"{t_ready - t0:.1f} s")
        report.add(scenario, "services started -> WatcherSynced", f"{t_synced - t0:.1f} s")
        report.add(
            scenario,
            "services started -> steady state",
            f"{total:.1f} s",
            f"<= {steady_target:.0f} s",
            total <= steady_target,
        )
        report.add(
            scenario,
            "CPU seconds until steady state",
            ", ".join(f"{name} {cpu:.1f}" for name, cpu in startup_cpu.items()),
        )
        report.add(scenario, "rotate commands published", str(rotations), "0", rotations == 0)
        report.add(scenario, "certificates lifecycle evaluated", f"{series} (gauge series)")
        if replicas > 1:
            evaluations = [
                _metric_value(p.port, 'certlc_evaluations_total{service="lifecycle"}')
                for p in lifecycles
            ]
            owned = [_metric_value(p.port, OWNED) for p in lifecycles]
            report.add(
                scenario,
                "lifecycle replicas: partitions owned; TCPs decided",
                "; ".join(f"{o:.0f} / {e:.0f}" for o, e in zip(owned, evaluations, strict=True)),
                "about equal",
            )
        for name in names:
            report.add(
                scenario,
                f"{name} VmRSS (peak VmHWM), children included",
                f"{rss[name]:.0f} MB ({peak[name]:.0f} MB)",
                f"<= {rss_target:.0f} MB",
                rss[name] <= rss_target,
            )
        for name in names:
            report.add(
                scenario,
                f"{name} idle CPU over {args.idle:.0f} s"
                + (f" (re-evaluation every {args.reevaluate})" if "lifecycle" in name else ""),
                f"{idle[name]:.2f} %",
                f"< {idle_target:g} %",
                idle[name] < idle_target,
            )
        if replicas > 1:
            _takeover(lifecycles, scenario, report)
    finally:
        stack.stop()


def _takeover(lifecycles: Sequence[Any], scenario: str, report: Report) -> None:
    """SIGKILL the first lifecycle replica; time until the others own every partition."""
    partitions = sum(_metric_value(p.port, OWNED) for p in lifecycles)
    survivors = lifecycles[1:]
    lifecycles[0].kill()
    killed = time.monotonic()
    wait_for(
        lambda: sum(_metric_value(p.port, OWNED) for p in survivors) == partitions,
        60,
        "the surviving lifecycle replicas to own every partition",
    )
    took = time.monotonic() - killed
    report.add(
        scenario,
        "lifecycle replica SIGKILLed -> its share owned by the others",
        f"{took:.1f} s (lease {format_duration(Settings().member_lease)})",
        "<= 10 s",
        took <= 10,
    )


# --- main -----------------------------------------------------------------------------------


def _settings(args: argparse.Namespace) -> dict[str, str]:
    return {
        "CERTLC_SETTLE": args.settle,
        "CERTLC_ROLLOUT_SETTLE": args.rollout_settle,
        # The safety net re-evaluates every TCP this often: shorter than the idle window here,
        # so that the idle CPU figure includes its passes (the default, 3m, is rarer).
        "CERTLC_REEVALUATE": args.reevaluate,
    }


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.pipeline_bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--scenario", choices=("deletion", "renewal", "overhead", "scale", "all"), default="all"
    )
    p.add_argument("--settle", default="100ms", help="CERTLC_SETTLE (default 100ms)")
    p.add_argument(
        "--rollout-settle", default="500ms", help="CERTLC_ROLLOUT_SETTLE (default 500ms)"
    )
    p.add_argument("--trials", type=int, default=100)
    p.add_argument("--deletion-tcps", type=int, default=100)
    p.add_argument("--gap", type=float, default=0.3, help="seconds between deletion trials")
    p.add_argument("--renewal-tcps", type=int, default=50)
    p.add_argument("--overhead-tcps", type=int, default=100, help="TCPs of the ECDSA renewal")
    p.add_argument("--loop-certs", type=int, default=128, help="certificates per plain-loop run")
    p.add_argument(
        "--no-cold",
        dest="cold",
        action="store_false",
        help="skip the second renewal round with a freshly restarted issuer",
    )
    p.add_argument("--scale-tcps", type=int, default=1000)
    p.add_argument(
        "--lifecycle-replicas",
        type=int,
        default=1,
        help="lifecycle replicas in the scale scenario (2: their shares and the takeover time)",
    )
    p.add_argument(
        "--steady-timeout", type=float, default=300.0, help="seconds to wait for steady state"
    )
    p.add_argument("--idle", type=float, default=30.0, help="seconds of idle CPU measurement")
    p.add_argument(
        "--reevaluate",
        default="10s",
        help="CERTLC_REEVALUATE (default 10s: passes of the safety net fall in the idle window)",
    )
    p.add_argument("--keep", action="store_true", help="keep the work directory (service logs)")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    report = Report()
    scenarios = {
        "deletion": run_deletion,
        "renewal": run_renewal,
        "overhead": run_overhead,
        "scale": run_scale,
    }
    chosen = list(scenarios) if args.scenario == "all" else [args.scenario]
    began = time.monotonic()
    for name in chosen:
        scenarios[name](args, report)
    print()
    print(report.table())
    print(f"\n{len(chosen)} scenario(s) in {time.monotonic() - began:.0f} s on this machine")
    return 0 if all(r.ok is not False for r in report.rows) else 1


if __name__ == "__main__":
    sys.exit(main())
