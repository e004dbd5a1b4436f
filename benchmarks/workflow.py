"""Baton end to end: a 5-step linear workflow of trivial agents, each its own process.

Per-step latency is read from the run record (the gap between consecutive
step completions, as the supervisor journaled them) with one run at a time;
throughput counts steps per second while keeping `in_flight` runs going.
"""

from __future__ import annotations

import itertools
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import zmq
import zmq.asyncio

from benchmarks._progress import Progress
from benchmarks._stats import Latency
from benchmarks.agents import STEPS
from protocols import (
    PROTOCOL_VERSION,
    ClientKeys,
    ControlError,
    RunAccepted,
    RunsReply,
    StartRun,
    WaitRun,
    client_side_control_codec,
)
from runtime import ControlClient
from runtime.launch import ProcessGroup, RuntimeProcess
from runtime.security._keys import add_principal, init_keys

WORKFLOW = "benchmarks.agents:linear"
PAYLOAD: dict[str, Any] = {"payload": {"text": "a small request", "n": 1}}
TIME_LIMIT_S = 120.0


class BenchError(RuntimeError):
    """A run did not complete, or the benchmark ran out of time."""


@dataclass(frozen=True)
class WorkflowResult:
    """Baton's figures for one store, with or without CURVE."""

    store: str
    secure: bool
    step_latency: Latency
    runs_measured: int
    steps_per_s: float
    runs_per_s: float
    in_flight: int
    runs_pipelined: int
    runtimes: int = 1
    """Runtimes sharing the store, the runs in flight spread over them."""


WARM_UP_RUNS = 20
"""Runs one at a time before latency is measured: connections made, code paths warm."""


async def step_gaps(
    control: str, keys: ClientKeys | None, runs: int, progress: Progress, *, warm_up: int = 0
) -> list[int]:
    """Nanoseconds between consecutive steps of `runs` runs started one at a time, read
    from their records; the first `warm_up` runs are not counted."""
    gaps: list[int] = []
    progress.phase("one run at a time", runs)
    async with ControlClient(control, timeout=30, keys=keys) as client:
        for index in range(runs):
            run_id = await client.start_run("bench_linear", PAYLOAD)
            record, timed_out = await client.wait_run(run_id, max_wait=30)
            if timed_out or record.status != "completed":
                raise BenchError(f"run {run_id} ended {record.status}: {record.reason}")
            progress.done(index + 1)
            if index < warm_up:
                continue
            marks = [h.at for h in record.history if h.event in ("run_started", "step_succeeded")]
            gaps.extend(int((b - a) * 1e9) for a, b in itertools.pairwise(marks))
    return gaps


async def throughput(
    control: str | Sequence[str],
    keys: ClientKeys | None,
    total: int,
    in_flight: int,
    progress: Progress,
) -> float:
    """Keep `in_flight` runs going until `total` completed; seconds taken.

    With several control planes (a cluster's runtimes), the runs are started on
    each in turn, and a run that ends is followed by a new one on the same runtime.
    The client drains every reply that is ready before it sends the requests
    they call for, so that it takes as little of the machine as it can from
    the processes being measured.
    """
    controls = [control] if isinstance(control, str) else list(control)
    codec = client_side_control_codec()
    ctx = zmq.asyncio.Context()
    poller = zmq.asyncio.Poller()
    socks: list[zmq.asyncio.Socket] = []
    raws: list[zmq.Socket[bytes]] = []
    for endpoint in controls:
        sock = ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        if keys is not None:
            sock.curve_secretkey = keys.secret
            sock.curve_publickey = keys.public
            sock.curve_serverkey = keys.server
        sock.connect(endpoint)
        poller.register(sock, zmq.POLLIN)
        socks.append(sock)
        raws.append(zmq.Socket.shadow(sock.underlying))
    ids = iter(range(1, 10 * total + 10))
    started = completed = 0

    def start_frame() -> bytes:
        nonlocal started
        started += 1
        return codec.encode(
            StartRun(
                id=next(ids), protocol=PROTOCOL_VERSION, workflow="bench_linear", inputs=PAYLOAD
            )
        )

    def answer(reply: object) -> bytes | None:
        nonlocal completed
        match reply:
            case RunAccepted():
                return codec.encode(
                    WaitRun(
                        id=next(ids),
                        protocol=PROTOCOL_VERSION,
                        run_id=reply.run_id,
                        timeout_ms=60_000,
                        summary=True,
                    )
                )
            case RunsReply():
                if reply.runs[0].status != "completed":
                    raise BenchError(f"run ended {reply.runs[0].status}")
                completed += 1
                progress.done(completed)
                return start_frame() if started < total else None
            case ControlError():
                raise BenchError(f"{reply.code}: {reply.message}")
        raise BenchError(f"unexpected reply {type(reply).__name__}")

    progress.phase(f"{in_flight} runs in flight", total)
    try:
        began = time.perf_counter()
        for n in range(min(in_flight, total)):
            raws[n % len(raws)].send(start_frame())
        with anyio.fail_after(TIME_LIMIT_S):
            while completed < total:
                await poller.poll()
                for raw in raws:
                    outgoing: list[bytes] = []
                    while True:
                        try:
                            frame = raw.recv(zmq.NOBLOCK)
                        except zmq.Again:
                            break
                        follow = answer(codec.decode(frame))
                        if follow is not None:
                            outgoing.append(follow)
                    for frame in outgoing:
                        raw.send(frame)
        return time.perf_counter() - began
    finally:
        for sock in socks:
            sock.close(linger=0)
        ctx.term()


class Silent:
    """Progress that shows nothing."""

    def phase(self, name: str, total: int) -> None:
        pass

    def done(self, count: int) -> None:
        pass


TRACE_SAMPLE = 0.01
"""The share of runs an instrumented benchmark traces: a production setting at this rate."""


@dataclass(frozen=True)
class Instruments:
    """What the runtime and every agent of a cluster record, as an operator runs them."""

    log_level: str = "warning"
    metrics: bool = False
    trace_sample: float | None = None
    """The share of runs traced by the runtime and every agent; None: no tracing."""

    def runtime_flags(self, spans: Path) -> list[str]:
        flags = ["--log-level", self.log_level]
        if self.metrics:
            flags += ["--metrics-port", "0"]
        if self.trace_sample is not None:
            flags += ["--trace-file", str(spans), "--trace-sample", str(self.trace_sample)]
        return flags

    def agent_flags(self, spans: Path) -> list[str]:
        flags = ["--log-level", self.log_level]
        if self.trace_sample is not None:
            flags += ["--trace-file", str(spans)]
        return flags


NONE = Instruments()
PRODUCTION = Instruments(log_level="info", metrics=True, trace_sample=TRACE_SAMPLE)
"""Metrics served, every process logging at info, 1% of runs traced everywhere."""


@contextmanager
def cluster(
    *,
    secure: bool,
    store: str = "memory://",
    instruments: Instruments = NONE,
    concurrency: int = 128,
    runtimes: int = 1,
) -> Iterator[RuntimeProcess]:
    """A runtime and one agent process per role, each recording what `instruments` says;
    all stopped on leaving. With `runtimes` above 1 (a PostgreSQL store), that many
    runtimes share the store, each agent serves them all, and the first is yielded;
    the others are in `members`.

    `secure` runs both planes with CURVE and a key per process, as users run by default.
    """
    with runtimes_cluster(
        secure=secure,
        store=store,
        instruments=instruments,
        concurrency=concurrency,
        runtimes=runtimes,
    ) as members:
        yield members[0]


@contextmanager
def runtimes_cluster(
    *,
    secure: bool,
    store: str = "memory://",
    instruments: Instruments = NONE,
    concurrency: int = 128,
    runtimes: int = 1,
) -> Iterator[list[RuntimeProcess]]:
    """Every runtime of `cluster`, each agent process serving them all."""
    with tempfile.TemporaryDirectory(prefix="baton-bench-") as folder:
        keys: Path | None = None
        if secure:
            keys = Path(folder) / "keys"
            init_keys(keys)
            for i in range(STEPS):
                add_principal(keys, f"bench{i}", [f"bench{i}"])
        with ProcessGroup(Path(folder), keys=keys) as group:
            spans = Path(folder) / "spans"
            spans.mkdir()
            members = [
                group.start_runtime(
                    [WORKFLOW],
                    store=store,
                    label=f"runtime-{n}",
                    extra=instruments.runtime_flags(spans / f"runtime-{n}.jsonl"),
                )
                for n in range(runtimes)
            ]
            for i in range(STEPS):
                group.start_actor(
                    f"benchmarks.agents:Bench{i}",
                    ",".join(m.agents for m in members),
                    concurrency=concurrency,
                    label=f"bench{i}",
                    extra=instruments.agent_flags(spans / f"bench{i}.jsonl"),
                )
            yield members


def measure_workflow(
    *,
    secure: bool,
    store: str = "memory://",
    latency_runs: int = 320,
    pipelined_runs: int = 4_000,
    in_flight: int = 100,
    progress: Progress | None = None,
    runtimes: int = 1,
) -> WorkflowResult:
    """Start a cluster, measure per-step latency one run at a time and steps/s with
    `in_flight` runs going, and stop it. With several `runtimes` (a PostgreSQL store),
    latency is measured on the first and the runs in flight are spread over all."""
    progress = progress or Silent()
    with runtimes_cluster(secure=secure, store=store, runtimes=runtimes) as members:
        runtime = members[0]
        operator = runtime.operator
        gaps = anyio.run(
            partial(step_gaps, warm_up=WARM_UP_RUNS),
            runtime.control,
            operator,
            latency_runs + WARM_UP_RUNS,
            progress,
        )
        seconds = anyio.run(
            throughput, [m.control for m in members], operator, pipelined_runs, in_flight,
            progress,
        )  # fmt: skip
    return WorkflowResult(
        store=store,
        secure=secure,
        step_latency=Latency.of_ns(gaps),
        runs_measured=latency_runs,
        steps_per_s=pipelined_runs * STEPS / seconds,
        runs_per_s=pipelined_runs / seconds,
        in_flight=in_flight,
        runs_pipelined=pipelined_runs,
        runtimes=runtimes,
    )
