"""Every message on the bus round-trips, evolves safely and cannot carry key material."""

from __future__ import annotations

import typing
from datetime import UTC, datetime
from typing import Any

import msgspec
import msgspec.inspect as mi
import pytest

from libs.contracts import api, codec, messages

# The shape of a PKCS#1 key: PEM armour around a long base64 body (content is irrelevant here).
DER_KEY_B64 = "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gunVTLw7on" * 5
PEM_KEY = f"-----BEGIN RSA PRIVATE KEY-----\n{DER_KEY_B64}\n-----END RSA PRIVATE KEY-----\n"


def _message_types() -> list[type[messages.Fact]]:
    found: list[type[messages.Fact]] = []
    pending: list[type[messages.Fact]] = [messages.Fact]
    while pending:
        cls = pending.pop()
        for sub in cls.__subclasses__():
            pending.append(sub)
            if sub.__struct_config__.tag is not None or sub in (
                messages.CertFacts,
                messages.Problem,
                messages.WrittenSecret,
            ):
                found.append(sub)
    return sorted(found, key=lambda c: c.__name__)


ALL_TYPES = _message_types()
NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def _sample(info: mi.Type) -> Any:
    match info:
        case mi.StrType():
            return "k8s-126"
        case mi.IntType():
            return 3
        case mi.FloatType():
            return 1.5
        case mi.BoolType():
            return True
        case mi.DateTimeType():
            return NOW
        case mi.EnumType():
            return next(iter(info.cls))
        case mi.NoneType():
            return None
        case mi.UnionType():
            return _sample(next(t for t in info.types if not isinstance(t, mi.NoneType)))
        case mi.VarTupleType() | mi.ListType():
            return (_sample(info.item_type),)
        case mi.DictType():
            return {_sample(info.key_type): _sample(info.value_type)}
        case mi.StructType():
            return _build(info.cls)
    raise AssertionError(f"no sample for {info!r}")


def _build(cls: type[Any]) -> Any:
    info = mi.type_info(cls)
    assert isinstance(info, mi.StructType)
    return cls(**{f.name: _sample(f.type) for f in info.fields})


def _str_fields(cls: type[Any]) -> list[str]:
    info = mi.type_info(cls)
    assert isinstance(info, mi.StructType)
    names = []
    for f in info.fields:
        t = f.type
        if isinstance(t, mi.UnionType):
            t = next(x for x in t.types if not isinstance(x, mi.NoneType))
        if isinstance(t, mi.StrType):
            names.append(f.name)
    return names


def test_should_know_every_message_type() -> None:
    names = {c.__name__ for c in ALL_TYPES}
    assert {"RotateCommand", "SecretObserved", "RotateRequest", "CertificateIssued"} <= names
    assert len(ALL_TYPES) >= 25


@pytest.mark.parametrize("cls", ALL_TYPES, ids=lambda c: c.__name__)
def test_should_round_trip_every_message(cls: type[Any]) -> None:
    sample = _build(cls)
    data = codec.encode(sample)
    assert codec.decode(cls, data) == sample


@pytest.mark.parametrize("cls", ALL_TYPES, ids=lambda c: c.__name__)
def test_should_refuse_private_key_in_any_text_field(cls: type[Any]) -> None:
    sample = _build(cls)
    fields = _str_fields(cls)
    for name in fields:
        with pytest.raises(messages.KeyMaterialError, match=name):
            msgspec.structs.replace(sample, **{name: PEM_KEY})
        with pytest.raises(messages.KeyMaterialError):
            msgspec.structs.replace(sample, **{name: DER_KEY_B64})
        raw = msgspec.json.decode(codec.encode(sample))
        raw[name] = PEM_KEY
        with pytest.raises(codec.MalformedMessage, match="never carry keys"):
            codec.decode(cls, msgspec.json.encode(raw))


@pytest.mark.parametrize("cls", ALL_TYPES, ids=lambda c: c.__name__)
def test_should_have_no_bytes_field(cls: type[Any]) -> None:
    hints = typing.get_type_hints(cls)
    for name, hint in hints.items():
        assert "bytes" not in str(hint), f"{cls.__name__}.{name} can hold raw bytes"


def test_should_refuse_keys_inside_nested_values() -> None:
    with pytest.raises(messages.KeyMaterialError):
        messages.Problem(code="x", message="ok " + PEM_KEY)
    with pytest.raises(messages.KeyMaterialError):
        messages.SecretObserved(
            namespace="a",
            tcp="b",
            name="c",
            kind="ca",
            uid="u",
            resource_version="1",
            data_keys=("ca.crt", PEM_KEY),
        )


def test_should_ignore_unknown_fields_and_default_new_ones() -> None:
    raw = (
        b'{"type":"tcp.observed","namespace":"default","name":"k8s-126","uid":"u",'
        b'"resource_version":"7","field_from_the_future":{"x":1}}'
    )
    event = codec.decode_event(raw)
    assert isinstance(event, messages.TcpObserved)
    assert event.konnectivity is False
    assert event.datastore == ""


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b"not json", "not JSON"),
        (b'{"type":"rotate.request","namespace":"a"}', "missing required field"),
        (b'{"type":"rotate.request","namespace":"a","tcp":"b","target":"everything"}', "target"),
        (b'{"type":"nope"}', "Invalid value 'nope'"),
    ],
)
def test_should_name_what_is_wrong_in_a_malformed_payload(payload: bytes, expected: str) -> None:
    with pytest.raises(codec.MalformedMessage, match=expected):
        codec.decode_request(payload) if b"rotate.request" in payload else codec.decode_event(
            payload
        )


def test_should_name_audit_subject_tokens_after_the_tag() -> None:
    event = api.RolloutCompleted(
        namespace="default", tcp="k8s-126", at=NOW, deployment="k8s-126", duration_seconds=1.0
    )
    assert api.audit_token(event) == "rollout-completed"
    assert isinstance(codec.decode_audit(codec.encode(event)), api.RolloutCompleted)
