"""Reconnection backoff."""

from __future__ import annotations

import random

from actors._link import Backoff


class TestBackoff:
    def test_delays_double_from_the_first_to_the_cap(self) -> None:
        """Each delay lies in [d/2, d] for d = 0.1 s doubling up to 5 s."""
        backoff = Backoff(random.Random(7))
        bounds = [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0, 5.0]
        for bound in bounds:
            assert bound / 2 <= backoff.next() <= bound

    def test_reset_starts_again_from_the_first_delay(self) -> None:
        """After `reset`, the next delay is at most the first one again."""
        backoff = Backoff(random.Random(7))
        for _ in range(10):
            backoff.next()
        backoff.reset()
        assert backoff.next() <= 0.1

    def test_many_failures_stay_at_the_cap(self) -> None:
        """The exponent is bounded, so a long outage never overflows."""
        backoff = Backoff(random.Random(7))
        assert all(backoff.next() <= 5.0 for _ in range(2_000))
