"""Per-TCP certificate profiles: the `certlc.kamaji.clastix.io/*` annotations of a TCP that
override the fleet settings for it. Pure: annotations and fleet settings in, a complete profile
and the rejected annotations out. Lifecycle (renew-before) and the issuer (key algorithm,
validities) both read a TCP's profile through `tcp_profile`, so they agree on it.

    leaf-validity             validity of leaf and kubeconfig certificates (`720h`)
    renew-before              renew this long before NotAfter (`48h`)
    renew-before-percentage   renew when this share of the certificate's lifetime is left (`33`)
    key-algorithm             kubeadm's encryptionAlgorithm (`RSA-2048` ... `ECDSA-P384`)
    ca-validity               validity of the TCP's CAs, used when a CA is minted
    maintenance-window        when due renewals may happen (libs/contracts/windows.py);
                              empty: at any time, whatever the fleet's windows

Never half-applied: each annotation is taken whole or ignored whole (the fleet value applies
instead), and an ignored one is reported with the reason. An annotation that does not parse
voids only itself. A contradiction voids the annotations that make it:

- `renew-before` together with `renew-before-percentage`: both ignored;
- a renew-before that is not shorter than the leaf validity, counting the renewal jitter
  (renewals come up to `jitter` of the renew-before earlier), would renew again at once,
  forever: the renew-before annotation is ignored when there is one; then `leaf-validity`
  too if it is still not longer than the fleet renew-before;
- a `renew-before-percentage` that, with the jitter, reaches 100 %: ignored;
- a `ca-validity` not longer than the leaf validity: ignored.

A maintenance window that does not parse or can never open is ignored: the fleet's windows apply.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache
from typing import TypeVar

from libs.contracts.durations import parse_duration
from libs.contracts.windows import Window, WindowError, parse_windows
from libs.pki.errors import PkiError
from libs.pki.keys import KeyAlgorithm, parse_key_algorithm
from libs.pki.naming import CERTLC_PREFIX
from libs.pki.profiles import CA_VALIDITY, LEAF_VALIDITY

LEAF_VALIDITY_ANNOTATION = CERTLC_PREFIX + "leaf-validity"
RENEW_BEFORE_ANNOTATION = CERTLC_PREFIX + "renew-before"
RENEW_BEFORE_PERCENTAGE_ANNOTATION = CERTLC_PREFIX + "renew-before-percentage"
KEY_ALGORITHM_ANNOTATION = CERTLC_PREFIX + "key-algorithm"
CA_VALIDITY_ANNOTATION = CERTLC_PREFIX + "ca-validity"
MAINTENANCE_WINDOW_ANNOTATION = CERTLC_PREFIX + "maintenance-window"
_T = TypeVar("_T")

PROFILE_ANNOTATIONS = (
    LEAF_VALIDITY_ANNOTATION,
    RENEW_BEFORE_ANNOTATION,
    RENEW_BEFORE_PERCENTAGE_ANNOTATION,
    KEY_ALGORITHM_ANNOTATION,
    CA_VALIDITY_ANNOTATION,
    MAINTENANCE_WINDOW_ANNOTATION,
)
"""Every profile annotation; other `certlc.kamaji.clastix.io/*` annotations are not this
module's (the rotation id on Secrets, for one)."""


@dataclass(frozen=True, slots=True)
class FleetProfile:
    """The fleet settings a TCP profile starts from (CERTLC_KEY_ALGORITHM, CERTLC_LEAF_VALIDITY,
    CERTLC_RENEW_DEADLINE, CERTLC_RENEW_JITTER, CERTLC_MAINTENANCE_WINDOW); the CA validity
    has no fleet setting."""

    key_algorithm: KeyAlgorithm = KeyAlgorithm.RSA_2048
    leaf_validity: timedelta = LEAF_VALIDITY
    ca_validity: timedelta = CA_VALIDITY
    renew_before: timedelta = timedelta(hours=24)
    jitter: float = 0.25
    windows: tuple[Window, ...] = ()  # no window: renewals whenever due


@dataclass(frozen=True, slots=True)
class TcpProfile:
    """The effective profile of one TCP: every value set, from its annotations or the fleet.
    `renew_before_percentage` (1..99), when set, replaces `renew_before`."""

    key_algorithm: KeyAlgorithm
    leaf_validity: timedelta
    ca_validity: timedelta
    renew_before: timedelta
    renew_before_percentage: int | None = None
    windows: tuple[Window, ...] = ()

    def deadline(self, lifetime: timedelta) -> timedelta:
        """How long before NotAfter a certificate of this `lifetime` (NotAfter - NotBefore)
        falls due: the percentage of its own lifetime, else the absolute renew-before."""
        if self.renew_before_percentage is not None:
            return lifetime * self.renew_before_percentage / 100
        return self.renew_before


@dataclass(frozen=True, slots=True)
class Rejected:
    """An annotation ignored, with why (`message` does not repeat the annotation): reported
    once, and the fleet value applies."""

    annotation: str
    value: str
    message: str


def _duration(name: str, value: str) -> timedelta:
    try:
        parsed = parse_duration(value)
    except ValueError:
        raise PkiError(f"{value!r} is not a duration (use e.g. 720h, 30d, 1h30m)") from None
    if parsed <= timedelta(0):
        raise PkiError(f"{value!r}: {name.removeprefix(CERTLC_PREFIX)} must be positive")
    return parsed


def _windows(value: str) -> tuple[Window, ...]:
    try:
        return parse_windows(value)
    except WindowError as exc:
        raise PkiError(str(exc)) from None


def _percentage(value: str) -> int:
    text = value.strip()
    if not text.isdigit() or not 0 < int(text) < 100:
        raise PkiError(f"{value!r} is not a whole percentage between 1 and 99")
    return int(text)


def _fmt(value: timedelta) -> str:
    hours = value.total_seconds() / 3600
    return f"{hours:g}h"


def tcp_profile(
    annotations: Mapping[str, str], fleet: FleetProfile
) -> tuple[TcpProfile, tuple[Rejected, ...]]:
    """The effective profile of a TCP with these annotations, and the annotations ignored
    (in PROFILE_ANNOTATIONS order)."""
    items = frozenset((k, v) for k, v in annotations.items() if k in PROFILE_ANNOTATIONS)
    return _cached(items, fleet)


@dataclass(slots=True)
class _Values:
    """The annotations that parsed, each None when absent, invalid, or voided."""

    algorithm: KeyAlgorithm | None = None
    leaf: timedelta | None = None
    ca: timedelta | None = None
    before: timedelta | None = None
    percentage: int | None = None
    windows: tuple[Window, ...] | None = None


def _parse(given: Mapping[str, str], rejected: dict[str, str]) -> _Values:
    """Each annotation on its own: parsed, or rejected with why (syntax and range)."""
    parsers = {
        KEY_ALGORITHM_ANNOTATION: parse_key_algorithm,
        LEAF_VALIDITY_ANNOTATION: lambda v: _duration(LEAF_VALIDITY_ANNOTATION, v),
        CA_VALIDITY_ANNOTATION: lambda v: _duration(CA_VALIDITY_ANNOTATION, v),
        RENEW_BEFORE_ANNOTATION: lambda v: _duration(RENEW_BEFORE_ANNOTATION, v),
        RENEW_BEFORE_PERCENTAGE_ANNOTATION: _percentage,
        MAINTENANCE_WINDOW_ANNOTATION: _windows,
    }
    parsed: dict[str, object] = {}
    for name, parse in parsers.items():
        if name in given:
            try:
                parsed[name] = parse(given[name])
            except PkiError as exc:
                rejected[name] = str(exc)
    return _Values(
        algorithm=_typed(parsed.get(KEY_ALGORITHM_ANNOTATION), KeyAlgorithm),
        leaf=_typed(parsed.get(LEAF_VALIDITY_ANNOTATION), timedelta),
        ca=_typed(parsed.get(CA_VALIDITY_ANNOTATION), timedelta),
        before=_typed(parsed.get(RENEW_BEFORE_ANNOTATION), timedelta),
        percentage=_typed(parsed.get(RENEW_BEFORE_PERCENTAGE_ANNOTATION), int),
        windows=_typed(parsed.get(MAINTENANCE_WINDOW_ANNOTATION), tuple),
    )


def _typed(value: object, cls: type[_T]) -> _T | None:
    return value if isinstance(value, cls) else None


def _contradictions(v: _Values, fleet: FleetProfile, rejected: dict[str, str]) -> None:
    """Void the annotations that contradict each other or the fleet (module docstring)."""
    if v.before is not None and v.percentage is not None:
        both = "renew-before and renew-before-percentage exclude each other; both are ignored"
        rejected[RENEW_BEFORE_ANNOTATION] = rejected[RENEW_BEFORE_PERCENTAGE_ANNOTATION] = both
        v.before = v.percentage = None
    stretch = 1 + fleet.jitter
    if v.percentage is not None and v.percentage * stretch >= 100:
        rejected[RENEW_BEFORE_PERCENTAGE_ANNOTATION] = (
            f"{v.percentage}% of the lifetime, up to {stretch:g} times that with the renewal "
            "jitter, leaves no time between issue and renewal: it would renew forever"
        )
        v.percentage = None
    validity = v.leaf or fleet.leaf_validity
    if v.before is not None and v.before * stretch >= validity:
        rejected[RENEW_BEFORE_ANNOTATION] = (
            f"renew-before {_fmt(v.before)} (up to {_fmt(v.before * stretch)} with the renewal "
            f"jitter) is not shorter than the leaf validity {_fmt(validity)}: it would renew "
            "forever"
        )
        v.before = None
    if (
        v.leaf is not None
        and v.percentage is None
        and v.before is None
        and fleet.renew_before * stretch >= v.leaf
    ):
        rejected[LEAF_VALIDITY_ANNOTATION] = (
            f"leaf validity {_fmt(v.leaf)} is not longer than the renew-before "
            f"{_fmt(fleet.renew_before)} (up to {_fmt(fleet.renew_before * stretch)} with the "
            "renewal jitter): it would renew forever"
        )
        v.leaf = None
    validity = v.leaf or fleet.leaf_validity
    if v.ca is not None and v.ca <= validity:
        rejected[CA_VALIDITY_ANNOTATION] = (
            f"CA validity {_fmt(v.ca)} is not longer than the leaf validity {_fmt(validity)}"
        )
        v.ca = None


@lru_cache(maxsize=4096)
def _cached(
    items: frozenset[tuple[str, str]], fleet: FleetProfile
) -> tuple[TcpProfile, tuple[Rejected, ...]]:
    given = dict(items)
    rejected: dict[str, str] = {}
    v = _parse(given, rejected)
    _contradictions(v, fleet, rejected)
    profile = TcpProfile(
        key_algorithm=v.algorithm or fleet.key_algorithm,
        leaf_validity=v.leaf or fleet.leaf_validity,
        ca_validity=v.ca or fleet.ca_validity,
        renew_before=v.before or fleet.renew_before,
        renew_before_percentage=v.percentage,
        windows=fleet.windows if v.windows is None else v.windows,
    )
    report = tuple(
        Rejected(name, given[name], rejected[name])
        for name in PROFILE_ANNOTATIONS
        if name in rejected
    )
    return profile, report
