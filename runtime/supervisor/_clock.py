"""How far the wall clock jumped against the monotonic one, so that deadlines keep real time.

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

from pathlib import Path

from runtime.store._journal import ClockReading

BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
TOLERANCE = 1.0
"""Seconds the wall clock may move against the monotonic clock without counting as a jump
(a leap second, the time between reading the two)."""


def boot_id() -> str:
    """This boot's id (Linux), or "" where there is none to read."""
    try:
        return BOOT_ID.read_text().strip()
    except OSError:
        return ""


def clock_skew(before: ClockReading | None, now: ClockReading) -> float | None:
    """Seconds the wall clock moved against the monotonic clock from `before` to `now`
    (positive: forward), or None with no monotonic time in common: no reading before, or
    one from another boot, or from a system that names none."""
    if before is None or not before.boot or before.boot != now.boot:
        return None
    return (now.wall - before.wall) - (now.monotonic - before.monotonic)
