"""The checker child process: the same answers as checking in-process, and failing cleanly."""

from __future__ import annotations

import sys

import pytest

from services.watcher.cache import Cache
from services.watcher.checker import CheckerError, CheckerProcess
from services.watcher.facts import Batch, check
from tests.unit.pki._support import NOW
from tests.unit.watcher._objects import KINDS, secret_object, tcp_object

pytestmark = pytest.mark.usefixtures("no_task_leaks")


def batch() -> Batch:
    cache = Cache()
    cache.fold("tcps", "ADDED", tcp_object())
    for kind in KINDS:
        cache.fold("secrets", "ADDED", secret_object(kind))
    return cache.take(NOW).batch


async def test_should_answer_batches_in_order_exactly_as_checking_in_process() -> None:
    checker = CheckerProcess()
    try:
        work = batch()
        first, second = work, Batch(work.now, work.tcps, work.jobs[:3])
        answers = [await checker.check(first), await checker.check(second)]
    finally:
        await checker.stop()
    assert answers == [check(first), check(second)]
    assert checker.proc is None


async def test_should_fail_the_batch_when_the_child_dies_without_answering() -> None:
    checker = CheckerProcess([sys.executable, "-c", "import sys; sys.stdin.buffer.read(4)"])
    try:
        with pytest.raises(CheckerError, match="checker process failed"):
            await checker.check(batch())
        assert checker.proc is None
    finally:
        await checker.stop()


async def test_should_start_a_new_child_when_the_last_one_is_gone() -> None:
    checker = CheckerProcess()
    try:
        await checker.start()
        assert checker.proc is not None
        checker.proc.kill()
        await checker.proc.wait()
        assert await checker.check(batch()) == check(batch())
    finally:
        await checker.stop()


async def test_should_say_so_when_the_child_cannot_start() -> None:
    checker = CheckerProcess(["/nonexistent/python"])
    with pytest.raises(CheckerError, match="cannot start"):
        await checker.check(batch())
