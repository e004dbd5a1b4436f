"""A flooding authenticated peer cannot stall the other agents, nor make the runtime hold
what it will not read."""

from __future__ import annotations

import itertools
import json
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

import anyio
import pytest

from runtime import ControlClient
from runtime.launch import ProcessGroup, RuntimeProcess
from tests.integration.conftest import HEARTBEAT, completed_runs

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

FLOWS = "tests.integration.flows"

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


def rss_mib(process: subprocess.Popen[bytes]) -> float:
    """The resident memory of a child process, in MiB."""
    for line in Path(f"/proc/{process.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for process {process.pid}")


def stopped_rejections(cluster: ProcessGroup, runtime: RuntimeProcess) -> dict[str, int]:
    """Stop the runtime; the refusals it counted, by reason, from its last log line."""
    assert cluster.stop(runtime.process) == 0
    (stopped,) = [
        json.loads(line)
        for line in cluster.log_of("runtime").splitlines()
        if '"runtime.stopped"' in line
    ]
    rejected: dict[str, int] = stopped["rejected_frames"]
    return rejected


def result_of(
    cluster: ProcessGroup, label: str, peer: subprocess.Popen[bytes], out: Path
) -> dict[str, Any]:
    """What a hostile peer that stopped by itself wrote."""
    assert peer.poll() == 0, cluster.log_of(label)
    result: dict[str, Any] = json.loads(out.read_text())
    return result


DEAF_CONNECTIONS = 4
DEAF_RATE = 9_000
"""Invalid frames per second over all the deaf connections: within the default rate limit,
so every one is decoded, refused and (unpaced) answered with about 1 KiB."""
DEAF_SECONDS = 6.0
REPLY_BURST = 10
"""Refusals of one kind a key has answered at once, before one a second."""


async def test_connections_that_never_read_leave_the_runtime_no_larger(
    cluster: ProcessGroup, tmp_path: Path
) -> None:
    """One key's connections send invalid frames within its rate limit and read nothing: the
    runtime's memory stays where it was, a connection of that key that does read is
    answered once a second per kind of refusal after a first few, every frame is counted,
    and a run completes afterwards."""
    cluster.enroll("quick", "quick")
    cluster.enroll("mallory", "quick")
    runtime = cluster.start_runtime([f"{FLOWS}:ALL"], heartbeat=HEARTBEAT)
    cluster.start_actor(f"{FLOWS}:Quick", runtime.agents)
    await completed_runs(runtime, "quick", {"n": 1})
    before = rss_mib(runtime.process)
    out = tmp_path / "deaf.json"
    peer = cluster.start_module(
        "deaf",
        "tests.integration.hostile_peer",
        [
            "deaf", runtime.agents, str(cluster.keys), "mallory", str(DEAF_CONNECTIONS),
            str(DEAF_RATE), str(DEAF_SECONDS), str(out),
        ],
    )  # fmt: skip
    peak = before
    with anyio.fail_after(60):
        while peer.poll() is None:
            peak = max(peak, rss_mib(runtime.process))
            await anyio.sleep(0.1)
    result = result_of(cluster, "deaf", peer, out)
    await completed_runs(runtime, "quick", {"n": 2})
    rejected = stopped_rejections(cluster, runtime)
    replies, window = result["replies"], result["window"]
    print(
        f"runtime RSS {before:.0f} MiB before, {peak:.0f} MiB at most while "
        f"{DEAF_CONNECTIONS} connections sent {result['sent']} invalid frames in "
        f"{window:.1f} s and read nothing; the reading connection got {replies}; "
        f"refusals counted {rejected}"
    )
    assert peak - before < 16
    assert replies, "the reading connection was never answered"
    for code, count in replies.items():
        assert count <= REPLY_BURST + window + 1, code
    assert rejected.get("invalid", 0) >= result["sent"] // 2


PARTS = 1_000_000


async def test_a_message_of_a_million_parts_stalls_no_one_and_is_paid_for(
    cluster: ProcessGroup, tmp_path: Path
) -> None:
    """A key sends one message of a million empty parts, then a heartbeat: the control plane
    goes on answering while the runtime reads it, runs complete meanwhile and after, the
    message is refused and its parts cost the key its rate (the heartbeat is rate limited),
    and the memory it took goes back."""
    cluster.enroll("quick", "quick")
    cluster.enroll("mallory", "quick")
    runtime = cluster.start_runtime([f"{FLOWS}:ALL"], heartbeat=HEARTBEAT)
    cluster.start_actor(f"{FLOWS}:Quick", runtime.agents)
    await completed_runs(runtime, "quick", {"n": 1}, {"n": 2})
    before = rss_mib(runtime.process)
    out = tmp_path / "parts.json"
    peer = cluster.start_module(
        "parts",
        "tests.integration.hostile_peer",
        ["parts", runtime.agents, str(cluster.keys), "mallory", str(PARTS), str(out)],
    )
    round_trips: list[float] = []
    statuses: list[str] = []

    async def run_meanwhile(client: ControlClient) -> None:
        while peer.poll() is None:
            run_id = await client.start_run("quick", {"n": len(statuses) + 4})
            record, _ = await client.wait_run(run_id, max_wait=30)
            statuses.append(record.status)

    async with (
        ControlClient(runtime.control, keys=runtime.operator) as client,
        ControlClient(runtime.control, keys=runtime.operator) as runner,
        anyio.create_task_group() as tasks,
    ):
        tasks.start_soon(run_meanwhile, runner)
        with anyio.fail_after(60):
            while peer.poll() is None:
                asked = time.monotonic()
                await client.list_runs(limit=1)
                round_trips.append(time.monotonic() - asked)
                await anyio.sleep(0.01)
    await completed_runs(runtime, "quick", {"n": 1})
    result = result_of(cluster, "parts", peer, out)
    after = rss_mib(runtime.process)
    deadline = time.monotonic() + 10
    while after - before > 32 and time.monotonic() < deadline:
        await anyio.sleep(0.1)
        after = rss_mib(runtime.process)
    rejected = stopped_rejections(cluster, runtime)
    longest = max(round_trips)
    print(
        f"control plane: longest round trip {longest * 1e3:.1f} ms over {len(round_trips)} "
        f"while the runtime took {result['answer_seconds']:.2f} s to answer the message; "
        f"{len(statuses)} runs meanwhile; runtime RSS {before:.0f} MiB before, {after:.0f} "
        f"MiB after; replies {result['codes']}; refusals counted {rejected}"
    )
    assert statuses
    assert set(statuses) == {"completed"}
    assert result["codes"] == ["malformed", "rate_limited"]
    # Reading the message in one stretch held the control plane for most of the time the
    # runtime took to answer it; read over many turns, it holds it for a few of them.
    assert longest < result["answer_seconds"] / 10
    assert after - before <= 32
    assert rejected.get("malformed", 0) >= 1
    assert rejected.get("rate_limited", 0) >= 1
