"""Gathering the parsed contents of one Secret's data, tolerating every kind of damage.

`gather` is the single place that decides which data key holds the certificate that matters
for a Secret kind (the leaf: `apiserver.crt`; the datastore's `server.crt`, not its `ca.crt`;
a kubeconfig's current-context client certificate; a CA Secret's `ca.crt`) and parses it.
A kubeconfig Secret with several kubeconfig keys (Kamaji HEAD's admin.conf, admin.svc,
super-admin.conf, super-admin.svc) yields one Material per key present: the one whose client
certificate expires first is the one that matters, the others ride along in `others`. It
never raises for bad data: missing keys and parse problems are collected, so that the
validation chain can report every reason at once and the summary can fail precisely.

Private keys are loaded for inspection only (`load_private_key_for_inspection`: consistency
checked, no primality proof): here a key is only ever compared with a certificate's public key,
never used to sign, and the full check would cost ~40 ms per Secret.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from cryptography import x509

from libs.pki.errors import KubeconfigError, PkiError
from libs.pki.keys import (
    PrivateKey,
    PublicKey,
    load_certificate,
    load_private_key_for_inspection,
    load_public_key,
)
from libs.pki.kubeconfig import KubeconfigCredentials, parse_kubeconfig
from libs.pki.profiles import PROFILES, Category, KubeconfigEntry, SecretKind, SecretProfile


@dataclass(frozen=True, slots=True)
class Problem:
    """A data key that is present but cannot be used, and why."""

    key: str
    message: str


@dataclass(frozen=True, slots=True)
class Material:
    """What one Secret's data holds, parsed; the private key never appears in repr or str.

    `cert_key` names the data key the certificate came from (the kubeconfig key for
    kubeconfigs); `bundled_ca` is a CA certificate carried alongside it (the datastore's
    `ca.crt`, a kubeconfig's certificate-authority-data). For kubeconfig Secrets, `entry` is
    the profile entry of that key and `others` holds the Material of every further kubeconfig
    key present (each without `missing`: those are the Secret's, listed here once).
    """

    kind: SecretKind
    profile: SecretProfile
    missing: tuple[str, ...] = ()
    problems: tuple[Problem, ...] = ()
    cert_key: str | None = None
    cert: x509.Certificate | None = None
    key_key: str | None = None
    private_key: PrivateKey | None = field(default=None, repr=False)
    public_key: PublicKey | None = None
    bundled_ca_key: str | None = None
    bundled_ca: x509.Certificate | None = None
    kubeconfig: KubeconfigCredentials | None = None
    entry: KubeconfigEntry | None = None
    others: tuple[Material, ...] = ()


class _Collector:
    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def cert(self, key: str, pem: bytes | None, label: str = "") -> x509.Certificate | None:
        if not pem:
            return None
        try:
            return load_certificate(pem)
        except PkiError as exc:
            self.problems.append(Problem(key, f"{label}{exc}"))
            return None

    def private_key(self, key: str, pem: bytes | None, label: str = "") -> PrivateKey | None:
        if not pem:
            return None
        try:
            return load_private_key_for_inspection(pem)
        except PkiError as exc:
            self.problems.append(Problem(key, f"{label}{exc}"))
            return None

    def public_key(self, key: str, pem: bytes | None) -> PublicKey | None:
        if not pem:
            return None
        try:
            return load_public_key(pem)
        except PkiError as exc:
            self.problems.append(Problem(key, str(exc)))
            return None


def gather(kind: SecretKind, data: Mapping[str, bytes]) -> Material:
    """Parse the data of a Secret of `kind`; never raises for bad data."""
    prof = PROFILES[kind]
    missing = tuple(k for k in prof.data_keys if _missing(prof, data, k))
    if prof.category is Category.KUBECONFIG:
        return _gather_kubeconfigs(prof, data, missing)
    out = _Collector()
    if prof.category is Category.KEYPAIR:
        private = out.private_key("sa.key", data.get("sa.key"))
        public = out.public_key("sa.pub", data.get("sa.pub"))
        return Material(
            kind, prof, missing, tuple(out.problems),
            key_key="sa.key", private_key=private, public_key=public,
        )  # fmt: skip
    if prof.cert_key is None or prof.private_key_key is None:
        return Material(kind, prof, missing)
    bundled = None
    if kind is SecretKind.DATASTORE_CERTIFICATE:
        bundled = out.cert("ca.crt", data.get("ca.crt"))
    cert = out.cert(prof.cert_key, data.get(prof.cert_key))
    key = out.private_key(prof.private_key_key, data.get(prof.private_key_key))
    return Material(
        kind, prof, missing, tuple(out.problems),
        cert_key=prof.cert_key, cert=cert, key_key=prof.private_key_key, private_key=key,
        bundled_ca_key="ca.crt" if kind is SecretKind.DATASTORE_CERTIFICATE else None,
        bundled_ca=bundled,
    )  # fmt: skip


def _missing(prof: SecretProfile, data: Mapping[str, bytes], key: str) -> bool:
    """Absent, or empty where the profile does not allow an empty value."""
    if key in prof.may_be_empty:
        return key not in data
    return not data.get(key)


_NEVER = datetime.max.replace(tzinfo=UTC)


def _expiry(m: Material) -> datetime:
    """When a kubeconfig's client certificate expires; one that does not parse never leads."""
    return m.cert.not_valid_after_utc if m.cert is not None else _NEVER


def _gather_kubeconfigs(
    prof: SecretProfile, data: Mapping[str, bytes], missing: tuple[str, ...]
) -> Material:
    """One Material per kubeconfig key present; the first to expire leads, carrying the rest."""
    required = prof.kubeconfigs[0]
    present = [e for e in prof.kubeconfigs if e is required or data.get(e.key)]
    views = [_gather_kubeconfig(prof, e, data) for e in present]
    lead = min(views, key=_expiry)  # min keeps the first of equals: the required key
    others = tuple(v for v in views if v is not lead)
    return replace(lead, missing=missing, others=others)


def _gather_kubeconfig(
    prof: SecretProfile, entry: KubeconfigEntry, data: Mapping[str, bytes]
) -> Material:
    key = entry.key
    out = _Collector()
    creds = None
    if data.get(key):
        try:
            creds = parse_kubeconfig(data[key])
        except KubeconfigError as exc:
            out.problems.append(Problem(key, str(exc)))
    cert = private = ca = None
    if creds is not None:
        cert = out.cert(key, creds.client_cert_pem, "client-certificate-data: ")
        private = out.private_key(key, creds.client_key_pem, "client-key-data: ")
        ca = out.cert(key, creds.ca_pem, "certificate-authority-data: ")
    return Material(
        prof.kind, prof, (), tuple(out.problems),
        cert_key=key, cert=cert, key_key=key, private_key=private,
        bundled_ca_key=key, bundled_ca=ca, kubeconfig=creds, entry=entry,
    )  # fmt: skip
