"""The per-service part of the topology: each service ensures the streams it uses and owns its
durable consumers; together they are the whole topology, each consumer owned once."""

from __future__ import annotations

import pytest

from libs.bus.consume import DEFAULT_HEARTBEAT_INTERVAL
from libs.bus.specs import ConsumerSpec
from libs.contracts import subjects
from libs.runtime import topology


def names(service: str) -> set[str]:
    streams, _ = topology.for_service(service)
    return {spec.name for spec in streams}


def durables(service: str) -> set[tuple[str, str]]:
    _, consumers = topology.for_service(service)
    return {(spec.stream, spec.durable) for spec in consumers}


def test_each_service_ensures_what_it_publishes_to_reads_and_consumes() -> None:
    assert names("watcher") == {subjects.EVENTS_STREAM}
    assert names("lifecycle") == {
        subjects.EVENTS_STREAM,
        subjects.ROTATE_STREAM,
        subjects.AUDIT_STREAM,
    }
    assert names("issuer") == {
        subjects.ROTATE_STREAM,
        subjects.ISSUED_STREAM,
        subjects.AUDIT_STREAM,
    }
    assert names("rollout") == {subjects.ISSUED_STREAM, subjects.AUDIT_STREAM}
    assert durables("watcher") == durables("lifecycle") == set()
    assert durables("issuer") == {(subjects.ROTATE_STREAM, subjects.ISSUER_DURABLE)}
    assert durables("rollout") == {
        (subjects.ISSUED_STREAM, subjects.ROLLOUT_DURABLE),
        (subjects.AUDIT_STREAM, subjects.ROLLOUT_FAILURES_DURABLE),
    }


def test_together_the_services_ensure_the_whole_topology_each_consumer_once() -> None:
    every_stream = {spec.name for spec in topology.streams()}
    assert set().union(*(names(s) for s in topology.SERVICES)) == every_stream
    owned = [c for s in topology.SERVICES for c in topology.for_service(s)[1]]
    assert sorted(owned, key=str) == sorted(topology.CONSUMERS, key=str)


@pytest.mark.parametrize("service", topology.SERVICES)
@pytest.mark.parametrize("replicas", [1, 3])
def test_one_declaration_per_stream_and_consumers_on_own_streams(
    service: str, replicas: int
) -> None:
    """A service can start alone on an empty server, with the same configs as the others."""
    streams, consumers = topology.for_service(service, replicas)
    declared = {spec.name: spec for spec in topology.streams(replicas)}
    assert all(spec == declared[spec.name] for spec in streams)
    assert {c.stream for c in consumers} <= {spec.name for spec in streams}


def test_an_unknown_service_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown service 'certlc'"):
        topology.for_service("certlc")


@pytest.mark.parametrize("consumer", topology.CONSUMERS, ids=lambda c: c.durable)
def test_ack_wait_is_short_and_heartbeats_come_three_times_within_it(consumer: object) -> None:
    """A message whose handler died is redelivered within seconds; one that is being worked
    on is kept alive by heartbeats with room for two of them to be late."""
    assert isinstance(consumer, ConsumerSpec)
    assert consumer.ack_wait <= 10.0
    assert consumer.ack_wait >= 3 * DEFAULT_HEARTBEAT_INTERVAL
