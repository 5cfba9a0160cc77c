"""The whole-set expiration report behind `certlc certs check`, and its kubeadm-like text."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

import pytest

from libs.pki import (
    ExpirationReport,
    ReportRow,
    RowStatus,
    SecretKind,
    Signer,
    expiration_report,
    mint_ca,
    mint_secret_data,
    render_report,
    secret_name,
    short_human_duration,
)

from ._support import NOW, TCP, minted

K = SecretKind
YEAR = timedelta(hours=8760)


def report(
    now: datetime = NOW,
    secrets: Mapping[SecretKind, Mapping[str, bytes]] | None = None,
    deadline: timedelta = timedelta(hours=24),
    datastore: bool = True,
) -> ExpirationReport:
    ds = minted().signers[Signer.DATASTORE_CA]
    return expiration_report(
        TCP,
        minted().data if secrets is None else secrets,
        now=now,
        deadline=deadline,
        datastore_ca_pem=ds.cert_pem if datastore else None,
        datastore_ca_key_pem=ds.key_pem if datastore else None,
    )


def row(rep: ExpirationReport, name: str) -> ReportRow:
    return next(r for r in rep.rows if r.name == name)


def test_should_report_a_fresh_set_valid_with_cas_apart() -> None:
    rep = report()
    assert rep.ok
    assert {r.status for r in rep.rows} == {RowStatus.VALID}
    assert [r.name for r in rep.authorities] == [
        "k8s-126-ca",
        "k8s-126-front-proxy-ca-certificate",
        "datastore-ca",
    ]
    assert len(rep.certificates) == 11
    assert row(rep, "k8s-126-api-server-certificate").signer == "ca"
    assert row(rep, "k8s-126-front-proxy-client-certificate").signer == "front-proxy-ca"
    assert row(rep, "k8s-126-datastore-certificate").signer == "datastore-ca"
    assert row(rep, "k8s-126-sa-certificate").not_after is None


def test_should_mark_a_certificate_expiring_inside_the_deadline() -> None:
    signer = minted().signers[Signer.CA]
    secrets: dict[SecretKind, Mapping[str, bytes]] = dict(minted().data)
    secrets[K.APISERVER] = mint_secret_data(
        K.APISERVER, TCP, now=NOW, signer=signer, validity=timedelta(hours=2)
    )
    rep = report(secrets=secrets)
    api = row(rep, "k8s-126-api-server-certificate")
    assert api.status is RowStatus.EXPIRING
    assert api.codes == ("expiring",)
    assert not rep.ok
    assert report(secrets=secrets, deadline=timedelta(hours=1)).ok


def test_should_mark_a_missing_secret_invalid() -> None:
    secrets: dict[SecretKind, dict[str, bytes]] = {
        k: v for k, v in minted().data.items() if k is not K.SCHEDULER_KUBECONFIG
    }
    sched = row(report(secrets=secrets), secret_name("k8s-126", K.SCHEDULER_KUBECONFIG))
    assert sched.status is RowStatus.INVALID
    assert sched.codes == ("missing-key",)


def test_should_mark_every_leaf_invalid_once_expired_but_warn_on_cas() -> None:
    rep = report(now=NOW + YEAR + timedelta(days=1))
    assert {r.status for r in rep.certificates if r.not_after} == {RowStatus.INVALID}
    assert {r.status for r in rep.authorities} == {RowStatus.VALID}
    assert all(r.warning is None for r in rep.authorities)


def test_should_warn_when_a_ca_has_under_a_year_left_and_flag_it_inside_the_deadline() -> None:
    ca_end = NOW + timedelta(hours=87600)
    warned = report(now=ca_end - timedelta(days=100), secrets={K.CA: minted().secret(K.CA)})
    ca_row = row(warned, "k8s-126-ca")
    assert ca_row.status is RowStatus.VALID
    assert ca_row.warning is not None
    assert "under a year" in ca_row.warning
    expiring = report(now=ca_end - timedelta(hours=1), secrets={K.CA: minted().secret(K.CA)})
    assert row(expiring, "k8s-126-ca").status is RowStatus.EXPIRING


def test_should_report_a_broken_datastore_ca() -> None:
    other = mint_ca("x", now=NOW)
    rep = expiration_report(
        TCP,
        minted().data,
        now=NOW,
        datastore_ca_pem=minted().ca_pem,
        datastore_ca_key_pem=other.key_pem,
    )
    ds = row(rep, "datastore-ca")
    assert ds.status is RowStatus.INVALID
    assert "does not match" in ds.messages[0]


def test_should_render_two_kubeadm_like_tables_and_the_reasons() -> None:
    secrets: dict[SecretKind, Mapping[str, bytes]] = dict(minted().data)
    secrets[K.APISERVER] = {**secrets[K.APISERVER], "apiserver.key": b"junk"}
    later = NOW + timedelta(minutes=1)
    text = render_report(report(secrets=secrets, now=later), now=later)
    lines = text.splitlines()
    assert lines[0].split() == ["CERTIFICATE", "EXPIRES", "RESIDUAL", "TIME", "SIGNER", "STATUS"]
    assert any(line.startswith("CERTIFICATE AUTHORITY") for line in lines)
    api = next(line for line in lines if line.startswith("k8s-126-api-server-certificate "))
    assert "invalid: unparseable" in api
    assert "364d" in api
    assert NOW.strftime("%b") in api
    assert "- api-server-certificate: apiserver.key is unusable" in text


@pytest.mark.parametrize(
    ("delta", "text"),
    [
        (timedelta(seconds=-5), "<invalid>"),
        (timedelta(seconds=-1), "0s"),
        (timedelta(seconds=59), "59s"),
        (timedelta(minutes=59, seconds=59), "59m"),
        (timedelta(hours=23), "23h"),
        (timedelta(hours=24 * 364 + 23), "364d"),
        (timedelta(days=365), "1y"),
        (timedelta(hours=87600), "10y"),
        (timedelta(hours=87600) - timedelta(minutes=5), "9y"),
    ],
)
def test_should_print_residual_time_as_kubeadm_does(delta: timedelta, text: str) -> None:
    assert short_human_duration(delta) == text
