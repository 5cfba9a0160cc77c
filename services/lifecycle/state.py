"""What lifecycle knows about the fleet, built from the watcher's events and the rotation
records. Pure.

The events stream is compacted (newest message per subject) and the records bucket keeps the
newest value per key, so replaying both from the start rebuilds this state after a restart; live
changes then keep it current. Applying an event or a record returns the TCP it concerns, which
is then re-evaluated.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from libs.contracts.messages import (
    DataStoreDeleted,
    DataStoreObserved,
    Event,
    SecretDeleted,
    SecretObserved,
    TcpDeleted,
    TcpObserved,
    WatcherSynced,
)
from libs.contracts.records import RotationRecord
from libs.pki.profiles import SecretKind
from services.lifecycle.policy import TcpState, kind_of

TcpKey = tuple[str, str]


def datastore_version(datastore: DataStoreObserved | None) -> str:
    """What identifies a DataStore's signing material: the object's version and its CA's
    fingerprint (a CA Secret replaced under an unchanged DataStore counts too)."""
    if datastore is None:
        return ""
    ca = datastore.ca.fingerprint_sha256 if datastore.ca is not None else ""
    return f"{datastore.resource_version}/{ca}"


@dataclass
class FleetState:
    tcps: dict[TcpKey, TcpObserved] = field(default_factory=dict)
    secrets: dict[TcpKey, dict[SecretKind, SecretObserved]] = field(
        default_factory=lambda: defaultdict(dict)
    )
    deleted: dict[TcpKey, dict[SecretKind, str]] = field(default_factory=lambda: defaultdict(dict))
    rotations: dict[TcpKey, dict[str, RotationRecord]] = field(
        default_factory=lambda: defaultdict(dict)
    )
    datastores: dict[str, DataStoreObserved] = field(default_factory=dict)
    synced: WatcherSynced | None = None

    def apply(self, event: Event) -> TcpKey | None:
        """Fold one event in; the TCP to re-evaluate, if any."""
        match event:
            case SecretObserved():
                kind = kind_of(event.kind)
                if kind is None:
                    return None
                key = (event.namespace, event.tcp)
                self.secrets[key][kind] = event
                self.deleted[key].pop(kind, None)
                return key
            case SecretDeleted():
                kind = kind_of(event.kind)
                if kind is None:
                    return None
                key = (event.namespace, event.tcp)
                self.secrets[key].pop(kind, None)
                self.deleted[key][kind] = event.resource_version
                return key
            case TcpObserved():
                key = (event.namespace, event.name)
                previous = self.tcps.get(key)
                if previous is not None and previous.uid != event.uid:
                    self.forget(key)  # the same name, a new TCP
                self.tcps[key] = event
                return key
            case TcpDeleted():
                self.forget((event.namespace, event.name))
                return None
            case DataStoreObserved():
                self.datastores[event.name] = event
                return None
            case DataStoreDeleted():
                self.datastores.pop(event.name, None)
                return None
            case WatcherSynced():
                self.synced = event
                return None

    def put_record(self, record: RotationRecord) -> TcpKey:
        key = (record.namespace, record.tcp)
        self.rotations[key][record.id] = record
        return key

    def drop_record(self, namespace: str, tcp: str, rotation_id: str) -> TcpKey:
        key = (namespace, tcp)
        self.rotations.get(key, {}).pop(rotation_id, None)
        return key

    def prune(self, now: datetime, keep: timedelta) -> int:
        """Forget records older than `keep` that are completed, or whose TCP is gone (the bucket
        expires them too, unseen); how many."""
        dropped = 0
        for key, records in self.rotations.items():
            gone = key not in self.tcps
            for rid in [
                i for i, r in records.items() if (gone or not r.open) and now - r.updated_at > keep
            ]:
                del records[rid]
                dropped += 1
        return dropped

    def forget(self, key: TcpKey) -> None:
        for table in (self.tcps, self.secrets, self.deleted):
            table.pop(key, None)

    def view(self, key: TcpKey) -> TcpState | None:
        tcp = self.tcps.get(key)
        if tcp is None:
            return None
        datastore = self.datastores.get(tcp.datastore)
        return TcpState(
            tcp=tcp,
            secrets=dict(self.secrets.get(key, {})),
            deleted_versions=dict(self.deleted.get(key, {})),
            rotations=tuple(
                r for r in self.rotations.get(key, {}).values() if r.tcp_uid in ("", tcp.uid)
            ),
            datastore_version=datastore_version(datastore),
            datastore_observed_at=datastore.observed_at if datastore is not None else None,
            datastore_client=datastore.client_cert if datastore is not None else None,
        )

    def counts(self) -> tuple[int, int]:
        return len(self.tcps), sum(len(v) for v in self.secrets.values())
