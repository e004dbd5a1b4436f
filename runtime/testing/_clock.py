"""A clock for tests: both of the runtime's clocks, moved by hand and never by waiting."""

from __future__ import annotations

START_WALL = 1_700_000_000.0
START_MONOTONIC = 20_000.0


class FakeClock:
    """A wall clock and a monotonic one that move only when told.

    `advance` is time passing (both move); `jump` is the wall clock being set
    (it moves alone); `reboot` is the machine starting again (the monotonic
    clock starts over, in a boot of another name). It is a clock the
    supervisor's core takes, and its `wall` and `monotonic` are the functions
    the `Supervisor` takes.
    """

    __slots__ = ("_boots", "_monotonic", "_start", "_wall", "boot")

    def __init__(
        self,
        *,
        wall: float = START_WALL,
        monotonic: float = START_MONOTONIC,
        boot: str = "boot-1",
    ) -> None:
        self._wall = wall
        self._monotonic = self._start = monotonic
        self.boot = boot
        """The boot the monotonic clock counts from."""
        self._boots = 1

    def wall(self) -> float:
        return self._wall

    def monotonic(self) -> float:
        return self._monotonic

    def advance(self, seconds: float) -> None:
        """Let `seconds` pass on both clocks."""
        if seconds < 0:
            raise ValueError(
                f"time only passes forward (to set the wall clock back: jump({seconds}))"
            )
        self._wall += seconds
        self._monotonic += seconds

    def jump(self, seconds: float) -> None:
        """Set the wall clock `seconds` ahead (behind, if negative); the monotonic one stays."""
        self._wall += seconds

    def reboot(self, boot: str | None = None) -> None:
        """Start the monotonic clock over, in a new boot (named `boot`, else numbered)."""
        self._boots += 1
        self.boot = f"boot-{self._boots}" if boot is None else boot
        self._monotonic = self._start
