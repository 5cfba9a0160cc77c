"""Retries of Kubernetes calls with tenacity: 429 (honouring Retry-After), 5xx, transport errors.

Conflicts are not retried here: after a 409 the caller must re-read and decide again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ParamSpec, TypeVar

from tenacity import (
    RetryCallState,
    retry,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from libs.kube.errors import RetryableKubeError

P = ParamSpec("P")
R = TypeVar("R")

_backoff = wait_exponential_jitter(initial=0.05, max=5.0, jitter=0.1)


def _wait(state: RetryCallState) -> float:
    outcome = state.outcome
    if outcome is not None and outcome.failed:
        exc = outcome.exception()
        if isinstance(exc, RetryableKubeError) and exc.retry_after is not None:
            return min(exc.retry_after, 30.0)
    return _backoff(state)


def retrying(attempts: int = 6) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorator: retry a call on `RetryableKubeError` with jittered exponential backoff."""
    return retry(
        retry=retry_if_exception_type(RetryableKubeError),
        wait=_wait,
        stop=stop_after_attempt(attempts),
        reraise=True,
    )
