"""Decides what the issuer writes for one rotate command. No I/O: gathered objects in, writes out.

For each Secret the command names, in order (a CA before what it signs):

    already done   the Secret carries this rotation's id: a redelivered command, skip it
    superseded     the Secret changed since the decision (its resourceVersion is not the one
                   the command was based on): someone else handled it, skip it
    mint           otherwise: fresh data per profile, signed by the current signer, or by the
                   CA minted earlier in this same plan (CA rotation)

Secrets signed by a rotating CA are re-issued whatever their version, unless already done; so is
every Secret of a step of a phased rotation (libs/pki/phased.py), the signer itself computed
from what its Secret holds now (`phased_data`), "already done" meaning done by that step. The
datastore certificate of a MySQL/PostgreSQL DataStore comes from the external PKI: the Secret is
deleted and rebuilt from the DataStore's client certificate. Each write is one full Secret with
labels, owner reference, checksum and rotate annotations.

Nothing of value is lost on re-issue: an existing Secret gets every data key Kamaji defines
for it (admin-kubeconfig: admin.conf, admin.svc, super-admin.conf, super-admin.svc), a data key
certlc does not know is carried over unchanged, and datastore-config keeps its user, schema and
password. A Secret created afresh has the seed's keys.
"""

from __future__ import annotations

import base64
import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from libs.contracts.messages import RotateCommand
from libs.pki import (
    CHECKSUM_ANNOTATION,
    COPYING_DRIVERS,
    ROTATE_ANNOTATION,
    Category,
    KeyAlgorithm,
    SecretKind,
    Signer,
    SignerKeyPair,
    TcpSpec,
    checksum,
    datastore_certificate_from_external,
    load_signer,
    mint_secret_data,
    profile,
    secret_labels,
    secret_name,
    signer_from_secret_data,
)
from libs.pki.keys import KeySource, generate_private_key
from libs.pki.overrides import FleetProfile, TcpProfile, tcp_profile
from libs.pki.phased import phased_data
from libs.pki.steps import PHASE_KEYS, RotationStep

ROTATION_ANNOTATION = "certlc.kamaji.clastix.io/rotation-id"


@dataclass(frozen=True, slots=True)
class Existing:
    """A Secret as read from the API: what the plan needs of it."""

    resource_version: str
    data: Mapping[str, bytes] = field(repr=False)
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    secret_type: str


@dataclass(frozen=True, slots=True)
class DataStoreFacts:
    """The DataStore of the TCP: driver, endpoints, and its TLS material (read by the edge)."""

    name: str
    driver: str
    endpoints: tuple[str, ...] = ()
    ca_cert: bytes | None = field(default=None, repr=False)
    ca_key: bytes | None = field(default=None, repr=False)
    client_cert: bytes | None = field(default=None, repr=False)
    client_key: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class Gathered:
    tcp: TcpSpec
    tcp_uid: str
    secrets: Mapping[SecretKind, Existing]
    datastore: DataStoreFacts | None = None
    annotations: Mapping[str, str] = field(default_factory=dict)  # the TCP's

    def profile(self, fleet: FleetProfile) -> TcpProfile:
        """The TCP's certificate profile (its annotations over the fleet's); what it rejects
        lifecycle reports."""
        return tcp_profile(self.annotations, fleet)[0]


@dataclass(frozen=True, slots=True)
class Write:
    kind: SecretKind
    name: str
    body: dict[str, Any] = field(repr=False)
    replace_version: str | None  # None: create
    delete_first: bool = False
    checksum: str = ""
    data: Mapping[str, bytes] = field(default_factory=dict, repr=False)


class SkipCause(enum.Enum):
    DONE = "already written by this rotation"
    SUPERSEDED = "changed since the decision"


@dataclass(frozen=True, slots=True)
class Skip:
    kind: SecretKind
    cause: SkipCause
    why: str


@dataclass(frozen=True, slots=True)
class Plan:
    writes: tuple[Write, ...]
    skipped: tuple[Skip, ...]


class PlanError(ValueError):
    """The command cannot be carried out with what exists (a signer is missing or broken)."""


@dataclass(frozen=True, slots=True)
class IssueSettings:
    fleet: FleetProfile = field(default_factory=FleetProfile)  # a TCP's annotations override


def _b64(data: Mapping[str, bytes]) -> dict[str, str]:
    return {k: base64.b64encode(v).decode() for k, v in data.items()}


def rotate_stamp(annotations: Mapping[str, str], now: datetime) -> dict[str, str]:
    """As Kamaji does: a requested rotation (`certs.kamaji.clastix.io/rotate: ""`) is answered
    with the time it was done (RFC 3339), so it does not loop; a Secret nobody asked to rotate
    gets no such annotation, and `kubectl annotate ... rotate=""` then needs no --overwrite."""
    if annotations.get(ROTATE_ANNOTATION) == "":
        return {ROTATE_ANNOTATION: now.strftime("%Y-%m-%dT%H:%M:%SZ")}
    return {}


def secret_body(
    g: Gathered, kind: SecretKind, data: Mapping[str, bytes], rotation_id: str, now: datetime
) -> dict[str, Any]:
    """The whole Secret object: one write carries data, labels, owner and annotations."""
    existing = g.secrets.get(kind)
    labels = {**(existing.labels if existing else {}), **secret_labels(g.tcp, kind)}
    annotations = dict(existing.annotations) if existing else {}
    annotations.update({CHECKSUM_ANNOTATION: checksum(data), ROTATION_ANNOTATION: rotation_id})
    annotations.update(rotate_stamp(annotations, now))
    metadata: dict[str, Any] = {
        "name": secret_name(g.tcp.name, kind),
        "namespace": g.tcp.namespace,
        "labels": labels,
        "annotations": annotations,
    }
    if g.tcp_uid:
        metadata["ownerReferences"] = [{
            "apiVersion": "kamaji.clastix.io/v1alpha1",
            "kind": "TenantControlPlane",
            "name": g.tcp.name,
            "uid": g.tcp_uid,
            "controller": True,
        }]  # fmt: skip
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata,
        "type": profile(kind).secret_type,
        "data": _b64(data),
    }


def _status(kind: SecretKind, cmd: RotateCommand, g: Gathered) -> Skip | None:
    existing = g.secrets.get(kind)
    if existing is not None and existing.annotations.get(ROTATION_ANNOTATION) == cmd.round_id:
        return Skip(kind, SkipCause.DONE, SkipCause.DONE.value)
    forced = (cmd.ca_rotation and kind is not SecretKind.CA) or cmd.step is not RotationStep.NONE
    if forced:
        return None
    expected = cmd.resource_versions.get(kind.value)
    if expected is None:
        return None
    current = existing.resource_version if existing else None
    if expected.startswith("deleted@"):
        return (
            None
            if current is None
            else Skip(kind, SkipCause.SUPERSEDED, "re-created since the decision")
        )
    if current != expected:
        why = f"changed since the decision (version {expected} -> {current})"
        return Skip(kind, SkipCause.SUPERSEDED, why)
    return None


class _Signers:
    """The CAs of the TCP as they will be once the plan's own writes are done."""

    def __init__(self, g: Gathered) -> None:
        self.g = g
        self.minted: dict[SecretKind, SignerKeyPair] = {}

    def for_kind(self, kind: SecretKind) -> SignerKeyPair | None:
        signer = profile(kind).signer
        if signer is Signer.CA:
            return self._ca(SecretKind.CA)
        if signer is Signer.FRONT_PROXY_CA:
            return self._ca(SecretKind.FRONT_PROXY_CA)
        if signer is Signer.DATASTORE_CA:
            ds = self.g.datastore
            if ds is None or not ds.ca_cert or not ds.ca_key:
                raise PlanError("the DataStore has no CA certificate and key to sign with")
            return load_signer(ds.ca_cert, ds.ca_key)
        return None

    def _ca(self, kind: SecretKind) -> SignerKeyPair:
        if kind in self.minted:
            return self.minted[kind]
        existing = self.g.secrets.get(kind)
        if existing is None:
            raise PlanError(f"Secret {secret_name(self.g.tcp.name, kind)} is missing; it signs")
        return signer_from_secret_data(kind, existing.data)


def _data(
    kind: SecretKind,
    g: Gathered,
    signers: _Signers,
    now: datetime,
    cfg: IssueSettings,
    keys: KeySource,
    step: RotationStep = RotationStep.NONE,
    phased: str = "",
) -> tuple[dict[str, bytes], bool]:
    """(data, delete_first) for one Secret. A copied client certificate that is itself near its
    end is reported by lifecycle (it follows the DataStore), not here."""
    ds = g.datastore
    if kind is SecretKind.DATASTORE_CERTIFICATE and ds is not None and ds.driver in COPYING_DRIVERS:
        if not (ds.ca_cert and ds.client_cert and ds.client_key):
            raise PlanError(f"DataStore {ds.name} references no client certificate and key")
        data = datastore_certificate_from_external(
            ca_pem=ds.ca_cert, cert_pem=ds.client_cert, key_pem=ds.client_key
        )
        return data, True
    signer = signers.for_kind(kind) if kind is not SecretKind.DATASTORE_CONFIG else None
    category = profile(kind).category
    tcp_prof = g.profile(cfg.fleet)
    validity = (
        tcp_prof.ca_validity
        if category is Category.CA
        else tcp_prof.leaf_validity
        if category in (Category.X509, Category.KUBECONFIG)
        else None
    )
    existing = g.secrets.get(kind)

    def mint() -> dict[str, bytes]:
        return mint_secret_data(
            kind,
            g.tcp,
            now=now,
            signer=signer,
            algorithm=key_algorithm(kind, tcp_prof),
            validity=validity,
            datastore_endpoints=ds.endpoints if ds is not None else (),
            current=existing.data if existing is not None else None,
            keys=keys,
        )

    if step is not RotationStep.NONE and kind.value == phased:
        if existing is None:
            raise PlanError(f"Secret {secret_name(g.tcp.name, kind)} is missing; it is rotated")
        data = phased_data(kind, step, existing.data, mint)
    else:
        data = mint()
    if category is Category.CA:
        signers.minted[kind] = signer_from_secret_data(kind, data)
    return data, False


def key_algorithm(kind: SecretKind, prof: TcpProfile) -> KeyAlgorithm:
    """The key type of a new key of `kind`: the TCP's profile, except that the service-account
    keypair stays RSA (RSA-2048 when the profile is ECDSA): Kamaji accepts only an RSA
    service-account key and would replace another at once, invalidating every token."""
    if profile(kind).category is Category.KEYPAIR and prof.key_algorithm.family != "rsa":
        return KeyAlgorithm.RSA_2048
    return prof.key_algorithm


def unknown_keys(kind: SecretKind, existing: Existing | None) -> dict[str, bytes]:
    """The data keys of an existing Secret that the profile does not know: kept on re-issue."""
    if existing is None:
        return {}
    known = {*profile(kind).known_keys, *PHASE_KEYS}  # a phase's keys: the step writes them
    return {k: v for k, v in existing.data.items() if k not in known}


def plan(
    cmd: RotateCommand,
    g: Gathered,
    now: datetime,
    cfg: IssueSettings,
    keys: KeySource = generate_private_key,
) -> Plan:
    """The writes that carry out `cmd`, CAs first, new keys from `keys`; raises PlanError when
    a signer is missing."""
    kinds = sorted(
        (SecretKind(k) for k in dict.fromkeys(cmd.secrets)),
        key=lambda k: profile(k).category is not Category.CA,
    )
    signers = _Signers(g)
    writes: list[Write] = []
    skipped: list[Skip] = []
    for kind in kinds:
        skip = _status(kind, cmd, g)
        if skip is not None:
            skipped.append(skip)
            continue
        minted, delete_first = _data(kind, g, signers, now, cfg, keys, cmd.step, cmd.phased)
        existing = g.secrets.get(kind)
        data = {**unknown_keys(kind, existing), **minted}
        writes.append(
            Write(
                kind=kind,
                name=secret_name(g.tcp.name, kind),
                body=secret_body(g, kind, data, cmd.round_id, now),
                replace_version=None
                if existing is None or delete_first
                else existing.resource_version,
                delete_first=delete_first and existing is not None,
                checksum=checksum(data),
                data=data,
            )
        )
    return Plan(tuple(writes), tuple(skipped))
