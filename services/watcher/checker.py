"""Checking Secrets in bulk in a child process, so that checks run beside the event loop.

Checking a Secret (parsing its certificate, key and kubeconfig, verifying the signature against
its CA: `facts.check`) is CPU-bound Python that holds the GIL, so a thread cannot run it
beside the event loop that publishes. At start-up the watcher has thousands of Secrets to check
and to publish; the checks then go to `CheckerProcess`, a child process (`python -m
services.watcher.checker`, which imports only libs.pki and libs.contracts) that runs on another
core while the watcher publishes the previous batch. A handful of Secrets (the usual event) is
checked in the watcher itself: no round trip.

Protocol on the child's stdin/stdout: frames of a 4-byte big-endian length and a msgpack body;
one `Batch` in, one list of `Checked` out, in order. The child holds no state between batches
and exits at end of input. Key bytes only cross a pipe between the watcher and its own child;
what comes back is what the watcher publishes anyway (the facts, never key material).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import struct
import sys
from collections import deque
from collections.abc import Sequence
from typing import BinaryIO

import msgspec

from services.watcher.facts import Batch, Checked, check

log = logging.getLogger(__name__)

_FRAME = struct.Struct(">I")
PIPE_SIZE = 1 << 20
CHILD_COMMAND = (sys.executable, "-m", "services.watcher.checker")


_batch_decoder = msgspec.msgpack.Decoder(Batch)
_result_decoder = msgspec.msgpack.Decoder(list[Checked])
_encoder = msgspec.msgpack.Encoder()


# --- the child -------------------------------------------------------------------------------


def _read_frame(stream: BinaryIO) -> bytes | None:
    head = stream.read(_FRAME.size)
    if len(head) < _FRAME.size:
        return None
    (size,) = _FRAME.unpack(head)
    body = stream.read(size)
    if len(body) < size:
        return None
    return body


def _widen(stream: BinaryIO) -> None:
    """A 1 MiB pipe rather than 64 KiB: a batch's answer goes out without waiting for the
    watcher's event loop to read it piece by piece."""
    with contextlib.suppress(OSError, AttributeError, ValueError):
        fcntl.fcntl(stream.fileno(), fcntl.F_SETPIPE_SZ, PIPE_SIZE)


def serve(stdin: BinaryIO, stdout: BinaryIO) -> int:
    """The child's loop: a batch in, its results out, until end of input."""
    _widen(stdin)
    _widen(stdout)
    while (frame := _read_frame(stdin)) is not None:
        body = _encoder.encode(check(_batch_decoder.decode(frame)))
        stdout.write(_FRAME.pack(len(body)) + body)
        stdout.flush()
    return 0


# --- the parent's side -----------------------------------------------------------------------


class CheckerError(RuntimeError):
    """The child is gone or answered nonsense; the caller checks in-process instead."""


class CheckerProcess:
    """One child process checking batches in order, started on first use. Several batches may
    be handed over at once: the child starts on the next as soon as it has answered one."""

    def __init__(self, command: Sequence[str] = CHILD_COMMAND) -> None:
        self.command = tuple(command)
        self.proc: asyncio.subprocess.Process | None = None
        self.failed: list[asyncio.subprocess.Process] = []  # killed children, reaped by stop()
        self.reader: asyncio.Task[None] | None = None
        self.answers: deque[tuple[asyncio.Future[list[Checked]], int]] = deque()
        self.write_lock = asyncio.Lock()

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    async def start(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            return
        try:
            self.proc = await asyncio.create_subprocess_exec(
                *self.command,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                limit=2**26,
            )
        except OSError as exc:
            raise CheckerError(f"cannot start the checker process: {exc}") from None
        self.reader = asyncio.create_task(self._read(self.proc))

    async def check(self, batch: Batch) -> list[Checked]:
        """The results of `batch`, once the child has answered the batches before it;
        CheckerError when the child cannot start or dies first."""
        async with self.write_lock:
            await self.start()
            proc = self.proc
            assert proc is not None
            assert proc.stdin is not None
            answer: asyncio.Future[list[Checked]] = asyncio.get_running_loop().create_future()
            self.answers.append((answer, len(batch.jobs)))
            body = _encoder.encode(batch)
            try:
                proc.stdin.write(_FRAME.pack(len(body)) + body)
                await proc.stdin.drain()
            except OSError as exc:
                self._fail(proc, f"checker process failed: {exc!r}")
        return await answer

    async def _read(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        try:
            while True:
                (size,) = _FRAME.unpack(await proc.stdout.readexactly(_FRAME.size))
                results = _result_decoder.decode(await proc.stdout.readexactly(size))
                if not self.answers:
                    raise CheckerError("checker process answered a batch it was not given")
                answer, expected = self.answers.popleft()
                if len(results) != expected:
                    raise CheckerError("checker process answered for the wrong number of Secrets")
                if not answer.done():
                    answer.set_result(results)
        except (OSError, asyncio.IncompleteReadError, msgspec.DecodeError) as exc:
            self._fail(proc, f"checker process failed: {exc!r}")
        except CheckerError as exc:
            self._fail(proc, str(exc))

    def _fail(self, proc: asyncio.subprocess.Process, message: str) -> None:
        """`proc` is done for: every batch it has not answered fails (the caller checks it
        in-process); the next batch starts a new child."""
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
        if proc not in self.failed:
            self.failed.append(proc)
        if self.proc is not None and self.proc is not proc:
            return  # a newer child owns the batches waiting now
        self.proc = None
        while self.answers:
            answer, _ = self.answers.popleft()
            if not answer.done():
                answer.set_exception(CheckerError(message))

    async def stop(self) -> None:
        """End the child once it has answered every batch it was given; reap failed ones."""
        async with self.write_lock:
            proc, reader, self.proc = self.proc, self.reader, None
            failed, self.failed = self.failed, []
            for dead in failed:
                if dead is not proc:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(dead.wait(), 10)
            if proc is None:
                return
            if proc.stdin is not None:
                proc.stdin.close()
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
            if reader is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await reader


if __name__ == "__main__":
    sys.exit(serve(sys.stdin.buffer, sys.stdout.buffer))
