"""The watcher process: list-and-watch Secrets, DataStores and TCPs; publish facts about them.

Informers run on threads and feed one asyncio queue (bounded: an informer waits while
`MAX_QUEUED` objects are not yet folded, so a list of thousands of Secrets never piles up). The
publisher drains the queue in batches, folds the batch into its caches and marks what changed
("dirty"), then computes the facts of each dirty object once (a burst of changes to one Secret
costs one publication) and publishes them concurrently.

What is kept: per Secret only its identity (name, uid, resourceVersion), and of the two CA
Secrets of each TCP their CA certificate, which every other Secret of the TCP is checked
against. A Secret's data is held only from the event that carried it until its facts are
computed. A change of a TCP's CA or spec marks every Secret of that TCP dirty, since their
signer and SAN checks depend on it; those are read again from the API to be re-checked.

Start-up: TCPs and DataStores are listed first (small, and needed to check Secrets), then the
Secrets page by page, each page checked and published as it arrives; the TCP and DataStore
facts are held back until every Secret's are out, so the events stream still receives the
initial state in dependency order (Secrets, DataStores, TCPs), closed by `WatcherSynced`.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec

from libs.bus import Bus, connect, ensure_topology, publish
from libs.contracts import subjects
from libs.contracts.codec import encode
from libs.contracts.messages import Message, WatcherSynced
from libs.kube.client import KubeClient
from libs.kube.errors import KubeError, NotFound
from libs.kube.informer import Informer
from libs.pki import SecretKind, TcpSpec
from libs.runtime import topology
from libs.runtime.config import Settings
from libs.runtime.health import HealthServer
from services.watcher.facts import (
    meta,
    observe_datastore,
    observe_secret,
    observe_tcp,
    owner_of,
    secret_data,
    secret_deleted,
    tcp_deleted,
    tcp_spec,
)

log = logging.getLogger(__name__)

Obj = dict[str, Any]
TcpKey = tuple[str, str]
SecretKey = tuple[str, str, SecretKind]
PUBLISH_CONCURRENCY = 256
MAX_QUEUED = 1000
REFETCH_RETRY = 1.0  # seconds before re-reading a Secret the API could not serve
CA_CERT_KEYS = {SecretKind.CA: "ca.crt", SecretKind.FRONT_PROXY_CA: "front-proxy-ca.crt"}


def msg_id(message: Message) -> str:
    """Identical facts get identical ids (JetStream drops the repeat); `observed_at` aside."""
    if "observed_at" in message.__struct_fields__:
        message = msgspec.structs.replace(message, observed_at=None)
    return hashlib.sha256(encode(message)).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class SecretRef:
    """What the watcher keeps of a Secret between events: enough to report its deletion."""

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


class Watcher:
    def __init__(self, bus: Bus, kube: KubeClient, settings: Settings) -> None:
        self.bus = bus
        self.kube = kube
        self.settings = settings
        self.loop = asyncio.get_running_loop()
        self.queue: asyncio.Queue[tuple[str, str, Obj]] = asyncio.Queue()
        self.slots = threading.Semaphore(MAX_QUEUED)
        self.stop = threading.Event()
        self.tcps: dict[TcpKey, Obj] = {}
        self.specs: dict[TcpKey, TcpSpec | None] = {}
        self.secrets: dict[TcpKey, dict[SecretKind, SecretRef]] = defaultdict(dict)
        self.ca_certs: dict[tuple[TcpKey, SecretKind], bytes] = {}
        self.pending: dict[SecretKey, Obj] = {}  # data not yet checked
        self.gone_secrets: dict[SecretKey, SecretRef] = {}
        self.gone_tcps: dict[TcpKey, Obj] = {}
        self.datastores: dict[str, Obj] = {}
        self.dirty_secrets: set[SecretKey] = set()
        self.dirty_tcps: set[TcpKey] = set()
        self.dirty_datastores: set[str] = set()
        self.retry_at: float | None = None  # monotonic time of the next re-read attempt
        self.holding = True  # TCP and DataStore facts wait for the initial Secrets
        self.secrets_listed = False  # until then a Secret waits for its TCP's CAs to be seen
        self.flushes: list[asyncio.Future[None]] = []
        self.synced: dict[str, asyncio.Event] = {
            r: asyncio.Event() for r in ("secrets", "datastores", "tcps")
        }
        self.published = 0
        self.ready = False

    # --- informer threads -> queue ---------------------------------------------------------

    def start_informer(self, resource: str, selector: str = "") -> threading.Thread:
        def on_event(kind: str, obj: Obj) -> None:
            while not self.slots.acquire(timeout=0.5):
                if self.stop.is_set():
                    return
            self.loop.call_soon_threadsafe(self.queue.put_nowait, (resource, kind, obj))

        def on_synced(version: str, count: int) -> None:
            marker = {"resourceVersion": version, "count": count}
            self.loop.call_soon_threadsafe(self.queue.put_nowait, (resource, "SYNCED", marker))

        informer = Informer(
            self.kube,
            resource,
            on_event,
            on_synced,
            label_selector=selector,
            watch_timeout=int(self.settings.watch_timeout.total_seconds()),
            stop=self.stop,
        )
        thread = threading.Thread(target=informer.run, name=f"informer-{resource}", daemon=True)
        thread.start()
        return thread

    # --- folding events into caches --------------------------------------------------------

    def fold(self, resource: str, kind: str, obj: Obj) -> None:
        if kind == "SYNCED":
            self.synced[resource].set()
            self.secrets_listed = self.secrets_listed or resource == "secrets"
            return
        if kind == "FLUSH":
            return
        self.slots.release()
        if resource == "secrets":
            self._fold_secret(kind, obj)
        elif resource == "tcps":
            self._fold_tcp(kind, obj)
        elif resource == "datastores":
            name = str(meta(obj).get("name") or "")
            if kind == "DELETED":
                self.datastores.pop(name, None)
            else:
                self.datastores[name] = obj
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
            gone = self.secrets[key].pop(secret_kind, None)
            if gone is not None:
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

    # --- facts ------------------------------------------------------------------------------

    def _current(self, skey: SecretKey) -> Obj | None:
        """The Secret with its data: from the event that carried it, else read again (its CA or
        its TCP changed). None when it is gone; KubeError when the API cannot say."""
        obj = self.pending.pop(skey, None)
        if obj is not None:
            return obj
        ns, tcp, kind = skey
        try:
            obj = self.kube.get_secret(ns, f"{tcp}-{kind.value}")
        except NotFound:
            return None  # its DELETED event is on its way
        if owner_of(obj) != (tcp, kind):
            return None
        self.secrets[(ns, tcp)][kind] = SecretRef.of(obj)
        return obj

    def _cas_known(self, key: TcpKey) -> bool:
        return all((key, kind) in self.ca_certs for kind in CA_CERT_KEYS)

    def compute(self) -> list[tuple[str, Message]]:
        """The messages for everything dirty, in dependency order; clears what it handled."""
        now = datetime.now(UTC)
        out: list[tuple[str, Message]] = []
        later: set[SecretKey] = set()
        retry = False
        for ns, tcp, kind in sorted(self.dirty_secrets):
            key, skey = (ns, tcp), (ns, tcp, kind)
            name = f"{tcp}-{kind.value}"
            if not self.secrets_listed and not self._cas_known(key):
                later.add(skey)  # its CAs may be on the next page: check it once, with them
                continue
            if kind not in self.secrets.get(key, {}):
                gone = self.gone_secrets.pop(skey, None)
                if gone is not None:
                    event = secret_deleted(gone.as_object(ns), tcp, kind, now)
                    out.append((subjects.secret_event(ns, tcp, name), event))
                continue
            try:
                obj = self._current(skey)
            except KubeError as exc:
                log.warning("cannot re-read Secret %s/%s: %s", ns, name, exc)
                later.add(skey)
                retry = True
                continue
            if obj is None:
                continue
            observed = observe_secret(
                obj,
                tcp,
                kind,
                tcp=self.specs.get(key),
                now=now,
                ca_pem=self.ca_certs.get((key, SecretKind.CA)),
                front_proxy_ca_pem=self.ca_certs.get((key, SecretKind.FRONT_PROXY_CA)),
                datastore_ca_pem=None,
            )
            out.append((subjects.secret_event(ns, tcp, name), observed))
        self.dirty_secrets = later
        self.retry_at = time.monotonic() + REFETCH_RETRY if retry else None
        if self.holding:
            return out
        for ds_name in sorted(self.dirty_datastores):
            ds = self.datastores.get(ds_name)
            if ds is not None:
                observed_ds = observe_datastore(ds, ca=None, client=None, now=now)
                out.append((subjects.datastore_event(ds_name), observed_ds))
        for tcp_key in sorted(self.dirty_tcps):
            tcp_obj = self.tcps.get(tcp_key)
            if tcp_obj is not None:
                out.append((subjects.tcp_event(*tcp_key), observe_tcp(tcp_obj, now)))
            elif (gone_tcp := self.gone_tcps.pop(tcp_key, None)) is not None:
                out.append((subjects.tcp_event(*tcp_key), tcp_deleted(gone_tcp, now)))
        self.dirty_datastores.clear()
        self.dirty_tcps.clear()
        return out

    async def publish_all(self, messages: list[tuple[str, Message]]) -> None:
        slots = asyncio.Semaphore(PUBLISH_CONCURRENCY)

        async def one(subject: str, message: Message) -> None:
            async with slots:
                await publish(self.bus, subject, encode(message), msg_id=msg_id(message))

        await asyncio.gather(*(one(s, m) for s, m in messages))
        self.published += len(messages)

    # --- the loop ---------------------------------------------------------------------------

    async def _next(self, stop: asyncio.Event) -> tuple[str, str, Obj] | None:
        """The next queued item; a FLUSH when a re-read is due; None once stopped."""
        timeout = None if self.retry_at is None else max(0.0, self.retry_at - time.monotonic())
        getter = asyncio.create_task(self.queue.get())
        stopper = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait(
            {getter, stopper}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
        )
        stopper.cancel()
        if getter in done:
            return getter.result()
        getter.cancel()
        return None if stop.is_set() else ("", "FLUSH", {})

    async def run_publisher(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            item = await self._next(stop)
            if item is None:
                return
            self.fold(*item)
            while not self.queue.empty():
                self.fold(*self.queue.get_nowait())
            waiting, self.flushes = self.flushes, []
            messages = await asyncio.to_thread(self.compute)
            if messages:
                await self.publish_all(messages)
            for done in waiting:
                if not done.done():
                    done.set_result(None)

    async def flush(self) -> None:
        """Wait until everything queued so far is folded, and its facts published."""
        done = self.loop.create_future()
        self.flushes.append(done)
        self.queue.put_nowait(("", "FLUSH", {}))
        await done

    async def start(self) -> None:
        """TCPs and DataStores, then the Secrets; publish Secrets, DataStores, TCPs, then
        `WatcherSynced`."""
        for resource in ("tcps", "datastores"):
            self.start_informer(resource)
        for resource in ("tcps", "datastores"):
            await self.synced[resource].wait()
        self.start_informer("secrets", self.settings.watch_label_selector)
        await self.synced["secrets"].wait()
        await self.flush()
        self.holding = False
        await self.flush()
        tcps, secrets = len(self.tcps), sum(len(v) for v in self.secrets.values())
        marker = WatcherSynced(
            resource_version="", tcps=tcps, secrets=secrets, at=datetime.now(UTC)
        )
        await publish(self.bus, subjects.WATCHER_SYNCED, encode(marker), msg_id=None)
        self.ready = True
        log.info("initial lists published: %d TCPs, %d Secrets", tcps, secrets)


async def main(settings: Settings, stop: asyncio.Event) -> None:
    kube = KubeClient.from_kubeconfig(settings.kubeconfig or None)
    bus = await connect(settings.nats_url, name="certlc-watcher")
    try:
        await ensure_topology(bus, topology.streams(settings.stream_replicas), topology.CONSUMERS)
        watcher = Watcher(bus, kube, settings)
        health = HealthServer(
            lambda: (watcher.ready and bus.is_connected, "ready" if watcher.ready else "listing"),
            port=settings.health_port,
        )
        if settings.health_port >= 0:
            await health.start()
        publisher = asyncio.create_task(watcher.run_publisher(stop))
        starter = asyncio.create_task(watcher.start())
        stopper = asyncio.create_task(stop.wait())
        await asyncio.wait({starter, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if starter.done():
            starter.result()  # a failed start stops the service with its error
        await stopper
        watcher.stop.set()
        starter.cancel()
        await publisher
        await health.stop()
    finally:
        await bus.close()
        kube.close()
