"""The renewals lifecycle has scheduled, as the schedule API (`certlc.api.v1.schedule`) answers
them to `certlc status` and `certlc plan`. Pure: the same functions as the decisions (jitter,
renew-before of the TCP's profile, maintenance windows), so what is shown is what will be done.

Every certificate lifecycle renews for its age is listed: leaves and kubeconfigs, not the CAs
(rotated by hand), not a datastore certificate copied from a MySQL, PostgreSQL or NATS DataStore
(its own PKI renews it), nothing of a paused or deleted TCP, nor a paused Secret, nor an invalid
one (lifecycle re-issues it at once: that is no scheduled renewal). Renewals are in
(namespace, TCP, Secret) order, which is also the order of the pages.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from libs.contracts.api import (
    MAX_SCHEDULE_PAGE,
    ScheduledRenewal,
    ScheduleReply,
    ScheduleRequest,
)
from libs.contracts.windows import opened
from services.lifecycle.policy import (
    PolicySettings,
    TcpState,
    effective_deadline,
    managed_kinds,
    renew_at,
    renew_slot,
    renewed_here,
    tcp_windows,
)


class BadScheduleRequest(ValueError):
    """A schedule request that asks for nothing sensible (its message says what)."""


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where a page ends: the (namespace, TCP, Secret) of its last renewal."""

    namespace: str
    tcp: str
    secret: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.tcp}/{self.secret}"

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.namespace, self.tcp, self.secret)


def parse_cursor(text: str) -> Cursor | None:
    """The cursor `after` of a request; None for the first page."""
    if not text:
        return None
    parts = text.split("/")
    if len(parts) != 3 or not all(parts):
        raise BadScheduleRequest(f"'after' {text!r} is not a cursor of a previous reply")
    return Cursor(*parts)


def check(request: ScheduleRequest) -> Cursor | None:
    """The request's cursor, or BadScheduleRequest naming what is wrong."""
    if not 0 < request.limit <= MAX_SCHEDULE_PAGE:
        raise BadScheduleRequest(f"'limit' must be within 1 and {MAX_SCHEDULE_PAGE}")
    if request.tcp and not request.namespace:
        raise BadScheduleRequest("'tcp' needs its 'namespace'")
    if request.since and request.until and request.until <= request.since:
        raise BadScheduleRequest("'until' must come after 'since'")
    return parse_cursor(request.after)


def renewals(state: TcpState, cfg: PolicySettings) -> list[ScheduledRenewal]:
    """The next renewal of every certificate of one TCP that lifecycle renews for its age."""
    tcp = state.tcp
    if tcp.paused or tcp.deleting:
        return []
    windows = tcp_windows(tcp, cfg)
    spelled = "; ".join(map(str, windows))
    found: list[ScheduledRenewal] = []
    for kind in managed_kinds(tcp):
        s = state.secrets.get(kind)
        if s is None or s.cert is None or s.paused or s.problems or not renewed_here(kind, state):
            continue
        deadline = effective_deadline(tcp, s, cfg)
        due = renew_at(kind, s, cfg, deadline)
        at = renew_slot(kind, s, cfg, deadline, windows)
        if due is None or at is None:  # a CA
            continue
        found.append(
            ScheduledRenewal(
                namespace=tcp.namespace,
                tcp=tcp.name,
                secret=s.name,
                kind=kind.value,
                not_after=s.cert.not_after,
                due=due,
                at=at.at,
                in_window=at.in_window,
                windows=spelled,
                window_opens=opened(windows, at.at) if windows and at.in_window else None,
            )
        )
    return sorted(found, key=lambda r: r.secret)


def wanted(r: ScheduledRenewal, request: ScheduleRequest, after: Cursor | None) -> bool:
    if after is not None and (r.namespace, r.tcp, r.secret) <= after.key:
        return False
    if request.since is not None and r.at < request.since:
        return False
    return request.until is None or r.at < request.until


def page(
    views: Iterable[TcpState], request: ScheduleRequest, cfg: PolicySettings, now: datetime
) -> ScheduleReply:
    """One page of the schedule; `views` are the TCPs in (namespace, name) order, from the
    cursor's TCP on (the caller skips those before it)."""
    after = check(request)
    found: list[ScheduledRenewal] = []
    for view in views:
        for r in renewals(view, cfg):
            if not wanted(r, request, after):
                continue
            if len(found) == request.limit:
                last = found[-1]
                return ScheduleReply(
                    renewals=tuple(found),
                    more=str(Cursor(last.namespace, last.tcp, last.secret)),
                    now=now,
                )
            found.append(r)
    return ScheduleReply(renewals=tuple(found), now=now)
