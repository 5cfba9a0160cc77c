"""Subjects encode Kubernetes names safely and name the TCP they are about."""

from __future__ import annotations

import pytest

from libs.contracts import names, subjects


@pytest.mark.parametrize("name", ["k8s-126", "a", "tcp.example.com", "x" * 253, "a1-b2.c3"])
def test_should_round_trip_kubernetes_names(name: str) -> None:
    token = names.encode_token(name)
    assert "." not in token
    assert names.decode_token(token) == name


@pytest.mark.parametrize("bad", ["", "*", ">", "a.*", "A", "a b", "a_b", "-a", "a-", "x" * 254])
def test_should_refuse_what_is_not_a_kubernetes_name(bad: str) -> None:
    with pytest.raises(names.InvalidNameError):
        names.encode_token(bad)


def test_should_build_per_tcp_subjects_with_dots_encoded() -> None:
    subject = subjects.secret_event("team.a", "cp.one", "cp.one-ca")
    assert subject == "certlc.events.secret.team_a.cp_one.cp_one-ca"
    assert subjects.rotate("default", "k8s-126") == "certlc.rotate.default.k8s-126"
    assert subjects.audit_filter("default", "k8s-126") == "certlc.audit.default.k8s-126.>"


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("certlc.events.secret.team_a.cp_one.cp_one-ca", ("team.a", "cp.one")),
        ("certlc.events.tcp.default.k8s-126", ("default", "k8s-126")),
        ("certlc.rotate.default.k8s-126", ("default", "k8s-126")),
        ("certlc.issued.default.k8s-126", ("default", "k8s-126")),
        ("certlc.audit.default.k8s-126.rollout-started", ("default", "k8s-126")),
        ("certlc.events.datastore.default", None),
        ("certlc.events.watcher.synced", None),
        ("other.rotate.a.b", None),
    ],
)
def test_should_name_the_tcp_a_subject_is_about(
    subject: str, expected: tuple[str, str] | None
) -> None:
    assert subjects.tcp_of(subject) == expected
