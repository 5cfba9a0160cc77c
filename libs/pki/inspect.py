"""Summaries of the certificate that matters in a Secret, as plain values safe to publish.

`summarize` turns a Secret's data into a `CertSummary` (serial, subject, issuer, SANs,
validity, SHA-256 fingerprint, whether the key matches, whether it is a CA): the facts that
services put on the bus and the CLI prints. It holds no key material; `summarize_material`
does the same over data already gathered, for callers that also run the checks. `ca_residual`
tells how long a CA Secret has left, so callers can warn when it is under a year: CAs are never
rotated for age automatically.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from libs.pki.errors import PkiError, SecretDataError
from libs.pki.keys import (
    certificate_pem,
    family_of,
    key_matches_certificate,
    load_certificates,
)
from libs.pki.material import Material, gather
from libs.pki.profiles import PROFILES, Category, SecretKind

_SUPPORTED = (rsa.RSAPublicKey, ec.EllipticCurvePublicKey)

CA_RESIDUAL_WARNING = timedelta(days=365)
"""Warn when a CA has less than this left (kubeadm's CAs last ten years)."""


@dataclass(frozen=True, slots=True)
class CertSummary:
    """Public facts of one certificate of one Secret (no key material)."""

    kind: SecretKind
    key: str
    serial: str
    subject: str
    issuer: str
    common_name: str
    organizations: tuple[str, ...]
    dns_sans: tuple[str, ...]
    ip_sans: tuple[str, ...]
    not_before: datetime
    not_after: datetime
    fingerprint_sha256: str
    key_algorithm: str
    key_matches: bool
    is_ca: bool

    def residual(self, now: datetime) -> timedelta:
        """Time left until NotAfter (negative once expired)."""
        return self.not_after - now


def cert_names(cert: x509.Certificate) -> tuple[str, tuple[str, ...]]:
    """(CN, organizations) of a certificate's subject."""
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    orgs = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    return (str(cns[0].value) if cns else "", tuple(str(o.value) for o in orgs))


def cert_sans(cert: x509.Certificate) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(DNS SANs lower-cased, IP SANs as canonical text) of a certificate."""
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return (), ()
    dns = tuple(name.lower().rstrip(".") for name in ext.get_values_for_type(x509.DNSName))
    ips = tuple(str(ip) for ip in ext.get_values_for_type(x509.IPAddress))
    return dns, ips


def cert_is_ca(cert: x509.Certificate) -> bool:
    """True when basicConstraints says CA:TRUE."""
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 fingerprint, lower-case hex without separators."""
    return cert.fingerprint(hashes.SHA256()).hex()


def summarize_certificate(
    kind: SecretKind, key: str, cert: x509.Certificate, *, key_matches: bool
) -> CertSummary:
    """The summary of one parsed certificate."""
    common_name, orgs = cert_names(cert)
    dns, ips = cert_sans(cert)
    public = cert.public_key()
    return CertSummary(
        kind=kind,
        key=key,
        serial=format(cert.serial_number, "x"),
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        common_name=common_name,
        organizations=orgs,
        dns_sans=dns,
        ip_sans=ips,
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        fingerprint_sha256=fingerprint(cert),
        key_algorithm=family_of(public) if isinstance(public, _SUPPORTED) else "unknown",
        key_matches=key_matches,
        is_ca=cert_is_ca(cert),
    )


def _leaf(material: Material) -> tuple[str, x509.Certificate]:
    kind = material.kind
    if material.profile.category in (Category.KEYPAIR, Category.CONFIG):
        raise SecretDataError(kind, material.key_key or "-", "this Secret holds no certificate")
    assert material.cert_key is not None  # every certificate-bearing profile names it
    if material.cert_key in material.missing:
        raise SecretDataError(kind, material.cert_key, "is missing")
    for problem in material.problems:
        if problem.key == material.cert_key and material.cert is None:
            raise SecretDataError(kind, problem.key, problem.message)
    if material.cert is None:
        raise SecretDataError(kind, material.cert_key, "holds no certificate")
    return material.cert_key, material.cert


def summarize(kind: SecretKind, data: Mapping[str, bytes]) -> CertSummary:
    """Summarise the certificate that matters in a Secret's data.

    Raises SecretDataError naming the key when that certificate is missing or unparseable,
    or when the kind holds no certificate (sa-certificate, datastore-config).
    """
    return summarize_material(gather(kind, data))


def summarize_material(material: Material) -> CertSummary:
    """`summarize` over material already gathered (a caller that also checks the Secret with
    `reasons_for_material` parses its data once)."""
    key, cert = _leaf(material)
    matches = material.private_key is not None and key_matches_certificate(
        material.private_key, cert
    )
    return summarize_certificate(material.kind, key, cert, key_matches=matches)


def ca_residual(kind: SecretKind, data: Mapping[str, bytes], *, now: datetime) -> timedelta:
    """Time left on the CA certificate of a CA Secret (negative once expired)."""
    if kind not in (SecretKind.CA, SecretKind.FRONT_PROXY_CA):
        raise PkiError(f"{kind.value} is not a CA Secret")
    return summarize(kind, data).residual(now)


@dataclass(frozen=True, slots=True)
class CaBundle:
    """The CA certificates a CA Secret holds, to distribute to nodes: PEM, and their facts."""

    pem: bytes
    certificates: tuple[CertSummary, ...]


def ca_bundle(kind: SecretKind, data: Mapping[str, bytes]) -> CaBundle:
    """Every certificate of a CA Secret's certificate key (`ca.crt` of `<tcp>-ca`), in order,
    each checked to be a CA; raises SecretDataError naming the key when it is missing, not
    PEM, or holds a certificate that is not a CA."""
    if kind not in (SecretKind.CA, SecretKind.FRONT_PROXY_CA):
        raise PkiError(f"{kind.value} is not a CA Secret")
    key = PROFILES[kind].cert_key
    assert key is not None  # CA profiles name their certificate key
    raw = data.get(key)
    if not raw:
        raise SecretDataError(kind, key, "is missing")
    try:
        certs = load_certificates(raw)
    except PkiError:
        raise SecretDataError(kind, key, "is not a PEM certificate") from None
    for cert in certs:
        if not cert_is_ca(cert):
            subject = cert.subject.rfc4514_string()
            raise SecretDataError(kind, key, f"holds {subject}, which is no CA")
    return CaBundle(
        pem=b"".join(certificate_pem(c) for c in certs),
        certificates=tuple(summarize_certificate(kind, key, c, key_matches=False) for c in certs),
    )
