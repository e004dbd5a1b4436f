"""The clocks a runtime reads, and how far the wall clock jumped against the monotonic one.

A run keeps its deadlines (an open decision's, the end of a retry wait) as
wall-clock times in its journal, so that they outlive the process; the
runtime's timers run on the monotonic clock, which never jumps but starts
again at each boot. The runtime keeps a reading of both clocks, and the boot's
id, in its store, committed with the events journaled in that reading's frame.
Within one boot, how much further the wall clock moved since a reading than the
monotonic one did is how far it jumped; after a reboot nothing tells, and the
wall clock is taken at its word.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import structlog

from runtime.store._journal import ClockReading

log = structlog.get_logger("baton.runtime")

BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
TOLERANCE = 1.0
"""Seconds the wall clock may move against the monotonic clock without counting as a jump
(a leap second, the time between reading the two)."""


class Clock(Protocol):
    """What the runtime reads the time from: `runtime.testing.FakeClock` in tests."""

    def wall(self) -> float:
        """Seconds since the epoch: stamps the journal and the runs' deadlines."""
        ...

    def monotonic(self) -> float:
        """Seconds that never jump, counted from some moment of `boot`: the timers run on it."""
        ...

    @property
    def boot(self) -> str:
        """The boot `monotonic` counts from ("" where the system names none)."""
        ...


def boot_id() -> str:
    """This boot's id (Linux), or "" where there is none to read."""
    try:
        return BOOT_ID.read_text().strip()
    except OSError:
        return ""


@dataclass(frozen=True, slots=True)
class SystemClock:
    """The machine's clocks (or the functions given for them)."""

    wall: Callable[[], float] = time.time
    monotonic: Callable[[], float] = time.monotonic
    boot: str = field(default_factory=boot_id)


def clock_skew(before: ClockReading | None, now: ClockReading) -> float | None:
    """Seconds the wall clock moved against the monotonic clock from `before` to `now`
    (positive: forward), or None with no monotonic time in common: no reading before, or
    one from another boot, or from a system that names none."""
    if before is None or not before.boot or before.boot != now.boot:
        return None
    return (now.wall - before.wall) - (now.monotonic - before.monotonic)


class ClockWatch:
    """The clock reading the journal's latest events were taken on, and the jumps from it."""

    __slots__ = ("_clock", "reading")

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self.reading: ClockReading | None = None

    def read(self) -> ClockReading:
        clock = self._clock
        return ClockReading(clock.wall(), clock.monotonic(), clock.boot)

    def at_start(
        self, before: ClockReading | None, here: ClockReading, timed: int
    ) -> tuple[float, ClockReading]:
        """How far the wall clock jumped since the journal's last clock reading, for the
        deadlines of `timed` runs to move by (0 if it did not, or if nothing tells), and
        the reading the journal goes on from."""
        skew = clock_skew(before, here)
        if before is None or skew is None:
            if timed:
                why = (
                    "the journal holds no clock reading yet"
                    if before is None
                    else "the machine restarted since the journal's last clock reading"
                )
                log.info(
                    "clock.unchecked", runs=timed,
                    reason=f"{why}: deadlines are kept by the wall clock as it is now",
                )  # fmt: skip
            return 0.0, here
        if abs(skew) <= TOLERANCE:
            # The reading before still holds, so that small moves add up to a jump in time.
            return 0.0, before
        log_jump(skew, timed, "at start")
        return skew, here

    def jumped(self) -> tuple[float, ClockReading] | None:
        """The jump of the wall clock since the reading, and the new reading it takes, if
        it jumped further than the tolerance while running; the new reading is the one
        the journal goes on from, once committed."""
        here = self.read()
        skew = clock_skew(self.reading, here)
        if skew is None or abs(skew) <= TOLERANCE:
            return None
        self.reading = here
        return skew, here


def log_jump(skew: float, timed: int, noticed: str) -> None:
    log.warning(
        "clock.jumped", skew=round(skew, 3), runs=timed, noticed=noticed,
        message=f"the wall clock moved {skew:+.0f}s against the monotonic clock; "
        "deadlines keep the real time they had left",
    )  # fmt: skip
