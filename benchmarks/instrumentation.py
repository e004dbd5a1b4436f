"""What instrumentation costs: clusters side by side, measured in short bursts taken in turn.

The load on a shared machine drifts by a third within a minute, more than
the cost being measured. So the clusters all run at once, idle but for the
one being measured, and take turns in bursts of under a second, each burst
in the other order: a ratio is taken within a burst, between runs seconds
apart, and the median burst is the figure. The instrumented cluster takes
turns with the uninstrumented one first; the cluster that traces every run
takes its turns after, since the spans it has yet to export (an agent holds
them up to 5 s) would slow whichever cluster came next.
"""

from __future__ import annotations

import statistics
from contextlib import ExitStack
from dataclasses import dataclass
from functools import partial

import anyio

from benchmarks._progress import Progress
from benchmarks._stats import p50
from benchmarks.agents import STEPS
from benchmarks.workflow import (
    NONE,
    PRODUCTION,
    WARM_UP_RUNS,
    Instruments,
    Silent,
    cluster,
    step_gaps,
    throughput,
)
from runtime._launch import RuntimeProcess

SETUPS: dict[str, Instruments] = {
    "uninstrumented": NONE,
    "instrumented": PRODUCTION,
    "every_run_traced": Instruments(log_level="info", metrics=True, trace_sample=1.0),
}
BASELINE = "uninstrumented"


@dataclass(frozen=True)
class InstrumentationResult:
    """Per setup, steps/s in each of its bursts and the per-step p50 over all of them; the
    baseline's bursts are those beside "instrumented", then those beside
    "every_run_traced"."""

    bursts: int
    traced_bursts: int
    runs_per_burst: int
    steps_per_s: dict[str, list[float]]
    step_p50_us: dict[str, float]

    def ratios(self, setup: str) -> list[float]:
        """`setup`'s steps/s over the baseline's in the same bursts."""
        baseline = self.steps_per_s[BASELINE]
        beside = baseline[: self.bursts] if setup == "instrumented" else baseline[self.bursts :]
        return [on / off for on, off in zip(self.steps_per_s[setup], beside, strict=True)]

    def median_ratio(self, setup: str) -> float:
        return statistics.median(self.ratios(setup))

    def p50_ratio(self, setup: str) -> float:
        return self.step_p50_us[setup] / self.step_p50_us[BASELINE]


def measure_instrumentation(
    *,
    bursts: int = 24,
    traced_bursts: int = 8,
    runs_per_burst: int = 500,
    latency_runs_per_burst: int = 30,
    in_flight: int = 100,
    progress: Progress | None = None,
) -> InstrumentationResult:
    """Start a cluster per setup (memory store, CURVE on) and warm each up; then measure
    the instrumented and the uninstrumented cluster in turn, `bursts` times, and the one
    that traces every run against the uninstrumented, `traced_bursts` times. A burst is
    `latency_runs_per_burst` runs one at a time, then `runs_per_burst` runs with
    `in_flight` going."""
    progress = progress or Silent()
    rates: dict[str, list[float]] = {name: [] for name in SETUPS}
    gaps: dict[str, list[int]] = {name: [] for name in SETUPS}

    def burst(runtime: RuntimeProcess) -> tuple[list[int], float]:
        found = anyio.run(
            step_gaps, runtime.control, runtime.operator, latency_runs_per_burst, Silent()
        )
        seconds = anyio.run(
            throughput, runtime.control, runtime.operator, runs_per_burst, in_flight, Silent()
        )
        return found, runs_per_burst * STEPS / seconds

    with ExitStack() as stack:
        runtimes = {
            name: stack.enter_context(cluster(secure=True, instruments=instruments))
            for name, instruments in SETUPS.items()
        }
        for runtime in runtimes.values():
            warm = partial(step_gaps, warm_up=WARM_UP_RUNS)
            anyio.run(warm, runtime.control, runtime.operator, WARM_UP_RUNS, Silent())
        passes = [("instrumented", bursts), ("every_run_traced", traced_bursts)]
        progress.phase(f"bursts of {runs_per_burst:,} runs", 2 * (bursts + traced_bursts))
        done = 0
        for setup, count in passes:
            pair = [BASELINE, setup]
            for index in range(count):
                for name in pair if index % 2 == 0 else pair[::-1]:
                    found, rate = burst(runtimes[name])
                    gaps[name] += found
                    rates[name].append(rate)
                    done += 1
                    progress.done(done)
    return InstrumentationResult(
        bursts=bursts,
        traced_bursts=traced_bursts,
        runs_per_burst=runs_per_burst,
        steps_per_s=rates,
        step_p50_us={name: p50(found) / 1_000 for name, found in gaps.items()},
    )
