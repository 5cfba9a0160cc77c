"""The informer's paged re-list: what it reports, and what its cache keeps."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from libs.kube.client import _paging
from libs.kube.informer import Informer, diff_listing, identity


def secret(name: str, version: str, data: str = "eA==") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": name,
            "namespace": "default",
            "uid": f"uid-{name}",
            "resourceVersion": version,
            "labels": {"kamaji.clastix.io/name": "tcp"},
            "annotations": {"kamaji.clastix.io/checksum": "c"},
        },
        "data": {"tls.crt": data},
    }


class PagedClient:
    """Serves `items` `limit` at a time with continue tokens, like the API server."""

    def __init__(self, items: list[dict[str, Any]], version: str = "100") -> None:
        self.items = items
        self.version = version
        self.calls: list[tuple[int | None, str]] = []

    def list_resource(
        self,
        resource: str,
        label_selector: str = "",
        *,
        limit: int | None = None,
        continue_token: str = "",
    ) -> dict[str, Any]:
        self.calls.append((limit, continue_token))
        start = int(continue_token or 0)
        end = len(self.items) if limit is None else start + limit
        token = str(end) if end < len(self.items) else ""
        meta = {"resourceVersion": self.version, "continue": token}
        return {"metadata": meta, "items": [dict(i) for i in self.items[start:end]]}


def informer(
    client: PagedClient, stop: threading.Event | None = None
) -> tuple[Informer, list[tuple[str, str]], list[tuple[str, int]]]:
    events: list[tuple[str, str]] = []
    synced: list[tuple[str, int]] = []
    inf = Informer(
        client,  # type: ignore[arg-type]  # a stand-in with the one method a re-list uses
        "secrets",
        lambda kind, obj: events.append((kind, obj["metadata"]["name"])),
        lambda version, count: synced.append((version, count)),
        page_size=2,
        stop=stop,
    )
    return inf, events, synced


def test_should_list_page_by_page_and_report_every_object_once() -> None:
    client = PagedClient([secret(f"s{i}", "1") for i in range(5)])
    inf, events, synced = informer(client)
    assert inf._relist() == "100"
    assert client.calls == [(2, ""), (2, "2"), (2, "4")]
    assert events == [("ADDED", f"s{i}") for i in range(5)]
    assert synced == [("100", 5)]


def test_should_report_only_changes_when_a_re_list_differs_from_the_cache() -> None:
    client = PagedClient([secret("a", "1"), secret("b", "1"), secret("c", "1")])
    inf, events, _ = informer(client)
    inf._relist()
    events.clear()
    client.items = [secret("a", "1"), secret("c", "2"), secret("d", "1")]
    inf._relist()
    assert sorted(events) == [("ADDED", "d"), ("DELETED", "b"), ("MODIFIED", "c")]


def test_should_not_report_deletions_from_a_listing_cut_short_by_stop() -> None:
    client = PagedClient([secret(f"s{i}", "1") for i in range(4)])
    stop = threading.Event()
    inf, events, synced = informer(client, stop)
    inf._relist()
    events.clear()
    stop.set()
    inf._relist()
    assert events == []
    assert synced == [("100", 4)]


def test_should_keep_only_the_identity_of_each_object_in_its_cache() -> None:
    client = PagedClient([secret("a", "7", data="c2VjcmV0")])
    inf, _, _ = informer(client)
    inf._relist()
    cached = inf.cache[("default", "a")]
    assert "data" not in cached
    assert cached["metadata"] == {
        "name": "a",
        "namespace": "default",
        "uid": "uid-a",
        "resourceVersion": "7",
        "labels": {"kamaji.clastix.io/name": "tcp"},
    }


def test_should_diff_a_whole_listing_as_before() -> None:
    cache = {
        ("default", "a"): identity(secret("a", "1")),
        ("default", "b"): identity(secret("b", "1")),
    }
    events = diff_listing(cache, [secret("a", "2"), secret("c", "1")])
    assert sorted((k, o["metadata"]["name"]) for k, o in events) == [
        ("ADDED", "c"),
        ("DELETED", "b"),
        ("MODIFIED", "a"),
    ]


@pytest.mark.parametrize(
    ("limit", "token", "kwargs"),
    [
        (None, "", {}),
        (500, "", {"limit": 500}),
        (500, "abc", {"limit": 500, "_continue": "abc"}),
    ],
)
def test_should_ask_the_client_for_one_page_with_limit_and_continue(
    limit: int | None, token: str, kwargs: dict[str, Any]
) -> None:
    assert _paging(limit, token) == kwargs
