"""Unit tests of the stand-in's pure parts: tables, negotiation, time, hashes, protobuf, timers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from certlc_dev.kubesim import discovery, timefmt
from certlc_dev.kubesim.deployments import Timers
from certlc_dev.kubesim.negotiation import View, aggregated_discovery, resource_view
from certlc_dev.kubesim.protobuf import ProtobufError, decode_object
from certlc_dev.kubesim.resources import Registry
from certlc_dev.kubesim.tables import render_table
from certlc_dev.kubesim.workloads import (
    SetState,
    deployment_status,
    plan_rollout,
    pod_template_hash,
    rollout_bounds,
)

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
REGISTRY = Registry()


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (-5, "<invalid>"),
        (-0.5, "0s"),
        (0, "0s"),
        (119, "119s"),
        (120, "2m"),
        (150, "2m30s"),
        (600, "10m"),
        (3 * 3600 - 1, "179m"),
        (3 * 3600, "3h"),
        (3 * 3600 + 60, "3h1m"),
        (8 * 3600, "8h"),
        (47 * 3600, "47h"),
        (48 * 3600, "2d"),
        (50 * 3600, "2d2h"),
        (8 * 86400, "8d"),
        (800 * 86400, "2y70d"),
        (9 * 365 * 86400, "9y"),
    ],
)
def test_human_duration_matches_apimachinery(seconds: float, text: str) -> None:
    assert timefmt.human_duration(seconds) == text


def test_timestamps_normalise_to_utc() -> None:
    assert timefmt.normalise("2026-01-01T02:00:00+02:00", micro=False) == "2026-01-01T00:00:00Z"
    assert timefmt.normalise("2026-01-01T00:00:00.5Z", micro=True) == "2026-01-01T00:00:00.500000Z"
    assert timefmt.normalise("not a time", micro=True) == "not a time"


@pytest.mark.parametrize(
    ("accept", "view"),
    [
        (None, View.OBJECT),
        ("application/json", View.OBJECT),
        ("application/json;as=Table;v=v1;g=meta.k8s.io,application/json", View.TABLE),
        ("application/json;as=Table;v=v1beta1;g=meta.k8s.io", View.TABLE),
        ("application/vnd.kubernetes.protobuf, */*", View.OBJECT),
        ("application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io", View.PARTIAL_METADATA),
        ("application/json;as=Table;v=v9;g=meta.k8s.io,application/json", View.OBJECT),
    ],
)
def test_resource_view_negotiation(accept: str | None, view: View) -> None:
    assert resource_view(accept) is view


def test_aggregated_discovery_negotiation() -> None:
    kubectl = (
        "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,"
        "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,"
        "application/json"
    )
    assert aggregated_discovery(kubectl) == "v2"
    assert aggregated_discovery("application/json") is None
    assert aggregated_discovery(None) is None


def test_secret_and_tcp_tables() -> None:
    created = (NOW - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    secret = {
        "metadata": {"name": "a", "creationTimestamp": created, "uid": "u"},
        "type": "Opaque",
        "data": {"x": "", "y": ""},
    }
    table = render_table(REGISTRY.resolve("secrets"), [secret], NOW, resource_version="7")
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Type", "Data", "Age"]
    assert table["rows"][0]["cells"] == ["a", "Opaque", 2, "5m"]
    assert table["rows"][0]["object"]["kind"] == "PartialObjectMetadata"
    assert table["metadata"] == {"resourceVersion": "7"}
    tcp = {
        "metadata": {"name": "t", "creationTimestamp": created},
        "spec": {"kubernetes": {"version": "v1.30.0"}},
        "status": {
            "kubernetesResources": {"version": {"status": "Ready"}},
            "controlPlaneEndpoint": "1.2.3.4:6443",
        },
    }
    table = render_table(
        REGISTRY.resolve("tcp"), [tcp], NOW, include_object="None", no_headers=True
    )
    assert "columnDefinitions" not in table
    assert table["rows"] == [{"cells": ["t", "v1.30.0", "Ready", "1.2.3.4:6443", None, None, "5m"]}]


def test_pod_table_counts_ready_containers() -> None:
    pod = {
        "metadata": {"name": "p"},
        "spec": {"containers": [{}, {}]},
        "status": {
            "phase": "Pending",
            "containerStatuses": [
                {"ready": True, "restartCount": 1, "state": {"running": {}}},
                {
                    "ready": False,
                    "restartCount": 2,
                    "state": {"waiting": {"reason": "ContainerCreating"}},
                },
            ],
        },
    }
    row = render_table(REGISTRY.resolve("pods"), [pod], NOW)["rows"][0]["cells"]
    assert row[:4] == ["p", "1/2", "ContainerCreating", "3"]


def test_pod_template_hash_is_stable_and_ten_safe_characters() -> None:
    template = {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c"}]}}
    first = pod_template_hash(template)
    assert first == pod_template_hash(
        {"spec": {"containers": [{"name": "c"}]}, "metadata": {"labels": {"a": "b"}}}
    )
    assert len(first) == 10
    assert set(first) <= set("bcdfghjklmnpqrstvwxz2456789")
    assert first != pod_template_hash({**template, "metadata": {"labels": {"a": "c"}}})


def test_deployment_status_conditions() -> None:
    deployment = {"metadata": {"generation": 3}, "spec": {"replicas": 2}, "status": {}}
    ready = {"status": {"conditions": [{"type": "Ready", "status": "True"}]}}
    pending = {"status": {"conditions": []}}
    partial = deployment_status(deployment, "d-x", True, [ready, pending], 2, "T")
    assert partial["observedGeneration"] == 3
    assert partial["readyReplicas"] == 1
    assert partial["unavailableReplicas"] == 1
    assert partial["conditions"][1]["reason"] == "NewReplicaSetCreated"
    done = deployment_status(
        {**deployment, "status": partial}, "d-x", False, [ready, ready], 2, "T2"
    )
    assert done["conditions"][0]["reason"] == "MinimumReplicasAvailable"
    assert done["conditions"][1]["reason"] == "NewReplicaSetAvailable"
    assert done["conditions"][1]["lastTransitionTime"] == "T"  # status stayed True
    assert "unavailableReplicas" not in done


def test_discovery_documents() -> None:
    core = discovery.api_resource_list(REGISTRY, "", "v1")
    assert core is not None
    secrets = next(r for r in core["resources"] if r["name"] == "secrets")
    assert secrets["namespaced"] is True
    assert "watch" in secrets["verbs"]
    kamaji = discovery.api_resource_list(REGISTRY, "kamaji.clastix.io", "v1alpha1")
    assert kamaji is not None
    tcp = next(r for r in kamaji["resources"] if r["name"] == "tenantcontrolplanes")
    assert tcp["shortNames"] == ["tcp"]
    assert any(r["name"] == "tenantcontrolplanes/status" for r in kamaji["resources"])
    aggregated = discovery.aggregated(REGISTRY, core=False)
    names = [item["metadata"]["name"] for item in aggregated["items"]]
    assert names == [
        "apps",
        "coordination.k8s.io",
        "rbac.authorization.k8s.io",
        "authorization.k8s.io",
        "authentication.k8s.io",
        "kamaji.clastix.io",
    ]
    assert discovery.api_resource_list(REGISTRY, "nope", "v1") is None


def test_protobuf_bodies_from_kubectl() -> None:
    body = (
        b'k8s\x00\n\x0c\n\x02v1\x12\x06Secret\x12&\n\x11\n\x01a\x12\x00\x1a\x00"\x00*\x00'
        b"2\x008\x00B\x00\x12\x06\n\x01k\x12\x01v\x12\x07\n\x01x\x12\x02yy\x1a\x00\x1a\x00"
        b'"\x00'
    )
    assert decode_object(body) == {
        "kind": "Secret",
        "apiVersion": "v1",
        "metadata": {"name": "a"},
        "data": {"k": "dg==", "x": "eXk="},
    }
    namespace = (
        b"k8s\x00\n\x0f\n\x02v1\x12\tNamespace\x12\x1b\n\x13\n\x03foo\x12\x00\x1a\x00"
        b'"\x00*\x002\x008\x00B\x00\x12\x00\x1a\x02\n\x00\x1a\x00"\x00'
    )
    assert decode_object(namespace)["metadata"] == {"name": "foo"}
    with pytest.raises(ProtobufError):
        decode_object(b"k8s\x00\n\x10\n\x07apps/v1\x12\x05Other")
    with pytest.raises(ProtobufError):
        decode_object(b"{}")


@pytest.mark.parametrize(
    ("replicas", "rolling", "bounds"),
    [
        (2, {}, (1, 0)),  # 25% of 2: surge 0.5 rounds up, unavailable 0.5 rounds down
        (4, {}, (1, 1)),
        (10, {"maxSurge": "30%", "maxUnavailable": "30%"}, (3, 3)),
        (3, {"maxSurge": 0, "maxUnavailable": 0}, (0, 1)),  # both 0: one may be unavailable
        (5, {"maxSurge": 2, "maxUnavailable": "0%"}, (2, 0)),
    ],
)
def test_rollout_bounds(replicas: int, rolling: dict[str, Any], bounds: tuple[int, int]) -> None:
    spec = {"replicas": replicas, "strategy": {"type": "RollingUpdate", "rollingUpdate": rolling}}
    assert rollout_bounds(spec, replicas) == bounds


def _spec(replicas: int, **strategy: Any) -> dict[str, Any]:
    return {"replicas": replicas, "strategy": strategy or {"type": "RollingUpdate"}}


@pytest.mark.parametrize(
    ("spec", "new", "old", "plan"),
    [
        # replicas 2, surge 1, unavailable 0: one new pod first, old ones wait for it
        (_spec(2), SetState(0, 0, 0), [SetState(2, 2, 2)], (1, [2])),
        (_spec(2), SetState(1, 1, 0), [SetState(2, 2, 2)], (1, [2])),
        (_spec(2), SetState(1, 1, 1), [SetState(2, 2, 2)], (1, [1])),
        (_spec(2), SetState(1, 1, 1), [SetState(1, 1, 1)], (2, [1])),
        (_spec(2), SetState(2, 2, 2), [SetState(1, 1, 1)], (2, [0])),
        # no room: a new pod not ready yet holds the old ones, a broken old one included
        (_spec(2), SetState(1, 1, 0), [SetState(2, 2, 1)], (1, [2])),
        # an old pod that is not ready goes first, costing no availability, then a ready one
        (
            _spec(4, type="RollingUpdate", rollingUpdate={"maxSurge": 1, "maxUnavailable": 1}),
            SetState(1, 1, 1),
            [SetState(4, 4, 3)],
            (1, [2]),
        ),
        # surge 1, unavailable 1 on 4
        (
            _spec(4, type="RollingUpdate", rollingUpdate={"maxSurge": 1, "maxUnavailable": 1}),
            SetState(0, 0, 0),
            [SetState(4, 4, 4)],
            (1, [3]),
        ),
        # scaling without a template change
        (_spec(3), SetState(1, 1, 1), [], (3, [])),
        (_spec(1), SetState(3, 3, 3), [], (1, [])),
        # Recreate: old pods all gone before any new one
        (_spec(2, type="Recreate"), SetState(0, 0, 0), [SetState(2, 2, 2)], (0, [0])),
        (_spec(2, type="Recreate"), SetState(0, 0, 0), [SetState(0, 1, 0)], (0, [0])),
        (_spec(2, type="Recreate"), SetState(0, 0, 0), [SetState(0, 0, 0)], (2, [0])),
    ],
)
def test_plan_rollout_steps(
    spec: dict[str, Any], new: SetState, old: list[SetState], plan: tuple[int, list[int]]
) -> None:
    assert plan_rollout(spec, new, old) == plan


def test_a_paused_or_stuck_rollout_is_reported_as_kubectl_reads_it() -> None:
    deployment = {
        "metadata": {"name": "d", "generation": 2},
        "spec": {"replicas": 1, "paused": True, "progressDeadlineSeconds": 5},
        "status": {},
    }
    pending = {"status": {"conditions": []}}
    paused = deployment_status(deployment, "d-x", False, [pending], 0, "2026-01-01T00:00:00Z")
    progressing = paused["conditions"][1]
    assert (progressing["status"], progressing["reason"]) == ("Unknown", "DeploymentPaused")
    deployment["spec"]["paused"] = False
    deployment["status"] = paused
    resumed = deployment_status(deployment, "d-x", False, [pending], 0, "2026-01-01T00:00:01Z")
    assert resumed["conditions"][1]["reason"] == "DeploymentResumed"
    deployment["status"] = resumed
    later = deployment_status(deployment, "d-x", False, [pending], 0, "2026-01-01T00:00:04Z")
    assert later["conditions"][1]["reason"] == "DeploymentResumed"  # within the deadline
    deployment["status"] = later
    late = deployment_status(deployment, "d-x", False, [pending], 0, "2026-01-01T00:00:07Z")
    assert (late["conditions"][1]["status"], late["conditions"][1]["reason"]) == (
        "False",
        "ProgressDeadlineExceeded",
    )


def test_timers_keep_the_earliest_time_of_a_key() -> None:
    timers: Timers[str] = Timers()
    assert timers.schedule("deploy", 601.0)
    assert not timers.schedule("deploy", 700.0)  # later than pending: ignored
    assert timers.schedule("deploy", 3.0)  # earlier: wins
    assert timers.schedule("pod", 1.0)
    assert timers.next_due() == 1.0
    assert timers.pop_due(2.0) == ["pod"]
    assert timers.pop_due(3.0) == ["deploy"]
    assert not timers.pending("deploy")
    assert timers.next_due() is None  # the superseded 601 s entry is gone with it
    assert timers.pop_due(1000.0) == []
    assert timers.schedule("deploy", 2000.0)  # once fired, any time may be set again
    assert timers.pop_due(1999.0) == []
    assert timers.pop_due(2000.0) == ["deploy"]
