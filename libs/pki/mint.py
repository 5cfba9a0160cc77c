"""Minting the data of every Secret of a TenantControlPlane, as `dict[str, bytes]`.

One entry point, `mint_secret_data`, returns exactly the profile's data keys for any kind,
given the TCP spec, the clock and the signer the profile names (the TCP CA, the front-proxy CA
or the DataStore CA). Also here: the CA Secret data of an existing CA, loading a signer back
from CA Secret data, the datastore-config data, and the datastore-certificate data built from
an external PKI's client certificate (MySQL/PostgreSQL). Randomness comes from `secrets` and
the key generators; there is no other I/O.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from libs.pki.errors import PkiError, SecretDataError, SignerError
from libs.pki.issue import SignerKeyPair, issue_leaf, load_signer, mint_ca
from libs.pki.keys import (
    KeyAlgorithm,
    KeySource,
    generate_private_key,
    key_matches_certificate,
    load_certificate,
    load_private_key,
    private_key_pem,
    public_key_pem,
)
from libs.pki.kubeconfig import endpoint_url, render_kubeconfig
from libs.pki.profiles import (
    PROFILES,
    Category,
    ExtKeyUsage,
    KubeconfigEntry,
    SecretKind,
    SecretProfile,
)
from libs.pki.steps import CROSS_CERT
from libs.pki.tcp import SubjectAltNames, TcpSpec, apiserver_sans


def ca_secret_data(kind: SecretKind, ca: SignerKeyPair) -> dict[str, bytes]:
    """The data of a CA Secret holding `ca` (for `ca`: tls.crt/tls.key copy ca.crt/ca.key)."""
    prof = PROFILES[kind]
    if prof.category is not Category.CA or prof.cert_key is None or prof.private_key_key is None:
        raise PkiError(f"{kind.value} is not a CA Secret")
    data = {prof.cert_key: ca.cert_pem, prof.private_key_key: ca.key_pem}
    if kind is SecretKind.CA:
        data["tls.crt"], data["tls.key"] = ca.cert_pem, ca.key_pem
    return data


def signer_from_secret_data(kind: SecretKind, data: Mapping[str, bytes]) -> SignerKeyPair:
    """Load the CA held by a CA Secret (`ca` or `front-proxy-ca-certificate`)."""
    prof = PROFILES[kind]
    if prof.category is not Category.CA or prof.cert_key is None or prof.private_key_key is None:
        raise PkiError(f"{kind.value} is not a CA Secret")
    for key in (prof.cert_key, prof.private_key_key):
        if not data.get(key):
            raise SecretDataError(kind, key, "is missing")
    try:
        return load_signer(
            data[prof.cert_key], data[prof.private_key_key], data.get(CROSS_CERT, b"")
        )
    except SignerError as exc:
        raise SecretDataError(kind, prof.cert_key, str(exc)) from None


def datastore_connection_string(driver: str, endpoints: Sequence[str]) -> str:
    """DB_CONNECTION_STRING: `https://` endpoints for etcd, `host:port` list for kine drivers.

    Credentials are never part of it: the kine container composes its endpoint from
    DB_USER, DB_PASSWORD and DB_SCHEMA, so the password lives in one key only.
    """
    if not endpoints:
        raise PkiError("a datastore connection string needs at least one endpoint")
    cleaned = [e.strip() for e in endpoints if e.strip()]
    if driver == "etcd":
        return ",".join(e if "://" in e else f"https://{e}" for e in cleaned)
    return ",".join(e.split("://", 1)[-1] for e in cleaned)


KEPT_DATASTORE_KEYS = ("DB_SCHEMA", "DB_USER", "DB_PASSWORD")
"""datastore-config keys a re-issue keeps when they have a value: the datastore was set up with
them (schema, role and its password), so new values would lock the control plane out."""


def datastore_config_data(
    tcp: TcpSpec,
    *,
    endpoints: Sequence[str],
    password: str | None = None,
    current: Mapping[str, bytes] | None = None,
) -> dict[str, bytes]:
    """The datastore-config data.

    `current` is the data of the Secret being re-issued: its DB_SCHEMA, DB_USER and DB_PASSWORD
    are kept whenever they have a value, and for etcd its DB_CONNECTION_STRING too (Kamaji's
    is "", which nothing reads). Otherwise the TCP's user and schema are used, and a random
    password is generated unless `password` is passed.
    """
    kept = {k: v for k, v in (current or {}).items() if k in KEPT_DATASTORE_KEYS and v}
    old_string = (current or {}).get("DB_CONNECTION_STRING")
    if tcp.datastore_driver == "etcd" and old_string is not None:
        connection = old_string
    else:
        connection = datastore_connection_string(tcp.datastore_driver, endpoints).encode()
    fresh_password = password.encode() if password else None
    return {
        "DB_CONNECTION_STRING": connection,
        "DB_SCHEMA": kept.get("DB_SCHEMA", tcp.datastore_schema.encode()),
        "DB_USER": kept.get("DB_USER", tcp.datastore_user.encode()),
        "DB_PASSWORD": fresh_password
        or kept.get("DB_PASSWORD")
        or secrets.token_urlsafe(24).encode(),
    }


def datastore_certificate_from_external(
    *, ca_pem: bytes, cert_pem: bytes, key_pem: bytes
) -> dict[str, bytes]:
    """datastore-certificate data copied from an external PKI, after checking that it fits.

    The CA and certificate must parse and the key must be the certificate's. The bytes are
    copied unchanged (the external PKI owns their format).
    """
    kind = SecretKind.DATASTORE_CERTIFICATE
    for key, pem in (("ca.crt", ca_pem), ("server.crt", cert_pem)):
        try:
            load_certificate(pem)
        except PkiError as exc:
            raise SecretDataError(kind, key, str(exc)) from None
    try:
        private = load_private_key(key_pem)
    except PkiError as exc:
        raise SecretDataError(kind, "server.key", str(exc)) from None
    if not key_matches_certificate(private, load_certificate(cert_pem)):
        raise SecretDataError(kind, "server.key", "does not match server.crt")
    return {"ca.crt": ca_pem, "server.crt": cert_pem, "server.key": key_pem}


def _require_signer(kind: SecretKind, signer: SignerKeyPair | None) -> SignerKeyPair:
    if signer is None:
        raise SignerError(f"{kind.value} needs the {PROFILES[kind].signer.value} signer")
    return signer


def _common_name(prof: SecretProfile, tcp: TcpSpec) -> str:
    return prof.common_name or tcp.datastore_user


def _mint_x509(
    prof: SecretProfile,
    tcp: TcpSpec,
    signer: SignerKeyPair,
    now: datetime,
    validity: timedelta,
    algorithm: KeyAlgorithm,
    keys: KeySource,
) -> dict[str, bytes]:
    sans = apiserver_sans(tcp) if prof.kind is SecretKind.APISERVER else SubjectAltNames()
    pair = issue_leaf(
        signer,
        common_name=_common_name(prof, tcp),
        organizations=prof.organizations,
        ext_key_usages=prof.ext_key_usages,
        key_usages=prof.key_usages,
        now=now,
        validity=validity,
        algorithm=algorithm,
        sans=sans,
        keys=keys,
    )
    assert prof.cert_key is not None  # x509 profiles name their keys
    assert prof.private_key_key is not None
    served = (
        pair.cert_pem + signer.chain
        if ExtKeyUsage.SERVER_AUTH in prof.ext_key_usages
        else pair.cert_pem
    )
    data = {prof.cert_key: served, prof.private_key_key: pair.key_pem}
    if prof.kind is SecretKind.DATASTORE_CERTIFICATE:
        data = {"ca.crt": signer.cert_pem, **data}
    return data


def _mint_kubeconfig(
    prof: SecretProfile,
    entry: KubeconfigEntry,
    tcp: TcpSpec,
    signer: SignerKeyPair,
    now: datetime,
    validity: timedelta,
    algorithm: KeyAlgorithm,
    keys: KeySource,
) -> bytes:
    """One kubeconfig with its own client certificate, as Kamaji makes each key."""
    pair = issue_leaf(
        signer,
        common_name=entry.common_name,
        organizations=entry.organizations,
        ext_key_usages=prof.ext_key_usages,
        key_usages=prof.key_usages,
        now=now,
        validity=validity,
        algorithm=algorithm,
        keys=keys,
    )
    return render_kubeconfig(
        cluster_name=tcp.name,
        server=endpoint_url(entry.endpoint, tcp),
        ca_pem=signer.trust_pem,
        user=entry.common_name,
        client_cert_pem=pair.cert_pem,
        client_key_pem=pair.key_pem,
    )


def mint_secret_data(
    kind: SecretKind,
    tcp: TcpSpec,
    *,
    now: datetime,
    signer: SignerKeyPair | None = None,
    algorithm: KeyAlgorithm = KeyAlgorithm.RSA,
    validity: timedelta | None = None,
    datastore_endpoints: Sequence[str] = (),
    datastore_password: str | None = None,
    current: Mapping[str, bytes] | None = None,
    keys: KeySource = generate_private_key,
) -> dict[str, bytes]:
    """Fresh data for one Secret kind, with exactly the profile's data keys; new private keys
    come from `keys`.

    `signer` is the CA the profile names (None for the CAs, the SA keypair and datastore-config).
    `validity` overrides the profile's (tests mint short-lived certificates with it).
    datastore-config needs `datastore_endpoints`; its password is generated unless passed.
    `current` is the data of the Secret being re-issued, if any: then the profile's optional
    keys are written too (Kamaji HEAD's admin.svc, super-admin.conf, super-admin.svc), and
    datastore-config keeps what `datastore_config_data` keeps. Keys the profile does not know
    are the caller's to carry over.
    """
    prof = PROFILES[kind]
    if prof.category is Category.CA:
        if signer is not None:
            raise SignerError(f"{kind.value} is self-signed; it takes no signer")
        assert prof.common_name is not None  # CA profiles name their CN
        ca = mint_ca(prof.common_name, now=now, algorithm=algorithm, validity=validity, keys=keys)
        return ca_secret_data(kind, ca)
    if prof.category is Category.KEYPAIR:
        key = keys(algorithm)
        return {"sa.pub": public_key_pem(key), "sa.key": private_key_pem(key)}
    if prof.category is Category.CONFIG:
        return datastore_config_data(
            tcp, endpoints=datastore_endpoints, password=datastore_password, current=current
        )
    issuer = _require_signer(kind, signer)
    assert prof.validity is not None  # certificate profiles have a validity
    lifetime = validity or prof.validity
    if prof.category is Category.KUBECONFIG:
        entries = prof.kubeconfigs if current is not None else prof.kubeconfigs[:1]
        return {
            e.key: _mint_kubeconfig(prof, e, tcp, issuer, now, lifetime, algorithm, keys)
            for e in entries
        }
    return _mint_x509(prof, tcp, issuer, now, lifetime, algorithm, keys)
