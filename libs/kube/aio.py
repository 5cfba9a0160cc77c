"""Kubernetes calls from asyncio code: each runs on a worker thread, so the event loop never
blocks on the API; a read is retried once on 429/5xx/transport errors, a write is not retried
here (`libs.kube.retry`: JetStream's redelivery is the retry layer)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from libs.kube.retry import read_retrying

P = ParamSpec("P")
R = TypeVar("R")


async def call(fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
    """Run `fn(*args, **kwargs)` on a thread (a read retried once on a retryable error)."""
    return await asyncio.to_thread(read_retrying(fn), *args, **kwargs)
