"""Rollout decisions: template labels from checksums, completion, and TCP status patches."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from libs.pki.profiles import SecretKind
from services.rollout.plan import (
    CA_ROTATING,
    SecretFact,
    deployment_patch,
    rollout_complete,
    status_patch,
    template_labels,
)

K = SecretKind
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def facts(**checksums: str) -> dict[SecretKind, SecretFact]:
    return {K[n]: SecretFact(f"k8s-126-{K[n].value}", c) for n, c in checksums.items()}


def deployment(labels: dict[str, str], **status: int) -> dict[str, Any]:
    return {
        "metadata": {"generation": 2},
        "spec": {"replicas": 2, "template": {"metadata": {"labels": {"app": "x", **labels}}}},
        "status": status,
    }


def test_should_label_the_template_with_every_mounted_secret_including_konnectivity() -> None:
    labels = template_labels(
        facts(APISERVER="a", KONNECTIVITY_KUBECONFIG="b", ADMIN_KUBECONFIG="c")
    )
    assert labels == {
        "component.kamaji.clastix.io/api-server-certificate": "a",
        "component.kamaji.clastix.io/konnectivity-kubeconfig": "b",
    }


def test_should_patch_only_the_labels_that_changed() -> None:
    current = deployment({"component.kamaji.clastix.io/api-server-certificate": "a"})
    patch = deployment_patch(current, facts(APISERVER="a", CA="z"))
    assert patch == {
        "spec": {"template": {"metadata": {"labels": {"component.kamaji.clastix.io/ca": "z"}}}}
    }


def test_should_not_roll_out_twice_for_the_same_content() -> None:
    current = deployment(template_labels(facts(APISERVER="a", CA="z")))
    assert deployment_patch(current, facts(APISERVER="a", CA="z")) is None


def test_should_call_a_rollout_complete_only_when_every_replica_is_updated_and_available() -> None:
    done = {"observedGeneration": 2, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 2}
    assert rollout_complete(deployment({}, **done))
    assert not rollout_complete(deployment({}, **{**done, "observedGeneration": 1}))
    assert not rollout_complete(deployment({}, **{**done, "replicas": 3}))  # old pods remain
    assert not rollout_complete(deployment({}, **{**done, "availableReplicas": 1}))


def test_should_record_secrets_in_kamajis_status_layout() -> None:
    patch = status_patch({}, facts(CA="1", ADMIN_KUBECONFIG="2", KONNECTIVITY_CERTIFICATE="3"), NOW)
    assert patch == {
        "status": {
            "certificates": {
                "ca": {"secretName": "k8s-126-ca", "checksum": "1",
                       "lastUpdate": "2026-06-01T12:00:00Z"}
            },
            "kubeconfig": {
                "admin": {"secretName": "k8s-126-admin-kubeconfig", "checksum": "2",
                          "lastUpdate": "2026-06-01T12:00:00Z"}
            },
            "addons": {"konnectivity": {"certificate": {
                "secretName": "k8s-126-konnectivity-certificate", "checksum": "3",
                "lastUpdate": "2026-06-01T12:00:00Z"}}},
        }
    }  # fmt: skip


def test_should_leave_status_alone_when_it_already_matches() -> None:
    first = status_patch({}, facts(CA="1"), NOW, phase="Ready")
    assert first is not None
    assert status_patch(first, facts(CA="1"), NOW, phase="Ready") is None
    again = status_patch(first, facts(CA="1"), NOW, phase=CA_ROTATING)
    assert again == {"status": {"kubernetesResources": {"version": {"status": CA_ROTATING}}}}
