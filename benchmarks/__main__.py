"""`make bench`: the raw ZeroMQ floor and Baton, measured in one run, as ratios.

python -m benchmarks [--quick] [--json PATH]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from benchmarks.floor import FloorResult, format_table, measure_floor
from benchmarks.workflow import WorkflowResult, measure_workflow

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


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="Fewer samples, for a smoke run.")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="Where to write results.")
    args = parser.parse_args(argv)
    scale = 10 if args.quick else 1
    print("measuring the raw ZeroMQ floor ...", file=sys.stderr)
    floor = measure_floor(round_trips=5_000 // scale, pipelined=50_000 // scale)
    print(format_table(floor))
    results: dict[str, WorkflowResult] = {}
    with tempfile.TemporaryDirectory(prefix="baton-bench-journal-") as folder:
        setups = [
            ("memory_insecure", False, "memory://"),
            ("memory_secure", True, "memory://"),
            ("memory_secure_metrics", True, "memory://"),
            ("sqlite_full_secure", True, f"sqlite:///{folder}/full.db?synchronous=FULL"),
            ("sqlite_normal_secure", True, f"sqlite:///{folder}/normal.db?synchronous=NORMAL"),
        ]
        for key, secure, store in setups:
            print(f"measuring Baton ({key}) ...", file=sys.stderr)
            results[key] = measure_workflow(
                secure=secure,
                store=store,
                metrics=key.endswith("_metrics"),
                latency_runs=320 // scale + 20,
                pipelined_runs=8_000 // scale,
            )
            print(_report(floor, results[key]))
    plain, secure_result = results["memory_insecure"], results["memory_secure"]
    print(
        "\nCost of CURVE (secure / insecure):\n"
        f"  steps/s: {secure_result.steps_per_s / plain.steps_per_s:.3f} "
        f"({1 - secure_result.steps_per_s / plain.steps_per_s:+.1%} cost)\n"
        f"  per-step p50: {secure_result.step_latency.p50_us / plain.step_latency.p50_us:.3f}x"
    )
    measured = results["memory_secure_metrics"]
    print(
        "\nCost of Prometheus metrics (--metrics-port, memory store, CURVE on):\n"
        f"  steps/s: {measured.steps_per_s / secure_result.steps_per_s:.3f} "
        f"({1 - measured.steps_per_s / secure_result.steps_per_s:+.1%} cost)\n"
        f"  per-step p50: {measured.step_latency.p50_us / secure_result.step_latency.p50_us:.3f}x"
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
                "baton": {
                    f"memory_{mode}": dataclasses.asdict(result) for mode, result in results.items()
                },
            },
            indent=2,
        )
    )
    print(f"\nresults written to {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
