"""Per-principal rate limits: a token bucket each, so that one flooding peer is cut off alone;
and the pace of answers to refused frames, per peer and in all."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass


@dataclass(slots=True)
class _Bucket:
    tokens: float
    refilled_at: float
    dropped: int = 0
    """Messages dropped (or refusals held back) since the last report."""
    reported_at: float = float("-inf")

    def refill(self, now: float, rate: float, burst: float) -> None:
        if now > self.refilled_at:
            self.tokens = min(burst, self.tokens + (now - self.refilled_at) * rate)
            self.refilled_at = now


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

    def allow(self, key: str | bytes, parts: int = 1) -> bool:
        """Take a token per part of a message from `key`; False (and the drop counted) when
        its bucket holds less than one.

        Parts after the first are taken even from a message that is dropped, and may
        leave the bucket in debt: the runtime had to read every one of them, so a peer
        sending messages of many parts is cut off for as long as its rate takes to pay.
        """
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(self.burst, now)
        elif now > bucket.refilled_at:
            # `_Bucket.refill`, inline: this runs for every frame.
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.refilled_at) * self.rate)
            bucket.refilled_at = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= parts
            return True
        bucket.tokens -= parts - 1
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


class Pacer:
    """Lets through bursts of up to `burst` refusals per key and then `rate` a second, and
    across all keys at most `total_rate` a second in bursts of up to `total_burst`.

    What it lets through is answered and logged; the rest is only counted. The
    per-key pace keeps one peer from being sent a reply for every bad frame it
    sends (replies it need not read, which the runtime would hold for it); the
    total keeps many peers (or, without CURVE, many connections) from
    multiplying that.
    """

    __slots__ = ("_clock", "_paces", "_total", "burst", "rate", "total_burst", "total_rate")

    def __init__(
        self,
        clock: Callable[[], float],
        *,
        rate: float = 1.0,
        burst: float = 10.0,
        total_rate: float = 100.0,
        total_burst: float = 1_000.0,
    ) -> None:
        if min(rate, total_rate) <= 0 or min(burst, total_burst) < 1:
            raise ValueError("rates must be positive and bursts at least 1")
        self.rate = rate
        self.burst = burst
        self.total_rate = total_rate
        self.total_burst = total_burst
        self._clock = clock
        self._paces: dict[Hashable, _Bucket] = {}
        self._total = _Bucket(total_burst, clock())

    def due(self, key: Hashable) -> int | None:
        """None when `key`'s refusal is to be held back; else how many of its refusals were
        held back since the last one let through."""
        now = self._clock()
        pace = self._paces.get(key)
        if pace is None:
            pace = self._paces[key] = _Bucket(self.burst, now)
        else:
            pace.refill(now, self.rate, self.burst)
        if pace.tokens < 1.0 or not self.spend(now):
            pace.dropped += 1
            return None
        pace.tokens -= 1.0
        held, pace.dropped = pace.dropped, 0
        return held

    def spend(self, now: float | None = None) -> bool:
        """Take one answer from the total allowance; False when there is none left."""
        total = self._total
        total.refill(self._clock() if now is None else now, self.total_rate, self.total_burst)
        if total.tokens < 1.0:
            return False
        total.tokens -= 1.0
        return True

    def prune(self) -> None:
        """Forget keys whose allowance has refilled: peers quiet for a while, or gone."""
        now = self._clock()
        rate, burst = self.rate, self.burst
        quiet = [
            k for k, p in self._paces.items() if p.tokens + (now - p.refilled_at) * rate >= burst
        ]
        for key in quiet:
            del self._paces[key]

    def __len__(self) -> int:
        return len(self._paces)
