"""The issuer mints with the TCP's profile: key algorithm and leaf validity of its annotations,
its CA validity only when a CA is minted, the fleet's where an annotation is bad. What it mints
is valid for the watcher whatever the profile (a profile change re-issues nothing)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from libs.pki import SecretKind, renewal_reasons
from libs.pki.keys import KeyAlgorithm, algorithm_of, load_certificate, load_private_key
from libs.pki.overrides import (
    CA_VALIDITY_ANNOTATION,
    KEY_ALGORITHM_ANNOTATION,
    LEAF_VALIDITY_ANNOTATION,
    FleetProfile,
)
from libs.pki.profiles import BACKDATE, CA_VALIDITY, LEAF_VALIDITY
from services.issuer.plan import Existing, Gathered, IssueSettings, plan
from tests.unit.issuer.test_plan import NOW, TCP, cas, command, decoded

K = SecretKind
CFG = IssueSettings()
__all__ = ["cas"]  # the fixture


def minted(g: Gathered, kind: SecretKind, cfg: IssueSettings = CFG, **kw: bool) -> bytes:
    result = plan(command(kind, **kw), g, NOW, cfg)
    write = next(w for w in result.writes if w.kind is kind)
    data = decoded(write.body)
    return data["ca.crt" if kind is K.CA else "apiserver.crt"]


def test_the_tcp_annotations_choose_key_algorithm_and_leaf_validity(
    cas: dict[SecretKind, Existing],
) -> None:
    annotations = {KEY_ALGORITHM_ANNOTATION: "ECDSA-P384", LEAF_VALIDITY_ANNOTATION: "720h"}
    g = Gathered(TCP, "uid", dict(cas), annotations=annotations)
    crt = minted(g, K.APISERVER)
    cert = load_certificate(crt)
    assert algorithm_of(cert.public_key()) is KeyAlgorithm.ECDSA_P384  # type: ignore[arg-type]
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == timedelta(hours=720) + BACKDATE
    data = decoded(plan(command(K.APISERVER), g, NOW, CFG).writes[0].body)
    # the watcher's checks hold for a certificate of another algorithm and validity
    assert (
        renewal_reasons(K.APISERVER, data, TCP, now=NOW, current_ca_pem=cas[K.CA].data["ca.crt"])
        == ()
    )


def test_the_fleet_settings_apply_without_annotations(cas: dict[SecretKind, Existing]) -> None:
    fleet = IssueSettings(FleetProfile(key_algorithm=KeyAlgorithm.RSA_3072))
    cert = load_certificate(minted(Gathered(TCP, "uid", dict(cas)), K.APISERVER, fleet))
    assert algorithm_of(cert.public_key()) is KeyAlgorithm.RSA_3072  # type: ignore[arg-type]
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == LEAF_VALIDITY + BACKDATE


@pytest.mark.parametrize("bad", ["DSA-1024", "rsa-1024", ""])
def test_a_bad_key_algorithm_leaves_the_fleet_one(
    cas: dict[SecretKind, Existing], bad: str
) -> None:
    annotations = {KEY_ALGORITHM_ANNOTATION: bad, LEAF_VALIDITY_ANNOTATION: "720h"}
    cert = load_certificate(
        minted(Gathered(TCP, "uid", dict(cas), annotations=annotations), K.APISERVER)
    )
    assert algorithm_of(cert.public_key()) is KeyAlgorithm.RSA_2048  # type: ignore[arg-type]
    # one bad annotation voids only itself
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == timedelta(hours=720) + BACKDATE


def test_the_ca_validity_is_used_when_a_ca_is_minted(cas: dict[SecretKind, Existing]) -> None:
    annotations = {CA_VALIDITY_ANNOTATION: "43800h", LEAF_VALIDITY_ANNOTATION: "720h"}
    g = Gathered(TCP, "uid", dict(cas), annotations=annotations)
    ca = load_certificate(minted(g, K.CA, ca_rotation=True))
    assert ca.not_valid_after_utc - ca.not_valid_before_utc == timedelta(hours=43800) + BACKDATE
    plain = load_certificate(minted(Gathered(TCP, "uid", dict(cas)), K.CA, ca_rotation=True))
    assert plain.not_valid_after_utc - plain.not_valid_before_utc == CA_VALIDITY + BACKDATE


@pytest.mark.parametrize(
    ("annotation", "expected"),
    [("ECDSA-P256", KeyAlgorithm.RSA_2048), ("RSA-3072", KeyAlgorithm.RSA_3072)],
)
def test_the_service_account_keypair_stays_rsa(
    cas: dict[SecretKind, Existing], annotation: str, expected: KeyAlgorithm
) -> None:
    g = Gathered(TCP, "uid", dict(cas), annotations={KEY_ALGORITHM_ANNOTATION: annotation})
    [write] = plan(command(K.SA), g, NOW, CFG).writes
    key = load_private_key(decoded(write.body)["sa.key"])
    assert algorithm_of(key) is expected
