"""What the watcher knows between events, and what is left to publish. Pure: no I/O, no clock.

`fold` takes one informer event into the cache and marks what changed ("dirty"); `take` hands
over everything dirty as one `Round`: the facts that need no checking (deletions, TCPs,
DataStores) as messages, the Secrets to check as a `checker.Batch`, and the Secrets whose data
must be read again first. A burst of changes to one Secret costs one check.

What is kept: per Secret only its identity (`SecretRef`), and of the two CA Secrets of each TCP
their CA certificate, which the other Secrets of the TCP are checked against. A Secret's data is
held only from the event that carried it until `take` hands it over. A change of a TCP's CA or
spec marks every Secret of that TCP dirty (their signer and SAN checks depend on it); those
without data at hand are listed in `Round.refetch`.

While the initial list of Secrets is still arriving, a Secret whose TCP's CAs have not been seen
yet waits (its CAs may be on the next page; `WAITING_LIMIT` of them at most): each is checked
once, with its CAs. While `holding`, TCP and DataStore facts wait, so that the initial state goes
out in dependency order; so do they while Secrets are left for a later round.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from libs.contracts import subjects
from libs.contracts.codec import encode
from libs.contracts.messages import Message
from libs.pki import SecretKind, TcpSpec
from services.watcher.facts import (
    Batch,
    Checked,
    Job,
    Tcp,
    datastore_ca_summary,
    datastore_client_summary,
    datastore_deleted,
    meta,
    msg_id,
    observe_datastore,
    observe_tcp,
    owner_of,
    secret_data,
    secret_deleted,
    tcp_deleted,
    tcp_spec,
)

Obj = dict[str, Any]
TcpKey = tuple[str, str]
SecretKey = tuple[str, str, SecretKind]
CA_CERT_KEYS = {SecretKind.CA: "ca.crt", SecretKind.FRONT_PROXY_CA: "front-proxy-ca.crt"}
WAITING_LIMIT = 500  # Secrets held back for their CAs, at most (their data stays in memory)


def checked(subject: str, message: Message) -> Checked:
    """A message that needs no checking, ready to publish."""
    return Checked(subject, encode(message), msg_id(message))


@dataclass(frozen=True, slots=True)
class SecretRef:
    """What is kept of a Secret between events: enough to report its deletion."""

    name: str
    uid: str
    resource_version: str

    @classmethod
    def of(cls, obj: Obj) -> SecretRef:
        m = meta(obj)
        return cls(
            str(m.get("name") or ""), str(m.get("uid") or ""), str(m.get("resourceVersion") or "")
        )

    def as_object(self, namespace: str) -> Obj:
        return {
            "metadata": {
                "name": self.name,
                "namespace": namespace,
                "uid": self.uid,
                "resourceVersion": self.resource_version,
            }
        }


@dataclass
class Round:
    """Everything dirty at one moment, in publication order: `deleted`, then the checks of
    `batch` (plus `refetch` once read again), then `others` (DataStores, TCPs)."""

    deleted: list[Checked]
    batch: Batch
    refetch: list[tuple[SecretKey, int]]  # (Secret, index of its TCP in batch.tcps)
    others: list[Checked]

    def empty(self) -> bool:
        return not (self.deleted or self.batch.jobs or self.refetch or self.others)


@dataclass
class Cache:
    tcps: dict[TcpKey, Obj] = field(default_factory=dict)
    specs: dict[TcpKey, TcpSpec | None] = field(default_factory=dict)
    secrets: dict[TcpKey, dict[SecretKind, SecretRef]] = field(
        default_factory=lambda: defaultdict(dict)
    )
    ca_certs: dict[tuple[TcpKey, SecretKind], bytes] = field(default_factory=dict)
    datastore_cas: dict[str, bytes] = field(default_factory=dict)  # DataStore -> its CA (PEM)
    datastore_clients: dict[str, bytes] = field(default_factory=dict)  # -> its client cert
    pending: dict[SecretKey, Obj] = field(default_factory=dict)  # data not yet checked
    gone_secrets: dict[SecretKey, SecretRef] = field(default_factory=dict)
    gone_tcps: dict[TcpKey, Obj] = field(default_factory=dict)
    gone_datastores: dict[str, Obj] = field(default_factory=dict)
    datastores: dict[str, Obj] = field(default_factory=dict)
    dirty_secrets: set[SecretKey] = field(default_factory=set)
    dirty_tcps: set[TcpKey] = field(default_factory=set)
    dirty_datastores: set[str] = field(default_factory=set)
    waiting: set[SecretKey] = field(default_factory=set)  # for their CAs (initial list)
    holding: bool = True  # TCP and DataStore facts wait for the initial Secrets
    secrets_listed: bool = False

    # --- events ----------------------------------------------------------------------------

    def fold(self, resource: str, kind: str, obj: Obj) -> None:
        """One informer event: kind ADDED, MODIFIED, DELETED, or SYNCED (a list completed)."""
        if kind == "SYNCED":
            if resource == "secrets" and not self.secrets_listed:
                self.secrets_listed = True
                self.dirty_secrets |= self.waiting
                self.waiting.clear()
            return
        if resource == "secrets":
            self._fold_secret(kind, obj)
        elif resource == "tcps":
            self._fold_tcp(kind, obj)
        elif resource == "datastores":
            name = str(meta(obj).get("name") or "")
            if kind == "DELETED":
                self.datastores.pop(name, None)
                self.gone_datastores[name] = obj
            else:
                self.datastores[name] = obj
                self.gone_datastores.pop(name, None)
            self.dirty_datastores.add(name)

    def _fold_secret(self, kind: str, obj: Obj) -> None:
        owner = owner_of(obj)
        if owner is None:
            return
        tcp_name, secret_kind = owner
        ns = str(meta(obj).get("namespace") or "")
        key, skey = (ns, tcp_name), (ns, tcp_name, secret_kind)
        if kind == "DELETED":
            self.pending.pop(skey, None)
            self.waiting.discard(skey)
            if self.secrets[key].pop(secret_kind, None) is not None:
                self.gone_secrets[skey] = SecretRef.of(obj)
            if secret_kind in CA_CERT_KEYS:
                self.ca_certs.pop((key, secret_kind), None)
        else:
            self.secrets[key][secret_kind] = SecretRef.of(obj)
            self.pending[skey] = obj
            self.gone_secrets.pop(skey, None)
            if secret_kind in CA_CERT_KEYS:
                pem = secret_data(obj)[0].get(CA_CERT_KEYS[secret_kind])
                if pem is None:
                    self.ca_certs.pop((key, secret_kind), None)
                else:
                    self.ca_certs[(key, secret_kind)] = pem
        self.dirty_secrets.add(skey)
        if secret_kind in CA_CERT_KEYS:
            self.dirty_secrets.update((ns, tcp_name, k) for k in self.secrets[key])

    def _fold_tcp(self, kind: str, obj: Obj) -> None:
        m = meta(obj)
        key = (str(m.get("namespace") or ""), str(m.get("name") or ""))
        if kind == "DELETED":
            self.tcps.pop(key, None)
            self.specs.pop(key, None)
            self.gone_tcps[key] = obj
        else:
            previous = self.tcps.get(key)
            self.tcps[key] = obj
            self.gone_tcps.pop(key, None)
            spec = tcp_spec(obj)
            if previous is None or spec != self.specs.get(key):
                self.specs[key] = spec
                self.dirty_secrets.update((key[0], key[1], k) for k in self.secrets.get(key, {}))
        self.dirty_tcps.add(key)

    def datastore_material(self, name: str, ca: bytes | None, client: bytes | None) -> bool:
        """The CA certificate and the client certificate the DataStore `name` references, as
        last read (None: none, or unreadable). When either changed, the DataStore's facts and
        the datastore certificate of every TCP on it are checked again; True then."""
        if self.datastore_cas.get(name) == ca and self.datastore_clients.get(name) == client:
            return False
        for table, pem in ((self.datastore_cas, ca), (self.datastore_clients, client)):
            if pem is None:
                table.pop(name, None)
            else:
                table[name] = pem
        self.dirty_datastores.add(name)
        kind = SecretKind.DATASTORE_CERTIFICATE
        for key, spec in self.specs.items():
            if spec is not None and spec.datastore == name and kind in self.secrets.get(key, {}):
                self.dirty_secrets.add((key[0], key[1], kind))
        return True

    # --- handing over ----------------------------------------------------------------------

    def has_work(self) -> bool:
        others = not self.holding and bool(self.dirty_tcps or self.dirty_datastores)
        return bool(self.dirty_secrets) or others

    def _cas_known(self, key: TcpKey) -> bool:
        return all((key, kind) in self.ca_certs for kind in CA_CERT_KEYS)

    def take(self, now: datetime, limit: int | None = None) -> Round:
        """What is dirty, handed over (at most `limit` Secrets to check; the rest stays dirty);
        the cache keeps only identities of it."""
        deleted: list[Checked] = []
        tcps: list[Tcp] = []
        index: dict[TcpKey, int] = {}
        jobs: list[Job] = []
        refetch: list[tuple[SecretKey, int]] = []
        todo = sorted(self.dirty_secrets)
        taken = 0
        for skey in todo:
            if limit is not None and len(jobs) + len(refetch) >= limit:
                break
            taken += 1
            ns, tcp, kind = skey
            key = (ns, tcp)
            name = f"{tcp}-{kind.value}"
            if (
                not self.secrets_listed
                and not self._cas_known(key)
                and len(self.waiting) < WAITING_LIMIT
            ):
                self.waiting.add(skey)
                continue
            self.waiting.discard(skey)
            if kind not in self.secrets.get(key, {}):
                gone = self.gone_secrets.pop(skey, None)
                if gone is not None:
                    event = secret_deleted(gone.as_object(ns), tcp, kind, now)
                    deleted.append(checked(subjects.secret_event(ns, tcp, name), event))
                continue
            if key not in index:
                index[key] = len(tcps)
                tcps.append(
                    Tcp(
                        ns,
                        tcp,
                        self.specs.get(key),
                        self.ca_certs.get((key, SecretKind.CA)),
                        self.ca_certs.get((key, SecretKind.FRONT_PROXY_CA)),
                        *self._datastore_pems_of(key),
                    )
                )
            obj = self.pending.pop(skey, None)
            if obj is None:
                refetch.append((skey, index[key]))
            else:
                jobs.append(Job(index[key], kind.value, obj))
        self.dirty_secrets = set(todo[taken:])
        others = self._others(now) if not self.dirty_secrets else []
        return Round(deleted, Batch(now, tcps, jobs), refetch, others)

    def _datastore_pems_of(self, key: TcpKey) -> tuple[bytes | None, bytes | None]:
        spec = self.specs.get(key)
        if spec is None:
            return None, None
        return self.datastore_cas.get(spec.datastore), self.datastore_clients.get(spec.datastore)

    def _others(self, now: datetime) -> list[Checked]:
        if self.holding:
            return []
        out: list[Checked] = []
        for name in sorted(self.dirty_datastores):
            ds = self.datastores.get(name)
            if ds is not None:
                observed = observe_datastore(
                    ds,
                    ca=datastore_ca_summary(self.datastore_cas.get(name)),
                    client=datastore_client_summary(self.datastore_clients.get(name)),
                    now=now,
                )
                out.append(checked(subjects.datastore_event(name), observed))
            elif (gone_ds := self.gone_datastores.pop(name, None)) is not None:
                out.append(checked(subjects.datastore_event(name), datastore_deleted(gone_ds, now)))
        for key in sorted(self.dirty_tcps):
            obj = self.tcps.get(key)
            if obj is not None:
                out.append(checked(subjects.tcp_event(*key), observe_tcp(obj, now)))
            elif (gone := self.gone_tcps.pop(key, None)) is not None:
                out.append(checked(subjects.tcp_event(*key), tcp_deleted(gone, now)))
        self.dirty_datastores.clear()
        self.dirty_tcps.clear()
        return out

    def reread(self, skey: SecretKey, obj: Obj | None) -> bool:
        """A Secret read again for `Round.refetch`; False when it is to be skipped (gone, or
        no longer the same Secret: its own event will say so)."""
        ns, tcp, kind = skey
        if obj is None or owner_of(obj) != (tcp, kind) or kind not in self.secrets[(ns, tcp)]:
            return False
        self.secrets[(ns, tcp)][kind] = SecretRef.of(obj)
        return True

    def subjects(self) -> set[str]:
        """The events subjects of every object the cache holds."""
        out = {subjects.tcp_event(*key) for key in self.tcps}
        out.update(subjects.datastore_event(name) for name in self.datastores)
        for (ns, tcp), kinds in self.secrets.items():
            out.update(subjects.secret_event(ns, tcp, f"{tcp}-{kind.value}") for kind in kinds)
        return out

    def resync(self) -> tuple[int, int]:
        """Mark every known object dirty, so that its facts are published again (the Secrets
        read afresh first); the counts of TCPs and Secrets."""
        for (ns, tcp), kinds in self.secrets.items():
            self.dirty_secrets.update((ns, tcp, kind) for kind in kinds)
        self.dirty_tcps.update(self.tcps)
        self.dirty_datastores.update(self.datastores)
        return self.counts()

    def counts(self) -> tuple[int, int]:
        return len(self.tcps), sum(len(v) for v in self.secrets.values())
