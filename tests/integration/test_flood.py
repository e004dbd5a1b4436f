"""A flooding authenticated peer cannot stall the other agents."""

from __future__ import annotations

import itertools
import json
import statistics
import time
from pathlib import Path

import anyio
import pytest

from runtime import ControlClient
from runtime._launch import ProcessGroup, RuntimeProcess

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

STEPS = 5
FLOOD_SECONDS = 30.0
"""The flooder stops by itself after this, whatever happens to the test."""
FLOOD_RATE = 50_000
"""Frames per second the flooder sends: five times the runtime's default rate limit."""


async def step_latencies_us(runtime: RuntimeProcess, runs: int) -> list[float]:
    """Per-step latencies of `runs` runs of the 5-step workflow, one run at a time, as the
    runtime journaled them (gaps between consecutive step completions)."""
    gaps: list[float] = []
    async with ControlClient(runtime.control, keys=runtime.operator, timeout=30) as client:
        for _ in range(runs):
            run_id = await client.start_run("bench_linear", {"payload": {"n": 1}})
            record, timed_out = await client.wait_run(run_id, max_wait=30)
            assert not timed_out
            assert record.status == "completed"
            marks = [h.at for h in record.history if h.event in ("run_started", "step_succeeded")]
            gaps.extend((b - a) * 1e6 for a, b in itertools.pairwise(marks))
    return gaps


async def test_flooding_peer_leaves_other_agents_latency_within_twice_normal(
    cluster: ProcessGroup, tmp_path: Path
) -> None:
    """Step latency while a peer floods the agent plane at 5x its rate limit stays within
    2x of the latency without it, and the flood is rate limited (counted), not served."""
    for i in range(STEPS):
        cluster.enroll(f"bench{i}", f"bench{i}")
    cluster.enroll("flooder", "bench0")
    runtime = cluster.start_runtime(["benchmarks.agents:linear"])
    for i in range(STEPS):
        cluster.start_actor(f"benchmarks.agents:Bench{i}", runtime.agents, label=f"bench{i}")
    await step_latencies_us(runtime, 10)  # warm-up: connections, caches, first dispatches
    normal = await step_latencies_us(runtime, 200)

    ready = tmp_path / "flooder.ready"
    assert cluster.keys is not None
    flooder = cluster.start_module(
        "flooder",
        "tests.integration.flooder",
        [
            runtime.agents,
            str(cluster.keys),
            "flooder",
            str(FLOOD_RATE),
            str(FLOOD_SECONDS),
            str(ready),
        ],
    )
    with anyio.fail_after(15):
        while not ready.exists():
            assert flooder.poll() is None, cluster.log_of("flooder")
            await anyio.sleep(0.01)
    flood_started = time.monotonic()
    flooded = await step_latencies_us(runtime, 200)
    measured_in = time.monotonic() - flood_started
    assert flooder.poll() is None, "the flood ended before the measurement did"
    cluster.stop(flooder)
    flooder.wait()
    assert cluster.stop(runtime.process) == 0

    normal_p50 = statistics.median(normal)
    flooded_p50 = statistics.median(flooded)
    stopped = [
        json.loads(line)
        for line in cluster.log_of("runtime").splitlines()
        if '"runtime.stopped"' in line
    ]
    rejected = stopped[0]["rejected_frames"]
    print(
        f"step p50 normal {normal_p50:.0f} µs, flooded {flooded_p50:.0f} µs "
        f"({flooded_p50 / normal_p50:.2f}x) over {measured_in:.1f} s; "
        f"rate limited {rejected.get('rate_limited', 0)} frames"
    )
    assert rejected.get("rate_limited", 0) > 0
    assert flooded_p50 <= 2 * normal_p50
