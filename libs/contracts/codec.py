"""Encoders and decoders for the bus, created once.

Decoding is tolerant of unknown fields (schema evolution) and strict about types; a payload that
does not decode raises `MalformedMessage` naming the expected type and what was wrong (key
material refused by a Struct's `__post_init__` surfaces here too, as msgspec reports it). Every
payload names its message in `type` (docs/subjects.md): one without it is refused, also where a
single message type is expected. A payload nested too deeply to decode is refused as such.
"""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec

from libs.contracts.api import Audit, RotateAccepted, RotateRequest, ScheduleReply, ScheduleRequest
from libs.contracts.messages import Event, Issued, RotateCommand

T = TypeVar("T")


class MalformedMessage(ValueError):
    """A payload that is not the message the subject promises."""


_encoder = msgspec.json.Encoder()
_decoders: dict[Any, msgspec.json.Decoder[Any]] = {}


def encode(message: msgspec.Struct) -> bytes:
    return _encoder.encode(message)


class _NoMessage(msgspec.Struct, frozen=True, tag_field="type", tag="\x00"):
    """Never sent: joined to a single tagged Struct, it makes `type` required on decode
    (msgspec requires the tag of a tagged union, but not of one Struct type)."""


def _decoder(kind: Any) -> msgspec.json.Decoder[Any]:
    dec = _decoders.get(kind)
    if dec is None:
        target = kind
        config = getattr(kind, "__struct_config__", None)
        if config is not None and isinstance(config.tag, str):
            target = kind | _NoMessage
        dec = _decoders[kind] = msgspec.json.Decoder(target)
    return dec


def decode(kind: type[T] | Any, data: bytes) -> T:
    """Decode `data` as `kind` (a Struct type or a union alias)."""
    name = getattr(kind, "__name__", str(kind))
    try:
        result: T = _decoder(kind).decode(data)
    except msgspec.ValidationError as exc:
        raise MalformedMessage(f"not a valid {name}: {exc}") from exc
    except msgspec.DecodeError as exc:
        raise MalformedMessage(f"not JSON ({name} expected): {exc}") from exc
    except RecursionError:
        raise MalformedMessage(f"not a valid {name}: JSON nested too deeply") from None
    if isinstance(result, _NoMessage):
        raise MalformedMessage(f"not a valid {name}: unknown message type")
    return result


def decode_event(data: bytes) -> Event:
    return decode(Event, data)


def decode_command(data: bytes) -> RotateCommand:
    return decode(RotateCommand, data)


def decode_issued(data: bytes) -> Issued:
    return decode(Issued, data)


def decode_request(data: bytes) -> RotateRequest:
    return decode(RotateRequest, data)


def decode_accepted(data: bytes) -> RotateAccepted:
    return decode(RotateAccepted, data)


def decode_schedule_request(data: bytes) -> ScheduleRequest:
    return decode(ScheduleRequest, data)


def decode_schedule(data: bytes) -> ScheduleReply:
    return decode(ScheduleReply, data)


def decode_audit(data: bytes) -> Audit:
    return decode(Audit, data)
