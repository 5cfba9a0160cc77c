"""Private keys and certificates as PEM: generation, serialisation, parsing, key matching.

Decides the key formats of the project: RSA 2048 as PKCS#1 `RSA PRIVATE KEY` (kubeadm's
format), ECDSA P-256 as SEC1 `EC PRIVATE KEY`, public keys as PKIX `PUBLIC KEY`. Parse failures
raise `PkiError` with a short problem statement and never chain the parser's exception, so that
nothing derived from key bytes can reach a log.
"""

from __future__ import annotations

from enum import StrEnum

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from libs.pki.errors import PkiError

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey

RSA_KEY_SIZE = 2048
RSA_PUBLIC_EXPONENT = 65537


class KeyAlgorithm(StrEnum):
    """Key algorithm of minted keys: RSA 2048 (kubeadm default) or ECDSA P-256."""

    RSA = "rsa"
    ECDSA = "ecdsa"


def generate_private_key(algorithm: KeyAlgorithm = KeyAlgorithm.RSA) -> PrivateKey:
    """A fresh private key of the given algorithm."""
    if algorithm is KeyAlgorithm.ECDSA:
        return ec.generate_private_key(ec.SECP256R1())
    return rsa.generate_private_key(public_exponent=RSA_PUBLIC_EXPONENT, key_size=RSA_KEY_SIZE)


def algorithm_of(key: PrivateKey | PublicKey) -> KeyAlgorithm:
    """The KeyAlgorithm of a key."""
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        return KeyAlgorithm.RSA
    return KeyAlgorithm.ECDSA


def private_key_pem(key: PrivateKey) -> bytes:
    """PKCS#1 (`RSA PRIVATE KEY`) or SEC1 (`EC PRIVATE KEY`) PEM, unencrypted."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def public_key_pem(key: PrivateKey | PublicKey) -> bytes:
    """PKIX `PUBLIC KEY` PEM of a key (of the public half for a private key)."""
    public = (
        key.public_key() if isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) else key
    )
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def certificate_pem(cert: x509.Certificate) -> bytes:
    """PEM of one certificate."""
    return cert.public_bytes(serialization.Encoding.PEM)


def load_private_key(pem: bytes) -> PrivateKey:
    """Parse an unencrypted RSA or ECDSA private key (PKCS#1, SEC1 or PKCS#8 PEM)."""
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise PkiError("not an unencrypted PEM private key") from None
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise PkiError(f"unsupported private key type {type(key).__name__}")
    return key


def load_public_key(pem: bytes) -> PublicKey:
    """Parse an RSA or ECDSA PKIX `PUBLIC KEY` PEM."""
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise PkiError("not a PEM public key") from None
    if not isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        raise PkiError(f"unsupported public key type {type(key).__name__}")
    return key


def load_certificates(pem: bytes) -> list[x509.Certificate]:
    """Parse one or more PEM certificates (a bundle); at least one is required."""
    try:
        certs = x509.load_pem_x509_certificates(pem)
    except ValueError:
        raise PkiError("not a PEM certificate") from None
    if not certs:
        raise PkiError("not a PEM certificate")
    return certs


def load_certificate(pem: bytes) -> x509.Certificate:
    """Parse a PEM certificate; the first one of a bundle."""
    return load_certificates(pem)[0]


def public_keys_equal(a: PublicKey, b: PublicKey) -> bool:
    """True when two public keys are the same key."""
    return public_key_pem(a) == public_key_pem(b)


def key_matches_certificate(key: PrivateKey, cert: x509.Certificate) -> bool:
    """True when `key` is the private half of the certificate's public key."""
    public = cert.public_key()
    if not isinstance(public, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        return False
    return public_keys_equal(key.public_key(), public)
