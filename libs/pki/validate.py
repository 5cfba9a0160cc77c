"""Why a Secret must be re-issued: a chain of small pure checks over one gathered input.

`renewal_reasons` gathers a Secret's data once (`material.gather`), then runs the chain of its
category; each check looks at one thing and yields `Reason`s (cert-manager style: the order of
the chain reads as the policy). Every reason that applies is returned, not only the first.
An empty tuple means the Secret is fine. A kubeconfig Secret with several kubeconfig keys has
each key checked against its own profile entry (identity, server). CA Secrets get
parse/validity checks but no expiry-based renewal: the lifecycle service never rotates a CA
for age (see `ca_residual`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.serialization import Encoding

from libs.pki.errors import PkiError, SignerError
from libs.pki.inspect import cert_is_ca, cert_names, cert_sans
from libs.pki.keys import (
    key_matches_certificate,
    load_certificate,
    load_certificates,
    public_keys_equal,
)
from libs.pki.kubeconfig import kubeconfig_server
from libs.pki.material import Material, gather
from libs.pki.profiles import Category, SecretKind, Signer
from libs.pki.reasons import Reason, ReasonCode
from libs.pki.tcp import TcpSpec, apiserver_sans

DEFAULT_DEADLINE = timedelta(hours=24)
"""Renew the day before expiry."""
CA_CACHE_SIZE = 1024
"""Parsed CA certificates kept (public data): a watcher checks every Secret against its CA."""


@dataclass(frozen=True, slots=True)
class Input:
    """Everything one check may look at; gathered once per Secret."""

    m: Material
    data: Mapping[str, bytes]
    tcp: TcpSpec
    now: datetime
    deadline: timedelta
    signer: x509.Certificate | None
    current_ca: x509.Certificate | None
    current_bundle: tuple[bytes, ...] = ()  # DER of each certificate of the CA's ca.crt

    def reason(self, code: ReasonCode, key: str | None, text: str) -> Reason:
        name = key or "-"
        return Reason(code, self.m.kind, name, f"{self.m.kind.value}: {name} {text}")


Check = Callable[[Input], Iterator[Reason]]


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _missing_keys(i: Input) -> Iterator[Reason]:
    for key in i.m.missing:
        yield i.reason(ReasonCode.MISSING_KEY, key, "is missing or empty")


def _empty_connection_string(i: Input) -> Iterator[Reason]:
    # empty is Kamaji's value for etcd; the kine drivers need their endpoint in it
    key = "DB_CONNECTION_STRING"
    if i.tcp.datastore_driver != "etcd" and key in i.data and not i.data[key]:
        yield i.reason(ReasonCode.MISSING_KEY, key, f"is empty ({i.tcp.datastore_driver} needs it)")


def _unparseable(i: Input) -> Iterator[Reason]:
    for problem in i.m.problems:
        yield i.reason(ReasonCode.UNPARSEABLE, problem.key, f"is unusable: {problem.message}")


def _not_yet_valid(i: Input) -> Iterator[Reason]:
    if i.m.cert is not None and i.m.cert.not_valid_before_utc > i.now:
        when = _stamp(i.m.cert.not_valid_before_utc)
        yield i.reason(ReasonCode.NOT_YET_VALID, i.m.cert_key, f"is not valid before {when}")


def _expired(i: Input) -> Iterator[Reason]:
    if i.m.cert is not None and i.m.cert.not_valid_after_utc <= i.now:
        when = _stamp(i.m.cert.not_valid_after_utc)
        yield i.reason(ReasonCode.EXPIRED, i.m.cert_key, f"expired at {when}")


def _expiring(i: Input) -> Iterator[Reason]:
    cert = i.m.cert
    if cert is not None and i.now < cert.not_valid_after_utc < i.now + i.deadline:
        when = _stamp(cert.not_valid_after_utc)
        yield i.reason(ReasonCode.EXPIRING, i.m.cert_key, f"expires at {when}, within {i.deadline}")


def _key_mismatch(i: Input) -> Iterator[Reason]:
    key = i.m.private_key
    if key is None:
        return
    if i.m.cert is not None and not key_matches_certificate(key, i.m.cert):
        yield i.reason(ReasonCode.KEY_MISMATCH, i.m.key_key, f"does not match {i.m.cert_key}")
    if i.m.public_key is not None and not public_keys_equal(key.public_key(), i.m.public_key):
        yield i.reason(ReasonCode.KEY_MISMATCH, "sa.pub", "is not the public half of sa.key")


def _signed_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _not_self_signed(i: Input) -> Iterator[Reason]:
    if i.m.cert is not None and not _signed_by(i.m.cert, i.m.cert):
        yield i.reason(ReasonCode.WRONG_SIGNER, i.m.cert_key, "is not a self-signed CA")


def _not_a_ca(i: Input) -> Iterator[Reason]:
    if i.m.cert is not None and not cert_is_ca(i.m.cert):
        yield i.reason(ReasonCode.NOT_CA, i.m.cert_key, "is not a CA certificate (CA:FALSE)")


def _ca_copy_mismatch(i: Input) -> Iterator[Reason]:
    if i.m.kind is not SecretKind.CA:
        return
    for copy, original in (("tls.crt", "ca.crt"), ("tls.key", "ca.key")):
        if i.data.get(copy) and i.data.get(original) and i.data[copy] != i.data[original]:
            yield i.reason(ReasonCode.CA_COPY_MISMATCH, copy, f"is not a copy of {original}")


def _wrong_signer(i: Input) -> Iterator[Reason]:
    if i.m.cert is not None and i.signer is not None and not _signed_by(i.m.cert, i.signer):
        issuer = i.m.cert.issuer.rfc4514_string()
        yield i.reason(
            ReasonCode.WRONG_SIGNER,
            i.m.cert_key,
            f"is not signed by the current CA (issuer {issuer})",
        )


def _bundled_ca_mismatch(i: Input) -> Iterator[Reason]:
    # datastore-certificate carries the DataStore CA; it must be the signer we were given.
    bundled = i.m.bundled_ca
    if (
        i.m.kind is SecretKind.DATASTORE_CERTIFICATE
        and bundled
        and i.signer
        and bundled != i.signer
    ):
        yield i.reason(ReasonCode.WRONG_SIGNER, "ca.crt", "is not the DataStore CA certificate")


def _subject_mismatch(i: Input) -> Iterator[Reason]:
    external = i.m.kind is SecretKind.DATASTORE_CERTIFICATE and i.tcp.datastore_driver != "etcd"
    if i.m.cert is None or external:
        return
    entry = i.m.entry
    if entry is not None:
        want_cn = entry.common_name
        valid = entry.valid_organizations
    else:
        want_cn = i.m.profile.common_name or i.tcp.datastore_user
        valid = i.m.profile.valid_organizations
    cn, orgs = cert_names(i.m.cert)
    if cn != want_cn or sorted(orgs) not in [sorted(v) for v in valid]:
        got = f"CN={cn!r} O={list(orgs)!r}"
        want = f"CN={want_cn!r} O={' or '.join(repr(list(v)) for v in valid)}"
        yield i.reason(ReasonCode.SUBJECT_MISMATCH, i.m.cert_key, f"has {got}, expected {want}")


def _san_missing(i: Input) -> Iterator[Reason]:
    if i.m.kind is not SecretKind.APISERVER or i.m.cert is None:
        return
    required = apiserver_sans(i.tcp)
    dns, ips = cert_sans(i.m.cert)
    absent = [d for d in required.dns if d not in dns] + [
        ip for ip in required.ips if ip not in ips
    ]
    if absent:
        yield i.reason(ReasonCode.SAN_MISSING, i.m.cert_key, f"lacks SANs {', '.join(absent)}")


def _kubeconfig_ca_mismatch(i: Input) -> Iterator[Reason]:
    # The whole bundle, in order: during a phased CA rotation `ca.crt` holds two CAs, and Kamaji
    # compares certificate-authority-data with `ca.crt` byte for byte (IsKubeconfigCAValid).
    creds = i.m.kubeconfig
    if creds is None or not i.m.bundled_ca or not i.current_bundle:
        return
    if _bundle(creds.ca_pem) != i.current_bundle:
        what = "CA certificate" if len(i.current_bundle) == 1 else "CA bundle (ca.crt)"
        yield i.reason(
            ReasonCode.KUBECONFIG_CA_MISMATCH,
            i.m.cert_key,
            f"certificate-authority-data is not the current {what}",
        )


def _kubeconfig_server_mismatch(i: Input) -> Iterator[Reason]:
    creds, key = i.m.kubeconfig, i.m.entry.key if i.m.entry else None
    if creds is not None and creds.server != (want := kubeconfig_server(i.m.kind, i.tcp, key)):
        yield i.reason(
            ReasonCode.KUBECONFIG_SERVER_MISMATCH,
            i.m.cert_key,
            f"points at {creds.server}, expected {want}",
        )


_LEAF_CHAIN: tuple[Check, ...] = (
    _missing_keys,  # every data key of the profile is present and non-empty
    _unparseable,  # certificates, keys and kubeconfigs parse
    _not_yet_valid,  # NotBefore is not in the future
    _expired,  # NotAfter has not passed (supersedes "expiring")
    _expiring,  # NotAfter >= now + deadline: renew the day before
    _key_mismatch,  # the private key is the certificate's
    _wrong_signer,  # signed by the CA the profile names, as it is now
    _bundled_ca_mismatch,  # the datastore's ca.crt is that CA
    _subject_mismatch,  # CN and O are the profile's
    _san_missing,  # every required SAN is there (extra SANs are fine)
    _kubeconfig_ca_mismatch,  # the kubeconfig trusts the current CA
    _kubeconfig_server_mismatch,  # the kubeconfig points where the profile says
)
_CA_CHAIN: tuple[Check, ...] = (
    _missing_keys,  # every data key of the profile is present and non-empty
    _unparseable,  # certificate and key parse
    _not_yet_valid,  # NotBefore is not in the future
    _expired,  # NotAfter has not passed (no "expiring": CAs are not renewed for age)
    _not_a_ca,  # basicConstraints CA:TRUE
    _not_self_signed,  # the CA signed itself
    _key_mismatch,  # the private key is the certificate's
    _subject_mismatch,  # CN is the profile's
    _ca_copy_mismatch,  # tls.crt/tls.key are the Cluster API copies of ca.crt/ca.key
)
_KEYPAIR_CHAIN: tuple[Check, ...] = (
    _missing_keys,  # sa.key and sa.pub are present
    _unparseable,  # both parse
    _key_mismatch,  # sa.pub is the public half of sa.key
)
_CONFIG_CHAIN: tuple[Check, ...] = (
    _missing_keys,  # DB_CONNECTION_STRING, DB_SCHEMA, DB_USER, DB_PASSWORD are present
    _empty_connection_string,  # empty only for etcd
)
CHAINS: dict[Category, tuple[Check, ...]] = {
    Category.CA: _CA_CHAIN,
    Category.X509: _LEAF_CHAIN,
    Category.KUBECONFIG: _LEAF_CHAIN,
    Category.KEYPAIR: _KEYPAIR_CHAIN,
    Category.CONFIG: _CONFIG_CHAIN,
}


@functools.lru_cache(maxsize=CA_CACHE_SIZE)
def _load_ca(pem: bytes) -> x509.Certificate:
    """A CA certificate parsed once: the same CA is passed in for every Secret it signs."""
    return load_certificate(pem)


@functools.lru_cache(maxsize=CA_CACHE_SIZE)
def _bundle(pem: bytes) -> tuple[bytes, ...]:
    """The DER of each certificate of a bundle, in order; () when it does not parse."""
    try:
        return tuple(c.public_bytes(Encoding.DER) for c in load_certificates(pem))
    except PkiError:
        return ()


def _parse_ca(pem: bytes | None, what: str) -> x509.Certificate | None:
    if pem is None:
        return None
    try:
        return _load_ca(pem)
    except PkiError as exc:
        raise SignerError(f"{what}: {exc}") from None


def _expected_signer(
    m: Material, signer: x509.Certificate | None, current: x509.Certificate | None
) -> x509.Certificate | None:
    if signer is not None:
        return signer
    if m.profile.signer is Signer.CA:
        return current
    if m.kind is SecretKind.DATASTORE_CERTIFICATE:
        return m.bundled_ca  # at least consistent with the CA it ships
    return None


def renewal_reasons(
    kind: SecretKind,
    data: Mapping[str, bytes],
    tcp: TcpSpec,
    *,
    now: datetime,
    deadline: timedelta = DEFAULT_DEADLINE,
    current_ca_pem: bytes | None = None,
    signer_ca_pem: bytes | None = None,
) -> tuple[Reason, ...]:
    """Every reason Secret `kind` with `data` must be re-issued; empty when it is fine.

    `current_ca_pem` is the TCP CA certificate (`<tcp>-ca` ca.crt): kubeconfigs must embed it.
    `signer_ca_pem` is the certificate of the CA the profile names (front-proxy CA, DataStore
    CA, or the TCP CA); when None it falls back to `current_ca_pem` for CA-signed kinds and to
    the bundled `ca.crt` for the datastore; the signer check is skipped when neither is known.
    Raises SignerError when a CA passed in does not parse (the caller's input, not the Secret).
    """
    return reasons_for_material(
        gather(kind, data),
        data,
        tcp,
        now=now,
        deadline=deadline,
        current_ca_pem=current_ca_pem,
        signer_ca_pem=signer_ca_pem,
    )


def reasons_for_material(
    material: Material,
    data: Mapping[str, bytes],
    tcp: TcpSpec,
    *,
    now: datetime,
    deadline: timedelta = DEFAULT_DEADLINE,
    current_ca_pem: bytes | None = None,
    signer_ca_pem: bytes | None = None,
) -> tuple[Reason, ...]:
    """`renewal_reasons` over material already gathered from `data` (parse keys once)."""
    if now.tzinfo is None:
        raise PkiError("now must be timezone-aware (UTC)")
    current = _parse_ca(current_ca_pem, "current CA certificate")
    signer = _parse_ca(signer_ca_pem, "signer CA certificate")
    bundle = _bundle(current_ca_pem) if current_ca_pem is not None else ()
    checks = CHAINS[material.profile.category]
    reasons: list[Reason] = []
    for m in (material, *material.others):  # every kubeconfig key present, each on its own
        expected = _expected_signer(m, signer, current)
        i = Input(m, data, tcp, now, deadline, expected, current, bundle)
        reasons.extend(reason for check in checks for reason in check(i))
    return tuple(reasons)
