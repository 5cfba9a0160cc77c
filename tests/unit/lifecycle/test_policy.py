"""The lifecycle policy chain, one sentence per behaviour."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from libs.contracts.messages import CertFacts, Problem, Reason, SecretObserved, TcpObserved
from libs.contracts.records import Phase, RotationRecord, Stage
from libs.pki.profiles import CA_SIGNED_KINDS, SecretKind
from services.lifecycle.policy import (
    PolicySettings,
    TcpState,
    decide,
    managed_kinds,
    renew_at,
    rotation_id,
)

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
CFG = PolicySettings()
K = SecretKind


def tcp(**kw: object) -> TcpObserved:
    base: dict[str, object] = {
        "namespace": "default",
        "name": "k8s-126",
        "uid": "uid-1",
        "resource_version": "1",
        "konnectivity": True,
        "phase": "Ready",
    }
    base.update(kw)
    return TcpObserved(**base)  # type: ignore[arg-type]


def record(
    evidence: dict[SecretKind, str],
    *,
    at: datetime = NOW,
    phase: Phase = Phase.ISSUING,
    rid: str = "r1",
    **kw: object,
) -> RotationRecord:
    """A rotation record of TCP k8s-126 covering `evidence` (kind -> resourceVersion)."""
    base: dict[str, object] = {
        "id": rid,
        "namespace": "default",
        "tcp": "k8s-126",
        "tcp_uid": "uid-1",
        "secrets": tuple(k.value for k in evidence),
        "reason": Reason.INVALID,
        "resource_versions": {k.value: v for k, v in evidence.items()},
        "phase": phase,
        "requested_at": at,
        "updated_at": at,
    }
    base.update(kw)
    return RotationRecord(**base)  # type: ignore[arg-type]


def cert(not_after: datetime, not_before: datetime | None = None) -> CertFacts:
    return CertFacts(
        serial="01",
        subject="CN=x",
        issuer="CN=kubernetes",
        not_before=not_before or NOW - timedelta(days=30),
        not_after=not_after,
        fingerprint_sha256="ab",
    )


def secret(kind: SecretKind, rv: str = "10", **kw: object) -> SecretObserved:
    is_ca = kind in (K.CA, K.FRONT_PROXY_CA)
    base: dict[str, object] = {
        "namespace": "default",
        "tcp": "k8s-126",
        "name": f"k8s-126-{kind.value}",
        "kind": kind.value,
        "uid": f"u-{kind.value}",
        "resource_version": rv,
        "cert": None
        if kind in (K.SA, K.DATASTORE_CONFIG)
        else cert(NOW + (timedelta(days=3000) if is_ca else timedelta(days=300))),
    }
    base.update(kw)
    return SecretObserved(**base)  # type: ignore[arg-type]


def healthy(**overrides: SecretObserved | None) -> dict[SecretKind, SecretObserved]:
    secrets = {k: secret(k) for k in managed_kinds(tcp())}
    for name, value in overrides.items():
        kind = K[name]
        if value is None:
            del secrets[kind]
        else:
            secrets[kind] = value
    return secrets


def kinds_of(state: TcpState) -> list[tuple[Reason, tuple[SecretKind, ...], bool]]:
    return [(r.reason, r.kinds, r.ca_rotation) for r in decide(state, NOW, CFG).rotations]


def test_should_do_nothing_when_every_secret_is_healthy() -> None:
    decision = decide(TcpState(tcp(), healthy()), NOW, CFG)
    assert decision.rotations == ()
    assert decision.next_check is not None
    assert decision.next_check > NOW


def test_should_re_create_a_missing_secret() -> None:
    state = TcpState(tcp(), healthy(APISERVER=None), deleted_versions={K.APISERVER: "55"})
    [rotation] = decide(state, NOW, CFG).rotations
    assert (rotation.reason, rotation.kinds) == (Reason.MISSING, (K.APISERVER,))
    assert rotation.evidence == {"api-server-certificate": "deleted@55"}


def test_should_group_secrets_missing_together_into_one_rotation() -> None:
    state = TcpState(
        tcp(),
        healthy(APISERVER=None, APISERVER_KUBELET_CLIENT=None, KONNECTIVITY_CERTIFICATE=None),
    )
    assert kinds_of(state) == [
        (
            Reason.MISSING,
            (K.APISERVER, K.APISERVER_KUBELET_CLIENT, K.KONNECTIVITY_CERTIFICATE),
            False,
        )
    ]


def test_should_issue_the_whole_set_for_a_new_tcp_in_one_command_ca_first() -> None:
    rotations = decide(TcpState(tcp(), {}), NOW, CFG).rotations
    assert len(rotations) == 1
    assert rotations[0].ca_rotation is True
    assert rotations[0].kinds[0] is K.CA
    issued = {k for r in rotations for k in r.kinds}
    assert issued == set(managed_kinds(tcp()))


def test_should_not_manage_konnectivity_secrets_when_the_addon_is_off() -> None:
    rotations = decide(TcpState(tcp(konnectivity=False), {}), NOW, CFG).rotations
    issued = {k for r in rotations for k in r.kinds}
    assert K.KONNECTIVITY_CERTIFICATE not in issued
    assert K.KONNECTIVITY_KUBECONFIG not in issued
    assert len(issued) == 11


def test_should_renew_a_leaf_expiring_within_the_deadline() -> None:
    soon = secret(K.ADMIN_KUBECONFIG, cert=cert(NOW + timedelta(hours=23)))
    assert kinds_of(TcpState(tcp(), healthy(ADMIN_KUBECONFIG=soon))) == [
        (Reason.EXPIRING, (K.ADMIN_KUBECONFIG,), False)
    ]


def test_should_not_renew_a_leaf_before_the_deadline_but_wake_up_at_it() -> None:
    cfg = PolicySettings(jitter=0)
    later = secret(K.APISERVER, cert=cert(NOW + timedelta(hours=25)))
    decision = decide(TcpState(tcp(), healthy(APISERVER=later)), NOW, cfg)
    assert decision.rotations == ()
    assert decision.next_check == NOW + timedelta(hours=1)


def test_should_fall_due_at_a_moment_of_its_own_within_the_jitter_span() -> None:
    """50 certificates issued together (the same NotAfter) fall due spread over a quarter of
    the deadline before it; the same certificate always at the same moment."""
    not_after = NOW + timedelta(days=300)
    certs = [
        secret(K.APISERVER, name=f"tcp-{i}-api-server-certificate",
               cert=msgspec.structs.replace(cert(not_after), serial=f"{i:02x}"))
        for i in range(50)
    ]  # fmt: skip
    due = [renew_at(K.APISERVER, c, CFG) for c in certs]
    latest, earliest = not_after - CFG.deadline, not_after - CFG.deadline * 1.25
    assert all(d is not None and earliest <= d <= latest for d in due)
    moments = sorted(d for d in due if d is not None)
    assert len(set(moments)) == 50
    gaps = [b - a for a, b in itertools.pairwise([earliest, *moments, latest])]
    assert max(gaps) < CFG.deadline * 0.25 / 5, "spread, not clustered"
    assert [renew_at(K.APISERVER, c, CFG) for c in certs] == due  # the same every time
    # A new certificate of the same Secret (another serial) gets another moment.
    renewed = msgspec.structs.replace(
        certs[0], cert=msgspec.structs.replace(cert(not_after), serial="ff")
    )
    assert renew_at(K.APISERVER, renewed, CFG) != due[0]
    assert renew_at(K.CA, secret(K.CA), CFG) is None  # CAs are never renewed for their age


@pytest.mark.parametrize("jitter", [0.0, 0.25, 1.0])
def test_should_decide_and_wake_up_at_the_jittered_moment(jitter: float) -> None:
    cfg = PolicySettings(jitter=jitter)
    s = secret(K.APISERVER, cert=cert(NOW + timedelta(days=10)))
    due = renew_at(K.APISERVER, s, cfg)
    assert due is not None
    state = TcpState(tcp(), healthy(APISERVER=s))
    assert decide(state, due - timedelta(seconds=1), cfg).rotations == ()
    assert decide(state, due - timedelta(seconds=1), cfg).next_check == due
    assert [r.reason for r in decide(state, due, cfg).rotations] == [Reason.EXPIRING]


def test_should_never_rotate_a_ca_for_its_age_but_warn_under_a_year() -> None:
    old_ca = secret(K.CA, cert=cert(NOW + timedelta(hours=2)))
    decision = decide(TcpState(tcp(), healthy(CA=old_ca)), NOW, CFG)
    assert decision.rotations == ()
    assert [w.kind for w in decision.ca_warnings] == [K.CA]


def test_should_rotate_the_ca_and_everything_it_signs_when_the_ca_is_deleted() -> None:
    [rotation] = decide(TcpState(tcp(), healthy(CA=None)), NOW, CFG).rotations
    assert rotation.ca_rotation is True
    assert rotation.kinds == (K.CA, *CA_SIGNED_KINDS)
    assert K.FRONT_PROXY_CLIENT not in rotation.kinds
    assert K.SA not in rotation.kinds
    assert K.DATASTORE_CERTIFICATE not in rotation.kinds


def test_should_rotate_the_ca_when_annotated_for_rotation() -> None:
    annotated = secret(K.CA, rotate_annotation="")
    [rotation] = decide(TcpState(tcp(), healthy(CA=annotated)), NOW, CFG).rotations
    assert (rotation.reason, rotation.ca_rotation) == (Reason.REQUESTED, True)


def test_should_re_issue_the_front_proxy_client_with_a_new_front_proxy_ca() -> None:
    assert kinds_of(TcpState(tcp(), healthy(FRONT_PROXY_CA=None))) == [
        (Reason.MISSING, (K.FRONT_PROXY_CA, K.FRONT_PROXY_CLIENT), False)
    ]


def test_should_rotate_on_the_rotate_annotation_but_not_on_a_timestamp() -> None:
    requested = secret(K.SCHEDULER_KUBECONFIG, rotate_annotation="")
    done = secret(K.SCHEDULER_KUBECONFIG, rotate_annotation="2026-06-01T11:00:00Z")
    assert kinds_of(TcpState(tcp(), healthy(SCHEDULER_KUBECONFIG=requested))) == [
        (Reason.REQUESTED, (K.SCHEDULER_KUBECONFIG,), False)
    ]
    assert kinds_of(TcpState(tcp(), healthy(SCHEDULER_KUBECONFIG=done))) == []


def test_should_re_issue_an_invalid_secret_with_the_problem_named() -> None:
    bad = secret(
        K.APISERVER, problems=(Problem(code="san-missing", message="SAN 10.96.0.1 missing"),)
    )
    [rotation] = decide(TcpState(tcp(), healthy(APISERVER=bad)), NOW, CFG).rotations
    assert rotation.reason is Reason.INVALID
    assert "SAN 10.96.0.1 missing" in rotation.detail


def test_should_treat_a_certificate_not_yet_valid_as_invalid() -> None:
    future = secret(K.APISERVER, cert=cert(NOW + timedelta(days=300), NOW + timedelta(hours=1)))
    assert kinds_of(TcpState(tcp(), healthy(APISERVER=future))) == [
        (Reason.INVALID, (K.APISERVER,), False)
    ]


@pytest.mark.parametrize("where", ["tcp", "secret"])
def test_should_leave_paused_objects_alone(where: str) -> None:
    if where == "tcp":
        state = TcpState(tcp(paused=True), healthy(APISERVER=None))
    else:
        paused = secret(K.APISERVER, paused=True, rotate_annotation="")
        state = TcpState(tcp(), healthy(APISERVER=paused))
    assert decide(state, NOW, CFG).rotations == ()


CA_OPEN = record({K.CA: "1"}, phase=Phase.ROLLING_OUT, ca_rotation=True, rid="ca")


def test_should_hold_ca_signed_secrets_while_a_ca_rotation_record_is_open() -> None:
    soon = secret(K.ADMIN_KUBECONFIG, cert=cert(NOW + timedelta(hours=1)))
    state = TcpState(tcp(), healthy(ADMIN_KUBECONFIG=soon), rotations=(CA_OPEN,))
    assert decide(state, NOW, CFG).rotations == ()
    done = msgspec.structs.replace(CA_OPEN, phase=Phase.COMPLETED)
    state = TcpState(tcp(), healthy(ADMIN_KUBECONFIG=soon), rotations=(done,))
    assert kinds_of(state) == [(Reason.EXPIRING, (K.ADMIN_KUBECONFIG,), False)]


def test_should_not_read_the_tcp_status_phase_as_state() -> None:
    soon = secret(K.ADMIN_KUBECONFIG, cert=cert(NOW + timedelta(hours=1)))
    state = TcpState(tcp(phase="CertificateAuthorityRotating"), healthy(ADMIN_KUBECONFIG=soon))
    assert kinds_of(state) == [(Reason.EXPIRING, (K.ADMIN_KUBECONFIG,), False)]


def test_should_re_create_a_missing_ca_signed_secret_during_a_ca_rotation() -> None:
    state = TcpState(tcp(), healthy(APISERVER=None), rotations=(CA_OPEN,))
    assert kinds_of(state) == [(Reason.MISSING, (K.APISERVER,), False)]


def test_should_trip_the_loop_guard_instead_of_re_issuing_forever() -> None:
    bad = secret(K.APISERVER, rv="99", problems=(Problem(code="san-missing", message="bad SAN"),))
    history = tuple(
        record({K.APISERVER: f"rv{i}"}, at=NOW - timedelta(minutes=i), phase=Phase.COMPLETED,
               rid=f"r{i}")
        for i in range(3)
    )  # fmt: skip
    decision = decide(TcpState(tcp(), healthy(APISERVER=bad), rotations=history), NOW, CFG)
    assert decision.rotations == ()
    [trip] = decision.loop_trips
    assert trip.kind is K.APISERVER
    assert "3 times" in trip.message


def test_should_always_re_create_a_missing_secret_even_after_many_issues() -> None:
    history = tuple(
        record({K.APISERVER: f"rv{i}"}, at=NOW - timedelta(minutes=i), phase=Phase.COMPLETED,
               rid=f"r{i}")
        for i in range(5)
    )  # fmt: skip
    state = TcpState(tcp(), healthy(APISERVER=None), rotations=history)
    assert kinds_of(state) == [(Reason.MISSING, (K.APISERVER,), False)]


@pytest.mark.parametrize(
    ("phase", "asks_again"),
    [
        (Phase.REQUESTED, False),
        (Phase.ISSUING, False),
        (Phase.WRITTEN, False),
        (Phase.ROLLING_OUT, False),
        (Phase.FAILED, False),  # retried by the issuer's backoff, or on a new cause
        (Phase.COMPLETED, True),  # done, yet the Secret is missing again: a new rotation
    ],
)
def test_should_not_ask_twice_for_what_an_open_record_covers(
    phase: Phase, asks_again: bool
) -> None:
    old = NOW - timedelta(days=2)  # however old: records do not time out
    state = TcpState(
        tcp(),
        healthy(APISERVER=None),
        deleted_versions={K.APISERVER: "55"},
        rotations=(record({K.APISERVER: "deleted@55"}, phase=phase, at=old),),
    )
    got = [r.kinds for r in decide(state, NOW, CFG).rotations]
    assert got == ([(K.APISERVER,)] if asks_again else [])


def test_should_send_again_a_command_nobody_took_up() -> None:
    waiting = record({K.APISERVER: "deleted@55"}, phase=Phase.REQUESTED, at=NOW)
    state = TcpState(
        tcp(), healthy(APISERVER=None), deleted_versions={K.APISERVER: "55"}, rotations=(waiting,)
    )
    first = decide(state, NOW + timedelta(seconds=5), CFG)
    assert first.resends == ()
    assert first.next_check == NOW + CFG.resend_after
    [again] = decide(state, NOW + CFG.resend_after, CFG).resends
    assert again.record is waiting
    assert again.token == ""  # the same message id: de-duplicated if the first one did land
    # Sent again twice already: the next copy waits four times as long (a backlog, not a loss).
    twice = msgspec.structs.replace(waiting, resends=2)
    later = TcpState(
        tcp(), healthy(APISERVER=None), deleted_versions={K.APISERVER: "55"}, rotations=(twice,)
    )
    assert decide(later, NOW + 3 * CFG.resend_after, CFG).resends == ()
    assert decide(later, NOW + 3 * CFG.resend_after, CFG).next_check == NOW + 4 * CFG.resend_after
    assert len(decide(later, NOW + 4 * CFG.resend_after, CFG).resends) == 1


def test_should_retry_a_failed_issuance_at_once_when_its_signer_changed() -> None:
    failed = record(
        {K.APISERVER: "deleted@55"},
        phase=Phase.FAILED,
        stage=Stage.ISSUE,
        signers={"ca": "10"},
        next_retry=NOW + timedelta(hours=1),
    )
    state = TcpState(
        tcp(), healthy(APISERVER=None), deleted_versions={K.APISERVER: "55"}, rotations=(failed,)
    )
    assert decide(state, NOW, CFG).resends == ()  # the CA is as it was: wait for the backoff
    repaired = TcpState(
        tcp(),
        healthy(APISERVER=None, CA=secret(K.CA, rv="11")),
        deleted_versions={K.APISERVER: "55"},
        rotations=(failed,),
    )
    [again] = decide(repaired, NOW, CFG).resends
    assert again.signers == {"ca": "11"}
    assert again.token != ""
    # A CA change the watcher saw before the failure is what the failed attempt used: no new
    # cause (lifecycle may only learn of it after the issuer did).
    before = TcpState(
        tcp(),
        healthy(APISERVER=None, CA=secret(K.CA, rv="11", observed_at=NOW - timedelta(seconds=1))),
        deleted_versions={K.APISERVER: "55"},
        rotations=(failed,),
    )
    assert decide(before, NOW, CFG).resends == ()
    after = TcpState(
        tcp(),
        healthy(APISERVER=None, CA=secret(K.CA, rv="11", observed_at=NOW + timedelta(seconds=1))),
        deleted_versions={K.APISERVER: "55"},
        rotations=(failed,),
    )
    assert len(decide(after, NOW + timedelta(seconds=2), CFG).resends) == 1


def test_should_count_the_datastore_as_the_signer_of_the_datastore_certificate() -> None:
    failed = record(
        {K.DATASTORE_CERTIFICATE: "9"},
        phase=Phase.FAILED,
        stage=Stage.ISSUE,
        signers={"datastore": "ds-1"},
    )
    same = TcpState(tcp(), healthy(), rotations=(failed,), datastore_version="ds-1")
    assert decide(same, NOW, CFG).resends == ()
    rotated = TcpState(tcp(), healthy(), rotations=(failed,), datastore_version="ds-2")
    assert [r.signers for r in decide(rotated, NOW, CFG).resends] == [{"datastore": "ds-2"}]


def test_should_give_identical_decisions_identical_ids() -> None:
    a = decide(TcpState(tcp(), healthy(APISERVER=None)), NOW, CFG).rotations[0]
    b = decide(TcpState(tcp(), healthy(APISERVER=None)), NOW + timedelta(seconds=3), CFG)
    assert a.id == b.rotations[0].id
    assert a.id != rotation_id(tcp(uid="other"), Reason.MISSING, a.evidence)


def test_should_honour_a_configured_deadline() -> None:
    cfg = PolicySettings(deadline=timedelta(days=30))
    soon = secret(K.APISERVER, cert=cert(NOW + timedelta(days=29)))
    rotations = decide(TcpState(tcp(), healthy(APISERVER=soon)), NOW, cfg).rotations
    assert [r.reason for r in rotations] == [Reason.EXPIRING]


@pytest.mark.parametrize(
    ("driver", "client_left", "renewed", "warned"),
    [
        # etcd: certlc mints the TCP's own client certificate and renews it; nothing to warn of
        ("etcd", timedelta(hours=2), True, False),
        # a copy of the DataStore's certificate: never renewed here, a warning near its end
        ("PostgreSQL", timedelta(hours=2), False, True),
        ("MySQL", -timedelta(hours=1), False, True),  # already expired: still a warning
        ("NATS", timedelta(hours=2), False, True),
        ("PostgreSQL", timedelta(days=3), False, False),  # outside the deadline: quiet
        ("PostgreSQL", None, False, False),  # the DataStore's certificate is not known
    ],
)
def test_a_copied_datastore_certificate_is_reported_near_its_end_not_renewed(
    driver: str, client_left: timedelta | None, renewed: bool, warned: bool
) -> None:
    copy = secret(K.DATASTORE_CERTIFICATE, cert=cert(NOW + timedelta(hours=2)))
    client = cert(NOW + client_left) if client_left is not None else None
    state = TcpState(
        tcp(datastore="pg-1", datastore_driver=driver),
        healthy(DATASTORE_CERTIFICATE=copy),
        datastore_client=client,
    )
    decision = decide(state, NOW, CFG)
    asked = [r.kinds for r in decision.rotations]
    assert asked == ([(K.DATASTORE_CERTIFICATE,)] if renewed else [])
    warning = decision.external_warning
    assert (warning is not None) is warned
    if warning is not None:
        assert client is not None
        assert warning.datastore == "pg-1"
        assert warning.not_after == client.not_after
        assert "k8s-126-datastore-certificate" in warning.message
        assert "own PKI" in warning.message


def test_the_next_check_wakes_when_a_copied_certificate_enters_the_deadline() -> None:
    client = cert(NOW + timedelta(days=3))
    state = TcpState(
        tcp(datastore="pg-1", datastore_driver="PostgreSQL"),
        healthy(),
        datastore_client=client,
    )
    decision = decide(state, NOW, CFG)
    assert decision.next_check == NOW + timedelta(days=2)
    later = decide(state, NOW + timedelta(days=2), CFG)
    assert later.external_warning is not None
    assert later.rotations == ()
