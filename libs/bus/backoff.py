"""Exponential backoff with jitter, shared by reconnects, fetch retries and nak delays.

One small value type instead of ad-hoc sleeps: `delay(attempt)` is pure apart from jitter, so
callers can reason about (and tests can pin, with `jitter=0`) the schedule. No `nats` import.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Backoff:
    """`initial * multiplier**(attempt-1)`, capped at `maximum`, then +/- `jitter` (a fraction)."""

    initial: float = 0.1
    maximum: float = 5.0
    multiplier: float = 2.0
    jitter: float = 0.2

    def __post_init__(self) -> None:
        if self.initial < 0 or self.maximum < self.initial:
            raise ValueError(f"need 0 <= initial <= maximum, got {self.initial}, {self.maximum}")
        if self.multiplier < 1:
            raise ValueError(f"multiplier must be >= 1, got {self.multiplier}")
        if not 0 <= self.jitter < 1:
            raise ValueError(f"jitter must be in [0, 1), got {self.jitter}")

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry number `attempt` (1 = the first retry)."""
        exponent = max(attempt, 1) - 1
        # Cap the exponent so huge attempt counts cannot overflow a float.
        base = min(self.maximum, self.initial * self.multiplier ** min(exponent, 64))
        if self.jitter == 0:
            return base
        spread = base * self.jitter
        return max(0.0, base + random.uniform(-spread, spread))  # noqa: S311 - jitter, not crypto
