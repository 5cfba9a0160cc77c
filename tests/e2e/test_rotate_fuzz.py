"""The public rotate API under generated input: every request gets 400 or 404 with a message,
never a 5xx, and the services keep running (no TCP exists here, so a well-formed request is
answered 404)."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import nats
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from libs.contracts import subjects
from tests.e2e.harness import Stack

# A failing example may be a payload of hundreds of kB: its repr is long, and that is fine.
pytestmark = pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisWarning")

PER_EXAMPLE = 50
EXAMPLES = 200  # 10,000 requests

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
field_values = json_values | st.sampled_from(["x509", "kubeconfig", "ca", "secret", "default", ""])
request_like = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(["rotate.request", "rotate.accepted", "", "secret.observed"])
        | st.text(max_size=8)
        | json_values,
        "namespace": st.text(max_size=70) | json_values,
        "tcp": st.text(max_size=70) | json_values,
        "target": field_values,
        "secret": field_values,
        "note": field_values,
        "requester": field_values,
        "request_id": field_values,
    },
).map(lambda d: json.dumps(d).encode())


names = st.from_regex(r"[a-z0-9]([-a-z0-9]{0,20}[a-z0-9])?", fullmatch=True)
well_formed = st.fixed_dictionaries(
    {
        "type": st.just("rotate.request"),
        "namespace": names,
        "tcp": names,
        "target": st.sampled_from(["x509", "kubeconfig", "ca", "secret"]),
    },
    optional={"secret": names, "note": st.text(max_size=20), "requester": st.text(max_size=20)},
).map(lambda d: json.dumps(d).encode())


def _nested(depth: int, opener: str) -> bytes:
    closer = {"[": "]", '{"a":': "}"}[opener]
    body = opener * depth + "1" + closer * depth
    return ('{"type": "rotate.request", "namespace": ' + body + "}").encode()


payloads = st.one_of(
    well_formed,
    request_like,
    json_values.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=200),
    st.builds(_nested, st.integers(1, 100_000), st.sampled_from(["[", '{"a":'])),
)


def test_generated_rotate_requests_get_400_or_404(stack: Stack) -> None:
    loop = asyncio.new_event_loop()
    nc: Any = loop.run_until_complete(nats.connect(stack.nats.url))
    answers: dict[str, int] = {}
    started = time.monotonic()

    async def ask(payload: bytes) -> tuple[str, str]:
        msg = await nc.request(subjects.API_ROTATE, payload, timeout=10)
        headers = dict(msg.headers or {})
        return headers.get("Nats-Service-Error-Code", "none"), headers.get("Nats-Service-Error", "")

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(st.lists(payloads, min_size=PER_EXAMPLE, max_size=PER_EXAMPLE))
    def batch(requests: list[bytes]) -> None:
        async def all_of() -> list[tuple[str, str]]:
            return await asyncio.gather(*(ask(p) for p in requests))

        results = loop.run_until_complete(all_of())
        for payload, (code, message) in zip(requests, results, strict=True):
            answers[code] = answers.get(code, 0) + 1
            assert code in ("400", "404"), (code, message, payload[:200])
            assert message.strip(), (code, payload[:200])

    try:
        batch()
    finally:
        loop.run_until_complete(nc.close())
        loop.close()
    assert sum(answers.values()) >= EXAMPLES * PER_EXAMPLE, answers
    assert answers.get("400"), answers  # both kinds were reached
    assert answers.get("404"), answers
    assert all(p.running() for p in stack.services.processes), stack.services.logs()[-4000:]
    assert all(p.ready() for p in stack.services.processes)
    print(f"{answers} in {time.monotonic() - started:.1f}s")
