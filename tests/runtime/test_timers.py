"""The supervisor's timer heap."""

from __future__ import annotations

from runtime.supervisor._timers import Timers


class TestTimers:
    """Keyed one-shot timers on a caller-supplied clock."""

    def test_due_in_deadline_order(self) -> None:
        """Due keys come out earliest first; later ones wait."""
        timers: Timers[str] = Timers()
        timers.schedule("late", 3.0)
        timers.schedule("early", 1.0)
        timers.schedule("middle", 2.0)
        assert timers.pop_due(2.0) == ["early", "middle"]
        assert timers.next_deadline() == 3.0

    def test_rescheduling_replaces_the_deadline(self) -> None:
        """Scheduling a key again moves it; the old deadline never fires."""
        timers: Timers[str] = Timers()
        timers.schedule("beat", 1.0)
        timers.schedule("beat", 5.0)
        assert timers.pop_due(2.0) == []
        assert timers.pop_due(5.0) == ["beat"]

    def test_cancelled_never_fire_and_do_not_pile_up(self) -> None:
        """Cancelled timers never fire, and the heap shrinks back to the live ones."""
        timers: Timers[int] = Timers()
        for n in range(10_000):
            timers.schedule(n, 100.0 + n)
            timers.cancel(n)
        timers.schedule(-1, 50.0)
        assert len(timers) == 1
        assert len(timers._heap) < 2_100
        assert timers.pop_due(1e9) == [-1]
