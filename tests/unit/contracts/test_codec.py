"""The decoder refuses what is not the promised message, naming what was wrong, never crashing."""

from __future__ import annotations

import pytest

from libs.contracts.api import RotateRequest, Target
from libs.contracts.codec import MalformedMessage, decode_event, decode_request, encode

VALID = encode(RotateRequest(namespace="tenants", tcp="alpha", target=Target.X509, requester="t"))


def test_a_valid_request_decodes() -> None:
    request = decode_request(VALID)
    assert (request.namespace, request.tcp) == ("tenants", "alpha")


@pytest.mark.parametrize(
    ("payload", "named"),
    [
        (b'{"namespace": "tenants", "tcp": "alpha", "target": "all"}', "`type`"),
        (b'{"type": "rotate.accepted", "namespace": "tenants"}', "$.type"),
        (b'{"type": "\\u0000"}', "unknown message type"),
        (b"[" * 100_000, "`array`"),
        (b'{"type": "rotate.request", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "deeply"),
        (b'{"a": ' * 50_000 + b"1" + b"}" * 50_000, "nested too deeply"),
        (b"not json", "not JSON"),
    ],
)
def test_malformed_requests_are_refused_with_a_reason(payload: bytes, named: str) -> None:
    with pytest.raises(MalformedMessage, match="RotateRequest") as refused:
        decode_request(payload)
    assert named in str(refused.value)


def test_an_event_without_a_type_is_refused() -> None:
    with pytest.raises(MalformedMessage, match="`type`"):
        decode_event(b'{"namespace": "tenants", "tcp": "alpha"}')
