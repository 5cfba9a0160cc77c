"""Building X.509 certificates: CAs, signers and leaf certificates with kubeadm's profile.

Decides the extensions of every certificate we mint: basicConstraints (critical), key usage
(critical; KeyEncipherment only for RSA keys, as kubeadm does, since it means nothing for
ECDSA), extended key usage, SANs, SKI on every certificate and AKI on issued ones. Serials are
random 127-bit positive integers. NotBefore = now - 5 min; NotAfter = now + validity.
The clock is always passed in.
"""

from __future__ import annotations

import ipaddress
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from libs.pki.errors import PkiError, SignerError
from libs.pki.keys import (
    KeyAlgorithm,
    KeySource,
    PrivateKey,
    PublicKey,
    certificate_pem,
    family_of,
    generate_private_key,
    key_matches_certificate,
    load_certificates,
    load_private_key,
    private_key_pem,
)
from libs.pki.profiles import BACKDATE, CA_KEY_USAGES, CA_VALIDITY, ExtKeyUsage, KeyUsage
from libs.pki.tcp import SubjectAltNames

_EKU_OIDS = {
    ExtKeyUsage.SERVER_AUTH: ExtendedKeyUsageOID.SERVER_AUTH,
    ExtKeyUsage.CLIENT_AUTH: ExtendedKeyUsageOID.CLIENT_AUTH,
}


@dataclass(frozen=True, slots=True)
class SignerKeyPair:
    """A CA certificate with its private key; the key never appears in repr or str."""

    certificate: x509.Certificate
    private_key: PrivateKey = field(repr=False, compare=False)
    # The trust bundle the CA Secret holds (its whole `ca.crt`: this CA first, then a CA of a
    # phased rotation, see libs/pki/phased.py); empty: this certificate alone.
    bundle: bytes = field(default=b"", repr=False, compare=False)
    # Certificates a server certificate it signs is served with: during the swap of a phased
    # rotation, this CA cross-signed by the previous one, so that a client still trusting only
    # the previous CA verifies the server (libs/pki/phased.py).
    chain: bytes = field(default=b"", repr=False, compare=False)

    @property
    def cert_pem(self) -> bytes:
        """The CA certificate as PEM."""
        return certificate_pem(self.certificate)

    @property
    def trust_pem(self) -> bytes:
        """What a client of this CA trusts: the bundle of its Secret, as stored (a kubeconfig's
        certificate-authority-data is that exact value, which Kamaji compares byte for byte)."""
        return self.bundle or self.cert_pem

    @property
    def key_pem(self) -> bytes:
        """The CA private key as PEM (PKCS#1 or SEC1)."""
        return private_key_pem(self.private_key)

    @property
    def common_name(self) -> str:
        """The CA's subject CN."""
        return _common_name(self.certificate)

    @property
    def not_after(self) -> datetime:
        """The CA certificate's NotAfter (UTC)."""
        return self.certificate.not_valid_after_utc


def _common_name(cert: x509.Certificate) -> str:
    values = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(values[0].value) if values else ""


def _check_is_ca(cert: x509.Certificate) -> str | None:
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return "has no basicConstraints extension"
    if not constraints.ca:
        return "is not a CA (basicConstraints CA:FALSE)"
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return None
    return None if usage.key_cert_sign else "lacks the keyCertSign key usage"


def load_signer(cert_pem: bytes, key_pem: bytes, chain: bytes = b"") -> SignerKeyPair:
    """Load a CA from PEM: both parse, the key matches, and the certificate is a CA. A bundle
    signs with its first certificate (as Kamaji and kube-controller-manager read it) and is kept
    as the signer's trust bundle; every certificate of it must parse."""
    try:
        certs = load_certificates(cert_pem)
    except PkiError as exc:
        raise SignerError(f"signer certificate: {exc}") from None
    cert = certs[0]
    try:
        key = load_private_key(key_pem)
    except PkiError as exc:
        raise SignerError(f"signer private key: {exc}") from None
    name = _common_name(cert) or cert.subject.rfc4514_string()
    if not key_matches_certificate(key, cert):
        raise SignerError(f"signer private key does not match the certificate of {name!r}")
    problem = _check_is_ca(cert)
    if problem is not None:
        raise SignerError(f"signer certificate {name!r} {problem}")
    if chain:
        try:
            load_certificates(chain)
        except PkiError as exc:
            raise SignerError(f"signer chain: {exc}") from None
    return SignerKeyPair(cert, key, cert_pem if len(certs) > 1 else b"", chain)


def cross_sign(ca: x509.Certificate, issuer: SignerKeyPair) -> x509.Certificate:
    """`ca` (its subject, key and extensions) signed by `issuer`: a client that trusts only
    `issuer` then verifies what `ca` signs through it. Valid while both are."""
    builder = (
        x509.CertificateBuilder()
        .subject_name(ca.subject)
        .issuer_name(issuer.certificate.subject)
        .public_key(ca.public_key())
        .serial_number(random_serial())
        .not_valid_before(max(ca.not_valid_before_utc, issuer.certificate.not_valid_before_utc))
        .not_valid_after(min(ca.not_valid_after_utc, issuer.certificate.not_valid_after_utc))
    )
    for ext in ca.extensions:
        if not isinstance(ext.value, x509.AuthorityKeyIdentifier):
            builder = builder.add_extension(ext.value, critical=ext.critical)
    builder = builder.add_extension(_authority_key_id(issuer.certificate), critical=False)
    return builder.sign(issuer.private_key, hashes.SHA256())


def random_serial() -> int:
    """A random positive serial of up to 127 bits (never zero)."""
    return secrets.randbits(127) | 1


def _name(common_name: str, organizations: Sequence[str]) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations]
    attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attributes)


def _key_usage(usages: Sequence[KeyUsage], algorithm: str) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=KeyUsage.DIGITAL_SIGNATURE in usages,
        content_commitment=False,
        key_encipherment=KeyUsage.KEY_ENCIPHERMENT in usages and algorithm == "rsa",
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=KeyUsage.CERT_SIGN in usages,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


def _san_extension(sans: SubjectAltNames) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = [x509.DNSName(d) for d in sans.dns]
    names.extend(x509.IPAddress(ipaddress.ip_address(ip)) for ip in sans.ips)
    return x509.SubjectAlternativeName(names)


def build_certificate(
    *,
    common_name: str,
    organizations: Sequence[str],
    public_key: PublicKey,
    issuer: SignerKeyPair | None,
    signing_key: PrivateKey,
    now: datetime,
    validity: timedelta,
    is_ca: bool,
    key_usages: Sequence[KeyUsage],
    ext_key_usages: Sequence[ExtKeyUsage] = (),
    sans: SubjectAltNames = SubjectAltNames(),  # noqa: B008 - immutable value
) -> x509.Certificate:
    """Sign one certificate; `issuer=None` makes it self-signed by `signing_key`."""
    if now.tzinfo is None:
        raise PkiError("now must be timezone-aware (UTC)")
    subject = _name(common_name, organizations)
    ski = x509.SubjectKeyIdentifier.from_public_key(public_key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.certificate.subject if issuer else subject)
        .public_key(public_key)
        .serial_number(random_serial())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + validity)
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
        .add_extension(_key_usage(key_usages, family_of(public_key)), critical=True)
        .add_extension(ski, critical=False)
    )
    if ext_key_usages:
        oids = [_EKU_OIDS[e] for e in ext_key_usages]
        builder = builder.add_extension(x509.ExtendedKeyUsage(oids), critical=False)
    if sans.dns or sans.ips:
        builder = builder.add_extension(_san_extension(sans), critical=False)
    if issuer is not None:
        builder = builder.add_extension(_authority_key_id(issuer.certificate), critical=False)
    return builder.sign(signing_key, hashes.SHA256())


def _authority_key_id(issuer: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    """AKI = the issuer's own SKI when it has one (external CAs may compute it differently)."""
    try:
        ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    except x509.ExtensionNotFound:
        public = issuer.public_key()
        if not isinstance(public, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
            raise SignerError("signer certificate has an unsupported key type") from None
        return x509.AuthorityKeyIdentifier.from_issuer_public_key(public)
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)


def mint_ca(
    common_name: str,
    *,
    now: datetime,
    algorithm: KeyAlgorithm = KeyAlgorithm.RSA,
    validity: timedelta | None = None,
    keys: KeySource = generate_private_key,
) -> SignerKeyPair:
    """A new self-signed CA (10 years by default) with a DNS SAN equal to its CN."""
    key = keys(algorithm)
    cert = build_certificate(
        common_name=common_name,
        organizations=(),
        public_key=key.public_key(),
        issuer=None,
        signing_key=key,
        now=now,
        validity=validity or CA_VALIDITY,
        is_ca=True,
        key_usages=CA_KEY_USAGES,
        sans=SubjectAltNames(dns=(common_name,)),
    )
    return SignerKeyPair(cert, key)


@dataclass(frozen=True, slots=True)
class IssuedPair:
    """A freshly issued certificate and key as PEM; the key never appears in repr or str."""

    cert_pem: bytes
    key_pem: bytes = field(repr=False)


def issue_leaf(
    signer: SignerKeyPair,
    *,
    common_name: str,
    organizations: Sequence[str],
    ext_key_usages: Sequence[ExtKeyUsage],
    key_usages: Sequence[KeyUsage],
    now: datetime,
    validity: timedelta,
    algorithm: KeyAlgorithm = KeyAlgorithm.RSA,
    sans: SubjectAltNames = SubjectAltNames(),  # noqa: B008 - immutable value
    keys: KeySource = generate_private_key,
) -> IssuedPair:
    """A new key (from `keys`) and a leaf certificate for it, signed by `signer`."""
    key = keys(algorithm)
    cert = build_certificate(
        common_name=common_name,
        organizations=organizations,
        public_key=key.public_key(),
        issuer=signer,
        signing_key=signer.private_key,
        now=now,
        validity=validity,
        is_ca=False,
        key_usages=key_usages,
        ext_key_usages=ext_key_usages,
        sans=sans,
    )
    return IssuedPair(certificate_pem(cert), private_key_pem(key))
