"""Refusals: every one counted, logged and answered at a pace set by the sender's key."""

from __future__ import annotations

from typing import Any

import structlog

from runtime.planes._refusals import Refusals


class Clock:
    """A hand-turned monotonic clock."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def rejected(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [entry for entry in logs if entry["event"] == "frame.rejected"]


class TestRefusals:
    """What a peer sending bad frames gets answered, and what the log says about it."""

    def test_more_connections_with_one_key_earn_no_more_answers(self) -> None:
        """Under a principal, refusals are paced by the key, whatever routing id each came
        from; all are counted."""
        refusals = Refusals(Clock())
        answered = [
            refusals.refuse("malformed", f"connection-{n % 20}".encode(), "bad", "mallory")
            for n in range(400)
        ]
        assert sum(answered) == 10
        assert refusals.snapshot() == {"malformed": 400}

    def test_without_a_principal_each_connection_is_paced_apart(self) -> None:
        """Insecure, the routing id is all there is to go by."""
        refusals = Refusals(Clock())
        answered = [
            refusals.refuse("malformed", f"connection-{n % 20}".encode(), "bad", "")
            for n in range(400)
        ]
        assert sum(answered) == 20 * 10

    def test_after_the_burst_one_a_second_per_kind_and_the_log_says_how_many_were_not(
        self,
    ) -> None:
        """Past its burst, a flooding key is answered and logged once a second per kind of
        refusal; each line counts the refusals left unlogged since the one before."""
        clock = Clock()
        refusals = Refusals(clock)
        with structlog.testing.capture_logs() as logs:
            for _ in range(3):
                for _ in range(100):
                    refusals.refuse("invalid", b"peer", "bad", "mallory")
                    refusals.refuse("malformed", b"peer", "bad", "mallory")
                clock.now += 1.0
        lines = rejected(logs)
        assert len(lines) == 2 * (10 + 2)
        invalid = [line for line in lines if line["reason"] == "invalid"]
        assert [line.get("suppressed", 0) for line in invalid] == [0] * 10 + [90, 99]
        assert refusals.snapshot() == {"invalid": 300, "malformed": 300}

    def test_quiet_keys_get_their_burst_back(self) -> None:
        """A peer that stopped misbehaving is answered in full again, and forgotten."""
        clock = Clock()
        refusals = Refusals(clock)
        for _ in range(20):
            refusals.refuse("malformed", b"peer", "bad", "alice")
        clock.now += 60
        refusals.prune()
        assert all(refusals.refuse("malformed", b"peer", "bad", "alice") for _ in range(10))
