"""Settings from environment variables, strictly: an unknown `CERTLC_*` variable or a value that
does not parse stops the service at start with a message naming the variable.

Each service declares a frozen msgspec Struct; field `nats_url` is read from `CERTLC_NATS_URL`.
Durations are written like `24h`, `90s`, `1h30m`, `500ms`.
"""

from __future__ import annotations

import typing
from collections.abc import Mapping
from datetime import timedelta
from typing import Any, TypeVar

import msgspec

from libs.contracts.durations import parse_duration as contract_duration

PREFIX = "CERTLC_"
T = TypeVar("T", bound=msgspec.Struct)


class SettingsError(ValueError):
    """A setting is unknown or does not parse."""


def parse_duration(text: str) -> timedelta:
    """`24h`, `1h30m`, `90s`, `500ms`, `7d` -> timedelta (the grammar: libs.contracts.durations)."""
    try:
        return contract_duration(text)
    except ValueError as exc:
        raise SettingsError(str(exc)) from None


def format_duration(value: timedelta) -> str:
    seconds = value.total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def load_settings(
    cls: type[T], environ: Mapping[str, str], *, shared: frozenset[str] = frozenset()
) -> T:
    """Build `cls` from `CERTLC_<FIELD>` variables. Variables named in `shared` (settings of
    other services in a shared environment) are tolerated; any other unknown one is an error."""
    fields = {name.upper(): name for name in cls.__struct_fields__}
    hints = typing.get_type_hints(cls)
    raw: dict[str, Any] = {}
    for key, value in environ.items():
        if not key.startswith(PREFIX):
            continue
        name = key[len(PREFIX) :]
        if name in fields:
            field = fields[name]
            if hints.get(field) is timedelta:
                try:
                    raw[field] = parse_duration(value)
                except SettingsError as exc:
                    raise SettingsError(f"{key}: {exc}") from None
            else:
                raw[field] = value
        elif name not in shared:
            known = ", ".join(PREFIX + f for f in sorted(fields))
            raise SettingsError(f"unknown setting {key}; this service reads {known}")
    try:
        return msgspec.convert(raw, cls, strict=False)
    except msgspec.ValidationError as exc:
        field = str(exc).rsplit("$.", 1)[-1].strip("`") if "$." in str(exc) else ""
        where = f" {PREFIX}{field.upper()}" if field else ""
        raise SettingsError(f"invalid setting{where}: {exc}") from exc
