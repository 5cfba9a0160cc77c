"""Watches through `kubernetes.watch.Watch` and raw chunked HTTP."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from certlc_dev.kubesim import KubeSim
from tests.fixtures.kube import api_client
from tests.kubesim.helpers import b64, secret, watching


def _names(events: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(e["type"], e["object"].metadata.name) for e in events]


def test_watch_without_version_starts_with_synthetic_added_then_follows(
    core: client.CoreV1Api,
) -> None:
    core.create_namespaced_secret("default", secret("a"))
    core.create_namespaced_secret("default", secret("b"))
    with watching(core.list_namespaced_secret, "default", timeout_seconds=5) as stream:
        initial = [next(stream), next(stream)]
        assert _names(initial) == [("ADDED", "a"), ("ADDED", "b")]
        patched = core.patch_namespaced_secret("a", "default", {"data": {"k": b64("v")}})
        modified = next(stream)
        assert modified["type"] == "MODIFIED"
        assert modified["object"].metadata.resource_version == patched.metadata.resource_version
        core.delete_namespaced_secret("b", "default")
        deleted = next(stream)
        assert deleted["type"] == "DELETED"
        assert deleted["object"].metadata.name == "b"
        assert int(deleted["object"].metadata.resource_version) > int(
            patched.metadata.resource_version
        )


def test_watch_from_zero_is_like_no_version(core: client.CoreV1Api) -> None:
    core.create_namespaced_secret("default", secret("a"))
    with watching(
        core.list_namespaced_secret, "default", resource_version="0", timeout_seconds=5
    ) as stream:
        assert _names([next(stream)]) == [("ADDED", "a")]


def test_watch_from_a_resource_version_replays_only_later_changes(core: client.CoreV1Api) -> None:
    core.create_namespaced_secret("default", secret("a"))
    mark = core.list_namespaced_secret("default").metadata.resource_version
    core.create_namespaced_secret("default", secret("b"))
    core.patch_namespaced_secret("a", "default", {"metadata": {"labels": {"x": "1"}}})
    with watching(
        core.list_namespaced_secret, "default", resource_version=mark, timeout_seconds=5
    ) as stream:
        assert _names([next(stream), next(stream)]) == [("ADDED", "b"), ("MODIFIED", "a")]


def test_timeout_seconds_ends_the_stream(core: client.CoreV1Api) -> None:
    started = time.monotonic()
    events = list(watch.Watch().stream(core.list_namespaced_secret, "default", timeout_seconds=1))
    elapsed = time.monotonic() - started
    assert events == []
    assert 0.9 <= elapsed < 5


def test_bookmarks_are_sent_when_allowed(core: client.CoreV1Api, kube_sim: KubeSim) -> None:
    core.create_namespaced_secret("default", secret("a"))
    w = watch.Watch()
    seen = []
    for event in w.stream(
        core.list_namespaced_secret, "default", allow_watch_bookmarks=True, timeout_seconds=5
    ):
        seen.append(event)
        if event["type"] == "BOOKMARK":
            w.stop()
    assert seen[0]["type"] == "ADDED"
    bookmark = seen[-1]
    assert bookmark["type"] == "BOOKMARK"
    assert bookmark["raw_object"] == {
        "kind": "Secret",
        "apiVersion": "v1",
        "metadata": {"resourceVersion": str(kube_sim.resource_version())},
    }


def test_objects_entering_and_leaving_a_selector_arrive_as_added_and_deleted(
    core: client.CoreV1Api,
) -> None:
    core.create_namespaced_secret("default", secret("a", labels={"app": "web"}))
    with watching(
        core.list_namespaced_secret, "default", label_selector="tier=front", timeout_seconds=5
    ) as stream:
        core.patch_namespaced_secret("a", "default", {"metadata": {"labels": {"tier": "front"}}})
        entered = next(stream)
        assert entered["type"] == "ADDED"
        core.patch_namespaced_secret("a", "default", {"metadata": {"labels": {"x": "1"}}})
        assert next(stream)["type"] == "MODIFIED"
        removed = core.patch_namespaced_secret(
            "a", "default", {"metadata": {"labels": {"tier": None}}}
        )
        left = next(stream)
        assert left["type"] == "DELETED"
        assert left["object"].metadata.resource_version == removed.metadata.resource_version
        assert "tier" not in left["object"].metadata.labels


def test_no_event_for_a_write_that_changes_nothing(core: client.CoreV1Api) -> None:
    created = core.create_namespaced_secret("default", secret("a", {"k": "v"}))
    with watching(
        core.list_namespaced_secret,
        "default",
        resource_version=created.metadata.resource_version,
        timeout_seconds=5,
    ) as stream:
        core.replace_namespaced_secret("a", "default", created)
        core.patch_namespaced_secret("a", "default", {"metadata": {"labels": {"x": "1"}}})
        event = next(stream)
        assert event["type"] == "MODIFIED"
        assert event["object"].metadata.labels == {"x": "1"}


def test_too_old_resource_version_gets_an_expired_error(
    kube_sim_factory: Any, tmp_path: Any
) -> None:
    sim = kube_sim_factory(history_limit=3)
    api = api_client(sim.write_kubeconfig(tmp_path / "kc"))
    try:
        core = client.CoreV1Api(api)
        first = core.create_namespaced_secret("default", secret("s0"))
        for i in range(1, 6):
            core.create_namespaced_secret("default", secret(f"s{i}"))
        raw = core.list_namespaced_secret(
            "default",
            watch=True,
            resource_version=first.metadata.resource_version,
            timeout_seconds=2,
            _preload_content=False,
        )
        lines = [json.loads(line) for line in raw.data.decode().splitlines()]
        assert raw.status == 200
        first_rv = first.metadata.resource_version
        floor = int(first_rv) + 2
        assert lines == [
            {
                "type": "ERROR",
                "object": {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "metadata": {},
                    "status": "Failure",
                    "message": f"too old resource version: {first_rv} ({floor})",
                    "reason": "Expired",
                    "code": 410,
                },
            }
        ]
        with pytest.raises(ApiException) as caught:
            list(
                watch.Watch().stream(
                    core.list_namespaced_secret,
                    "default",
                    resource_version=first.metadata.resource_version,
                    timeout_seconds=2,
                )
            )
        assert caught.value.status == 410
        assert "too old resource version" in caught.value.reason
        recent = core.list_namespaced_secret("default").metadata.resource_version
        events = list(
            watch.Watch().stream(
                core.list_namespaced_secret, "default", resource_version=recent, timeout_seconds=1
            )
        )
        assert events == []
    finally:
        api.close()


def test_watch_is_chunked_with_one_json_object_per_line(core: client.CoreV1Api) -> None:
    core.create_namespaced_secret("default", secret("a"))
    core.create_namespaced_secret("default", secret("b"))
    raw = core.list_namespaced_secret(
        "default", watch=True, timeout_seconds=1, _preload_content=False
    )
    assert raw.headers["Transfer-Encoding"] == "chunked"
    assert raw.headers["Content-Type"].startswith("application/json")
    lines = raw.data.decode().splitlines()
    assert [json.loads(line)["object"]["metadata"]["name"] for line in lines] == ["a", "b"]
    assert all(json.loads(line)["type"] == "ADDED" for line in lines)


def test_each_event_is_flushed_as_it_happens(core: client.CoreV1Api) -> None:
    with watching(core.list_namespaced_secret, "default", timeout_seconds=5) as stream:
        for i in range(3):
            core.create_namespaced_secret("default", secret(f"s{i}"))
            event = next(stream)  # would block if the server buffered events
            assert (event["type"], event["object"].metadata.name) == ("ADDED", f"s{i}")


def test_delete_collection_emits_deleted_per_object(core: client.CoreV1Api) -> None:
    for name in ("a", "b", "c"):
        core.create_namespaced_secret("default", secret(name, labels={"group": "x"}))
    core.create_namespaced_secret("default", secret("keep", labels={"group": "y"}))
    mark = core.list_namespaced_secret("default").metadata.resource_version
    core.delete_collection_namespaced_secret("default", label_selector="group=x")
    events = list(
        watch.Watch().stream(
            core.list_namespaced_secret, "default", resource_version=mark, timeout_seconds=1
        )
    )
    assert _names(events) == [("DELETED", "a"), ("DELETED", "b"), ("DELETED", "c")]
    assert [s.metadata.name for s in core.list_namespaced_secret("default").items] == ["keep"]


def test_watch_across_all_namespaces(core: client.CoreV1Api) -> None:
    core.create_namespace({"metadata": {"name": "other"}})
    core.create_namespaced_secret("other", secret("a"))
    with watching(core.list_secret_for_all_namespaces, timeout_seconds=5) as stream:
        assert next(stream)["object"].metadata.namespace == "other"
        core.create_namespaced_secret("default", secret("b"))
        event = next(stream)
        assert (event["type"], event["object"].metadata.namespace) == ("ADDED", "default")


def test_python_watch_resumes_after_a_graceful_server_close(
    core: client.CoreV1Api, kube_sim: KubeSim
) -> None:
    with watching(core.list_namespaced_secret, "default") as stream:
        core.create_namespaced_secret("default", secret("a"))
        assert next(stream)["type"] == "ADDED"
        assert kube_sim.faults.cut_watches("secrets", abrupt=False) == 1
        core.create_namespaced_secret("default", secret("b"))
        event = next(stream)  # the client re-watched from the last resourceVersion it saw
        assert (event["type"], event["object"].metadata.name) == ("ADDED", "b")
