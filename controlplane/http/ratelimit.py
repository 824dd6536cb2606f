"""Per-key and per-partner request limits: token buckets, in this process (``RateLimiter``,
single-node mode; ``controlplane.http.shared_ratelimit`` keeps them in PostgreSQL for several
daemons behind a load balancer, docs/scale.md). A bucket holds up to
``limit`` tokens and refills at ``limit / 60`` per second, so a key may burst its whole minute,
then runs at the steady rate. A request takes one token from its key's bucket and its partner's; it
is refused (and takes none) when either is empty, with the seconds until one is
back as ``Retry-After``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

PARTNER_LIMIT = 1_000
_PRUNE_AT = 10_000


@dataclass(slots=True)
class _Bucket:
    capacity: float
    tokens: float
    stamp: float

    def refill(self, now: float) -> None:
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.capacity / 60.0)
        self.stamp = now

    def wait(self) -> float:
        """Seconds until one token is back."""
        return max(0.0, (1.0 - self.tokens) * 60.0 / self.capacity)


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    limit: int
    remaining: int
    retry_after: int = 0
    which: str = ""


@dataclass
class RateLimiter:
    partner_limit: int = PARTNER_LIMIT
    clock: Callable[[], float] = time.monotonic
    _buckets: dict[str, _Bucket] = field(default_factory=dict)

    def _bucket(self, name: str, limit: int, now: float) -> _Bucket:
        bucket = self._buckets.get(name)
        if bucket is None or bucket.capacity != limit:  # new, or the key's limit was edited
            if len(self._buckets) >= _PRUNE_AT:
                self._prune(now)
            bucket = self._buckets[name] = _Bucket(float(limit), float(limit), now)
        else:
            bucket.refill(now)
        return bucket

    def _prune(self, now: float) -> None:
        """Forget buckets that are full again: they hold no information."""
        for name, bucket in list(self._buckets.items()):
            bucket.refill(now)
            if bucket.tokens >= bucket.capacity:
                del self._buckets[name]

    def take(self, key_id: str, key_limit: int, partner_id: str) -> Verdict:
        now = self.clock()
        key = self._bucket(f"k:{key_id}", key_limit, now)
        partner = self._bucket(f"p:{partner_id}", self.partner_limit, now)
        for which, bucket, limit in (("key", key, key_limit), ("partner", partner, self.partner_limit)):
            if bucket.tokens < 1.0:
                return Verdict(False, limit, 0, max(1, math.ceil(bucket.wait())), which)
        key.tokens -= 1.0
        partner.tokens -= 1.0
        return Verdict(True, key_limit, int(key.tokens))

    async def acquire(self, key_id: str, key_limit: int, partner_id: str) -> Verdict:
        """What the middleware awaits (the shared limiter's is a query)."""
        return self.take(key_id, key_limit, partner_id)

