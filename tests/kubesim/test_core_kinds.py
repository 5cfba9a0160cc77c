"""Leases (with the client's LeaseLock), Events, ServiceAccounts and Namespaces."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException
from kubernetes.leaderelection import electionconfig, leaderelection
from kubernetes.leaderelection.resourcelock.leaselock import LeaseLock

from certlc_dev.kubesim import KubeSim
from certlc_dev.kubesim.errors import Invalid
from tests.kubesim.helpers import secret, status_of, tcp, wait_for

MICRO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


@pytest.fixture
def default_client(kube_api: Any) -> Iterator[Any]:
    """LeaseLock builds its own CoordinationV1Api(): make our client the default one."""
    client.ApiClient.set_default(kube_api)
    try:
        yield kube_api
    finally:
        client.ApiClient.set_default(None)


def _candidate(identity: str) -> leaderelection.LeaderElection:
    lock = LeaseLock("certlc-leader", "default", identity)
    config = electionconfig.Config(
        lock,
        lease_duration=17,
        renew_deadline=15,
        retry_period=5,
        onstarted_leading=lambda: None,
        onstopped_leading=None,
    )
    return leaderelection.LeaderElection(config)


def test_lease_lock_elects_one_leader(default_client: Any) -> None:
    alice, bob = _candidate("alice"), _candidate("bob")
    assert alice.try_acquire_or_renew() is True  # creates the Lease
    assert bob.try_acquire_or_renew() is False  # held and not expired
    assert alice.try_acquire_or_renew() is True  # renews with a PUT
    lease = client.CoordinationV1Api(default_client).read_namespaced_lease(
        "certlc-leader", "default"
    )
    assert lease.spec.holder_identity == "alice"
    assert lease.spec.lease_duration_seconds == 17
    raw = json.loads(
        client.CoordinationV1Api(default_client)
        .read_namespaced_lease("certlc-leader", "default", _preload_content=False)
        .data
    )
    assert MICRO.match(raw["spec"]["renewTime"])
    assert MICRO.match(raw["spec"]["acquireTime"])


def test_lease_lock_update_with_a_stale_reference_fails(default_client: Any) -> None:
    alice = _candidate("alice")
    assert alice.try_acquire_or_renew()
    stale = LeaseLock("certlc-leader", "default", "mallory")
    assert stale.get("certlc-leader", "default")[0] is True
    assert alice.try_acquire_or_renew()  # moves the resourceVersion on
    record = leaderelection.LeaderElectionRecord(
        "mallory", "17", str(datetime.now()), str(datetime.now())
    )
    assert stale.update("certlc-leader", "default", record) is False  # 409 Conflict
    lease = client.CoordinationV1Api(default_client).read_namespaced_lease(
        "certlc-leader", "default"
    )
    assert lease.spec.holder_identity == "alice"


def test_lease_times_are_normalised_to_utc_micro_time(kube_api: Any) -> None:
    coordination = client.CoordinationV1Api(kube_api)
    body = {
        "metadata": {"name": "l"},
        "spec": {"holderIdentity": "x", "renewTime": "2026-01-01T02:00:00+02:00"},
    }
    coordination.create_namespaced_lease("default", body)
    raw = json.loads(
        coordination.read_namespaced_lease("l", "default", _preload_content=False).data
    )
    assert raw["spec"]["renewTime"] == "2026-01-01T00:00:00.000000Z"
    assert "generation" not in raw["metadata"]


def test_events_are_created_and_selected_by_field(core: client.CoreV1Api) -> None:
    event = {
        "metadata": {"name": "e1"},
        "reason": "Rotated",
        "message": "renewed",
        "type": "Normal",
        "involvedObject": {"kind": "Secret", "name": "s", "namespace": "default"},
        "firstTimestamp": "2026-01-01T00:00:00Z",
        "lastTimestamp": "2026-01-01T00:00:00Z",
        "count": 1,
        "source": {"component": "certlc"},
    }
    created = core.create_namespaced_event("default", event)
    assert created.involved_object.name == "s"
    listed = core.list_namespaced_event(
        "default", field_selector="involvedObject.name=s,reason=Rotated"
    )
    assert [e.metadata.name for e in listed.items] == ["e1"]


def test_events_without_involved_object_are_invalid(kube_sim: KubeSim) -> None:
    with pytest.raises(Invalid) as caught:
        kube_sim.create({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "e"}})
    assert caught.value.message == 'Event "e" is invalid: involvedObject: Required value'


def test_service_accounts_round_trip(core: client.CoreV1Api) -> None:
    created = core.create_namespaced_service_account(
        "default", {"metadata": {"name": "certlc-issuer"}}
    )
    assert created.metadata.name == "certlc-issuer"
    deleted = core.delete_namespaced_service_account("certlc-issuer", "default")
    assert deleted.metadata.name == "certlc-issuer"  # returns the deleted object


def test_default_namespaces_exist_and_are_active(core: client.CoreV1Api) -> None:
    names = [n.metadata.name for n in core.list_namespace().items]
    assert names == ["default", "kube-node-lease", "kube-public", "kube-system"]
    default = core.read_namespace("default")
    assert default.status.phase == "Active"
    assert default.metadata.labels == {"kubernetes.io/metadata.name": "default"}
    assert [
        n.metadata.name
        for n in core.list_namespace(label_selector="kubernetes.io/metadata.name=kube-system").items
    ] == ["kube-system"]
    active = core.list_namespace(field_selector="status.phase=Active").items
    assert len(active) == 4


def test_namespace_names_are_dns_labels(core: client.CoreV1Api) -> None:
    with pytest.raises(ApiException) as caught:
        core.create_namespace({"metadata": {"name": "a.b"}})
    assert caught.value.status == 422
    assert "a lowercase RFC 1123 label" in status_of(caught.value)["message"]


def test_deleting_a_namespace_deletes_its_contents(
    core: client.CoreV1Api, kube_sim: KubeSim
) -> None:
    core.create_namespace({"metadata": {"name": "tenant"}})
    core.create_namespaced_secret("tenant", secret("a"))
    kube_sim.create({**tcp("t"), "metadata": {"name": "t", "namespace": "tenant"}})
    deleted = core.delete_namespace("tenant")
    assert deleted["status"]["phase"] == "Terminating"
    wait_for(lambda: kube_sim.try_get("namespaces", "tenant") is None)
    assert kube_sim.list("secrets", "tenant") == []
    assert kube_sim.list("tcp", "tenant") == []


def test_a_terminating_namespace_refuses_new_objects(
    core: client.CoreV1Api, kube_sim: KubeSim
) -> None:
    core.create_namespace({"metadata": {"name": "tenant"}})
    kube_sim.create(
        {
            **tcp("t"),
            "metadata": {"name": "t", "namespace": "tenant", "finalizers": ["example.com/hold"]},
        }
    )
    core.delete_namespace("tenant")
    assert kube_sim.get("namespaces", "tenant", "")["status"]["phase"] == "Terminating"
    with pytest.raises(ApiException) as caught:
        core.create_namespaced_secret("tenant", secret("late"))
    assert caught.value.status == 403
    assert "because it is being terminated" in status_of(caught.value)["message"]
    kube_sim.patch("tcp", "t", {"metadata": {"finalizers": None}}, namespace="tenant")
    assert kube_sim.try_get("namespaces", "tenant", "") is None


def test_timestamps_are_rfc3339_utc(core: client.CoreV1Api) -> None:
    core.create_namespaced_secret("default", secret("a"))
    raw = json.loads(core.read_namespaced_secret("a", "default", _preload_content=False).data)
    stamp = datetime.strptime(raw["metadata"]["creationTimestamp"], "%Y-%m-%dT%H:%M:%SZ")
    assert abs((stamp.replace(tzinfo=UTC) - datetime.now(UTC)).total_seconds()) < 60
