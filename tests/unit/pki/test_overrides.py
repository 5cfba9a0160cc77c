"""The per-TCP profile parser: every annotation alone, bad values, contradictions."""

from __future__ import annotations

from datetime import timedelta

import pytest

from libs.pki.errors import PkiError
from libs.pki.keys import KeyAlgorithm, algorithm_of, generate_private_key, parse_key_algorithm
from libs.pki.overrides import (
    CA_VALIDITY_ANNOTATION as CA,
)
from libs.pki.overrides import (
    KEY_ALGORITHM_ANNOTATION as ALG,
)
from libs.pki.overrides import (
    LEAF_VALIDITY_ANNOTATION as LEAF,
)
from libs.pki.overrides import (
    RENEW_BEFORE_ANNOTATION as BEFORE,
)
from libs.pki.overrides import (
    RENEW_BEFORE_PERCENTAGE_ANNOTATION as PCT,
)
from libs.pki.overrides import FleetProfile, TcpProfile, tcp_profile
from libs.pki.profiles import CA_VALIDITY, LEAF_VALIDITY

FLEET = FleetProfile()
H = timedelta(hours=1)
DEFAULT = TcpProfile(
    key_algorithm=KeyAlgorithm.RSA_2048,
    leaf_validity=LEAF_VALIDITY,
    ca_validity=CA_VALIDITY,
    renew_before=24 * H,
)


@pytest.mark.parametrize(
    ("annotations", "expected"),
    [
        ({}, DEFAULT),
        ({"other.io/x": "1", "certlc.kamaji.clastix.io/rotation-id": "x"}, DEFAULT),
        (
            {ALG: "ECDSA-P256"},
            TcpProfile(KeyAlgorithm.ECDSA_P256, LEAF_VALIDITY, CA_VALIDITY, 24 * H),
        ),
        ({ALG: "rsa-4096"}, TcpProfile(KeyAlgorithm.RSA_4096, LEAF_VALIDITY, CA_VALIDITY, 24 * H)),
        ({ALG: "ecdsa"}, TcpProfile(KeyAlgorithm.ECDSA_P256, LEAF_VALIDITY, CA_VALIDITY, 24 * H)),
        ({LEAF: "720h"}, TcpProfile(KeyAlgorithm.RSA_2048, 720 * H, CA_VALIDITY, 24 * H)),
        (
            {LEAF: "30d", BEFORE: "72h"},
            TcpProfile(KeyAlgorithm.RSA_2048, 720 * H, CA_VALIDITY, 72 * H),
        ),
        ({PCT: "33"}, TcpProfile(KeyAlgorithm.RSA_2048, LEAF_VALIDITY, CA_VALIDITY, 24 * H, 33)),
        ({CA: "43800h"}, TcpProfile(KeyAlgorithm.RSA_2048, LEAF_VALIDITY, 43800 * H, 24 * H)),
    ],
)
def test_accepted(annotations: dict[str, str], expected: TcpProfile) -> None:
    assert tcp_profile(annotations, FLEET) == (expected, ())


@pytest.mark.parametrize(
    ("annotations", "voided", "words"),
    [
        ({ALG: "DSA-1024"}, {ALG}, "unknown key algorithm 'DSA-1024'"),
        ({ALG: ""}, {ALG}, "unknown key algorithm"),
        ({LEAF: "a month"}, {LEAF}, "not a duration"),
        ({LEAF: "0h"}, {LEAF}, "must be positive"),
        ({BEFORE: "-1h"}, {BEFORE}, "not a duration"),
        ({PCT: "0"}, {PCT}, "between 1 and 99"),
        ({PCT: "100"}, {PCT}, "between 1 and 99"),
        ({PCT: "33.5"}, {PCT}, "between 1 and 99"),
        ({PCT: "80"}, {PCT}, "renew forever"),  # 80 % with 25 % jitter reaches 100 %
        ({BEFORE: "48h", PCT: "20"}, {BEFORE, PCT}, "exclude each other"),
        ({LEAF: "720h", BEFORE: "720h"}, {BEFORE}, "not shorter than the leaf validity 720h"),
        ({LEAF: "720h", BEFORE: "600h"}, {BEFORE}, "renew forever"),  # 750h with the jitter
        ({LEAF: "24h"}, {LEAF}, "not longer than the renew-before 24h"),
        ({LEAF: "24h", BEFORE: "30h"}, {LEAF, BEFORE}, "renew forever"),
        ({CA: "8760h"}, {CA}, "not longer than the leaf validity 8760h"),
        ({CA: "720h", LEAF: "2000h"}, {CA}, "not longer than the leaf validity 2000h"),
    ],
)
def test_rejected(annotations: dict[str, str], voided: set[str], words: str) -> None:
    profile, rejected = tcp_profile(annotations, FLEET)
    assert {r.annotation for r in rejected} == voided
    for r in rejected:
        assert r.value == annotations[r.annotation]
    assert any(words in r.message for r in rejected), [r.message for r in rejected]
    # never half-applied: a voided annotation leaves the fleet value, the rest apply whole
    kept = {k: v for k, v in annotations.items() if k not in voided}
    assert profile == tcp_profile(kept, FLEET)[0]


def test_one_bad_annotation_voids_only_itself() -> None:
    profile, rejected = tcp_profile({ALG: "DSA-1024", LEAF: "720h"}, FLEET)
    assert [r.annotation for r in rejected] == [ALG]
    assert profile.key_algorithm is KeyAlgorithm.RSA_2048
    assert profile.leaf_validity == 720 * H


def test_checks_follow_the_fleet() -> None:
    fleet = FleetProfile(
        key_algorithm=KeyAlgorithm.ECDSA_P384, leaf_validity=48 * H, renew_before=H, jitter=0
    )
    assert tcp_profile({}, fleet)[0].key_algorithm is KeyAlgorithm.ECDSA_P384
    assert [r.annotation for r in tcp_profile({BEFORE: "48h"}, fleet)[1]] == [BEFORE]
    assert tcp_profile({BEFORE: "47h"}, fleet)[1] == ()
    assert tcp_profile({PCT: "99"}, fleet)[1] == ()  # no jitter: 99 % still leaves time


def test_deadline_absolute_or_share_of_the_certificate_lifetime() -> None:
    absolute = tcp_profile({BEFORE: "72h"}, FLEET)[0]
    assert absolute.deadline(720 * H) == 72 * H
    share = tcp_profile({PCT: "25"}, FLEET)[0]
    assert share.deadline(720 * H) == 180 * H
    assert share.deadline(8760 * H) == 2190 * H  # of each certificate's own lifetime


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("RSA-2048", KeyAlgorithm.RSA_2048),
        ("RSA-3072", KeyAlgorithm.RSA_3072),
        ("RSA-4096", KeyAlgorithm.RSA_4096),
        ("ECDSA-P256", KeyAlgorithm.ECDSA_P256),
        ("ECDSA-P384", KeyAlgorithm.ECDSA_P384),
        (" ecdsa-p384 ", KeyAlgorithm.ECDSA_P384),
        ("rsa", KeyAlgorithm.RSA_2048),
        ("ECDSA", KeyAlgorithm.ECDSA_P256),
    ],
)
def test_key_algorithm_spellings(text: str, expected: KeyAlgorithm) -> None:
    assert parse_key_algorithm(text) is expected


@pytest.mark.parametrize("text", ["DSA-1024", "RSA-1024", "ECDSA-P521", "Ed25519", ""])
def test_key_algorithm_unknown(text: str) -> None:
    with pytest.raises(PkiError, match="use one of RSA-2048, RSA-3072"):
        parse_key_algorithm(text)


@pytest.mark.parametrize("algorithm", [KeyAlgorithm.RSA_3072, KeyAlgorithm.ECDSA_P384])
def test_generated_keys_have_the_algorithm(algorithm: KeyAlgorithm) -> None:
    assert algorithm_of(generate_private_key(algorithm)) is algorithm
    assert algorithm.family == ("rsa" if algorithm is KeyAlgorithm.RSA_3072 else "ecdsa")
