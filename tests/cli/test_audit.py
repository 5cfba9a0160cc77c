"""`certlc audit` against the stack: listing oldest first, filters, --since, JSON lines,
--follow until Ctrl-C, and an unreachable NATS."""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from tests.cli.conftest import Result, certlc_process, certlc_run
from tests.e2e.harness import Stack, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

Cli = Callable[..., Result]


def events(out: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.splitlines()]


def test_listing_oldest_first(stack: Stack, tenant: str, cli: Cli) -> None:
    url = stack.nats.url
    result = cli("audit", tenant, "--nats-url", url)
    assert result.code == 0, result
    lines = result.out.splitlines()
    assert lines[0].split() == ["TIME", "NAMESPACE/TCP", "EVENT", "ROTATION", "DETAIL"]
    body = lines[1:]
    assert all(f"default/{tenant}" in line for line in body)
    kinds = [line.split()[2] for line in body]
    # the first issuance: requested, then every Secret written, then one rollout
    assert kinds[0] == "rotation.requested"
    assert kinds.count("secret.written") == 13
    last_written = max(i for i, k in enumerate(kinds) if k == "secret.written")
    assert kinds.index("rollout.started") > last_written
    assert kinds[-1] == "rollout.completed"
    stamps = [line.split()[0] for line in body]
    assert stamps == sorted(stamps)
    as_json = events(cli("audit", f"default/{tenant}", "-o", "json", "--nats-url", url).out)
    assert len(as_json) == len(body)
    assert [e["type"] for e in as_json] == kinds
    assert {(e["namespace"], e["tcp"]) for e in as_json} == {("default", tenant)}
    written = [e for e in as_json if e["type"] == "secret.written"]
    assert {e["action"] for e in written} == {"created"}


def test_filters_and_since(stack: Stack, tenant_factory: Callable[[], str], cli: Cli) -> None:
    url = stack.nats.url
    first, second = tenant_factory(), tenant_factory()
    everything = events(cli("audit", "-o", "json", "--nats-url", url).out)
    assert {first, second} <= {str(e["tcp"]) for e in everything}
    in_default = events(cli("audit", "-n", "default", "-o", "json", "--nats-url", url).out)
    # every tenant here lives in default; events may still arrive between two listings
    # (another test's rollout completing), so each listing holds the one before it
    later = events(cli("audit", "-o", "json", "--nats-url", url).out)
    assert everything == in_default[: len(everything)]
    assert in_default == later[: len(in_default)]
    assert {e["namespace"] for e in in_default} == {"default"}
    elsewhere = cli("audit", "-n", "kube-system", "--nats-url", url)
    assert elsewhere.code == 0
    assert elsewhere.out == "No audit events.\n"
    assert cli("audit", "-n", "kube-system", "-o", "json", "--nats-url", url).out == ""
    only_first = events(cli("audit", first, "-o", "json", "--nats-url", url).out)
    assert {e["tcp"] for e in only_first} == {first}
    # --since: a moment between two rotations, then a duration
    time.sleep(1.1)
    middle = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    time.sleep(1.1)
    rotated = cli("rotate", first, "admin-kubeconfig", "--wait", "--nats-url", url)
    assert rotated.code == 0, rotated
    rotation = rotated.out.split()[1]
    recent = events(cli("audit", first, "--since", middle, "-o", "json", "--nats-url", url).out)
    since = datetime.fromisoformat(middle.replace("Z", "+00:00"))
    assert all(datetime.fromisoformat(str(e["at"]).replace("Z", "+00:00")) >= since for e in recent)
    assert not [e for e in recent if e in only_first]
    ours = [e for e in recent if e["rotation_id"] == rotation]
    assert [e["type"] for e in ours] == [
        "rotation.requested",
        "certificate.issued",
        "secret.written",
    ]
    assert ours[0]["secrets"] == ["admin-kubeconfig"]
    hour = events(cli("audit", first, "--since", "1h", "-o", "json", "--nats-url", url).out)
    assert hour[: len(only_first)] == only_first
    assert hour[-len(recent) :] == recent
    time.sleep(1.1)
    latest = events(cli("audit", first, "--since", "1s", "-o", "json", "--nats-url", url).out)
    assert not [e for e in latest if e["rotation_id"] == rotation or e in only_first]
    assert cli("audit", "--since", "yesterday").code == 2


def test_follow_prints_new_events_until_ctrl_c(stack: Stack, tenant: str, cli: Cli) -> None:
    url = stack.nats.url
    # --since reaches back before the follower started, so no event of the rotation can be missed
    # however long the follower takes to subscribe.
    proc = certlc_process("audit", "-f", tenant, "--since", "1h", "-o", "json", "--nats-url", url)
    lines: list[str] = []
    assert proc.stdout is not None

    def pump() -> None:
        assert proc.stdout is not None
        lines.extend(iter(proc.stdout.readline, ""))

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        rotated = cli("rotate", tenant, "kubeconfig", "--nats-url", url)
        assert rotated.code == 0, rotated
        rotation = rotated.out.split()[1]  # "rotation <id> accepted for ..."

        def ours() -> list[str]:
            return [
                str(e["type"])
                for e in map(json.loads, list(lines))
                if e.get("rotation_id") == rotation
            ]

        wait_for(lambda: "rollout.completed" in ours(), 30, "the followed rollout")
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(15)
        reader.join(5)
        assert proc.stderr is not None
        err = proc.stderr.read()
        proc.stdout.close()
        proc.stderr.close()
    assert code == 0
    assert err == ""
    types = ours()
    assert types[0] == "rotation.requested"
    assert types.count("secret.written") == 4
    assert "rollout.completed" in types


def test_unreachable_nats_is_exit_5(closed_port: int) -> None:
    result = certlc_run("audit", "-f", "--nats-url", f"nats://127.0.0.1:{closed_port}")
    assert result.code == 5
    assert result.out == ""
    assert result.err == (
        f"error: cannot reach NATS at nats://127.0.0.1:{closed_port} (no answer within 2s)\n"
    )


def test_a_nats_without_certlc_is_exit_5(nats_server_module: object, cli: Cli) -> None:
    url = nats_server_module.url  # type: ignore[attr-defined]
    result = cli("audit", "--nats-url", url)
    assert result.code == 5
    assert result.err == "error: stream CERTLC_AUDIT not found: is certlc running there?\n"
