"""`make bench`: the raw ZeroMQ floor and Baton, measured in one run, as ratios.

python -m benchmarks [--quick] [--rounds N] [--json PATH]

What instrumentation costs is measured in rounds, each an uninstrumented run beside an
instrumented one, so that both halves of a ratio see the same machine; the median
round is the figure.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from benchmarks._progress import shown
from benchmarks.floor import FloorResult, format_table, measure_floor
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
    label: str,
    store: str,
    scale: int,
    *,
    secure: bool = True,
    instrumented: bool = False,
    trace_sample: float = TRACE_SAMPLE,
) -> WorkflowResult:
    with shown(f"Baton ({label})") as progress:
        return measure_workflow(
            secure=secure,
            store=store,
            instrumented=instrumented,
            trace_sample=trace_sample,
            latency_runs=320 // scale + 20,
            pipelined_runs=8_000 // scale,
            progress=progress,
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="Fewer samples, for a smoke run.")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="Where to write results.")
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="Rounds of uninstrumented and instrumented runs side by side (default 3).",
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
            ("memory_insecure", "memory://", False, False),
            ("memory_secure", "memory://", True, False),
            ("memory_secure_instrumented", "memory://", True, True),
            ("sqlite_full_secure", full, True, False),
            ("sqlite_normal_secure", normal, True, False),
        ]
        for key, store, secure, instrumented in setups:
            results[key] = _measure(key, store, scale, secure=secure, instrumented=instrumented)
            print(_report(floor, results[key]))
        rounds = [(results["memory_secure"], results["memory_secure_instrumented"])]
        for index in range(2, args.rounds + 1):
            rounds.append(
                (
                    _measure(f"round {index}, uninstrumented", "memory://", scale),
                    _measure(f"round {index}, instrumented", "memory://", scale, instrumented=True),
                )
            )
        results["memory_secure_every_run_traced"] = every = _measure(
            "every run traced", "memory://", scale, instrumented=True, trace_sample=1.0
        )
    plain, secure_result = results["memory_insecure"], results["memory_secure"]
    print(
        "\nCost of CURVE (secure / insecure):\n"
        f"  steps/s: {secure_result.steps_per_s / plain.steps_per_s:.3f} "
        f"({1 - secure_result.steps_per_s / plain.steps_per_s:+.1%} cost)\n"
        f"  per-step p50: {secure_result.step_latency.p50_us / plain.step_latency.p50_us:.3f}x"
    )
    throughput = [on.steps_per_s / off.steps_per_s for off, on in rounds]
    latency = [on.step_latency.p50_us / off.step_latency.p50_us for off, on in rounds]
    print(
        "\nCost of instrumentation (metrics served, info logs, spans of "
        f"{TRACE_SAMPLE:.0%} of runs exported by the runtime and every agent; memory store, "
        "CURVE on), instrumented / uninstrumented:\n"
        f"  steps/s: {statistics.median(throughput):.3f} "
        f"({1 - statistics.median(throughput):+.1%} cost; rounds: "
        f"{', '.join(f'{r:.3f}' for r in throughput)})\n"
        f"  per-step p50: {statistics.median(latency):.3f}x "
        f"(rounds: {', '.join(f'{r:.3f}' for r in latency)})"
    )
    last = rounds[-1][0]
    print(
        "With every run traced (--trace-sample 1), against the last uninstrumented round:\n"
        f"  steps/s: {every.steps_per_s / last.steps_per_s:.3f} "
        f"({1 - every.steps_per_s / last.steps_per_s:+.1%} cost)"
    )
    async_rtt = floor.async_client.latency.p50_us
    print("\nDurable (SQLite journal, CURVE on):")
    for name in ("FULL", "NORMAL"):
        durable = results[f"sqlite_{name.lower()}_secure"]
        p50 = durable.step_latency.p50_us
        print(
            f"  {name:<6} {durable.steps_per_s:,.0f} steps/s, per-step p50 {p50:.0f} µs "
            f"({p50 / async_rtt:.2f}x the asyncio floor)"
        )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps(
            {
                "floor": floor.to_dict(),
                "instrumentation_rounds": {
                    "steps_per_s_ratio": throughput,
                    "p50_ratio": latency,
                },
                "baton": {setup: dataclasses.asdict(result) for setup, result in results.items()},
            },
            indent=2,
        )
    )
    print(f"\nresults written to {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
