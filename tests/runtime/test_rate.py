"""Per-principal rate limits: a token bucket each, reported at a bounded pace; and the pace
at which refusals are answered."""

from __future__ import annotations

import pytest

from runtime.planes._rate import Pacer, RateLimiter


class Clock:
    """A hand-turned monotonic clock."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class TestRateLimiter:
    """What a flooding peer and its quiet neighbours each get."""

    def test_a_burst_then_the_rate(self) -> None:
        """The burst passes at once; after it, `rate` frames per second."""
        clock = Clock()
        limiter = RateLimiter(rate=10, burst=5, clock=clock)
        assert [limiter.allow("a") for _ in range(6)] == [True] * 5 + [False]
        clock.now += 0.25
        assert [limiter.allow("a") for _ in range(3)] == [True, True, False]

    def test_one_flooder_does_not_spend_anothers_tokens(self) -> None:
        """Buckets are per key: a principal over its limit leaves the others untouched."""
        limiter = RateLimiter(rate=1, burst=2, clock=Clock())
        for _ in range(100):
            limiter.allow("flooder")
        assert limiter.allow("quiet")
        assert limiter.allow("quiet")

    def test_refill_is_capped_at_the_burst(self) -> None:
        """A long quiet spell earns a burst, not an unbounded allowance."""
        clock = Clock()
        limiter = RateLimiter(rate=100, burst=3, clock=clock)
        limiter.allow("a")
        clock.now += 3600
        assert [limiter.allow("a") for _ in range(4)] == [True, True, True, False]

    def test_drops_are_reported_once_per_interval_with_their_count(self) -> None:
        """The first report says how many were dropped; the next waits out the interval."""
        clock = Clock()
        limiter = RateLimiter(rate=1, burst=1, clock=clock, report_every=1.0)
        limiter.allow("a")
        for _ in range(7):
            limiter.allow("a")
        assert limiter.report_due("a") == 7
        limiter.allow("a")
        assert limiter.report_due("a") == 0
        clock.now += 1.0
        assert limiter.report_due("a") == 1
        assert limiter.report_due("unknown") == 0

    def test_idle_buckets_are_pruned(self) -> None:
        """Memory follows the peers that are active, not every peer ever seen."""
        clock = Clock()
        limiter = RateLimiter(rate=10, burst=10, clock=clock)
        limiter.allow("gone")
        for _ in range(20):
            limiter.allow("busy")
        clock.now += 0.5
        limiter.prune()
        assert len(limiter) == 1
        limiter.forget("busy")
        assert len(limiter) == 0

    @pytest.mark.parametrize(("rate", "burst"), [(0, 1), (-1, 5), (10, 0.5)])
    def test_nonsense_settings_are_refused(self, rate: float, burst: float) -> None:
        with pytest.raises(ValueError, match="rate must be positive"):
            RateLimiter(rate=rate, burst=burst, clock=Clock())

    def test_a_message_costs_a_token_per_part_and_its_debt_cuts_the_peer_off(self) -> None:
        """A message of 1,000 parts passes with tokens to spare, then leaves its sender
        out for as long as its rate takes to pay for the other 990."""
        clock = Clock()
        limiter = RateLimiter(rate=10, burst=10, clock=clock)
        assert limiter.allow("a", parts=1_000)
        assert not limiter.allow("a")
        clock.now += 98.0
        assert not limiter.allow("a")
        assert limiter.allow("quiet")
        clock.now += 1.2
        assert limiter.allow("a")

    def test_parts_of_a_dropped_message_are_paid_for_too(self) -> None:
        """Dropping a message spares its first part's token, as for any dropped frame, but
        not the others: each was read."""
        clock = Clock()
        limiter = RateLimiter(rate=1, burst=1, clock=clock)
        assert limiter.allow("a")
        assert not limiter.allow("a")
        assert not limiter.allow("a", parts=5)
        clock.now += 4.5
        assert not limiter.allow("a")
        clock.now += 0.5
        assert limiter.allow("a")

    def test_a_bucket_in_debt_is_not_pruned(self) -> None:
        """Forgetting a peer that owes tokens would forgive it."""
        clock = Clock()
        limiter = RateLimiter(rate=10, burst=10, clock=clock)
        limiter.allow("a", parts=100)
        clock.now += 5
        limiter.prune()
        assert len(limiter) == 1


class TestPacer:
    """Which refusals are answered: a burst, then one a second per key; a cap in all."""

    def test_a_burst_then_one_a_second_with_the_count_held_back(self) -> None:
        """Each refusal let through says how many of its key's were held back before it."""
        clock = Clock()
        pacer = Pacer(clock, rate=1, burst=3)
        assert [pacer.due("a") for _ in range(5)] == [0, 0, 0, None, None]
        clock.now += 0.5
        assert pacer.due("a") is None
        clock.now += 0.5
        assert pacer.due("a") == 3
        assert pacer.due("a") is None

    def test_keys_are_paced_apart(self) -> None:
        """One peer's refusals do not spend another's answers."""
        pacer = Pacer(Clock(), rate=1, burst=1)
        assert pacer.due(("malformed", "flooder")) == 0
        assert pacer.due(("malformed", "flooder")) is None
        assert pacer.due(("invalid", "flooder")) == 0
        assert pacer.due(("malformed", "neighbour")) == 0

    def test_the_total_caps_all_keys_together(self) -> None:
        """Many keys at their own pace still get no more than the total between them, and
        a key held back for want of it is told so when next let through."""
        clock = Clock()
        pacer = Pacer(clock, rate=1, burst=1, total_rate=10, total_burst=10)
        let_through = [pacer.due(n) for n in range(100)]
        assert sum(held is not None for held in let_through) == 10
        assert not pacer.spend()
        clock.now += 0.25
        assert pacer.spend()
        clock.now += 1.0
        assert pacer.due(50) == 1

    def test_quiet_keys_are_forgotten(self) -> None:
        """Memory follows the peers refused lately, not every peer ever refused."""
        clock = Clock()
        pacer = Pacer(clock, rate=1, burst=2)
        for key in ("gone", "busy", "busy", "busy"):
            pacer.due(key)
        clock.now += 1.5
        pacer.prune()
        assert len(pacer) == 1
        clock.now += 1.0
        pacer.prune()
        assert len(pacer) == 0

    @pytest.mark.parametrize(
        "settings", [{"rate": 0}, {"burst": 0.5}, {"total_rate": -1}, {"total_burst": 0}]
    )
    def test_nonsense_settings_are_refused(self, settings: dict[str, float]) -> None:
        with pytest.raises(ValueError, match="rates must be positive"):
            Pacer(Clock(), **settings)
