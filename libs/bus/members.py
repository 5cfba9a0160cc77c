"""Which replicas of a service are alive, heard over core NATS, and the partitions this one owns.

Each replica publishes a heartbeat on `certlc.members.<service>` every `interval` and listens to
the others' (a plain subscription: nothing is stored, nothing to clean up after a crash). A
replica is live while it was heard within `lease` by the listener's own monotonic clock
(`libs.contracts.partitions.live`). A replica that stops cleanly says so, and its partitions move
at once; one that dies is dropped when its lease runs out. A replica that hears nobody, for
instance while NATS is down, owns every partition: that errs on the side of doing the work, which
is safe because every decision is idempotent (libs/contracts/partitions.py).

The payload is the member id only. `on_change` is called with the new set of owned partitions
whenever it changes (and once at start).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import secrets
import socket
import time
from collections.abc import Callable

import nats.errors
from nats.aio.msg import Msg

from libs.bus.connect import Bus
from libs.contracts.partitions import live, owned_by

log = logging.getLogger(__name__)

LEAVING = b"leaving:"
MEMBER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")  # what member_id() makes


def member_id() -> str:
    """This process's id: the host (the pod's name) plus a random part, so that a restarted pod
    is a new member and two processes on one host are two."""
    host = socket.gethostname().split(".", 1)[0] or "host"
    return f"{host}-{os.getpid()}-{secrets.token_hex(3)}"


class Membership:
    def __init__(
        self,
        bus: Bus,
        subject: str,
        *,
        partitions: int,
        lease: float,
        me: str | None = None,
        on_change: Callable[[frozenset[int]], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if lease <= 0:
            raise ValueError("the member lease must be positive")
        self.bus = bus
        self.subject = subject
        self.partitions = partitions
        self.lease = lease
        self.interval = lease / 4
        self.me = me or member_id()
        self.on_change = on_change
        self.clock = clock
        self.heard: dict[str, float] = {}
        self.owned: frozenset[int] = frozenset(range(partitions))
        self.listening = asyncio.Event()  # set once it hears the others

    def members(self) -> frozenset[str]:
        return live(self.heard, self.clock(), self.lease) | {self.me}

    def _update(self) -> None:
        members = self.members()
        owned = owned_by(self.partitions, members, self.me)
        if owned != self.owned:
            log.info(
                "partitions reassigned",
                extra={"member": self.me, "members": len(members), "partitions_owned": len(owned)},
            )
            self.owned = owned
            if self.on_change is not None:
                self.on_change(owned)

    async def _on_message(self, msg: Msg) -> None:
        leaving = msg.data.startswith(LEAVING)
        member = msg.data.removeprefix(LEAVING).decode(errors="replace")
        if not MEMBER_ID.fullmatch(member):
            log.warning(
                "ignoring a heartbeat that names no member id (%d bytes)",
                len(msg.data),
                extra={"subject": self.subject},
            )
            return
        if leaving:
            self.heard.pop(member, None)
        elif member != self.me:
            self.heard[member] = self.clock()
        self._update()

    async def _beat(self, payload: bytes) -> None:
        with contextlib.suppress(nats.errors.Error, OSError):
            await self.bus.client.publish(self.subject, payload)

    async def run(self, stop: asyncio.Event) -> None:
        sub = await self.bus.client.subscribe(self.subject, cb=self._on_message)
        self.listening.set()
        if self.on_change is not None:
            self.on_change(self.owned)
        try:
            while not stop.is_set():
                await self._beat(self.me.encode())
                for member, at in list(self.heard.items()):  # forget the long gone
                    if self.clock() - at > 10 * self.lease:
                        del self.heard[member]
                self._update()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=self.interval)
        finally:
            await self._beat(LEAVING + self.me.encode())
            with contextlib.suppress(nats.errors.Error):
                await sub.unsubscribe()
