"""Audit events are CloudEvents in NATS binary mode: every audit event type, published as the
services publish it (`publish_audit`), read back from the CERTLC_AUDIT stream with the official
CloudEvents SDK. The SDK has no NATS binding; NATS binary mode maps attributes to `ce-` headers
and `datacontenttype` to `content-type` exactly as its HTTP binding reads them."""

from __future__ import annotations

import asyncio
import enum
import json
import re
import typing
from datetime import UTC, datetime, timedelta
from typing import Any, get_args

import msgspec
import pytest
from cloudevents.core.bindings.http import HTTPMessage, from_binary_event

from certlc_dev.devenv.nats_server import NatsServer
from libs.bus import Bus, connect, ensure_topology
from libs.contracts import api
from libs.contracts.api import AuditEvent
from libs.runtime import topology
from libs.runtime.service import publish_audit

AT = datetime(2026, 3, 4, 5, 6, 7, 890123, tzinfo=UTC)
REVERSE_DNS_TYPE = re.compile(r"^io\.certlc\.[a-z0-9.-]+\.v[0-9]+$")


def _value(annotation: Any) -> Any:
    if annotation is str:
        return "x"
    if annotation is bool:
        return True
    if annotation is int:
        return 409
    if annotation is float:
        return 1.5
    if annotation is datetime:
        return AT + timedelta(days=30)
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return next(iter(annotation))
    if typing.get_origin(annotation) is tuple:
        return ("api-server-certificate",)
    if type(None) in typing.get_args(annotation):  # optional: a value of the other type
        (other,) = (a for a in typing.get_args(annotation) if a is not type(None))
        return _value(other)
    raise AssertionError(f"no sample value for {annotation!r}")


def sample(kind: type[AuditEvent]) -> AuditEvent:
    """An instance of `kind` with every field set."""
    hints = typing.get_type_hints(kind)
    values: dict[str, Any] = {}
    for field in msgspec.structs.fields(kind):
        values[field.name] = _value(hints[field.name])
    values.update(namespace="team-a", tcp="k8s-126", rotation_id="r-1", at=AT)
    return kind(**values)


AUDIT_TYPES: tuple[type[AuditEvent], ...] = get_args(api.Audit)


def test_every_audit_event_class_is_in_the_union() -> None:
    def leaves(cls: type[AuditEvent]) -> set[type[AuditEvent]]:
        subs = cls.__subclasses__()
        return set().union(*(leaves(s) for s in subs)) if subs else {cls}

    assert leaves(AuditEvent) == set(AUDIT_TYPES)


@pytest.mark.parametrize("service", ["issuer", "rollout"])
async def test_every_audit_event_reads_as_a_cloudevent(
    nats_server: NatsServer, service: str
) -> None:
    bus: Bus = await connect(nats_server.url, name=f"certlc-{service}")
    try:
        await ensure_topology(bus, topology.streams(), [])
        for kind in AUDIT_TYPES:
            await publish_audit(bus, sample(kind), "m-1")
        subscription = await bus.js.subscribe("certlc.audit.>", ordered_consumer=True)
        seen: dict[str, Any] = {}
        try:
            for _ in AUDIT_TYPES:
                msg = await subscription.next_msg(timeout=5)
                headers = dict(msg.headers or {})
                event = from_binary_event(HTTPMessage(headers=headers, body=msg.data))
                seen[event.get_type()] = (event, headers, msg)
        finally:
            await subscription.unsubscribe()
    finally:
        await bus.close()
    wanted = {f"io.certlc.{k.__struct_config__.tag}.v1" for k in AUDIT_TYPES}
    assert set(seen) == wanted
    for ce_type, (event, headers, msg) in seen.items():
        assert REVERSE_DNS_TYPE.match(ce_type), ce_type
        assert event.get_specversion() == "1.0"
        assert event.get_id() == headers["Nats-Msg-Id"]
        assert event.get_source() == f"/certlc/{service}"
        assert event.get_subject() == "team-a/k8s-126"
        assert event.get_time() == AT
        assert event.get_datacontenttype() == "application/json"
        # the body is the audit event's JSON, unchanged
        body = json.loads(msg.data)
        assert event.get_data() == body
        assert ce_type == f"io.certlc.{body['type']}.v1"
        assert msg.subject.endswith("." + body["type"].replace(".", "-"))


async def test_a_repeated_event_is_one_cloudevent(nats_server: NatsServer) -> None:
    """Same ce-id, same Nats-Msg-Id: the stream keeps it once (consumers see one event)."""
    bus: Bus = await connect(nats_server.url, name="certlc-lifecycle")
    try:
        await ensure_topology(bus, topology.streams(), [])
        event = sample(api.RotationRequested)
        await publish_audit(bus, event, "same")
        await publish_audit(bus, event, "same")
        info = await bus.js.stream_info("CERTLC_AUDIT")
        assert info.state.messages == 1
        sub = await bus.js.subscribe("certlc.audit.>", ordered_consumer=True)
        msg = await sub.next_msg(timeout=5)
        assert msg.headers is not None
        assert msg.headers["ce-id"] == msg.headers["Nats-Msg-Id"]
        with pytest.raises(asyncio.TimeoutError):
            await sub.next_msg(timeout=0.5)
        await sub.unsubscribe()
    finally:
        await bus.close()
