"""What instrumentation costs: clusters side by side, measured in short bursts taken in turn.

The load on a shared machine drifts by a third within a minute, more than
the cost being measured. So the clusters all run at once, idle but for the
one being measured, and take turns in bursts of under a second, each burst
in the other order: a ratio is taken within a burst, between runs seconds
apart, and the median burst is the figure. A cluster's processes also land
on the cores well or badly for their whole life (two identical clusters
differed by up to 5%), so the clusters are started afresh for each of a few
rounds, in a different order each time. The instrumented cluster takes turns
with the uninstrumented one first; the cluster that traces every run takes
its turns after, since the spans it has yet to export (an agent holds them
up to 5 s) would slow whichever cluster came next.
"""

from __future__ import annotations

import statistics
from contextlib import ExitStack
from dataclasses import dataclass

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
from runtime.launch import RuntimeProcess

SETUPS: dict[str, Instruments] = {
    "uninstrumented": NONE,
    "instrumented": PRODUCTION,
    "every_run_traced": Instruments(log_level="info", metrics=True, trace_sample=1.0),
}
BASELINE = "uninstrumented"


@dataclass(frozen=True)
class InstrumentationResult:
    """Per setup, its steps/s over the uninstrumented cluster's in each burst it took
    turns with it, and the per-step p50 over all its bursts."""

    rounds: int
    bursts: int
    traced_bursts: int
    runs_per_burst: int
    ratios: dict[str, list[float]]
    step_p50_us: dict[str, float]

    def median_ratio(self, setup: str) -> float:
        return statistics.median(self.ratios[setup])

    def p50_ratio(self, setup: str) -> float:
        return self.step_p50_us[setup] / self.step_p50_us[BASELINE]


def measure_instrumentation(
    *,
    rounds: int = 5,
    bursts: int = 10,
    traced_bursts: int = 3,
    runs_per_burst: int = 500,
    latency_runs_per_burst: int = 30,
    in_flight: int = 100,
    progress: Progress | None = None,
) -> InstrumentationResult:
    """In each of `rounds`, start a cluster per setup (memory store, CURVE on) and warm
    each up; measure the instrumented and the uninstrumented cluster in turn, `bursts`
    times, then the one that traces every run against the uninstrumented, `traced_bursts`
    times; stop them. A burst is `latency_runs_per_burst` runs one at a time, then
    `runs_per_burst` runs with `in_flight` going."""
    progress = progress or Silent()
    ratios: dict[str, list[float]] = {name: [] for name in SETUPS if name != BASELINE}
    gaps: dict[str, list[int]] = {name: [] for name in SETUPS}

    def burst(name: str, runtime: RuntimeProcess) -> float:
        gaps[name] += anyio.run(
            step_gaps, runtime.control, runtime.operator, latency_runs_per_burst, Silent()
        )
        seconds = anyio.run(
            throughput, runtime.control, runtime.operator, runs_per_burst, in_flight, Silent()
        )
        return runs_per_burst * STEPS / seconds

    names = list(SETUPS)
    passes = [("instrumented", bursts), ("every_run_traced", traced_bursts)]
    progress.phase(
        f"{rounds} rounds of bursts of {runs_per_burst:,} runs", rounds * (bursts + traced_bursts)
    )
    done = 0
    for round_ in range(rounds):
        with ExitStack() as stack:
            started = names[round_ % len(names) :] + names[: round_ % len(names)]
            runtimes = {
                name: stack.enter_context(cluster(secure=True, instruments=SETUPS[name]))
                for name in started
            }
            for runtime in runtimes.values():
                anyio.run(step_gaps, runtime.control, runtime.operator, WARM_UP_RUNS, Silent())
            for setup, count in passes:
                for index in range(count):
                    pair = [BASELINE, setup] if index % 2 == 0 else [setup, BASELINE]
                    rate = {name: burst(name, runtimes[name]) for name in pair}
                    ratios[setup].append(rate[setup] / rate[BASELINE])
                    done += 1
                    progress.done(done)
    return InstrumentationResult(
        rounds=rounds,
        bursts=bursts,
        traced_bursts=traced_bursts,
        runs_per_burst=runs_per_burst,
        ratios=ratios,
        step_p50_us={name: p50(found) / 1_000 for name, found in gaps.items()},
    )
