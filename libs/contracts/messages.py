"""The messages on the bus: one frozen msgspec Struct per message, tagged by `type`.

Evolution rules (see docs/subjects.md): a new field always has a default, a field's type never
changes, unknown fields are ignored on decode, a tag is never reused.

Messages carry facts (names, uids, serials, fingerprints, validity dates), never key material.
Every Struct checks this on construction *and* on decode (`__post_init__` runs for both): a
string that holds PEM armour or a long base64 blob is refused, so a private key cannot be put on
the bus by accident nor accepted from it.
"""

from __future__ import annotations

import enum
import re
from datetime import datetime
from typing import Any

import msgspec

from libs.pki.steps import RotationStep, round_id

MAX_TEXT = 2048
_PEM = re.compile(r"-----BEGIN [A-Z0-9 ]+-----")
_BLOB = re.compile(r"[A-Za-z0-9+/=_-]{200,}")


class KeyMaterialError(ValueError):
    """A message field held something that looks like key material or an encoded blob."""


def _check_text(owner: str, field: str, value: str) -> None:
    if _PEM.search(value):
        raise KeyMaterialError(f"{owner}.{field} holds PEM data; messages never carry keys")
    if _BLOB.search(value):
        raise KeyMaterialError(f"{owner}.{field} holds an encoded blob; messages carry facts only")
    if len(value) > MAX_TEXT:
        raise KeyMaterialError(f"{owner}.{field} is longer than {MAX_TEXT} characters")


def _scan(owner: str, field: str, value: Any) -> None:
    if isinstance(value, str):
        _check_text(owner, field, value)
    elif isinstance(value, tuple | list):
        for item in value:
            _scan(owner, field, item)
    elif isinstance(value, dict):
        for key, item in value.items():
            _scan(owner, field, key)
            _scan(owner, field, item)
    elif isinstance(value, bytes | bytearray | memoryview):
        raise KeyMaterialError(f"{owner}.{field} holds raw bytes; messages carry facts only")


class Fact(msgspec.Struct, frozen=True, kw_only=True):
    """Base of every value on the bus: refuses key material on construction and decode."""

    def __post_init__(self) -> None:
        owner = type(self).__name__
        for field in self.__struct_fields__:
            value = getattr(self, field)
            if not isinstance(value, Fact):
                _scan(owner, field, value)


class Message(Fact, frozen=True, kw_only=True, tag_field="type"):
    """Base of the tagged messages."""


class Reason(enum.StrEnum):
    """Why a rotation happens."""

    MISSING = "missing"
    EXPIRING = "expiring"
    INVALID = "invalid"
    REQUESTED = "requested"


# --- facts carried by events -------------------------------------------------------------


class CertFacts(Fact, frozen=True, kw_only=True):
    """What the watcher read off a certificate: public facts only."""

    serial: str
    subject: str
    issuer: str
    not_before: datetime
    not_after: datetime
    fingerprint_sha256: str
    dns_names: tuple[str, ...] = ()
    ip_addresses: tuple[str, ...] = ()
    is_ca: bool = False


class Problem(Fact, frozen=True, kw_only=True):
    """A time-independent reason a Secret is invalid (key mismatch, wrong signer, ...)."""

    code: str
    message: str


# --- watcher -> lifecycle (CERTLC_EVENTS) -------------------------------------------------


class SecretObserved(Message, frozen=True, kw_only=True, tag="secret.observed"):
    namespace: str
    tcp: str
    name: str
    kind: str  # the profile's name suffix, e.g. "api-server-certificate"
    uid: str
    resource_version: str
    secret_type: str = "Opaque"
    data_keys: tuple[str, ...] = ()
    checksum: str = ""
    rotate_annotation: str | None = None  # None: absent; "": rotation requested; else a timestamp
    paused: bool = False
    cert: CertFacts | None = None
    problems: tuple[Problem, ...] = ()
    observed_at: datetime | None = None


class SecretDeleted(Message, frozen=True, kw_only=True, tag="secret.deleted"):
    namespace: str
    tcp: str
    name: str
    kind: str
    uid: str
    resource_version: str
    observed_at: datetime | None = None


class TcpObserved(Message, frozen=True, kw_only=True, tag="tcp.observed"):
    namespace: str
    name: str
    uid: str
    resource_version: str
    generation: int = 0
    paused: bool = False
    konnectivity: bool = False
    datastore: str = ""
    datastore_driver: str = ""
    phase: str = ""
    deleting: bool = False
    observed_at: datetime | None = None
    # The TCP's certlc.kamaji.clastix.io/* annotations (per-TCP settings), as written: the
    # services that read them parse them and report what does not parse.
    annotations: dict[str, str] = {}


class TcpDeleted(Message, frozen=True, kw_only=True, tag="tcp.deleted"):
    namespace: str
    name: str
    uid: str
    resource_version: str
    observed_at: datetime | None = None


class DataStoreObserved(Message, frozen=True, kw_only=True, tag="datastore.observed"):
    name: str
    uid: str
    resource_version: str
    driver: str
    ca: CertFacts | None = None
    client_cert: CertFacts | None = None
    observed_at: datetime | None = None


class DataStoreDeleted(Message, frozen=True, kw_only=True, tag="datastore.deleted"):
    name: str
    uid: str
    resource_version: str
    observed_at: datetime | None = None


class WatcherSynced(Message, frozen=True, kw_only=True, tag="watcher.synced"):
    """The watcher has published everything its initial list found."""

    resource_version: str
    tcps: int
    secrets: int
    at: datetime


Event = (
    SecretObserved
    | SecretDeleted
    | TcpObserved
    | TcpDeleted
    | DataStoreObserved
    | DataStoreDeleted
    | WatcherSynced
)


# --- lifecycle -> issuer (CERTLC_ROTATE) and issuer -> rollout (CERTLC_ISSUED) ------------


class RotateCommand(Message, frozen=True, kw_only=True, tag="rotate.command"):
    """Re-issue these Secrets of one TCP. `secrets` are profile name suffixes."""

    id: str
    namespace: str
    tcp: str
    tcp_uid: str = ""
    secrets: tuple[str, ...]
    reason: Reason
    detail: str = ""
    requester: str = "certlc-lifecycle"
    requested_at: datetime
    ca_rotation: bool = False
    # kind -> the Secret resourceVersion the decision was based on ("" when it was missing).
    # The issuer writes on that condition only, so a stale or repeated command changes nothing.
    resource_versions: dict[str, str] = {}
    # By when the new material must be in use: the earliest NotAfter among the certificates
    # replaced, the request time for a missing or invalid one. Rollouts wait for a slot of the
    # rollout budget in this order (libs/contracts/budget.py).
    deadline: datetime | None = None
    # A step of a phased rotation (libs/pki/phased.py) of the Secret kind `phased`.
    phased: str = ""
    step: RotationStep = RotationStep.NONE

    @property
    def round_id(self) -> str:
        """This step's round: marks its writes and messages ("<id>/<step>"; the id unphased)."""
        return round_id(self.id, self.step)


class CaRotationBegan(Message, frozen=True, kw_only=True, tag="ca-rotation.began"):
    """The issuer starts replacing a TCP's CA: rollout marks it CertificateAuthorityRotating."""

    id: str
    namespace: str
    tcp: str
    at: datetime


class WrittenSecret(Fact, frozen=True, kw_only=True):
    name: str
    kind: str
    checksum: str
    resource_version: str
    action: str  # "created" | "replaced" | "unchanged"


class SecretsWritten(Message, frozen=True, kw_only=True, tag="secrets.written"):
    id: str
    namespace: str
    tcp: str
    secrets: tuple[WrittenSecret, ...]
    reason: Reason
    ca_rotation: bool = False
    written_at: datetime
    step: RotationStep = RotationStep.NONE  # the step of a phased rotation these Secrets are

    @property
    def round_id(self) -> str:
        """The round these Secrets were written in ("<id>/<step>"; the id unphased)."""
        return round_id(self.id, self.step)


Issued = CaRotationBegan | SecretsWritten
