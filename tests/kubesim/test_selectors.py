"""Label and field selectors: the pure parser, then list/watch/delete through the client."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from certlc_dev.kubesim.selectors import (
    SelectorError,
    parse_field_selector,
    parse_label_selector,
    selector_from_object,
)
from tests.kubesim.helpers import secret, status_of

LABELS = {"app": "web", "tier": "front", "n": "5"}


@pytest.mark.parametrize(
    ("selector", "matches"),
    [
        ("", True),
        ("app=web", True),
        ("app==web", True),
        ("app!=web", False),
        ("app=db", False),
        ("missing!=x", True),
        ("app in (web,db)", True),
        ("app in (db)", False),
        ("app notin (db)", True),
        ("missing notin (db)", True),
        ("app", True),
        ("!app", False),
        ("!missing", True),
        ("app=web,tier=front", True),
        ("app=web,tier=back", False),
        ("  app = web , tier in ( front ) ", True),
        ("n>3", True),
        ("n<3", False),
        ("app=", False),
        ("example.com/role=x", False),
    ],
)
def test_label_selector_semantics(selector: str, matches: bool) -> None:
    assert parse_label_selector(selector).matches(LABELS) is matches


@pytest.mark.parametrize(
    "selector",
    [
        "app in web",
        "app in (web",
        "=web",
        "app==",
        "a b",
        "app=web,",
        "app=bad value!",
        "a=(b)",
        "!",
        "n>x",
    ],
)
def test_malformed_label_selectors_raise(selector: str) -> None:
    if selector == "app==":  # an empty value is valid: `app==` selects app=""
        assert parse_label_selector(selector).matches({"app": ""})
        return
    with pytest.raises(SelectorError):
        parse_label_selector(selector)


def test_label_selector_objects_convert() -> None:
    selector = selector_from_object(
        {
            "matchLabels": {"app": "web"},
            "matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["front"]},
                {"key": "gone", "operator": "DoesNotExist"},
            ],
        }
    )
    assert selector.matches(LABELS)
    assert not selector.matches({"app": "web", "tier": "back"})


def test_field_selectors_parse_and_reject_unknown_fields() -> None:
    selector = parse_field_selector("metadata.name=a,type!=Opaque", ["metadata.name", "type"])
    assert selector.matches({"metadata.name": "a", "type": "kubernetes.io/tls"})
    assert not selector.matches({"metadata.name": "a", "type": "Opaque"})
    with pytest.raises(SelectorError, match=r"field label not supported: spec\.x"):
        parse_field_selector("spec.x=1", ["metadata.name"])
    with pytest.raises(SelectorError):
        parse_field_selector("metadata.name", ["metadata.name"])


@pytest.fixture
def seeded(kube_api: Any) -> client.CoreV1Api:
    core = client.CoreV1Api(kube_api)
    core.create_namespace({"metadata": {"name": "other"}})
    core.create_namespaced_secret("default", secret("web", labels={"app": "web", "tier": "f"}))
    core.create_namespaced_secret("default", secret("db", labels={"app": "db"}))
    core.create_namespaced_secret(
        "default", secret("tls", {"tls.crt": "c", "tls.key": "k"}, type_="kubernetes.io/tls")
    )
    core.create_namespaced_secret("other", secret("web", labels={"app": "web"}))
    return core


@pytest.mark.parametrize(
    ("label_selector", "expected"),
    [
        ("app=web", ["web"]),
        ("app==web", ["web"]),
        ("app!=web", ["db", "tls"]),
        ("app in (web, db)", ["db", "web"]),
        ("app notin (web)", ["db", "tls"]),
        ("tier", ["web"]),
        ("!app", ["tls"]),
        ("app,!tier", ["db"]),
    ],
)
def test_list_with_label_selectors(
    seeded: client.CoreV1Api, label_selector: str, expected: list[str]
) -> None:
    listed = seeded.list_namespaced_secret("default", label_selector=label_selector)
    assert [s.metadata.name for s in listed.items] == expected


@pytest.mark.parametrize(
    ("field_selector", "expected"),
    [
        ("metadata.name=db", [("default", "db")]),
        ("metadata.name!=db,metadata.namespace=default", [("default", "tls"), ("default", "web")]),
        ("metadata.namespace=other", [("other", "web")]),
        ("type=kubernetes.io/tls", [("default", "tls")]),
        ("type!=Opaque", [("default", "tls")]),
    ],
)
def test_list_with_field_selectors(
    seeded: client.CoreV1Api, field_selector: str, expected: list[tuple[str, str]]
) -> None:
    listed = seeded.list_secret_for_all_namespaces(field_selector=field_selector)
    assert [(s.metadata.namespace, s.metadata.name) for s in listed.items] == expected


def test_malformed_selectors_are_bad_requests(seeded: client.CoreV1Api) -> None:
    with pytest.raises(ApiException) as caught:
        seeded.list_namespaced_secret("default", label_selector="app in web")
    assert caught.value.status == 400
    assert status_of(caught.value)["reason"] == "BadRequest"
    with pytest.raises(ApiException) as caught:
        seeded.list_namespaced_secret("default", field_selector="data.k=v")
    assert caught.value.status == 400
    assert status_of(caught.value)["message"] == "field label not supported: data.k"


def test_delete_collection_honours_selectors(seeded: client.CoreV1Api) -> None:
    seeded.delete_collection_namespaced_secret("default", label_selector="app in (web,db)")
    remaining = seeded.list_secret_for_all_namespaces()
    assert [(s.metadata.namespace, s.metadata.name) for s in remaining.items] == [
        ("default", "tls"),
        ("other", "web"),
    ]


def test_limit_and_continue_page_through_a_consistent_snapshot(seeded: client.CoreV1Api) -> None:
    first = seeded.list_secret_for_all_namespaces(limit=2)
    assert [s.metadata.name for s in first.items] == ["db", "tls"]
    assert first.metadata.remaining_item_count == 2
    seeded.create_namespaced_secret("default", secret("zzz"))  # not in the snapshot
    second = seeded.list_secret_for_all_namespaces(limit=2, _continue=first.metadata._continue)
    assert [(s.metadata.namespace, s.metadata.name) for s in second.items] == [
        ("default", "web"),
        ("other", "web"),
    ]
    assert second.metadata._continue is None
    assert second.metadata.resource_version == first.metadata.resource_version
    with pytest.raises(ApiException) as caught:
        seeded.list_secret_for_all_namespaces(limit=2, _continue="garbage")
    assert caught.value.status == 400
