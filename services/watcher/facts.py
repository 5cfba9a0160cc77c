"""Turns Kubernetes objects into the facts the watcher publishes. Pure: objects in, messages out.

A Secret becomes a `SecretObserved` carrying public certificate facts (serial, subject, issuer,
SANs, validity, fingerprint) and the time-independent problems libs.pki finds (key mismatch,
wrong signer, SAN missing, unparseable, ...). Time-based judgements (expiring, not yet valid)
are left to lifecycle, which owns the clock and the deadline. Key bytes never leave here.
`msg_id` gives identical facts the same de-duplication id. `check` turns a `Batch` of Secrets
(with what their checks need of their TCPs) into `Checked` messages ready to publish; the batch
types are plain msgspec Structs, so a batch can be checked in another process.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import msgspec

from libs.contracts import subjects
from libs.contracts.codec import encode
from libs.contracts.messages import (
    CertFacts,
    DataStoreDeleted,
    DataStoreObserved,
    Message,
    Problem,
    SecretDeleted,
    SecretObserved,
    TcpDeleted,
    TcpObserved,
)
from libs.contracts.names import decode_token
from libs.pki import (
    CERTLC_PREFIX,
    NAME_LABEL,
    PAUSED_ANNOTATION,
    ROTATE_ANNOTATION,
    CertSummary,
    PkiError,
    ReasonCode,
    SecretKind,
    TcpSpec,
    gather,
    kind_from_secret_name,
    profile,
    split_secret_name,
)
from libs.pki.inspect import summarize, summarize_material
from libs.pki.material import Material
from libs.pki.validate import reasons_for_material

Obj = Mapping[str, Any]
TIME_CODES = frozenset({ReasonCode.EXPIRED, ReasonCode.EXPIRING, ReasonCode.NOT_YET_VALID})
_id_encoder = msgspec.json.Encoder()


def msg_id(message: Message) -> str:
    """Identical facts get identical ids (JetStream drops the repeat); `observed_at` aside."""
    fields = msgspec.structs.asdict(message)  # shallow, and no re-validation as replace() does
    fields.pop("observed_at", None)
    digest = hashlib.sha256(type(message).__name__.encode())
    digest.update(_id_encoder.encode(fields))
    return digest.hexdigest()[:32]


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


def _summary(material: Material) -> CertSummary | None:
    if material.kind in (SecretKind.SA, SecretKind.DATASTORE_CONFIG):
        return None
    try:
        return summarize_material(material)
    except PkiError:
        return None  # the checks name what is wrong


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
    datastore_client_pem: bytes | None = None,
) -> SecretObserved:
    """The facts about one Secret of a TCP. `tcp` None: the TCP is not known (yet), so the
    checks that need its spec (SANs) and the problems list are skipped."""
    m = meta(secret)
    annotations = m.get("annotations") or {}
    data, broken = secret_data(secret)
    material = gather(kind, data)  # parsed once, for the checks and the summary
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
            reasons = reasons_for_material(
                material, data, tcp, now=now, current_ca_pem=ca_pem, signer_ca_pem=signer
            )
        except PkiError as exc:  # a broken CA passed in: the CA's own event reports it
            reasons = ()
            problems.append(Problem(code="check-failed", message=str(exc)))
        problems.extend(
            Problem(code=r.code.value, message=r.message)
            for r in reasons
            if r.code not in TIME_CODES
        )
        problems.extend(external_copy_problems(kind, data, datastore_client_pem))
    summary = _summary(material)
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


def external_copy_problems(
    kind: SecretKind, data: Mapping[str, bytes], client_pem: bytes | None
) -> list[Problem]:
    """For a MySQL or PostgreSQL DataStore the datastore certificate is a copy of the
    DataStore's own client certificate: a copy that differs (the DataStore's was replaced)
    is to be copied again."""
    key = profile(kind).cert_key
    if kind is not SecretKind.DATASTORE_CERTIFICATE or client_pem is None or key is None:
        return []
    if data.get(key, b"").strip() == client_pem.strip():
        return []
    message = f"{key} is not the client certificate its DataStore references (it was replaced)"
    return [Problem(code=ReasonCode.EXTERNAL_COPY_MISMATCH.value, message=message)]


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
        annotations=certlc_annotations(m.get("annotations") or {}),
    )


def certlc_annotations(annotations: Mapping[str, Any]) -> dict[str, str]:
    """The annotations that configure certlc for one TCP (`certlc.kamaji.clastix.io/*`)."""
    return {
        str(k): str(v) for k, v in sorted(annotations.items()) if str(k).startswith(CERTLC_PREFIX)
    }


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


def datastore_deleted(obj: Obj, now: datetime) -> DataStoreDeleted:
    m = meta(obj)
    return DataStoreDeleted(
        name=str(m.get("name") or ""),
        uid=str(m.get("uid") or ""),
        resource_version=str(m.get("resourceVersion") or ""),
        observed_at=now,
    )


def datastore_ca_summary(pem: bytes | None) -> CertSummary | None:
    """The facts of a DataStore's CA certificate; None when there is none or it is unreadable
    (the datastore certificates then are not checked against it)."""
    if pem is None:
        return None
    try:
        return summarize(SecretKind.CA, {"ca.crt": pem})
    except PkiError:
        return None


def datastore_client_summary(pem: bytes | None) -> CertSummary | None:
    """The facts of a DataStore's own client certificate (MySQL, PostgreSQL)."""
    if pem is None:
        return None
    try:
        return summarize(SecretKind.DATASTORE_CERTIFICATE, {"server.crt": pem})
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


def vanished(subject: str, now: datetime) -> Checked | None:
    """The deletion fact for an events subject whose object a complete listing no longer has
    (the identity is all the subject names: uid and resourceVersion are unknown, so empty);
    None for a subject that names no Secret, TCP or DataStore."""
    parts = subject.split(".")
    if parts[:2] != [subjects.PREFIX, "events"]:
        return None
    try:
        names = [decode_token(token) for token in parts[3:]]
    except ValueError:
        return None
    message: Message
    if parts[2] == "secret" and len(names) == 3:
        namespace, tcp, name = names
        kind = kind_from_secret_name(tcp, name)
        if kind is None:
            return None
        message = SecretDeleted(
            namespace=namespace,
            tcp=tcp,
            name=name,
            kind=kind.value,
            uid="",
            resource_version="",
            observed_at=now,
        )
    elif parts[2] == "tcp" and len(names) == 2:
        message = TcpDeleted(
            namespace=names[0], name=names[1], uid="", resource_version="", observed_at=now
        )
    elif parts[2] == "datastore" and len(names) == 1:
        message = DataStoreDeleted(name=names[0], uid="", resource_version="", observed_at=now)
    else:
        return None
    return Checked(subject, encode(message), msg_id(message))


# --- checking Secrets in bulk (here or in the checker child process) -----------------------


class Tcp(msgspec.Struct, array_like=True, frozen=True):
    """What the checks of one TCP's Secrets need besides the Secrets."""

    namespace: str
    name: str
    spec: TcpSpec | None
    ca_pem: bytes | None
    front_proxy_ca_pem: bytes | None
    datastore_ca_pem: bytes | None = None  # the CA of the TCP's DataStore
    datastore_client_pem: bytes | None = None  # its client certificate (MySQL, PostgreSQL)


class Job(msgspec.Struct, array_like=True, frozen=True):
    tcp: int  # index into Batch.tcps
    kind: str
    secret: dict[str, Any]


class Batch(msgspec.Struct, array_like=True, frozen=True):
    now: datetime
    tcps: list[Tcp]
    jobs: list[Job]


class Checked(msgspec.Struct, array_like=True, frozen=True):
    """A message ready to publish: subject, encoded payload, de-duplication id."""

    subject: str
    payload: bytes
    msg_id: str


def check(batch: Batch) -> list[Checked]:
    """The `SecretObserved` of every job, encoded (pure)."""
    out: list[Checked] = []
    for job in batch.jobs:
        tcp = batch.tcps[job.tcp]
        kind = SecretKind(job.kind)
        observed = observe_secret(
            job.secret,
            tcp.name,
            kind,
            tcp=tcp.spec,
            now=batch.now,
            ca_pem=tcp.ca_pem,
            front_proxy_ca_pem=tcp.front_proxy_ca_pem,
            datastore_ca_pem=tcp.datastore_ca_pem,
            datastore_client_pem=tcp.datastore_client_pem,
        )
        subject = subjects.secret_event(tcp.namespace, tcp.name, f"{tcp.name}-{kind.value}")
        out.append(Checked(subject, encode(observed), msg_id(observed)))
    return out
