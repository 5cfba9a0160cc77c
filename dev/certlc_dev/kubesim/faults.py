"""Fault injection: make matching requests fail or slow down, cut watches, force 410.

A `FaultRule` matches requests by verb, resource (plural), namespace, name and subresource
(`*` matches anything) and either answers with an error status (500, 409, 429 with
Retry-After, ...) or adds latency, for `times` requests (None: until removed). Rules are
consulted by the HTTP layer before a request reaches the API; cutting watch streams and
compacting history act on the running server (see `KubeSim.faults`).
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from certlc_dev.kubesim.errors import (
    STALE_OBJECT,
    ApiError,
    Conflict,
    InternalError,
    TooManyRequests,
    error_for_code,
)
from certlc_dev.kubesim.resources import ResourceType

WILDCARD = "*"


@dataclass(slots=True)
class FaultRule:
    """One injected fault. `code` None means "latency only"."""

    verb: str = WILDCARD
    resource: str = WILDCARD
    namespace: str = WILDCARD
    name: str = WILDCARD
    subresource: str = WILDCARD
    code: int | None = 500
    times: int | None = 1
    delay: float = 0.0
    retry_after: int = 1
    message: str = ""
    id: int = field(default=0)

    def matches(
        self, verb: str, resource: str, namespace: str, name: str, subresource: str
    ) -> bool:
        return all(
            want in (WILDCARD, got)
            for want, got in (
                (self.verb, verb),
                (self.resource, resource),
                (self.namespace, namespace),
                (self.name, name),
                (self.subresource, subresource),
            )
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FaultRule:
        known = {f for f in cls.__dataclass_fields__ if f != "id"}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown fault fields: {', '.join(sorted(unknown))}")
        return cls(**data)


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do with a request: wait `delay` seconds, then fail with `error` if set."""

    delay: float = 0.0
    error: ApiError | None = None


def error_for(rule: FaultRule, rt: ResourceType | None, name: str) -> ApiError:
    """The `Status` a rule answers with, shaped like the real error for that code."""
    code = rule.code or 500
    if code == 500:
        return InternalError(rule.message or "injected fault")
    if code == 429:
        return TooManyRequests(
            rule.message or "Too many requests, please try again later.",
            retry_after=rule.retry_after,
        )
    if code == 409 and rt is not None and name:
        return Conflict.object(rt, name, rule.message or STALE_OBJECT)
    headers = {"Retry-After": str(rule.retry_after)} if code in (503, 504) else None
    return error_for_code(code, rule.message or f"injected fault ({code})", headers=headers)


class Faults:
    """The active rules plus hooks into the server for watch cuts and compaction."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []
        self._ids = itertools.count(1)
        self.cut_hook: Callable[[str | None, str | None, bool], int] = lambda r, n, a: 0
        self.compact_hook: Callable[[str | None], int] = lambda r: 0

    def add(self, rule: FaultRule) -> FaultRule:
        with self._lock:
            stored = replace(rule, id=next(self._ids))
            self._rules.append(stored)
            return replace(stored)

    def fail(
        self,
        code: int = 500,
        *,
        verb: str = WILDCARD,
        resource: str = WILDCARD,
        namespace: str = WILDCARD,
        name: str = WILDCARD,
        subresource: str = WILDCARD,
        times: int | None = 1,
        retry_after: int = 1,
        message: str = "",
        delay: float = 0.0,
    ) -> FaultRule:
        """Answer the next `times` matching requests with an error of status `code`."""
        return self.add(
            FaultRule(
                verb,
                resource,
                namespace,
                name,
                subresource,
                code,
                times,
                delay,
                retry_after,
                message,
            )
        )

    def delay(
        self,
        seconds: float,
        *,
        verb: str = WILDCARD,
        resource: str = WILDCARD,
        namespace: str = WILDCARD,
        name: str = WILDCARD,
        subresource: str = WILDCARD,
        times: int | None = None,
    ) -> FaultRule:
        """Add `seconds` of latency to matching requests."""
        return self.add(
            FaultRule(verb, resource, namespace, name, subresource, None, times, seconds)
        )

    def remove(self, rule_id: int) -> bool:
        with self._lock:
            before = len(self._rules)
            self._rules = [r for r in self._rules if r.id != rule_id]
            return len(self._rules) != before

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def rules(self) -> list[FaultRule]:
        with self._lock:
            return [replace(r) for r in self._rules]

    def decide(
        self,
        verb: str,
        rt: ResourceType | None,
        resource: str,
        namespace: str,
        name: str,
        subresource: str,
    ) -> Decision:
        """Consume the first matching rule (if any) and say what to do."""
        with self._lock:
            for rule in self._rules:
                if not rule.matches(verb, resource, namespace, name, subresource):
                    continue
                if rule.times is not None:
                    rule.times -= 1
                    if rule.times <= 0:
                        self._rules.remove(rule)
                error = error_for(rule, rt, name) if rule.code else None
                return Decision(rule.delay, error)
        return Decision()

    def cut_watches(
        self, resource: str | None = None, namespace: str | None = None, *, abrupt: bool = True
    ) -> int:
        """End open watch streams (abrupt: reset the connection); returns how many."""
        return self.cut_hook(resource, namespace, abrupt)

    def compact(self, resource: str | None = None) -> int:
        """Drop watch history so older resourceVersions get 410; returns the new floor."""
        return self.compact_hook(resource)
