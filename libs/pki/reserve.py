"""A reserve of private keys generated ahead of need, so that issuance does not wait for key
generation (an RSA-2048 key takes tens of milliseconds, most of re-creating a deleted Secret).

What keeps a reserved key as good as one generated on the spot:

- **Quality.** Every key comes from `generate_private_key`, the same call (OpenSSL's CSPRNG via
  `cryptography`) with the same parameters as without the reserve; only the moment differs.
- **Uniqueness.** A key leaves the reserve by `take`, which removes it under a lock: no key is
  handed out twice, whichever threads take and refill at once. An empty reserve generates a
  fresh key on the spot, so taking never blocks on a refill.
- **Secrecy.** The reserve lives only in this process's memory: it is never persisted, never
  published, never logged (its repr shows counts), and is gone when the process ends.
- **Bounded.** At most `capacity` keys per algorithm, and only for algorithms asked for: those
  named at construction (the fleet's, and RSA-2048 for service-account keys) and any a TCP's
  profile has taken since.

The issuer refills it while idle (services/issuer/app.py); refilling is one key at a time, on a
worker thread (key generation releases the GIL), so new work never waits behind a refill.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable

from libs.pki.keys import KeyAlgorithm, PrivateKey, generate_private_key


class KeyReserve:
    def __init__(
        self,
        capacity: int,
        algorithms: Iterable[KeyAlgorithm] = (),
        *,
        generate: Callable[[KeyAlgorithm], PrivateKey] = generate_private_key,
    ) -> None:
        if capacity < 0:
            raise ValueError(f"capacity must be 0 or more, got {capacity}")
        self.capacity = capacity
        self._generate = generate
        self._lock = threading.Lock()
        self._keys: dict[KeyAlgorithm, deque[PrivateKey]] = {a: deque() for a in algorithms}
        self.taken = 0  # keys handed out from the reserve
        self.generated_on_demand = 0  # keys generated because the reserve was empty
        # told after each take, on the taking thread: True when the key came from the reserve
        self.on_take: Callable[[bool], None] | None = None

    def __repr__(self) -> str:
        with self._lock:
            held = {a.value: len(q) for a, q in self._keys.items()}
        return f"KeyReserve(capacity={self.capacity}, held={held})"

    def take(self, algorithm: KeyAlgorithm) -> PrivateKey:
        """A key of `algorithm` that nobody else gets: from the reserve, else fresh."""
        with self._lock:
            queue = self._keys.setdefault(algorithm, deque()) if self.capacity else None
            key = queue.popleft() if queue else None
            if key is not None:
                self.taken += 1
            else:
                self.generated_on_demand += 1
        if self.on_take is not None:
            self.on_take(key is not None)
        return key if key is not None else self._generate(algorithm)

    def wanted(self) -> KeyAlgorithm | None:
        """The algorithm whose reserve is the emptiest, if any is below capacity."""
        with self._lock:
            short = [(len(q), a.value, a) for a, q in self._keys.items() if len(q) < self.capacity]
        return min(short)[2] if short else None

    def refill_one(self) -> bool:
        """Generate one key for the emptiest reserve; False when every reserve is full."""
        algorithm = self.wanted()
        if algorithm is None:
            return False
        key = self._generate(algorithm)  # outside the lock: takes go on meanwhile
        with self._lock:
            queue = self._keys[algorithm]
            if len(queue) >= self.capacity:
                return True  # filled meanwhile by another refill: this key is simply dropped
            queue.append(key)
        return True

    def algorithms(self) -> list[KeyAlgorithm]:
        with self._lock:
            return list(self._keys)

    def held(self, algorithm: KeyAlgorithm) -> int:
        with self._lock:
            return len(self._keys.get(algorithm, ()))
