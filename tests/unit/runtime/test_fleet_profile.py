"""CERTLC_KEY_ALGORITHM takes kubeadm's spellings and the older ones, through the parser of the
TCP annotations; the fleet profile is what a TCP's annotations override."""

from __future__ import annotations

from datetime import timedelta

import pytest

from libs.pki.keys import KeyAlgorithm
from libs.pki.profiles import LEAF_VALIDITY
from libs.runtime.config import Settings
from libs.runtime.settings import SettingsError, load_settings


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("rsa", KeyAlgorithm.RSA_2048),
        ("ecdsa", KeyAlgorithm.ECDSA_P256),
        ("RSA-4096", KeyAlgorithm.RSA_4096),
        ("ECDSA-P384", KeyAlgorithm.ECDSA_P384),
    ],
)
def test_key_algorithm_spellings(value: str, expected: KeyAlgorithm) -> None:
    settings = load_settings(Settings, {"CERTLC_KEY_ALGORITHM": value})
    assert settings.fleet_profile().key_algorithm is expected


def test_an_unknown_key_algorithm_stops_the_service_naming_the_setting() -> None:
    with pytest.raises(SettingsError, match="key_algorithm: unknown key algorithm 'DSA-1024'"):
        load_settings(Settings, {"CERTLC_KEY_ALGORITHM": "DSA-1024"})


def test_the_fleet_profile_of_the_defaults_and_of_settings() -> None:
    fleet = Settings().fleet_profile()
    assert (fleet.key_algorithm, fleet.leaf_validity, fleet.renew_before, fleet.jitter) == (
        KeyAlgorithm.RSA_2048,
        LEAF_VALIDITY,
        timedelta(hours=24),
        0.25,
    )
    set_ = load_settings(
        Settings, {"CERTLC_LEAF_VALIDITY": "720h", "CERTLC_RENEW_DEADLINE": "48h"}
    ).fleet_profile()
    assert (set_.leaf_validity, set_.renew_before) == (timedelta(hours=720), timedelta(hours=48))


def test_the_fleet_maintenance_windows() -> None:
    assert Settings().fleet_profile().windows == ()
    fleet = load_settings(
        Settings, {"CERTLC_MAINTENANCE_WINDOW": "0 2 * * 1-5 4h Europe/Berlin; */5 * * * * 20s"}
    ).fleet_profile()
    assert [str(w) for w in fleet.windows] == [
        "0 2 * * 1-5 4h Europe/Berlin",
        "*/5 * * * * 20s UTC",
    ]


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"CERTLC_MAINTENANCE_WINDOW": "0 2 * * * 4h Atlantis"}, "maintenance_window: '0 2 * * *"),
        ({"CERTLC_MAINTENANCE_WINDOW": "0 0 31 4 * 1h"}, "bad cron expression '0 0 31 4 *'"),
    ],
)
def test_a_bad_window_setting_stops_the_service_naming_it(env: dict[str, str], says: str) -> None:
    with pytest.raises(SettingsError) as raised:
        load_settings(Settings, env)
    assert says in str(raised.value)
