"""The watcher process: list-and-watch Secrets, DataStores and TCPs; publish facts about them.

Informers run on threads and feed one asyncio queue. The publisher drains the queue in batches,
folds the batch into its caches and marks what changed ("dirty"), then computes the facts of each
dirty object once (a burst of changes to one Secret costs one publication) and publishes them
concurrently. A change of a TCP's CA or spec marks every Secret of that TCP dirty, since their
signer and SAN checks depend on it. The initial lists are published in dependency order
(Secrets, DataStores, TCPs) and closed by `WatcherSynced`.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

import msgspec

from libs.bus import Bus, connect, ensure_topology, publish
from libs.contracts import subjects
from libs.contracts.codec import encode
from libs.contracts.messages import Message, WatcherSynced
from libs.kube.client import KubeClient
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


def msg_id(message: Message) -> str:
    """Identical facts get identical ids (JetStream drops the repeat); `observed_at` aside."""
    if "observed_at" in message.__struct_fields__:
        message = msgspec.structs.replace(message, observed_at=None)
    return hashlib.sha256(encode(message)).hexdigest()[:32]


class Watcher:
    def __init__(self, bus: Bus, kube: KubeClient, settings: Settings) -> None:
        self.bus = bus
        self.kube = kube
        self.settings = settings
        self.loop = asyncio.get_running_loop()
        self.queue: asyncio.Queue[tuple[str, str, Obj]] = asyncio.Queue()
        self.stop = threading.Event()
        self.tcps: dict[TcpKey, Obj] = {}
        self.specs: dict[TcpKey, TcpSpec | None] = {}
        self.secrets: dict[TcpKey, dict[SecretKind, Obj]] = defaultdict(dict)
        self.gone_secrets: dict[SecretKey, Obj] = {}
        self.gone_tcps: dict[TcpKey, Obj] = {}
        self.datastores: dict[str, Obj] = {}
        self.dirty_secrets: set[SecretKey] = set()
        self.dirty_tcps: set[TcpKey] = set()
        self.dirty_datastores: set[str] = set()
        self.synced: dict[str, asyncio.Event] = {
            r: asyncio.Event() for r in ("secrets", "datastores", "tcps")
        }
        self.published = 0
        self.ready = False
        self.idle = asyncio.Event()  # everything folded so far is published

    # --- informer threads -> queue ---------------------------------------------------------

    def start_informer(self, resource: str, selector: str = "") -> threading.Thread:
        def on_event(kind: str, obj: Obj) -> None:
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
            return
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
            if self.secrets[key].pop(secret_kind, None) is not None:
                self.gone_secrets[skey] = obj
        else:
            self.secrets[key][secret_kind] = obj
            self.gone_secrets.pop(skey, None)
        self.dirty_secrets.add(skey)
        if secret_kind in (SecretKind.CA, SecretKind.FRONT_PROXY_CA):
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

    def _ca_pem(self, key: TcpKey, kind: SecretKind, data_key: str) -> bytes | None:
        obj = self.secrets.get(key, {}).get(kind)
        if obj is None:
            return None
        return secret_data(obj)[0].get(data_key)

    def compute(self) -> list[tuple[str, Message]]:
        """The messages for everything dirty, in dependency order; clears the dirty sets."""
        now = datetime.now(UTC)
        out: list[tuple[str, Message]] = []
        for ns, tcp, kind in sorted(self.dirty_secrets):
            key = (ns, tcp)
            obj = self.secrets.get(key, {}).get(kind)
            name = f"{tcp}-{kind.value}"
            if obj is None:
                gone = self.gone_secrets.pop((ns, tcp, kind), None)
                if gone is not None:
                    out.append(
                        (subjects.secret_event(ns, tcp, name), secret_deleted(gone, tcp, kind, now))
                    )
                continue
            observed = observe_secret(
                obj,
                tcp,
                kind,
                tcp=self.specs.get(key),
                now=now,
                ca_pem=self._ca_pem(key, SecretKind.CA, "ca.crt"),
                front_proxy_ca_pem=self._ca_pem(
                    key, SecretKind.FRONT_PROXY_CA, "front-proxy-ca.crt"
                ),
                datastore_ca_pem=None,
            )
            out.append((subjects.secret_event(ns, tcp, name), observed))
        for name in sorted(self.dirty_datastores):
            ds = self.datastores.get(name)
            if ds is not None:
                out.append(
                    (
                        subjects.datastore_event(name),
                        observe_datastore(ds, ca=None, client=None, now=now),
                    )
                )
        for key in sorted(self.dirty_tcps):
            obj = self.tcps.get(key)
            if obj is not None:
                out.append((subjects.tcp_event(*key), observe_tcp(obj, now)))
            elif (gone := self.gone_tcps.pop(key, None)) is not None:
                out.append((subjects.tcp_event(*key), tcp_deleted(gone, now)))
        self.dirty_secrets.clear()
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

    async def run_publisher(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            getter = asyncio.create_task(self.queue.get())
            stopper = asyncio.create_task(stop.wait())
            done, _ = await asyncio.wait({getter, stopper}, return_when=asyncio.FIRST_COMPLETED)
            stopper.cancel()
            if getter not in done:
                getter.cancel()
                return
            self.idle.clear()
            self.fold(*getter.result())
            while not self.queue.empty():
                self.fold(*self.queue.get_nowait())
            messages = await asyncio.to_thread(self.compute)
            if messages:
                await self.publish_all(messages)
            if self.queue.empty():
                self.idle.set()

    async def start(self) -> None:
        """Initial lists in dependency order, then `WatcherSynced`."""
        selector = self.settings.watch_label_selector
        for resource in ("secrets", "datastores", "tcps"):
            self.start_informer(resource, selector if resource == "secrets" else "")
            await self.synced[resource].wait()
            await self.idle.wait()
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
        await watcher.start()
        await stop.wait()
        watcher.stop.set()
        await publisher
        await health.stop()
    finally:
        await bus.close()
        kube.close()
