"""Gathering the parsed contents of one Secret's data, tolerating every kind of damage.

`gather` is the single place that decides which data key holds the certificate that matters
for a Secret kind (the leaf: `apiserver.crt`; the datastore's `server.crt`, not its `ca.crt`;
a kubeconfig's current-context client certificate; a CA Secret's `ca.crt`) and parses it. It
never raises for bad data: missing keys and parse problems are collected, so that the
validation chain can report every reason at once and the summary can fail precisely.

Private keys are loaded for inspection only (`load_private_key_for_inspection`: consistency
checked, no primality proof): here a key is only ever compared with a certificate's public key,
never used to sign, and the full check would cost ~40 ms per Secret.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

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
from libs.pki.profiles import PROFILES, Category, SecretKind, SecretProfile


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
    `ca.crt`, a kubeconfig's certificate-authority-data).
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
    missing = tuple(k for k in prof.data_keys if not data.get(k))
    if prof.category is Category.KUBECONFIG:
        return _gather_kubeconfig(prof, data, missing)
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


def _gather_kubeconfig(
    prof: SecretProfile, data: Mapping[str, bytes], missing: tuple[str, ...]
) -> Material:
    assert prof.kubeconfig_key is not None  # kubeconfig profiles have one
    key = prof.kubeconfig_key
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
        prof.kind, prof, missing, tuple(out.problems),
        cert_key=key, cert=cert, key_key=key, private_key=private,
        bundled_ca_key=key, bundled_ca=ca, kubeconfig=creds,
    )  # fmt: skip
