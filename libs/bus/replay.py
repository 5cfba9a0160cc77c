"""Follow a whole stream from its first message, then live: an ordered, ack-less consumer.

For a stream that keeps the newest message per subject this replays a compacted snapshot and
then every change, which is how a stateless decider rebuilds its state after a restart without a
durable cursor. The server-side consumer is ephemeral and flow-controlled; nats-py recreates it
after a gap (missed heartbeats, a server restart), resuming after the last sequence seen.

`on_message(subject, data, seq)` runs for every message in order; `caught_up` is set once every
message that existed when following started has been handed over.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import nats.errors
from nats.aio.msg import Msg
from nats.js.api import DeliverPolicy

from libs.bus.connect import Bus

log = logging.getLogger(__name__)

OnMessage = Callable[[str, bytes, int], Awaitable[None]]


async def follow_stream(
    bus: Bus,
    stream: str,
    subjects: str,
    on_message: OnMessage,
    *,
    stop_event: asyncio.Event,
    caught_up: asyncio.Event,
    idle_heartbeat: float = 5.0,
) -> None:
    """Hand every message of `stream` (filtered by `subjects`) to `on_message`, until stopped."""
    info = await bus.js.stream_info(stream)
    last_at_start = int(info.state.last_seq or 0)
    if int(info.state.messages or 0) == 0:
        caught_up.set()
    queue: asyncio.Queue[Msg] = asyncio.Queue(maxsize=10_000)

    async def enqueue(msg: Msg) -> None:
        await queue.put(msg)

    sub = await bus.js.subscribe(
        subjects,
        stream=stream,
        ordered_consumer=True,
        deliver_policy=DeliverPolicy.ALL,
        idle_heartbeat=idle_heartbeat,
        cb=enqueue,
    )
    log.info("following stream", extra={"stream": stream, "last_seq": last_at_start})
    stopper = asyncio.create_task(stop_event.wait())
    try:
        while not stop_event.is_set():
            getter = asyncio.create_task(queue.get())
            done, _ = await asyncio.wait({getter, stopper}, return_when=asyncio.FIRST_COMPLETED)
            if getter not in done:
                getter.cancel()
                break
            msg = getter.result()
            seq = int(msg.metadata.sequence.stream)
            try:
                await on_message(msg.subject, msg.data, seq)
            except Exception:  # one bad message must not stop the follower
                log.exception("message handler failed", extra={"subject": msg.subject, "seq": seq})
            if seq >= last_at_start or int(msg.metadata.num_pending or 0) == 0:
                caught_up.set()
    finally:
        stopper.cancel()
        with contextlib.suppress(nats.errors.Error, TimeoutError):
            await sub.unsubscribe()
