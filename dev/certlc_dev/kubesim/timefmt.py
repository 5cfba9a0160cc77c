"""Timestamps as Kubernetes writes them, and the human ages kubectl prints.

`metav1.Time` is RFC 3339 in UTC with second precision (`2026-01-01T00:00:00Z`);
`metav1.MicroTime` (Lease acquire/renew times, Event eventTime) has six fractional digits
(`2026-01-01T00:00:00.000000Z`). Incoming values in any RFC 3339 offset are normalised to UTC,
as the API server does when it decodes and re-encodes them. `human_duration` follows
apimachinery's `duration.HumanDuration`, which table columns such as AGE use.
"""

from __future__ import annotations

from datetime import UTC, datetime

MICRO_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
SECOND_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def rfc3339(moment: datetime) -> str:
    """`metav1.Time` wire format."""
    return moment.astimezone(UTC).strftime(SECOND_FORMAT)


def micro_time(moment: datetime) -> str:
    """`metav1.MicroTime` wire format."""
    return moment.astimezone(UTC).strftime(MICRO_FORMAT)


def parse_time(value: str) -> datetime:
    """Parse an RFC 3339 timestamp (with `Z` or an offset; naive values are taken as UTC).

    Raises `ValueError` when the text is not a timestamp.
    """
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def normalise(value: object, *, micro: bool) -> object:
    """Re-encode a timestamp string in the canonical format; other values are returned as is."""
    if not isinstance(value, str):
        return value
    try:
        moment = parse_time(value)
    except ValueError:
        return value
    return micro_time(moment) if micro else rfc3339(moment)


def _two_units(big: int, big_unit: str, small: int, small_unit: str) -> str:
    return f"{big}{big_unit}" if small == 0 else f"{big}{big_unit}{small}{small_unit}"


def human_duration(seconds: float) -> str:
    """apimachinery `duration.HumanDuration` for an elapsed number of seconds."""
    secs = int(seconds)
    if secs < -1:
        return "<invalid>"
    secs = max(secs, 0)
    minutes, hours, days = secs // 60, secs // 3600, secs // 86400
    if secs < 60 * 2:
        text = f"{secs}s"
    elif minutes < 10:
        text = _two_units(minutes, "m", secs % 60, "s")
    elif minutes < 60 * 3:
        text = f"{minutes}m"
    elif hours < 8:
        text = _two_units(hours, "h", minutes % 60, "m")
    elif hours < 48:
        text = f"{hours}h"
    elif hours < 24 * 8:
        text = _two_units(days, "d", hours % 24, "h")
    elif hours < 24 * 365 * 2:
        text = f"{days}d"
    elif hours < 24 * 365 * 8:
        text = _two_units(days // 365, "y", days % 365, "d")
    else:
        text = f"{days // 365}y"
    return text


def age(created: object, now: datetime) -> str:
    """The AGE cell for a `creationTimestamp` value, `<unknown>` when it is missing."""
    if not isinstance(created, str):
        return "<unknown>"
    try:
        moment = parse_time(created)
    except ValueError:
        return "<invalid>"
    return human_duration((now - moment).total_seconds())
