"""Named places where a Baton process kills itself, to rehearse a crash exactly there.

Recovery is only as good as its worst moment to die, and random kills seldom
land on it. `BATON_KILL_AT` names the places: `point` dies the first time the
process passes it, `point@N` the Nth time; several are separated by commas.
The process logs `process.killed` and sends itself SIGKILL: no clean-up, no
flush, as in a real crash. Unset, every check is one attribute read.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Mapping

import structlog

KILL_POINTS: Mapping[str, str] = {
    "result-received": "runtime: a step's result is folded, its batch not yet committed",
    "dispatch-persisted": "runtime: a dispatch is committed, the assignment not yet sent",
    "tool-executed": "tool host: a tool's effect happened, its ledger entry not yet settled",
    "tool-settled": "tool host: the ledger holds the tool's result, its reply not yet sent",
}
"""Every place a process may be told to die at, and what has and has not happened there."""

ENVIRONMENT_VARIABLE = "BATON_KILL_AT"

_log = structlog.get_logger("baton")


class KillPointsInvalid(ValueError):
    """`BATON_KILL_AT` names a place that does not exist, or a count that is not one."""


class KillPoints:
    """The places this process is told to die at, and how many passes each has left."""

    __slots__ = ("_left", "armed")

    def __init__(self, points: Mapping[str, int] | None = None) -> None:
        self._left = dict(points or {})
        self.armed = bool(self._left)
        """False when no place is named: callers skip their checks."""

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> KillPoints:
        spec = environ.get(ENVIRONMENT_VARIABLE, "").strip()
        points: dict[str, int] = {}
        for part in filter(None, (p.strip() for p in spec.split(","))):
            name, _, count = part.partition("@")
            if name not in KILL_POINTS:
                raise KillPointsInvalid(
                    f"{ENVIRONMENT_VARIABLE}: no kill point {name!r} "
                    f"(there are: {', '.join(KILL_POINTS)})"
                )
            if count and not (count.isdigit() and int(count) > 0):
                raise KillPointsInvalid(
                    f"{ENVIRONMENT_VARIABLE}: {part!r}: the count after @ must be a whole "
                    "number above 0"
                )
            points[name] = int(count or 1)
        return cls(points)

    def passing(self, point: str) -> None:
        """Die here if this is the pass of `point` the process was told to die at."""
        left = self._left.get(point)
        if left is None:
            return
        if left > 1:
            self._left[point] = left - 1
            return
        _log.critical("process.killed", kill_point=point, where=KILL_POINTS[point])
        os.kill(os.getpid(), signal.SIGKILL)
