"""What lifecycle knows about the fleet, built only from the watcher's events. Pure.

The events stream is compacted (newest message per subject), so replaying it from the start
rebuilds this state after a restart; live events then keep it current. Applying an event returns
the TCP it concerns, which is then re-evaluated.
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
from libs.pki.profiles import SecretKind
from services.lifecycle.policy import Issued, TcpState

TcpKey = tuple[str, str]


def kind_of(value: str) -> SecretKind | None:
    try:
        return SecretKind(value)
    except ValueError:
        return None


@dataclass
class FleetState:
    tcps: dict[TcpKey, TcpObserved] = field(default_factory=dict)
    secrets: dict[TcpKey, dict[SecretKind, SecretObserved]] = field(
        default_factory=lambda: defaultdict(dict)
    )
    deleted: dict[TcpKey, dict[SecretKind, str]] = field(default_factory=lambda: defaultdict(dict))
    history: dict[TcpKey, list[Issued]] = field(default_factory=lambda: defaultdict(list))
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

    def forget(self, key: TcpKey) -> None:
        for table in (self.tcps, self.secrets, self.deleted, self.history):
            table.pop(key, None)

    def view(self, key: TcpKey) -> TcpState | None:
        tcp = self.tcps.get(key)
        if tcp is None:
            return None
        return TcpState(
            tcp=tcp,
            secrets=dict(self.secrets.get(key, {})),
            deleted_versions=dict(self.deleted.get(key, {})),
            history=tuple(self.history.get(key, ())),
        )

    def record(self, key: TcpKey, issued: list[Issued], now: datetime, keep: timedelta) -> None:
        """Remember rotations asked for (loop guard and in-flight check), dropping old ones."""
        entries = [*self.history[key], *issued]
        self.history[key] = [h for h in entries if now - h.at < keep]

    def counts(self) -> tuple[int, int]:
        return len(self.tcps), sum(len(v) for v in self.secrets.values())
