"""Rollout decisions: template labels from checksums, completion, and TCP status patches."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from certlc_dev.kubesim.crds import load_schemas
from certlc_dev.kubesim.pruning import prune
from libs.contracts.records import RolloutState
from libs.pki.profiles import SecretKind
from services.rollout.plan import (
    CA_ROTATING,
    SecretFact,
    deployment_patch,
    judge,
    recheck_delay,
    rollout_state,
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


DONE = {"observedGeneration": 2, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 2}
DEADLINE = {
    "type": "Progressing",
    "status": "False",
    "reason": "ProgressDeadlineExceeded",
    "message": 'ReplicaSet "k8s-126-5d9" has timed out progressing.',
}


def judged(
    status: dict[str, Any], *, paused: bool = False, conditions: list[dict[str, str]] | None = None
) -> tuple[RolloutState, str]:
    d = deployment({}, **status)
    d["spec"]["paused"] = paused
    d["status"]["conditions"] = conditions or []
    return rollout_state(d)


@pytest.mark.parametrize(
    ("status", "paused", "conditions", "state", "words"),
    [
        (DONE, False, None, RolloutState.COMPLETE, "2 of 2 updated replicas are available"),
        ({**DONE, "observedGeneration": 1}, False, None, RolloutState.PROGRESSING,
         "generation 2"),
        ({**DONE, "updatedReplicas": 1}, False, None, RolloutState.PROGRESSING,
         "1 of 2 new replicas have been updated"),
        ({**DONE, "replicas": 3}, False, None, RolloutState.PROGRESSING,
         "1 old replicas are pending termination"),
        ({**DONE, "availableReplicas": 1}, False, None, RolloutState.PROGRESSING,
         "1 of 2 updated replicas are available"),
        ({**DONE, "updatedReplicas": 0}, True, None, RolloutState.PAUSED, "spec.paused"),
        (DONE, True, None, RolloutState.COMPLETE, ""),  # paused after it finished
        ({**DONE, "updatedReplicas": 1}, False, [DEADLINE], RolloutState.FAILED,
         "ProgressDeadlineExceeded: ReplicaSet"),
    ],
)  # fmt: skip
def test_should_judge_a_rollout_as_kubectl_rollout_status_does(
    status: dict[str, Any],
    paused: bool,
    conditions: list[dict[str, str]] | None,
    state: RolloutState,
    words: str,
) -> None:
    got, why = judged(status, paused=paused, conditions=conditions)
    assert got is state
    assert words in why


def test_should_call_complete_unchanged_when_this_rotation_patched_nothing() -> None:
    d = deployment({}, **DONE)
    assert judge(d, None, NOW, 600)[0] is RolloutState.UNCHANGED
    assert judge(d, NOW, NOW, 600)[0] is RolloutState.COMPLETE


def test_should_fail_a_rollout_that_takes_longer_than_the_timeout() -> None:
    d = deployment({}, **{**DONE, "updatedReplicas": 1})
    assert judge(d, NOW - timedelta(seconds=599), NOW, 600)[0] is RolloutState.PROGRESSING
    state, why = judge(d, NOW - timedelta(seconds=601), NOW, 600)
    assert state is RolloutState.FAILED
    assert why.startswith("not rolled out after 600s: 1 of 2")


@pytest.mark.parametrize(("elapsed", "delay"), [(0.0, 1.0), (2.0, 1.0), (20.0, 5.0), (400.0, 30.0)])
def test_should_recheck_a_rollout_quickly_at_first_and_rarely_later(
    elapsed: float, delay: float
) -> None:
    assert recheck_delay(elapsed, 1.0, 30.0) == delay


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
            "addons": {"konnectivity": {"enabled": True, "certificate": {
                "secretName": "k8s-126-konnectivity-certificate", "checksum": "3",
                "lastUpdate": "2026-06-01T12:00:00Z"}}},
        }
    }  # fmt: skip


def test_should_write_only_what_kamajis_status_schema_holds() -> None:
    """Every field the patch writes survives the TCP CRD's structural pruning (a real API server
    drops the others silently), and addons.konnectivity keeps its required `enabled`."""
    schema = load_schemas()[("kamaji.clastix.io", "v1alpha1", "tenantcontrolplanes")]
    every = facts(**{kind.name: str(i) for i, kind in enumerate(SecretKind)})
    patch = status_patch({}, every, NOW, phase="Ready")
    assert patch is not None
    tcp = {"apiVersion": "kamaji.clastix.io/v1alpha1", "kind": "TenantControlPlane", **patch}
    assert prune(schema, tcp) == (tcp, ())
    config = patch["status"]["storage"]["config"]
    assert config == {"secretName": "k8s-126-datastore-config", "checksum": config["checksum"]}
    konnectivity = patch["status"]["addons"]["konnectivity"]
    assert konnectivity["enabled"] is True
    # A status that says it already: `enabled` is not written again.
    again = status_patch(
        {"status": {"addons": {"konnectivity": {"enabled": True}}}},
        facts(KONNECTIVITY_KUBECONFIG="9"),
        NOW,
    )
    assert again is not None
    assert "enabled" not in again["status"]["addons"]["konnectivity"]


def test_should_leave_status_alone_when_it_already_matches() -> None:
    first = status_patch({}, facts(CA="1"), NOW, phase="Ready")
    assert first is not None
    assert status_patch(first, facts(CA="1"), NOW, phase="Ready") is None
    again = status_patch(first, facts(CA="1"), NOW, phase=CA_ROTATING)
    assert again == {"status": {"kubernetesResources": {"version": {"status": CA_ROTATING}}}}
