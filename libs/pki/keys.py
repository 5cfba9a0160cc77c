"""Private keys and certificates as PEM: generation, serialisation, parsing, key matching.

Decides the key types and formats of the project: kubeadm's `encryptionAlgorithm` values
(RSA 2048, 3072, 4096 as PKCS#1 `RSA PRIVATE KEY`, kubeadm's format; ECDSA P-256 and P-384 as
SEC1 `EC PRIVATE KEY`), public keys as PKIX `PUBLIC KEY`. Parse failures
raise `PkiError` with a short problem statement and never chain the parser's exception, so that
nothing derived from key bytes can reach a log.

Loading an RSA key has two strengths. A key that will *sign* (a CA, an external client key) is
loaded with OpenSSL's full check, primality of p and q included (~40 ms for RSA 2048); the
digests of PEMs that passed it are remembered (`VALIDATED_MEMORY` of them, digests only, never
keys), so the same CA loaded again for every certificate of a plan is checked once. A key that
is only *inspected* (compared with a certificate's public key, never used) skips the primality
proof and gets an arithmetic consistency check instead (n = pq, d e = 1 mod p-1 and q-1, the CRT
values), microseconds, which still catches a damaged or tampered key; checking 13,000 Secrets
with the full check would take minutes.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable
from enum import StrEnum

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from libs.pki.errors import PkiError

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey

RSA_KEY_SIZE = 2048
"""The default RSA size (kubeadm's)."""
RSA_PUBLIC_EXPONENT = 65537
VALIDATED_MEMORY = 4096
"""How many fully validated private-key PEMs are remembered (by SHA-256 digest)."""


class KeyAlgorithm(StrEnum):
    """Key type of minted keys, spelled as kubeadm's `encryptionAlgorithm`. `RSA` and `ECDSA`
    are aliases of RSA-2048 (kubeadm's default) and ECDSA-P256."""

    RSA_2048 = "RSA-2048"
    RSA_3072 = "RSA-3072"
    RSA_4096 = "RSA-4096"
    ECDSA_P256 = "ECDSA-P256"
    ECDSA_P384 = "ECDSA-P384"
    RSA = "RSA-2048"
    ECDSA = "ECDSA-P256"

    @property
    def family(self) -> str:
        """`rsa` or `ecdsa`: what an inspected certificate reports as its key algorithm."""
        return "rsa" if self.value.startswith("RSA-") else "ecdsa"


_RSA_SIZES = {
    KeyAlgorithm.RSA_2048: 2048,
    KeyAlgorithm.RSA_3072: 3072,
    KeyAlgorithm.RSA_4096: 4096,
}
_CURVES: dict[KeyAlgorithm, type[ec.EllipticCurve]] = {
    KeyAlgorithm.ECDSA_P256: ec.SECP256R1,
    KeyAlgorithm.ECDSA_P384: ec.SECP384R1,
}
LEGACY_SPELLINGS = {"rsa": KeyAlgorithm.RSA_2048, "ecdsa": KeyAlgorithm.ECDSA_P256}
"""The spellings certlc accepted before it followed kubeadm; they still work."""


def parse_key_algorithm(text: str) -> KeyAlgorithm:
    """A key algorithm from kubeadm's spelling (`RSA-2048` ... `ECDSA-P384`, any case) or the
    older `rsa`/`ecdsa`; PkiError naming the accepted values otherwise."""
    value = text.strip()
    for algorithm in KeyAlgorithm:
        if algorithm.value.lower() == value.lower():
            return algorithm
    if value.lower() in LEGACY_SPELLINGS:
        return LEGACY_SPELLINGS[value.lower()]
    accepted = ", ".join(a.value for a in KeyAlgorithm)
    raise PkiError(f"unknown key algorithm {text!r} (use one of {accepted})")


def generate_private_key(algorithm: KeyAlgorithm = KeyAlgorithm.RSA) -> PrivateKey:
    """A fresh private key of the given algorithm."""
    curve = _CURVES.get(algorithm)
    if curve is not None:
        return ec.generate_private_key(curve())
    size = _RSA_SIZES[algorithm]
    return rsa.generate_private_key(public_exponent=RSA_PUBLIC_EXPONENT, key_size=size)


KeySource = Callable[[KeyAlgorithm], PrivateKey]
"""Where minting takes a new key from: `generate_private_key`, or the issuer's reserve of keys
generated ahead (libs/pki/reserve.py)."""


def family_of(key: PrivateKey | PublicKey) -> str:
    """`rsa` or `ecdsa`, whatever the key's size or curve."""
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        return "rsa"
    return "ecdsa"


def algorithm_of(key: PrivateKey | PublicKey) -> KeyAlgorithm | None:
    """The KeyAlgorithm of a key; None for a size or curve certlc does not mint (RSA 1024)."""
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        return next((a for a, size in _RSA_SIZES.items() if size == key.key_size), None)
    return next((a for a, c in _CURVES.items() if isinstance(key.curve, c)), None)


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


class _ValidatedDigests:
    """SHA-256 digests of PEMs that passed the full key check; bounded, least recent evicted."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._seen: OrderedDict[bytes, None] = OrderedDict()
        self._lock = threading.Lock()

    def __contains__(self, digest: bytes) -> bool:
        with self._lock:
            if digest not in self._seen:
                return False
            self._seen.move_to_end(digest)
            return True

    def add(self, digest: bytes) -> None:
        with self._lock:
            self._seen[digest] = None
            self._seen.move_to_end(digest)
            while len(self._seen) > self.capacity:
                self._seen.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._seen.clear()


_validated = _ValidatedDigests(VALIDATED_MEMORY)


def _rsa_consistent(key: rsa.RSAPrivateKey) -> bool:
    """The arithmetic relations between the RSA private values hold (no primality proof)."""
    numbers = key.private_numbers()
    p, q, d = numbers.p, numbers.q, numbers.d
    n, e = numbers.public_numbers.n, numbers.public_numbers.e
    return (
        p > 1
        and q > 1
        and p * q == n
        and (d * e) % (p - 1) == 1
        and (d * e) % (q - 1) == 1
        and numbers.dmp1 == d % (p - 1)
        and numbers.dmq1 == d % (q - 1)
        and (numbers.iqmp * q) % p == 1
    )


def _parse_private_key(pem: bytes, *, full_check: bool) -> PrivateKey:
    try:
        key = serialization.load_pem_private_key(
            pem, password=None, unsafe_skip_rsa_key_validation=not full_check
        )
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise PkiError("not an unencrypted PEM private key") from None
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise PkiError(f"unsupported private key type {type(key).__name__}")
    return key


def load_private_key(pem: bytes) -> PrivateKey:
    """Parse an unencrypted RSA or ECDSA private key (PKCS#1, SEC1 or PKCS#8 PEM) that will sign:
    fully validated (once per distinct PEM in this process)."""
    digest = hashlib.sha256(pem).digest()
    if digest in _validated:
        return _parse_private_key(pem, full_check=False)
    key = _parse_private_key(pem, full_check=True)
    _validated.add(digest)
    return key


def load_private_key_for_inspection(pem: bytes) -> PrivateKey:
    """Parse a private key that is only compared with public keys, never used to sign: RSA keys
    get the arithmetic consistency check instead of OpenSSL's primality proof."""
    key = _parse_private_key(pem, full_check=False)
    if isinstance(key, rsa.RSAPrivateKey) and not _rsa_consistent(key):
        raise PkiError("not a consistent RSA private key")
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
    if isinstance(a, rsa.RSAPublicKey) and isinstance(b, rsa.RSAPublicKey):
        return a.public_numbers() == b.public_numbers()
    return public_key_pem(a) == public_key_pem(b)


def key_matches_certificate(key: PrivateKey, cert: x509.Certificate) -> bool:
    """True when `key` is the private half of the certificate's public key."""
    public = cert.public_key()
    if not isinstance(public, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        return False
    return public_keys_equal(key.public_key(), public)
