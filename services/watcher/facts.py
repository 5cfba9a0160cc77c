"""Turns Kubernetes objects into the facts the watcher publishes. Pure: objects in, messages out.

A Secret becomes a `SecretObserved` carrying public certificate facts (serial, subject, issuer,
SANs, validity, fingerprint) and the time-independent problems libs.pki finds (key mismatch,
wrong signer, SAN missing, unparseable, ...). Time-based judgements (expiring, not yet valid)
are left to lifecycle, which owns the clock and the deadline. Key bytes never leave here.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from libs.contracts.messages import (
    CertFacts,
    DataStoreObserved,
    Problem,
    SecretDeleted,
    SecretObserved,
    TcpDeleted,
    TcpObserved,
)
from libs.pki import (
    NAME_LABEL,
    PAUSED_ANNOTATION,
    ROTATE_ANNOTATION,
    CertSummary,
    PkiError,
    ReasonCode,
    SecretKind,
    TcpSpec,
    kind_from_secret_name,
    renewal_reasons,
    split_secret_name,
    summarize,
)

Obj = Mapping[str, Any]
TIME_CODES = frozenset({ReasonCode.EXPIRED, ReasonCode.EXPIRING, ReasonCode.NOT_YET_VALID})


def meta(obj: Obj) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def owner_of(secret: Obj) -> tuple[str, SecretKind] | None:
    """(tcp name, kind) of a Secret: from the `kamaji.clastix.io/name` label, else its name."""
    m = meta(secret)
    name = str(m.get("name") or "")
    tcp = (m.get("labels") or {}).get(NAME_LABEL)
    if tcp:
        kind = kind_from_secret_name(str(tcp), name)
        if kind is not None:
            return str(tcp), kind
    return split_secret_name(name)


def secret_data(secret: Obj) -> tuple[dict[str, bytes], list[str]]:
    """Decoded data and the keys whose base64 is broken."""
    data: dict[str, bytes] = {}
    broken: list[str] = []
    for key, value in (secret.get("data") or {}).items():
        try:
            data[key] = base64.b64decode(str(value), validate=True)
        except (binascii.Error, ValueError):
            broken.append(key)
    return data, broken


def cert_facts(s: CertSummary) -> CertFacts:
    return CertFacts(
        serial=s.serial,
        subject=s.subject,
        issuer=s.issuer,
        not_before=s.not_before,
        not_after=s.not_after,
        fingerprint_sha256=s.fingerprint_sha256,
        dns_names=s.dns_sans,
        ip_addresses=s.ip_sans,
        is_ca=s.is_ca,
    )


def _summary(kind: SecretKind, data: Mapping[str, bytes]) -> CertSummary | None:
    if kind in (SecretKind.SA, SecretKind.DATASTORE_CONFIG):
        return None
    try:
        return summarize(kind, data)
    except PkiError:
        return None  # renewal_reasons names what is wrong


def observe_secret(
    secret: Obj,
    tcp_name: str,
    kind: SecretKind,
    *,
    tcp: TcpSpec | None,
    ca_pem: bytes | None,
    front_proxy_ca_pem: bytes | None,
    datastore_ca_pem: bytes | None,
    now: datetime,
) -> SecretObserved:
    """The facts about one Secret of a TCP. `tcp` None: the TCP is not known (yet), so the
    checks that need its spec (SANs) and the problems list are skipped."""
    m = meta(secret)
    annotations = m.get("annotations") or {}
    data, broken = secret_data(secret)
    problems = [
        Problem(code=ReasonCode.UNPARSEABLE.value, message=f"data key {k!r} is not valid base64")
        for k in broken
    ]
    if tcp is not None:
        signer = {
            SecretKind.FRONT_PROXY_CLIENT: front_proxy_ca_pem,
            SecretKind.DATASTORE_CERTIFICATE: datastore_ca_pem,
        }.get(kind)
        try:
            reasons = renewal_reasons(
                kind, data, tcp, now=now, current_ca_pem=ca_pem, signer_ca_pem=signer
            )
        except PkiError as exc:  # a broken CA passed in: the CA's own event reports it
            reasons = ()
            problems.append(Problem(code="check-failed", message=str(exc)))
        problems.extend(
            Problem(code=r.code.value, message=r.message)
            for r in reasons
            if r.code not in TIME_CODES
        )
    summary = _summary(kind, data)
    return SecretObserved(
        namespace=str(m.get("namespace") or ""),
        tcp=tcp_name,
        name=str(m.get("name") or ""),
        kind=kind.value,
        uid=str(m.get("uid") or ""),
        resource_version=str(m.get("resourceVersion") or ""),
        secret_type=str(secret.get("type") or "Opaque"),
        data_keys=tuple(sorted(data)),
        checksum=str(annotations.get("kamaji.clastix.io/checksum") or ""),
        rotate_annotation=annotations.get(ROTATE_ANNOTATION),
        paused=PAUSED_ANNOTATION in annotations,
        cert=cert_facts(summary) if summary is not None else None,
        problems=tuple(problems),
        observed_at=now,
    )


def secret_deleted(secret: Obj, tcp_name: str, kind: SecretKind, now: datetime) -> SecretDeleted:
    m = meta(secret)
    return SecretDeleted(
        namespace=str(m.get("namespace") or ""),
        tcp=tcp_name,
        name=str(m.get("name") or ""),
        kind=kind.value,
        uid=str(m.get("uid") or ""),
        resource_version=str(m.get("resourceVersion") or ""),
        observed_at=now,
    )


def observe_tcp(obj: Obj, now: datetime) -> TcpObserved:
    m = meta(obj)
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    storage = status.get("storage") or {}
    version = (status.get("kubernetesResources") or {}).get("version") or {}
    return TcpObserved(
        namespace=str(m.get("namespace") or ""),
        name=str(m.get("name") or ""),
        uid=str(m.get("uid") or ""),
        resource_version=str(m.get("resourceVersion") or ""),
        generation=int(m.get("generation") or 0),
        paused=PAUSED_ANNOTATION in (m.get("annotations") or {}),
        konnectivity=(spec.get("addons") or {}).get("konnectivity") is not None,
        datastore=str(spec.get("dataStore") or storage.get("dataStoreName") or ""),
        datastore_driver=str(storage.get("driver") or ""),
        phase=str(version.get("status") or ""),
        deleting=bool(m.get("deletionTimestamp")),
        observed_at=now,
    )


def tcp_deleted(obj: Obj, now: datetime) -> TcpDeleted:
    m = meta(obj)
    return TcpDeleted(
        namespace=str(m.get("namespace") or ""),
        name=str(m.get("name") or ""),
        uid=str(m.get("uid") or ""),
        resource_version=str(m.get("resourceVersion") or ""),
        observed_at=now,
    )


def tcp_spec(obj: Obj) -> TcpSpec | None:
    try:
        return TcpSpec.from_resource(obj)
    except PkiError:
        return None


def observe_datastore(
    obj: Obj, *, ca: CertSummary | None, client: CertSummary | None, now: datetime
) -> DataStoreObserved:
    m = meta(obj)
    return DataStoreObserved(
        name=str(m.get("name") or ""),
        uid=str(m.get("uid") or ""),
        resource_version=str(m.get("resourceVersion") or ""),
        driver=str((obj.get("spec") or {}).get("driver") or ""),
        ca=cert_facts(ca) if ca is not None else None,
        client_cert=cert_facts(client) if client is not None else None,
        observed_at=now,
    )
