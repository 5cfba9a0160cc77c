"""Maintenance windows: when a due renewal may restart a tenant's control plane. Pure.

One spelling for the fleet setting (CERTLC_MAINTENANCE_WINDOW) and the TCP annotation
(certlc.kamaji.clastix.io/maintenance-window):

    WINDOW [; WINDOW ...]        WINDOW = CRON DURATION [TIMEZONE]

    "0 2 * * 1-5 4h Europe/Berlin; 0 10 * * 6 6h Europe/Berlin"

CRON is the five fields of crontab(5) (minute, hour, day of month, month, day of week). Each
time it fires in TIMEZONE (an IANA name; UTC when left out), a window opens for DURATION (the
duration grammar of libs/contracts/durations.py). Windows may overlap and may be longer than
their period. Daylight saving time is handled as Debian's cron does (cronsim): a time skipped by
a spring-forward fires right after the jump, a time repeated in the autumn fires once. An empty
value means no window: a renewal may happen whenever it falls due.

`slot` places a due renewal: at the first moment from `due` on at which a window is open, unless
that comes after `latest` (NotAfter minus the safety margin); then at `latest` (or `due` if
later), outside any window, which the caller reports.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from libs.contracts.durations import parse_duration

_REFERENCE = datetime(2000, 1, 1, tzinfo=UTC)  # a first opening is looked for after this


class WindowError(ValueError):
    """A window spelling that does not parse, or a window that can never open."""


@dataclass(frozen=True, slots=True)
class Window:
    cron: str  # five crontab fields, single-spaced
    duration: timedelta
    timezone: str = "UTC"

    def opening_after(self, moment: datetime) -> datetime | None:
        """The first opening strictly after `moment`, in UTC; None if there is none."""
        local = moment.astimezone(_zone(self.timezone))
        try:
            return next(CronSim(self.cron, local)).astimezone(UTC)
        except StopIteration:
            return None

    def __str__(self) -> str:
        return f"{self.cron} {_fmt(self.duration)} {self.timezone}"


@dataclass(frozen=True, slots=True)
class Slot:
    """When a due renewal happens: `at`, inside a window unless `in_window` is False."""

    at: datetime
    in_window: bool


def _fmt(value: timedelta) -> str:
    seconds = value.total_seconds()
    if seconds % 3600 == 0:
        return f"{seconds / 3600:g}h"
    if seconds % 60 == 0:
        return f"{seconds / 60:g}m"
    return f"{seconds:g}s"


@lru_cache(maxsize=256)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def _parse_one(text: str) -> Window:
    tokens = text.split()
    if len(tokens) not in (6, 7):
        raise WindowError(
            f"{text.strip()!r}: expected five cron fields, a duration and an optional time zone "
            "(e.g. '0 2 * * 1-5 4h Europe/Berlin')"
        )
    cron = " ".join(tokens[:5])
    zone = tokens[6] if len(tokens) == 7 else "UTC"
    try:
        duration = parse_duration(tokens[5])
    except ValueError:
        raise WindowError(
            f"{text.strip()!r}: {tokens[5]!r} is not a duration (use e.g. 4h, 90m, 20s)"
        ) from None
    if duration <= timedelta(0):
        raise WindowError(f"{text.strip()!r}: the duration must be positive")
    try:
        tz = _zone(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise WindowError(f"{text.strip()!r}: {zone!r} is not an IANA time zone") from None
    try:
        first = next(CronSim(cron, _REFERENCE.astimezone(tz)), None)
    except CronSimError as exc:
        raise WindowError(f"{text.strip()!r}: bad cron expression {cron!r}: {exc}") from None
    if first is None:
        raise WindowError(f"{text.strip()!r}: the cron expression {cron!r} never fires")
    return Window(cron, duration, zone)


@lru_cache(maxsize=1024)
def parse_windows(text: str) -> tuple[Window, ...]:
    """The windows `text` spells (module docstring); () for an empty value. WindowError names
    the window that is wrong and why."""
    parts = [part for part in text.split(";") if part.strip()]
    return tuple(_parse_one(part) for part in parts)


def open_at(windows: Sequence[Window], moment: datetime) -> bool:
    """Whether a window is open at `moment` (always, without windows)."""
    return not windows or slot(tuple(windows), moment, moment).in_window


def next_open(windows: Sequence[Window], moment: datetime) -> datetime | None:
    """The first moment at or after `moment` when a window is open (`moment` itself without
    windows); None when none ever opens again."""
    if not windows:
        return moment
    best: datetime | None = None
    for window in windows:
        # The windows that are still open at `moment` opened less than `duration` before it.
        start = window.opening_after(moment - window.duration)
        if start is not None and (best is None or max(moment, start) < best):
            best = max(moment, start)
    return best


def opened(windows: Sequence[Window], moment: datetime) -> datetime | None:
    """When the window open at `moment` opened (the earliest, when several overlap); None when
    none is open then."""
    found = [
        o
        for w in windows
        if (o := w.opening_after(moment - w.duration)) is not None and o <= moment
    ]
    return min(found, default=None)


@lru_cache(maxsize=65536)
def slot(windows: tuple[Window, ...], due: datetime, latest: datetime) -> Slot:
    """When a renewal due at `due` happens (module docstring). Without windows: at `due`."""
    if not windows:
        return Slot(due, True)
    best = next_open(windows, due)
    if best is not None and best <= max(due, latest):
        return Slot(best, True)
    return Slot(max(due, latest), False)
