"""Fault injection: injected errors, latency, cut watches, forced 410 (Python and HTTP API)."""

from __future__ import annotations

import json
import time

import pytest
import urllib3
from kubernetes import client
from kubernetes.client.rest import ApiException

from certlc_dev.kubesim import KubeSim
from tests.kubesim.helpers import admin, secret, status_of, watching


def test_injected_errors_hit_matching_requests_a_given_number_of_times(
    core: client.CoreV1Api, kube_sim: KubeSim
) -> None:
    core.create_namespaced_secret("default", secret("a"))
    kube_sim.faults.fail(500, verb="get", resource="secrets", name="a", times=2)
    for _ in range(2):
        with pytest.raises(ApiException) as caught:
            core.read_namespaced_secret("a", "default")
        assert caught.value.status == 500
        assert status_of(caught.value)["reason"] == "InternalError"
        assert status_of(caught.value)["message"] == "Internal error occurred: injected fault"
    assert core.read_namespaced_secret("a", "default").metadata.name == "a"
    assert core.list_namespaced_secret("default").items  # list was never affected
    assert kube_sim.faults.rules() == []


def test_injected_conflict_looks_like_a_real_one(core: client.CoreV1Api, kube_sim: KubeSim) -> None:
    core.create_namespaced_secret("default", secret("a"))
    kube_sim.faults.fail(409, verb="patch", resource="secrets")
    with pytest.raises(ApiException) as caught:
        core.patch_namespaced_secret("a", "default", {"metadata": {"labels": {"x": "1"}}})
    status = status_of(caught.value)
    assert status["reason"] == "Conflict"
    assert status["message"].startswith('Operation cannot be fulfilled on secrets "a": ')
    assert core.patch_namespaced_secret("a", "default", {"metadata": {"labels": {"x": "1"}}})


def test_injected_429_carries_retry_after(core: client.CoreV1Api, kube_sim: KubeSim) -> None:
    kube_sim.faults.fail(429, verb="create", resource="secrets", retry_after=3)
    with pytest.raises(ApiException) as caught:
        core.create_namespaced_secret("default", secret("a"))
    assert caught.value.status == 429
    assert caught.value.headers["Retry-After"] == "3"
    status = status_of(caught.value)
    assert status["reason"] == "TooManyRequests"
    assert status["details"] == {"retryAfterSeconds": 3}


def test_the_client_retries_reads_after_429(core: client.CoreV1Api, kube_sim: KubeSim) -> None:
    kube_sim.faults.fail(429, verb="list", resource="secrets", retry_after=1)
    started = time.monotonic()
    assert core.list_namespaced_secret("default").items == []
    assert time.monotonic() - started >= 1.0  # it honoured Retry-After
    assert kube_sim.faults.rules() == []


def test_injected_latency(core: client.CoreV1Api, kube_sim: KubeSim) -> None:
    kube_sim.faults.delay(0.3, verb="list", resource="secrets", times=1)
    started = time.monotonic()
    core.list_namespaced_secret("default")
    assert time.monotonic() - started >= 0.3


def test_abruptly_cut_watches_break_the_client_stream(
    core: client.CoreV1Api, kube_sim: KubeSim
) -> None:
    core.create_namespaced_secret("default", secret("a"))
    with watching(core.list_namespaced_secret, "default") as stream:
        assert next(stream)["type"] == "ADDED"
        assert kube_sim.faults.cut_watches("secrets") == 1
        with pytest.raises(urllib3.exceptions.ProtocolError):
            next(stream)


def test_compaction_forces_410_for_older_versions(
    core: client.CoreV1Api, kube_sim: KubeSim
) -> None:
    old = core.create_namespaced_secret("default", secret("a")).metadata.resource_version
    core.create_namespaced_secret("default", secret("b"))
    floor = kube_sim.faults.compact("secrets")
    raw = core.list_namespaced_secret(
        "default", watch=True, resource_version=old, timeout_seconds=1, _preload_content=False
    )
    (line,) = raw.data.decode().splitlines()
    assert json.loads(line)["object"]["message"] == f"too old resource version: {old} ({floor})"
    assert json.loads(line)["object"]["code"] == 410


def test_http_admin_api(core: client.CoreV1Api, kube_sim: KubeSim) -> None:
    code, rule = admin(
        kube_sim,
        "POST",
        "/_sim/faults",
        {"verb": "create", "resource": "secrets", "code": 503, "times": 1},
    )
    assert code == 201
    assert rule["id"] > 0
    assert admin(kube_sim, "GET", "/_sim/faults")[1]["rules"][0]["code"] == 503
    with pytest.raises(ApiException) as caught:
        core.create_namespaced_secret("default", secret("a"))
    assert caught.value.status == 503
    assert status_of(caught.value)["reason"] == "ServiceUnavailable"
    core.create_namespaced_secret("default", secret("a"))
    admin(kube_sim, "POST", "/_sim/faults", {"verb": "get", "code": 500, "times": None})
    assert admin(kube_sim, "DELETE", "/_sim/faults") == (200, {"rules": []})
    assert core.read_namespaced_secret("a", "default")
    code, compacted = admin(kube_sim, "POST", "/_sim/compact", {"resource": "secrets"})
    assert code == 200
    assert int(compacted["resourceVersion"]) == kube_sim.resource_version()
    with watching(core.list_namespaced_secret, "default") as stream:
        next(stream)
        assert admin(kube_sim, "POST", "/_sim/watches/cut", {"abrupt": False}) == (200, {"cut": 1})
    assert admin(kube_sim, "POST", "/_sim/faults", {"bogus": 1})[0] == 400
    assert admin(kube_sim, "GET", "/_sim/faults", token="nope")[0] == 401
