"""Kubernetes calls from asyncio code: each runs on a worker thread, retried with tenacity on
429/5xx/transport errors (see `libs.kube.retry`), so the event loop never blocks on the API."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from libs.kube.retry import retrying

P = ParamSpec("P")
R = TypeVar("R")


async def call(fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
    """Run `fn(*args, **kwargs)` on a thread with retries of retryable API errors."""
    return await asyncio.to_thread(retrying()(fn), *args, **kwargs)
