"""Timers on the monotonic clock, kept in one heap that the supervisor loop polls.

No task per timer: the loop sleeps until the earliest deadline or a message,
whichever comes first, then takes every timer that is due.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class Timers(Generic[K]):
    """Keyed one-shot timers; scheduling a key again replaces its deadline."""

    __slots__ = ("_counter", "_heap", "_live")

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, K]] = []
        self._live: dict[K, tuple[float, int]] = {}
        """Each live key's deadline and the token of its entry in the heap."""
        self._counter = itertools.count()

    def __len__(self) -> int:
        return len(self._live)

    def __contains__(self, key: K) -> bool:
        return key in self._live

    def deadline(self, key: K) -> float | None:
        """When `key` fires, unless it is not scheduled."""
        live = self._live.get(key)
        return None if live is None else live[0]

    def schedule(self, key: K, deadline: float) -> None:
        token = next(self._counter)
        self._live[key] = (deadline, token)
        heapq.heappush(self._heap, (deadline, token, key))

    def cancel(self, key: K) -> None:
        self._live.pop(key, None)
        # Cancelled entries stay in the heap until they surface; when they
        # outnumber the live ones, rebuild, so memory follows the live timers.
        if len(self._heap) > 2 * len(self._live) + 1_024:
            self._heap = [entry for entry in self._heap if self._is_live(entry)]
            heapq.heapify(self._heap)

    def next_deadline(self) -> float | None:
        """The earliest live deadline, dropping cancelled entries on the way."""
        heap = self._heap
        while heap and not self._is_live(heap[0]):
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def pop_due(self, now: float) -> list[K]:
        """Every key whose deadline is at or before `now`, earliest first."""
        due: list[K] = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            entry = heapq.heappop(heap)
            if self._is_live(entry):
                del self._live[entry[2]]
                due.append(entry[2])
        return due

    def _is_live(self, entry: tuple[float, int, K]) -> bool:
        live = self._live.get(entry[2])
        return live is not None and live[1] == entry[1]
