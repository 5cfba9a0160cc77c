"""The watcher process: list-and-watch Secrets, DataStores and TCPs; publish facts about them.

Informers run on threads and feed one inbox (bounded: an informer waits while `MAX_QUEUED`
objects are not yet folded, so a list of thousands of Secrets never piles up; the event loop is
woken once per burst, not once per object). The loop folds what arrives into the `Cache` at
once, and whenever no check is running, takes everything dirty as one round: Secrets to read
again are read on a worker thread, Secrets to check are checked (`checker`: in a child process
when there are many, so that checking runs on another core while this process publishes), and
the resulting messages queue for the sender, which publishes them in order with up to
`PUBLISH_CONCURRENCY` acknowledgements outstanding. So listing, checking and publishing overlap.

Start-up: TCPs and DataStores are listed first (small, and needed to check Secrets), then the
Secrets page by page, each page checked and published as it arrives; the TCP and DataStore
facts are held back until every Secret's are out, so the events stream still receives the
initial state in dependency order (Secrets, DataStores, TCPs), closed by `WatcherSynced`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import logging
import threading
import time
from collections import deque
from collections.abc import Coroutine
from datetime import UTC, datetime
from typing import Any

from libs.bus import Bus, PublishError, connect, ensure_topology, publish_until_acked
from libs.contracts import subjects
from libs.contracts.codec import encode
from libs.contracts.messages import WatcherSynced
from libs.kube.client import KubeClient
from libs.kube.errors import KubeError, NotFound
from libs.kube.informer import Informer
from libs.pki import COPYING_DRIVERS, PkiError
from libs.pki.tcp import SecretKeyRef, datastore_refs
from libs.runtime import topology
from libs.runtime.config import Settings
from libs.runtime.health import HealthServer
from services.watcher.cache import Cache, Round, SecretKey
from services.watcher.checker import CheckerError, CheckerProcess
from services.watcher.facts import Batch, Checked, Job, check, secret_data, vanished

log = logging.getLogger(__name__)

Obj = dict[str, Any]
Waiters = list[asyncio.Future[None]]
PUBLISH_CONCURRENCY = 256
MAX_QUEUED = 1000  # objects delivered by informers and not yet handed to a check
ROUND_LIMIT = 500  # Secrets checked in one round (rounds overlap with publishing)
REFETCH_RETRY = 1.0  # seconds before re-reading a Secret the API could not serve
CHILD_BATCH = 200  # Secrets: from this many on, check them in the child process
CHILD_IDLE = 10.0  # seconds without a big batch before the child process is stopped
OUTBOX = 3  # rounds taken and not yet published (being read again, checked, or published)


def release_free_memory() -> None:
    """Hand memory freed by the C heap back to the system (glibc's malloc_trim): Secrets are
    decoded into many small allocations, and after the initial lists most of them are free but
    would otherwise stay resident. A no-op where there is no glibc."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim(0)
    except (OSError, AttributeError):
        return


class Watcher:
    def __init__(self, bus: Bus, kube: KubeClient, settings: Settings) -> None:
        self.bus = bus
        self.kube = kube
        self.settings = settings
        self.loop = asyncio.get_running_loop()
        self.cache = Cache()
        self.inbox: deque[tuple[str, str, Obj]] = deque()  # appended by informer threads
        self.wake = asyncio.Event()  # the inbox got something, or a flush is asked
        self.signalled = False  # a wake-up is on its way to the loop
        self.room = threading.Event()  # set when held() dropped below MAX_QUEUED
        self.stop = threading.Event()
        self.datastores_changed = asyncio.Event()  # read their CAs again
        self.synced: dict[str, asyncio.Event] = {
            r: asyncio.Event() for r in ("secrets", "datastores", "tcps")
        }
        self.flushes: Waiters = []
        self.retry: set[SecretKey] = set()
        self.retry_at: float | None = None  # monotonic time of the next re-read attempt
        self.outbox: asyncio.Queue[tuple[asyncio.Task[list[Checked]], Waiters] | None] = (
            asyncio.Queue(OUTBOX)
        )
        self.checker = CheckerProcess()
        self.checker_idle: asyncio.TimerHandle | None = None
        self.background: set[asyncio.Future[None]] = set()
        self.published = 0
        self.ready = False
        self.publishing = True  # False while NATS does not acknowledge (set again by a success)

    # --- informer threads -> inbox ---------------------------------------------------------

    def deliver(self, item: tuple[str, str, Obj]) -> None:
        """From an informer thread: queue `item`; wake the loop unless a wake-up is pending."""
        self.inbox.append(item)
        if not self.signalled:
            self.signalled = True
            self.loop.call_soon_threadsafe(self.wake.set)

    def held(self) -> int:
        """Objects delivered and not yet folded, or folded and not yet handed to a check."""
        return len(self.inbox) + len(self.cache.pending)

    def start_informer(self, resource: str, selector: str = "") -> threading.Thread:
        def on_event(kind: str, obj: Obj) -> None:
            while self.held() >= MAX_QUEUED:  # wait for the loop to catch up
                self.room.clear()
                if self.stop.is_set():
                    return
                self.room.wait(0.1)
            self.deliver((resource, kind, obj))

        def on_synced(version: str, count: int) -> None:
            self.deliver((resource, "SYNCED", {"resourceVersion": version, "count": count}))

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

    def fold_inbox(self) -> None:
        self.wake.clear()
        self.signalled = False  # before draining: what arrives from now on wakes us again
        while self.inbox:
            resource, kind, obj = self.inbox.popleft()
            if kind == "SYNCED":
                self.synced[resource].set()
            elif resource == "datastores":
                self.datastores_changed.set()
            self.cache.fold(resource, kind, obj)
        self._make_room()

    def _make_room(self) -> None:
        if self.held() < MAX_QUEUED:
            self.room.set()

    # --- one round: read again, check, queue for publishing --------------------------------

    def _reread(self, refetch: list[tuple[SecretKey, int]]) -> list[tuple[SecretKey, Obj | None]]:
        """Each Secret read again (None when gone); runs on a worker thread."""
        out: list[tuple[SecretKey, Obj | None]] = []
        for skey, _ in refetch:
            ns, tcp, kind = skey
            try:
                obj: Obj | None = self.kube.get_secret(ns, f"{tcp}-{kind.value}")
            except NotFound:
                obj = None  # its DELETED event is on its way
            except KubeError as exc:
                log.warning("cannot re-read Secret %s/%s-%s: %s", ns, tcp, kind.value, exc)
                self.retry.add(skey)
                continue
            out.append((skey, obj))
        return out

    async def check(self, batch: Batch) -> list[Checked]:
        """Check the Secrets of `batch`: in the child process when there are many."""
        if len(batch.jobs) < CHILD_BATCH:
            return await asyncio.to_thread(check, batch) if batch.jobs else []
        if self.checker_idle is not None:
            self.checker_idle.cancel()
        try:
            results = await self.checker.check(batch)
        except CheckerError as exc:
            log.warning("%s; checking in-process", exc)
            results = await asyncio.to_thread(check, batch)
        self._stop_checker_later()
        return results

    def _stop_checker_later(self) -> None:
        """Stop the child process after CHILD_IDLE seconds without a big batch."""
        if self.checker_idle is not None:
            self.checker_idle.cancel()

        def stop() -> None:
            self.checker_idle = None
            self.background.add(task := asyncio.ensure_future(self.checker.stop()))
            task.add_done_callback(self.background.discard)

        self.checker_idle = self.loop.call_later(CHILD_IDLE, stop)

    async def run_round(self, work: Round) -> list[Checked]:
        """The messages of one round, in publication order."""
        if work.refetch:
            tcp_of = dict(work.refetch)
            for skey, obj in await asyncio.to_thread(self._reread, work.refetch):
                if obj is not None and self.cache.reread(skey, obj):
                    work.batch.jobs.append(Job(tcp_of[skey], skey[2].value, obj))
            if self.retry:
                self.retry_at = time.monotonic() + REFETCH_RETRY
        checked = await self.check(work.batch)
        return [*work.deleted, *checked, *work.others]

    async def publish_all(self, messages: list[Checked]) -> None:
        """Publish with up to PUBLISH_CONCURRENCY acknowledgements outstanding."""
        todo = iter(messages)

        async def worker() -> None:
            for m in todo:
                await self._publish(m.subject, m.payload, m.msg_id)

        await asyncio.gather(*(worker() for _ in range(min(PUBLISH_CONCURRENCY, len(messages)))))
        self.published += len(messages)

    async def _publish(self, subject: str, payload: bytes, msg_id: str | None) -> None:
        """Publish until acknowledged, however long NATS is away; not ready meanwhile."""
        await publish_until_acked(
            self.bus, subject, payload, msg_id=msg_id, on_outage=self._publish_failed
        )
        self.publishing = True

    def _publish_failed(self, exc: PublishError) -> None:
        if self.publishing:
            log.warning("cannot publish, not ready until NATS acknowledges again: %s", exc)
        self.publishing = False

    def readiness(self) -> tuple[bool, str]:
        """Ready once the initial lists are out, while connected and publishing."""
        if not self.ready:
            return False, "listing"
        if not self.bus.is_connected:
            return False, "nats disconnected"
        if not self.publishing:
            return False, "nats does not acknowledge publishes"
        return True, "ready"

    async def resync(self, stop: asyncio.Event) -> None:
        """Every `resync` interval, publish again what is known of every object, read afresh
        (a safety net: a fact lost on its way, or decided on wrongly, is corrected)."""
        period = self.settings.resync.total_seconds()
        if period <= 0:
            await stop.wait()
            return
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=period)
            if stop.is_set() or not self.ready:
                continue
            tcps, secrets = self.cache.resync()
            log.info("periodic resync: %d TCPs, %d Secrets published again", tcps, secrets)
            self.wake.set()

    async def follow_datastore_cas(self, stop: asyncio.Event) -> None:
        """Read the CA certificate and the client certificate each DataStore references, every
        CERTLC_DATASTORE_POLL and whenever a DataStore changes. Kamaji does not label those
        Secrets, so no watch of certlc's sees them; a change re-checks the datastore
        certificate of every TCP on that DataStore (which lifecycle then re-issues: signed by
        the new etcd CA, or copied again from MySQL's or PostgreSQL's)."""
        period = self.settings.datastore_poll.total_seconds()
        if period <= 0:
            await stop.wait()
            return
        await self.synced["datastores"].wait()
        while not stop.is_set():
            self.datastores_changed.clear()
            read = await asyncio.to_thread(self._read_datastores, dict(self.cache.datastores))
            changed = [
                n
                for n, (ca, client) in read.items()
                if self.cache.datastore_material(n, ca, client)
            ]
            if changed:
                log.info("DataStore certificates changed: %s", ", ".join(sorted(changed)))
                self.wake.set()
            waits = {
                asyncio.ensure_future(stop.wait()),
                asyncio.ensure_future(self.datastores_changed.wait()),
            }
            try:
                await asyncio.wait(waits, timeout=period, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiting in waits:
                    waiting.cancel()

    def _read_datastores(
        self, datastores: dict[str, Obj]
    ) -> dict[str, tuple[bytes | None, bytes | None]]:
        """On a worker thread: the CA certificate and the client certificate each DataStore
        references (None: none); one that cannot be read now is left out (what is known
        stays)."""
        out: dict[str, tuple[bytes | None, bytes | None]] = {}
        for name, ds in datastores.items():
            try:
                refs = datastore_refs(ds)
                # etcd's client certificate is Kamaji's own: each TCP gets one of its own,
                # signed by the CA. MySQL's, PostgreSQL's and NATS's is copied to every TCP.
                driver = str((ds.get("spec") or {}).get("driver") or "")
                copied = driver in COPYING_DRIVERS
                client = self._read_ref(refs.client_cert) if copied else None
                out[name] = (self._read_ref(refs.ca_cert), client)
            except (KubeError, PkiError) as exc:
                log.warning("cannot read the certificates of DataStore %s: %s", name, exc)
        return out

    def _read_ref(self, ref: SecretKeyRef | None) -> bytes | None:
        if ref is None:
            return None
        try:
            secret = self.kube.get_secret(ref.namespace, ref.name)
        except NotFound:
            return None
        return secret_data(secret)[0].get(ref.key)

    async def _send(self) -> None:
        """Publish the rounds in the order they were taken."""
        while (item := await self.outbox.get()) is not None:
            self.wake.set()  # room in the outbox: the loop may take another round
            task, waiting = item
            messages = await task
            if messages:
                await self.publish_all(messages)
            for done in waiting:
                if not done.done():
                    done.set_result(None)

    # --- the loop ---------------------------------------------------------------------------

    async def _wait(self, stop: asyncio.Event, sender: asyncio.Task[None]) -> None:
        """Until something arrived, a flush is asked, the outbox has room, a re-read is due,
        the sender failed, or stop."""
        timeout = None if self.retry_at is None else max(0.0, self.retry_at - time.monotonic())
        waits: set[asyncio.Future[Any]] = {
            asyncio.ensure_future(self.wake.wait()),
            asyncio.ensure_future(stop.wait()),
            sender,
        }
        await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        for w in waits:
            if w is not sender:
                w.cancel()

    async def run_publisher(self, stop: asyncio.Event) -> None:
        """Fold what arrives; take rounds while the outbox has room (rounds are read again and
        checked concurrently, in order in the child, and published in the order taken)."""
        sender = asyncio.create_task(self._send())
        try:
            while not stop.is_set():
                await self._wait(stop, sender)
                if sender.done():
                    sender.result()  # a failed round or publish stops the watcher with its error
                if stop.is_set():
                    break
                self.fold_inbox()
                if self.retry_at is not None and time.monotonic() >= self.retry_at:
                    self.cache.dirty_secrets |= self.retry
                    self.retry.clear()
                    self.retry_at = None
                while (self.cache.has_work() or self.flushes) and not self.outbox.full():
                    work = self.cache.take(datetime.now(UTC), ROUND_LIMIT)
                    self._make_room()
                    waiting: Waiters = []
                    if not self.cache.has_work():  # the round took everything: flushes are met
                        waiting, self.flushes = self.flushes, []
                    self.outbox.put_nowait((asyncio.create_task(self.run_round(work)), waiting))
        finally:
            if not sender.done():
                await self.outbox.put(None)
                with contextlib.suppress(Exception):
                    await sender
            await self.checker.stop()

    async def flush(self) -> None:
        """Wait until everything delivered so far is folded, and its facts published."""
        done = self.loop.create_future()
        self.flushes.append(done)
        self.wake.set()
        await done

    async def start(self) -> None:
        """TCPs and DataStores, then the Secrets; publish Secrets, DataStores, TCPs, then
        `WatcherSynced`."""
        try:
            await self.checker.start()  # ready by the time the first page of Secrets arrives
        except CheckerError as exc:
            log.warning("%s; Secrets will be checked in-process", exc)
        self._stop_checker_later()
        for resource in ("tcps", "datastores"):
            self.start_informer(resource)
        for resource in ("tcps", "datastores"):
            await self.synced[resource].wait()
        self.start_informer("secrets", self.settings.watch_label_selector)
        await self.synced["secrets"].wait()
        await self.flush()
        self.cache.holding = False
        await self.flush()
        gone = await self.publish_vanished()
        tcps, secrets = self.cache.counts()
        marker = WatcherSynced(
            resource_version="", tcps=tcps, secrets=secrets, at=datetime.now(UTC)
        )
        await self._publish(subjects.WATCHER_SYNCED, encode(marker), None)
        await self.checker.stop()  # a re-list of many Secrets starts it again
        release_free_memory()  # the pages that held the initial lists
        self.ready = True
        log.info("initial lists published: %d TCPs, %d Secrets, %d deletions", tcps, secrets, gone)

    async def publish_vanished(self) -> int:
        """After the complete initial lists: a deletion fact for every subject of the events
        stream that none of the listed objects has (deleted while no watcher ran), so that no
        stale fact outlives a restart. The subjects come from the stream's state (stream info,
        which the watcher may read), so no consumer is needed."""
        info = await self.bus.js.stream_info(
            subjects.EVENTS_STREAM, subjects_filter=subjects.EVENTS_SUBJECTS
        )
        listed = self.cache.subjects()
        now = datetime.now(UTC)
        messages = [
            fact
            for subject in sorted((info.state.subjects or {}).keys() - listed)
            if (fact := vanished(subject, now)) is not None
        ]
        if messages:
            await self.publish_all(messages)
        return len(messages)


async def supervise(stop: asyncio.Event, **tasks: Coroutine[Any, Any, None]) -> None:
    """Run `tasks` until `stop`. One that fails, or (except `starter`, which finishes once the
    initial lists are out) returns before `stop`, stops them all with an error: the process
    exits and is restarted, rather than living on without it."""
    running: dict[asyncio.Task[Any], str] = {
        asyncio.create_task(coro, name=name): name for name, coro in tasks.items()
    }
    stopper = asyncio.create_task(stop.wait())
    try:
        while not stop.is_set():
            done, _ = await asyncio.wait({*running, stopper}, return_when=asyncio.FIRST_COMPLETED)
            for task in done - {stopper}:
                name = running.pop(task)
                task.result()  # a failed task stops the service with its error
                if name != "starter" and not stop.is_set():
                    raise RuntimeError(f"watcher task {name} ended unexpectedly")
    finally:
        stopper.cancel()
        for task in running:
            if task.get_name() == "starter" or not stop.is_set():
                task.cancel()
        for task in running:
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def main(settings: Settings, stop: asyncio.Event) -> None:
    kube = KubeClient.from_kubeconfig(settings.kubeconfig or None)
    bus = await connect(settings.nats_url, name="certlc-watcher", auth=settings.nats_auth())
    try:
        await ensure_topology(bus, *topology.for_service("watcher", settings.stream_replicas))
        watcher = Watcher(bus, kube, settings)
        health = HealthServer(watcher.readiness, port=settings.health_port)
        if settings.health_port >= 0:
            await health.start()
        try:
            await supervise(
                stop,
                publisher=watcher.run_publisher(stop),
                starter=watcher.start(),
                resync=watcher.resync(stop),
                datastore_cas=watcher.follow_datastore_cas(stop),
            )
        finally:
            watcher.stop.set()  # the informer threads
        await health.stop()
    finally:
        await bus.close()
        kube.close()
