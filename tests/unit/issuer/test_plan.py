"""The issuer's plan: what it writes for a rotate command, and what it leaves alone."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest

from libs.contracts.messages import Reason, RotateCommand
from libs.pki import (
    CA_SIGNED_KINDS,
    SecretKind,
    TcpSpec,
    checksum,
    mint_secret_data,
    renewal_reasons,
    signer_from_secret_data,
)
from services.issuer.plan import (
    ROTATION_ANNOTATION,
    DataStoreFacts,
    Existing,
    Gathered,
    IssueSettings,
    PlanError,
    plan,
    rotate_stamp,
)

K = SecretKind
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
TCP = TcpSpec(name="k8s-126", namespace="default", address="172.18.255.200", konnectivity=True)
CFG = IssueSettings()


def existing(kind: SecretKind, data: dict[str, bytes], rv: str = "7", **ann: str) -> Existing:
    return Existing(rv, data, {}, dict(ann), "Opaque")


@pytest.fixture(scope="module")
def cas() -> dict[SecretKind, Existing]:
    return {
        K.CA: existing(K.CA, mint_secret_data(K.CA, TCP, now=NOW), rv="1"),
        K.FRONT_PROXY_CA: existing(
            K.FRONT_PROXY_CA, mint_secret_data(K.FRONT_PROXY_CA, TCP, now=NOW), rv="2"
        ),
    }


def command(*kinds: SecretKind, ca_rotation: bool = False, **versions: str) -> RotateCommand:
    return RotateCommand(
        id="rot-1",
        namespace="default",
        tcp="k8s-126",
        secrets=tuple(k.value for k in kinds),
        reason=Reason.MISSING,
        requested_at=NOW,
        ca_rotation=ca_rotation,
        resource_versions=versions,
    )


def decoded(body: dict[str, object]) -> dict[str, bytes]:
    data = body["data"]
    assert isinstance(data, dict)
    return {k: base64.b64decode(v) for k, v in data.items()}


def test_should_mint_a_missing_leaf_signed_by_the_current_ca(
    cas: dict[SecretKind, Existing],
) -> None:
    g = Gathered(TCP, "tcp-uid", dict(cas))
    result = plan(command(K.APISERVER, **{"api-server-certificate": "deleted@9"}), g, NOW, CFG)
    [write] = result.writes
    assert write.replace_version is None
    data = decoded(write.body)
    assert (
        renewal_reasons(K.APISERVER, data, TCP, now=NOW, current_ca_pem=cas[K.CA].data["ca.crt"])
        == ()
    )
    meta = write.body["metadata"]
    assert isinstance(meta, dict)
    assert meta["labels"]["kamaji.clastix.io/certificate_lifecycle_controller"] == "x509"
    assert meta["annotations"]["kamaji.clastix.io/checksum"] == checksum(data)
    assert "certs.kamaji.clastix.io/rotate" not in meta["annotations"]  # nobody asked
    assert meta["annotations"][ROTATION_ANNOTATION] == "rot-1"
    assert meta["ownerReferences"][0]["uid"] == "tcp-uid"


def test_should_rotate_the_ca_and_sign_dependents_with_the_new_one(
    cas: dict[SecretKind, Existing],
) -> None:
    g = Gathered(TCP, "tcp-uid", dict(cas))
    result = plan(command(K.CA, *CA_SIGNED_KINDS, ca_rotation=True, ca="1"), g, NOW, CFG)
    assert [w.kind for w in result.writes] == [K.CA, *CA_SIGNED_KINDS]
    new_ca = decoded(result.writes[0].body)["ca.crt"]
    assert new_ca != cas[K.CA].data["ca.crt"]
    for write in result.writes[1:]:
        reasons = renewal_reasons(
            write.kind, decoded(write.body), TCP, now=NOW, current_ca_pem=new_ca
        )
        assert reasons == (), (write.kind, reasons)


def test_should_skip_a_secret_already_written_by_the_same_rotation(
    cas: dict[SecretKind, Existing],
) -> None:
    done = existing(K.ADMIN_KUBECONFIG, {"admin.conf": b"x"}, **{ROTATION_ANNOTATION: "rot-1"})
    g = Gathered(TCP, "u", {**cas, K.ADMIN_KUBECONFIG: done})
    result = plan(command(K.ADMIN_KUBECONFIG, **{"admin-kubeconfig": "7"}), g, NOW, CFG)
    assert result.writes == ()
    assert [s.why for s in result.skipped] == ["already written by this rotation"]


@pytest.mark.parametrize(
    ("version", "present", "why"),
    [("6", True, "changed since the decision"), ("deleted@3", True, "re-created")],
)
def test_should_skip_a_secret_that_changed_since_the_decision(
    cas: dict[SecretKind, Existing], version: str, present: bool, why: str
) -> None:
    current = existing(K.SCHEDULER_KUBECONFIG, {"scheduler.conf": b"x"}, rv="7")
    g = Gathered(TCP, "u", {**cas, K.SCHEDULER_KUBECONFIG: current})
    result = plan(command(K.SCHEDULER_KUBECONFIG, **{"scheduler-kubeconfig": version}), g, NOW, CFG)
    assert result.writes == ()
    assert why in result.skipped[0].why


def test_should_replace_an_expiring_secret_on_its_version(cas: dict[SecretKind, Existing]) -> None:
    current = existing(K.FRONT_PROXY_CLIENT, {"x": b"y"}, rv="7")
    g = Gathered(TCP, "u", {**cas, K.FRONT_PROXY_CLIENT: current})
    [write] = plan(
        command(K.FRONT_PROXY_CLIENT, **{"front-proxy-client-certificate": "7"}), g, NOW, CFG
    ).writes
    assert write.replace_version == "7"
    reasons = renewal_reasons(
        K.FRONT_PROXY_CLIENT, decoded(write.body), TCP, now=NOW,
        signer_ca_pem=cas[K.FRONT_PROXY_CA].data["front-proxy-ca.crt"],
    )  # fmt: skip
    assert reasons == ()


def test_should_refuse_to_sign_without_a_ca() -> None:
    with pytest.raises(PlanError, match="k8s-126-ca is missing"):
        plan(command(K.APISERVER), Gathered(TCP, "u", {}), NOW, CFG)


def test_should_sign_the_etcd_client_certificate_with_the_datastore_ca(
    cas: dict[SecretKind, Existing],
) -> None:
    ds_ca = mint_secret_data(K.CA, TCP, now=NOW)
    ds = DataStoreFacts("default", "etcd", ("etcd-0:2379",), ds_ca["ca.crt"], ds_ca["ca.key"])
    g = Gathered(TCP, "u", dict(cas), ds)
    [write] = plan(command(K.DATASTORE_CERTIFICATE), g, NOW, CFG).writes
    data = decoded(write.body)
    assert data["ca.crt"] == ds_ca["ca.crt"]
    assert (
        renewal_reasons(K.DATASTORE_CERTIFICATE, data, TCP, now=NOW, signer_ca_pem=ds_ca["ca.crt"])
        == ()
    )


def test_should_rebuild_a_postgresql_datastore_certificate_from_the_external_pki(
    cas: dict[SecretKind, Existing],
) -> None:
    ext_ca = mint_secret_data(K.CA, TCP, now=NOW)
    signer = signer_from_secret_data(K.CA, ext_ca)
    client = mint_secret_data(
        K.DATASTORE_CERTIFICATE, TCP, now=NOW, signer=signer, validity=timedelta(hours=10)
    )
    ds = DataStoreFacts(
        "pg",
        "PostgreSQL",
        ("pg:5432",),
        ext_ca["ca.crt"],
        None,
        client["server.crt"],
        client["server.key"],
    )
    old = existing(K.DATASTORE_CERTIFICATE, {"server.crt": b"old"}, rv="4")
    g = Gathered(TCP, "u", {**cas, K.DATASTORE_CERTIFICATE: old}, ds)
    result = plan(command(K.DATASTORE_CERTIFICATE, **{"datastore-certificate": "4"}), g, NOW, CFG)
    [write] = result.writes
    assert write.delete_first is True
    assert write.replace_version is None
    assert decoded(write.body)["server.crt"] == client["server.crt"]


@pytest.mark.parametrize(
    ("before", "after"),
    [
        (None, None),  # not asked for: no annotation (kubectl annotate needs no --overwrite)
        ("", "2026-06-01T12:00:00Z"),  # asked for: answered with the time, as Kamaji does
        ("2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z"),  # an earlier answer stays
    ],
)
def test_should_stamp_the_rotate_annotation_only_after_a_requested_rotation(
    before: str | None, after: str | None
) -> None:
    annotations = {} if before is None else {"certs.kamaji.clastix.io/rotate": before}
    stamped = {**annotations, **rotate_stamp(annotations, NOW)}
    assert stamped.get("certs.kamaji.clastix.io/rotate") == after
