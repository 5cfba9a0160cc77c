"""`certlc plan` and the RENEWAL column of `certlc status`: the renewals lifecycle has
scheduled, read from its schedule API (`certlc.api.v1.schedule`), so that what is shown is what
lifecycle will do (jitter, each TCP's profile, maintenance windows), never a second computation.

A plan groups them into rollouts: the certificates of one TCP renewed at the same moment are one
rotation and one rollout. With a rollout budget (read from its document, as rollout enforces
it), a rollout may have to wait for a slot: `estimate_starts` plays the budget forward, serving
waiters by deadline as rollout does, assuming each rollout takes `rollout_time`. That part is an
estimate; the rest is lifecycle's schedule.
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from libs.bus import Bus
from libs.bus.errors import BusError
from libs.bus.request import NoResponderError, RequestTimeoutError, request
from libs.cli._opsutil import CliError, Exit, stamp, table
from libs.contracts import subjects
from libs.contracts.api import ScheduledRenewal, ScheduleRequest
from libs.contracts.codec import MalformedMessage, decode_schedule, encode
from libs.contracts.records import Phase, RotationRecord
from libs.pki import short_human_duration

REQUEST_TIMEOUT = 10.0
ROLLOUT_TIME = timedelta(minutes=1)  # what one rollout is assumed to take, by default


async def read_schedule(
    bus: Bus,
    namespace: str | None,
    tcp: str | None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> tuple[list[ScheduledRenewal], datetime | None]:
    """Every scheduled renewal that matches, page by page, and lifecycle's clock."""
    found: list[ScheduledRenewal] = []
    after, now = "", None
    while True:
        req = ScheduleRequest(
            namespace=namespace or "", tcp=tcp or "", since=since, until=until, after=after
        )
        try:
            reply = await request(bus, subjects.API_SCHEDULE, encode(req), max_wait=REQUEST_TIMEOUT)
        except NoResponderError:
            raise CliError(
                Exit.NATS,
                f"no certlc lifecycle answers on {subjects.API_SCHEDULE} (is it running?)",
            ) from None
        except RequestTimeoutError:
            raise CliError(
                Exit.NATS, f"certlc lifecycle did not answer within {REQUEST_TIMEOUT:g}s"
            ) from None
        except BusError as exc:
            raise CliError(Exit.NATS, str(exc)) from None
        if not reply.ok:
            code = reply.error_code or 500
            raise CliError(Exit.NATS if code == 503 else Exit.PROBLEM, f"{code} {reply.error}")
        try:
            page = decode_schedule(reply.data)
        except MalformedMessage as exc:
            raise CliError(Exit.PROBLEM, f"unexpected reply from certlc: {exc}") from None
        found.extend(page.renewals)
        now = page.now
        if not page.more:
            return found, now
        after = page.more


@dataclass(frozen=True, slots=True)
class PlannedRollout:
    """The certificates of one TCP renewed at one moment: one rotation, one rollout."""

    namespace: str
    tcp: str
    at: datetime  # when lifecycle renews them
    deadline: datetime  # the earliest NotAfter among them: the budget serves by it
    secrets: tuple[str, ...]
    in_window: bool  # False: some could not wait for a window
    windows: str
    window_opens: datetime | None = None  # the opening of the window it renews in
    rotation: str = ""  # a requested rotation waiting for its window: its id

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.tcp)


def rollouts(renewals: Iterable[ScheduledRenewal]) -> list[PlannedRollout]:
    """The renewals grouped per TCP and moment, in order of time, then deadline."""
    groups: dict[tuple[str, str, datetime], list[ScheduledRenewal]] = defaultdict(list)
    for r in renewals:
        groups[(r.namespace, r.tcp, r.at)].append(r)
    planned = [
        PlannedRollout(
            namespace=ns,
            tcp=tcp,
            at=at,
            deadline=min(r.not_after for r in group),
            secrets=tuple(sorted(r.secret for r in group)),
            in_window=all(r.in_window for r in group),
            windows=group[0].windows,
            window_opens=group[0].window_opens,
        )
        for (ns, tcp, at), group in groups.items()
    ]
    return sorted(planned, key=lambda p: (p.at, p.deadline, p.key))


REQUESTED = "requested rotation"


def scheduled_rotations(
    records: Iterable[RotationRecord], since: datetime | None, until: datetime | None
) -> list[PlannedRollout]:
    """The requested rotations waiting for a maintenance window (`scheduled` records) that
    start within [since, until): one rollout each, at the window opening they wait for."""
    planned = []
    for r in records:
        at = r.not_before
        if r.phase is not Phase.SCHEDULED or at is None:
            continue
        if (since is not None and at < since) or (until is not None and at >= until):
            continue
        planned.append(
            PlannedRollout(
                namespace=r.namespace,
                tcp=r.tcp,
                at=at,
                deadline=r.deadline or at,
                secrets=tuple(f"{r.tcp}-{s}" for s in r.secrets),
                in_window=True,
                windows=REQUESTED,
                window_opens=at,
                rotation=r.id,
            )
        )
    return planned


def estimate_starts(
    planned: Sequence[PlannedRollout], total: int, per_namespace: int, rollout_time: timedelta
) -> list[tuple[PlannedRollout, datetime]]:
    """When each rollout would start under a budget of `total` at once (and `per_namespace` in
    one namespace; 0: no limit), each taking `rollout_time`: at its moment, or when a slot
    frees, waiters served by deadline (earliest NotAfter first) as rollout serves them."""
    if total <= 0 and per_namespace <= 0:
        return [(p, p.at) for p in planned]
    pending = sorted(planned, key=lambda p: p.at)
    waiting: list[tuple[datetime, datetime, int, PlannedRollout]] = []  # deadline order
    running: list[tuple[datetime, str]] = []  # (ends, namespace), a heap
    per_ns: dict[str, int] = defaultdict(int)
    started: list[tuple[PlannedRollout, datetime]] = []
    clock, i = (pending[0].at if pending else datetime.min), 0
    while i < len(pending) or waiting:
        while i < len(pending) and pending[i].at <= clock:  # those due by now join the queue
            p = pending[i]
            heapq.heappush(waiting, (p.deadline, p.at, i, p))
            i += 1
        deferred = []
        while waiting and (total <= 0 or len(running) < total):
            entry = heapq.heappop(waiting)
            ns = entry[3].namespace
            if per_namespace > 0 and per_ns[ns] >= per_namespace:
                deferred.append(entry)  # passed over, not blocking the others
                continue
            started.append((entry[3], clock))
            heapq.heappush(running, (clock + rollout_time, ns))
            per_ns[ns] += 1
        for entry in deferred:
            heapq.heappush(waiting, entry)
        # the next moment anything changes: a rollout ends, or the next one falls due
        moments = [running[0][0]] if running else []
        if i < len(pending):
            moments.append(pending[i].at)
        if not moments:
            break
        clock = max(clock, min(moments))
        while running and running[0][0] <= clock:
            _, ns = heapq.heappop(running)
            per_ns[ns] -= 1
    return sorted(started, key=lambda s: (s[1], s[0].at, s[0].key))


def budget_waits(
    fleet: Sequence[ScheduledRenewal], total: int, per_namespace: int, rollout_time: timedelta
) -> dict[tuple[str, str], timedelta]:
    """(namespace, Secret) -> how long the rollout that renews it would wait for a budget slot,
    for those that would wait, from the fleet's renewals (`estimate_starts`)."""
    if total <= 0 and per_namespace <= 0:
        return {}
    started = estimate_starts(rollouts(fleet), total, per_namespace, rollout_time)
    starts = {(p.namespace, p.tcp, p.at): start for p, start in started}
    waits: dict[tuple[str, str], timedelta] = {}
    for r in fleet:
        wait = starts[(r.namespace, r.tcp, r.at)] - r.at
        if wait > timedelta(0):
            waits[(r.namespace, r.secret)] = wait
    return waits


@dataclass(frozen=True, slots=True)
class WindowLoad:
    """The rollouts one window opening carries; or those of TCPs without windows (`opens`
    None, `windows` ""), or those that cannot wait for one (`opens` None, `windows` set)."""

    opens: datetime | None
    windows: str
    rollouts: int
    certificates: int
    last_start: datetime  # the latest estimated start among them

    @property
    def label(self) -> str:
        if self.opens is not None:
            return f"{stamp(self.opens)} ({self.windows})"
        return "outside windows (cannot wait)" if self.windows else "no window"


def per_window(started: Sequence[tuple[PlannedRollout, datetime]]) -> list[WindowLoad]:
    """The rollouts grouped by the window opening they renew in, in order of time; then those
    that cannot wait for a window, then those of TCPs without windows."""
    groups: dict[tuple[int, datetime | None, str], list[tuple[PlannedRollout, datetime]]] = {}
    for p, start in started:
        key: tuple[int, datetime | None, str]
        if p.window_opens is not None:
            key = (0, p.window_opens, p.windows)
        else:
            key = (1, None, "late") if p.windows else (2, None, "")
        groups.setdefault(key, []).append((p, start))
    return [
        WindowLoad(
            opens=opens,
            windows=spelled,
            rollouts=len(members),
            certificates=sum(len(p.secrets) for p, _ in members),
            last_start=max(start for _, start in members),
        )
        for (_, opens, spelled), members in sorted(
            groups.items(), key=lambda kv: (kv[0][0], kv[0][1] or datetime.min, kv[0][2])
        )
    ]


def _when(moment: datetime, now: datetime) -> str:
    delta = moment - now
    if delta <= timedelta(0):
        return "now (due)"
    return f"in {short_human_duration(delta)}"


def window_note(p: PlannedRollout) -> str:
    if p.rotation:
        return "requested, waits for it"
    if not p.windows:
        return "no window"
    return "in window" if p.in_window else "outside windows (cannot wait)"


def render_plan(
    started: Sequence[tuple[PlannedRollout, datetime]],
    now: datetime,
    budget: tuple[int, int],
    rollout_time: timedelta,
    period: tuple[datetime | None, datetime | None],
) -> list[str]:
    """The plan as a table, one line per rollout, and a summary per renewal moment."""
    since, until = period
    span = (f"from {stamp(since)}" if since else "from now (what is due included)") + (
        f" until {stamp(until)}" if until else ""
    )
    if not started:
        return [f"No renewals scheduled {span}."]
    total, per_ns = budget
    rows = []
    for p, start in started:
        waits = start - p.at
        rows.append([
            stamp(p.at), _when(p.at, now), f"{p.namespace}/{p.tcp}", str(len(p.secrets)),
            stamp(p.deadline), window_note(p),
            f"+{short_human_duration(waits)}" if waits > timedelta(0) else "-",
        ])  # fmt: skip
    header = [
        "RENEWS",
        "WHEN",
        "NAMESPACE/TCP",
        "SECRETS",
        "FIRST NOTAFTER",
        "WINDOW",
        "BUDGET WAIT",
    ]
    by_moment: dict[datetime, int] = defaultdict(int)
    for p, _ in started:
        by_moment[p.at] += 1
    busiest = max(by_moment.items(), key=lambda kv: (kv[1], -kv[0].timestamp()))
    limit = (
        f"rollout budget {total or 'unlimited'} at once, {per_ns or 'unlimited'} per namespace"
        if total or per_ns
        else "no rollout budget"
    )
    lines = [
        f"{len(started)} rollout(s) of {len({p.key for p, _ in started})} TCP(s) {span}; "
        f"{limit}; budget waits estimated with {short_human_duration(rollout_time)} per rollout",
        f"busiest moment: {stamp(busiest[0])}, {busiest[1]} rollout(s)",
        "",
        *table(header, rows),
    ]
    loads = per_window(started)
    if any(w.windows for w in loads):
        lines += ["", *table(
            ["WINDOW", "ROLLOUTS", "CERTIFICATES", "LAST START (ESTIMATED)"],
            [[w.label, str(w.rollouts), str(w.certificates), stamp(w.last_start)] for w in loads],
        )]  # fmt: skip
    late = [p for p, _ in started if not p.in_window]
    if late:
        lines += ["", *(
            f"- {p.namespace}/{p.tcp}: no maintenance window ({p.windows}) opens in time; "
            f"renewed at {stamp(p.at)}, NotAfter minus the margin"
            for p in late
        )]  # fmt: skip
    return lines


def plan_data(
    started: Sequence[tuple[PlannedRollout, datetime]],
    renewals: Sequence[ScheduledRenewal],
    budget: tuple[int, int],
    rollout_time: timedelta,
    period: tuple[datetime | None, datetime | None],
) -> dict[str, Any]:
    """The plan as plain data for `-o json`."""
    by_tcp: defaultdict[tuple[str, str, datetime], list[ScheduledRenewal]] = defaultdict(list)
    for r in renewals:
        by_tcp[(r.namespace, r.tcp, r.at)].append(r)
    since, until = period
    return {
        "since": stamp(since) if since else None,
        "until": stamp(until) if until else None,
        "budget": {"total": budget[0], "perNamespace": budget[1]},
        "rolloutSecondsAssumed": rollout_time.total_seconds(),
        "windows": [
            {
                "opens": stamp(w.opens) if w.opens else None,
                "windows": w.windows if w.opens else None,
                "cannotWait": w.opens is None and bool(w.windows),
                "rollouts": w.rollouts,
                "certificates": w.certificates,
                "lastEstimatedStart": stamp(w.last_start),
            }
            for w in per_window(started)
        ],
        "rollouts": [
            {
                "namespace": p.namespace,
                "tcp": p.tcp,
                "renewsAt": stamp(p.at),
                "estimatedStart": stamp(start),
                "deadline": stamp(p.deadline),
                "inWindow": p.in_window,
                "windows": p.windows,
                "windowOpens": stamp(p.window_opens) if p.window_opens else None,
                "rotation": p.rotation or None,
                "certificates": [{"secret": name} for name in p.secrets]
                if p.rotation
                else [
                    {
                        "secret": r.secret,
                        "kind": r.kind,
                        "notAfter": stamp(r.not_after),
                        "due": stamp(r.due),
                        "renewsAt": stamp(r.at),
                        "inWindow": r.in_window,
                    }
                    for r in sorted(by_tcp[(p.namespace, p.tcp, p.at)], key=lambda r: r.secret)
                ],
            }
            for p, start in started
        ],
    }
