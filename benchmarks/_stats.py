"""Small statistics for benchmarks: percentiles, a latency summary, a nanosecond stopwatch."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass


def percentile(samples: Sequence[float], q: float) -> float:
    """The `q`-th percentile (0 to 100) of `samples`, interpolating between closest ranks."""
    if not samples:
        raise ValueError("percentile of no samples")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile must be within 0 and 100, got {q}")
    ordered = sorted(samples)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def p50(samples: Sequence[float]) -> float:
    """The median."""
    return percentile(samples, 50)


def p99(samples: Sequence[float]) -> float:
    """The 99th percentile."""
    return percentile(samples, 99)


def mean(samples: Sequence[float]) -> float:
    """The arithmetic mean, summed without loss of precision."""
    if not samples:
        raise ValueError("mean of no samples")
    return math.fsum(samples) / len(samples)


@dataclass(frozen=True)
class Latency:
    """How long a repeated operation took: count, median, 99th percentile and mean, in µs."""

    count: int
    p50_us: float
    p99_us: float
    mean_us: float

    @classmethod
    def of_ns(cls, samples_ns: Sequence[int]) -> Latency:
        """Summarise durations measured in nanoseconds."""
        return cls(
            count=len(samples_ns),
            p50_us=p50(samples_ns) / 1_000,
            p99_us=p99(samples_ns) / 1_000,
            mean_us=mean(samples_ns) / 1_000,
        )


class Stopwatch:
    """Time elapsed since it was made or last restarted, read from `time.perf_counter_ns`."""

    __slots__ = ("_started_ns",)

    def __init__(self) -> None:
        self._started_ns = time.perf_counter_ns()

    def restart(self) -> None:
        self._started_ns = time.perf_counter_ns()

    def elapsed_ns(self) -> int:
        return time.perf_counter_ns() - self._started_ns

    def elapsed_s(self) -> float:
        return self.elapsed_ns() / 1e9
