"""Per-principal rate limits: a token bucket each, so that one flooding peer is cut off alone."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(slots=True)
class _Bucket:
    tokens: float
    refilled_at: float
    dropped: int = 0
    """Messages dropped since the last report."""
    reported_at: float = float("-inf")


class RateLimiter:
    """Admits up to `rate` messages per second per key, in bursts of up to `burst`.

    Dropping is cheap (no decoding, no reply), so a flood costs the runtime
    little more than reading it; `report_due` paces the log lines and error
    replies about it to one per key per `report_every` seconds.
    """

    __slots__ = ("_buckets", "_clock", "burst", "rate", "report_every")

    def __init__(
        self,
        rate: float,
        burst: float,
        clock: Callable[[], float],
        *,
        report_every: float = 1.0,
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError(f"rate must be positive and burst at least 1 (got {rate}, {burst})")
        self.rate = rate
        self.burst = burst
        self.report_every = report_every
        self._clock = clock
        self._buckets: dict[str | bytes, _Bucket] = {}

    def allow(self, key: str | bytes) -> bool:
        """Take a token for `key`; False (and the drop counted) when its bucket is empty."""
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(self.burst, now)
        elif now > bucket.refilled_at:
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.refilled_at) * self.rate)
            bucket.refilled_at = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return True
        bucket.dropped += 1
        return False

    def report_due(self, key: str | bytes) -> int:
        """How many of `key`'s messages were dropped since the last report, if one is due now.

        0 means no report is due; otherwise the count is handed over and reset.
        """
        bucket = self._buckets.get(key)
        if bucket is None or bucket.dropped == 0:
            return 0
        now = self._clock()
        if now - bucket.reported_at < self.report_every:
            return 0
        dropped, bucket.dropped, bucket.reported_at = bucket.dropped, 0, now
        return dropped

    def prune(self) -> None:
        """Forget buckets that have refilled and have nothing to report: idle peers."""
        now = self._clock()
        idle = [
            key
            for key, b in self._buckets.items()
            if b.dropped == 0 and b.tokens + (now - b.refilled_at) * self.rate >= self.burst
        ]
        for key in idle:
            del self._buckets[key]

    def __len__(self) -> int:
        return len(self._buckets)

    def forget(self, key: str | bytes) -> None:
        """Drop `key`'s bucket (its peer is gone), keeping memory bounded by live peers."""
        self._buckets.pop(key, None)
