"""The one in-process retry of Kubernetes calls: a read (`get_*`, `list_*`) that met 429, 5xx or
a transport error is tried once more after a short pause (or the server's Retry-After, up to 5 s).

Writes are not retried here, and reads only once: the message handlers turn a
`RetryableKubeError` into `TemporaryError(delay)`, and JetStream's redelivery after that delay is
the retry layer, with its growing delays and a delivery count to show. Two full layers multiplied
(up to 6 calls per delivery, each delivery retried again) hid a failing API behind long waits; a
single read retry still absorbs the commonest blip (an idle keep-alive connection reset) without
a redelivery. Reads are safe to repeat; a write repeated in-process could even act twice where
the handler's re-read and re-decision would not. Conflicts are never retried here: after a 409
the caller must re-read and decide again.
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

READ_PREFIXES = ("get_", "list_")
READ_ATTEMPTS = 2  # the call and one retry
MAX_RETRY_AFTER = 5.0

_backoff = wait_exponential_jitter(multiplier=0.1, max=1.0, jitter=0.1)


def is_read(fn: Callable[..., object]) -> bool:
    """A KubeClient method that only reads (named `get_*` or `list_*`)."""
    return getattr(fn, "__name__", "").startswith(READ_PREFIXES)


def _wait(state: RetryCallState) -> float:
    outcome = state.outcome
    if outcome is not None and outcome.failed:
        exc = outcome.exception()
        if isinstance(exc, RetryableKubeError) and exc.retry_after is not None:
            return min(exc.retry_after, MAX_RETRY_AFTER)
    return _backoff(state)


def retrying(attempts: int = READ_ATTEMPTS) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorator: retry a call on `RetryableKubeError` with jittered exponential backoff."""
    return retry(
        retry=retry_if_exception_type(RetryableKubeError),
        wait=_wait,
        stop=stop_after_attempt(attempts),
        reraise=True,
    )


def read_retrying(fn: Callable[P, R]) -> Callable[P, R]:
    """`fn` with the read retry if it is a read, else `fn` itself (a write: not retried)."""
    return retrying()(fn) if is_read(fn) else fn
