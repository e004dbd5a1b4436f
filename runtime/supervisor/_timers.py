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
        self._live: dict[K, int] = {}
        self._counter = itertools.count()

    def __len__(self) -> int:
        return len(self._live)

    def schedule(self, key: K, deadline: float) -> None:
        token = next(self._counter)
        self._live[key] = token
        heapq.heappush(self._heap, (deadline, token, key))

    def cancel(self, key: K) -> None:
        self._live.pop(key, None)
        # Cancelled entries stay in the heap until they surface; when they
        # outnumber the live ones, rebuild, so memory follows the live timers.
        if len(self._heap) > 2 * len(self._live) + 1_024:
            live = self._live
            self._heap = [entry for entry in self._heap if live.get(entry[2]) == entry[1]]
            heapq.heapify(self._heap)

    def next_deadline(self) -> float | None:
        """The earliest live deadline, dropping cancelled entries on the way."""
        heap = self._heap
        while heap and self._live.get(heap[0][2]) != heap[0][1]:
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def pop_due(self, now: float) -> list[K]:
        """Every key whose deadline is at or before `now`, earliest first."""
        due: list[K] = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            _, token, key = heapq.heappop(heap)
            if self._live.get(key) == token:
                del self._live[key]
                due.append(key)
        return due
