"""The raw ZeroMQ floor: what two processes on loopback cost before Baton adds anything.

A DEALER client and a ROUTER echo server in another process exchange frames of
the sizes Baton sends, made by the real codec: an `Assign` out, a `StepResult`
back. Two clients are measured against the same server: an asyncio pyzmq client,
as Baton's processes are, and a plain sync one. Each reports the round-trip
latency one request at a time, and the throughput with many requests in flight.

    python -m benchmarks.floor [--round-trips N] [--pipelined N] [--in-flight N] [--json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import platform
import select
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zmq
import zmq.asyncio

from benchmarks._stats import Latency, Stopwatch
from protocols import (
    PROTOCOL_VERSION,
    Assign,
    StepResult,
    actor_side_codec,
    runtime_side_agent_codec,
)

HOST = "127.0.0.1"
STOP = b""
"""An empty frame asks the echo server to exit; Baton never sends one."""

WARM_UP = 1_000
"""Round trips made before any measurement, so connections and caches are warm."""

REPLY_TIMEOUT_MS = 5_000
"""Longest wait for any one reply before the run is abandoned."""

PEER_START_TIMEOUT_S = 10.0
PEER_IDLE_TIMEOUT_MS = 15_000
"""The echo server exits by itself after this long without a request."""

CLIENT_TIME_LIMIT_S = 60.0
"""Longest the asyncio client's whole measurement may take."""

MAX_ROUND_TRIPS = 1_000_000
MAX_PIPELINED = 10_000_000
MAX_IN_FLIGHT = 1_000
"""At most the default high-water mark, so no request is ever dropped or blocked."""


class FloorError(RuntimeError):
    """The echo server did not start, or stopped answering."""


@dataclass(frozen=True)
class Throughput:
    """`round_trips` completed in `seconds` while keeping `in_flight` requests outstanding."""

    round_trips: int
    in_flight: int
    seconds: float

    @property
    def per_s(self) -> float:
        return self.round_trips / self.seconds


@dataclass(frozen=True)
class ClientFloor:
    """One client's numbers: latency one request at a time, and two ways of pipelining.

    `one_by_one` waits for each reply and sends the next request, one call each;
    `drained` receives every reply already there without waiting, then sends as many
    requests, the batched shape a busy supervisor loop takes.
    """

    client: str
    latency: Latency
    one_by_one: Throughput
    drained: Throughput


@dataclass(frozen=True)
class FloorResult:
    """The floor for both clients, with the frame sizes and versions it was measured with."""

    request_bytes: int
    reply_bytes: int
    async_client: ClientFloor
    sync_client: ClientFloor
    pyzmq: str
    libzmq: str
    python: str

    def to_dict(self) -> dict[str, Any]:
        """The result as JSON-ready data, throughputs per second included."""
        data = dataclasses.asdict(self)
        for client in ("async_client", "sync_client"):
            for shape in ("one_by_one", "drained"):
                data[client][shape]["per_s"] = getattr(getattr(self, client), shape).per_s
        return data


def sample_frames() -> tuple[bytes, bytes]:
    """A representative `Assign` (five small inputs) and `StepResult` (two outputs, a rationale).

    Encoded by the codecs of the side that sends each: the runtime assigns, the actor replies.
    """
    assign = Assign(
        run_id="run-01J9Z3K4Q7M2X8V5N6B1C0D9E8",
        step="score_invoice",
        attempt=1,
        inputs={
            "invoice_id": "INV-2024-004217",
            "amount": 1249.5,
            "currency": "EUR",
            "vendor": "Acme Office Supplies GmbH",
            "due_days": 30,
        },
        tools=["lookup_vendor"],
        timeout_ms=30_000,
    )
    result = StepResult(
        run_id=assign.run_id,
        step=assign.step,
        attempt=assign.attempt,
        outputs={"risk": "low", "score": 0.12},
        rationale="Known vendor, amount within the usual range, terms match the contract.",
        confidence=0.93,
    )
    return runtime_side_agent_codec().encode(assign), actor_side_codec().encode(result)


def _check_counts(*, round_trips: int, pipelined: int, in_flight: int) -> None:
    for name, value, limit in (
        ("round_trips", round_trips, MAX_ROUND_TRIPS),
        ("pipelined", pipelined, MAX_PIPELINED),
        ("in_flight", in_flight, MAX_IN_FLIGHT),
    ):
        if not 1 <= value <= limit:
            raise ValueError(f"{name} must be within 1 and {limit}, got {value}")


# --- The echo server, in its own process ------------------------------------------------------


def serve() -> None:
    """Bind a ROUTER on loopback, print its port, and answer every request with the reply frame.

    Exits on a `STOP` frame or after `PEER_IDLE_TIMEOUT_MS` without a request.
    """
    _, reply = sample_frames()
    context = zmq.Context()
    router = context.socket(zmq.ROUTER)
    router.linger = 0
    router.rcvtimeo = PEER_IDLE_TIMEOUT_MS
    try:
        port = router.bind_to_random_port(f"tcp://{HOST}")
        sys.stdout.write(f"{port}\n")
        sys.stdout.flush()
        # A DEALER's request arrives as exactly two frames: its routing id, then the payload.
        # Plain recv and send calls cost less than the multipart helpers.
        recv, send, more = router.recv, router.send, zmq.SNDMORE
        while True:
            try:
                peer = recv()
                request = recv()
            except zmq.Again:
                return
            if request == STOP:
                return
            send(peer, more)
            send(reply)
    finally:
        router.close()
        context.term()


@contextmanager
def echo_server() -> Iterator[str]:
    """Run `serve()` in a child process; yield its endpoint; always stop and reap it."""
    root = Path(__file__).resolve().parent.parent
    env = os.environ | {
        "PYTHONPATH": os.pathsep.join(p for p in (str(root), os.environ.get("PYTHONPATH")) if p)
    }
    peer = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.floor", "--peer"],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert peer.stdout is not None
        ready, _, _ = select.select([peer.stdout], [], [], PEER_START_TIMEOUT_S)
        line = peer.stdout.readline() if ready else ""
        if not line.strip().isdigit():
            raise FloorError(f"echo server did not report its port (exit code {peer.poll()})")
        endpoint = f"tcp://{HOST}:{int(line)}"
        yield endpoint
        _send_stop(endpoint)
        with suppress(subprocess.TimeoutExpired):
            peer.wait(timeout=5)
    finally:
        if peer.poll() is None:
            peer.terminate()
            try:
                peer.wait(timeout=5)
            except subprocess.TimeoutExpired:
                peer.kill()
                peer.wait()
        if peer.stdout is not None:
            peer.stdout.close()


def _send_stop(endpoint: str) -> None:
    context = zmq.Context()
    dealer = context.socket(zmq.DEALER)
    dealer.linger = 1_000
    try:
        dealer.connect(endpoint)
        dealer.send(STOP)
    finally:
        dealer.close()
        context.term()


# --- Clients ----------------------------------------------------------------------------------


def _connect(dealer: zmq.Socket[Any], endpoint: str) -> None:
    dealer.linger = 0
    dealer.rcvtimeo = REPLY_TIMEOUT_MS
    dealer.sndtimeo = REPLY_TIMEOUT_MS
    dealer.connect(endpoint)


def _check_reply(received: bytes, expected: bytes) -> None:
    if received != expected:
        raise FloorError(f"echo server answered {len(received)} bytes, not the reply frame")


def _sync_one_by_one(dealer: zmq.Socket[bytes], request: bytes, total: int, in_flight: int) -> None:
    """Keep `in_flight` requests out: each reply received is followed by one request."""
    send, recv = dealer.send, dealer.recv
    sent = min(in_flight, total)
    for _ in range(sent):
        send(request)
    for _ in range(total):
        recv()
        if sent < total:
            send(request)
            sent += 1


def _sync_drained(dealer: zmq.Socket[bytes], request: bytes, total: int, in_flight: int) -> None:
    """Keep `in_flight` requests out: wait for a reply, take all that are ready, send as many."""
    send, recv, noblock = dealer.send, dealer.recv, zmq.NOBLOCK
    sent = min(in_flight, total)
    for _ in range(sent):
        send(request)
    done = 0
    while done < total:
        recv()
        ready = 1
        while True:
            try:
                recv(noblock)
            except zmq.Again:
                break
            ready += 1
        done += ready
        more = min(ready, total - sent)
        for _ in range(more):
            send(request)
        sent += more


def measure_sync_client(
    endpoint: str, request: bytes, reply: bytes, *, round_trips: int, pipelined: int, in_flight: int
) -> ClientFloor:
    """Measure a plain blocking pyzmq DEALER against the echo server at `endpoint`."""
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    dealer = context.socket(zmq.DEALER)
    _connect(dealer, endpoint)
    send, recv, clock = dealer.send, dealer.recv, time.perf_counter_ns
    try:
        for _ in range(WARM_UP):
            send(request)
            _check_reply(recv(), reply)

        samples = [0] * round_trips
        for i in range(round_trips):
            started = clock()
            send(request)
            recv()
            samples[i] = clock() - started

        shapes: list[Throughput] = []
        for pipeline in (_sync_one_by_one, _sync_drained):
            watch = Stopwatch()
            pipeline(dealer, request, pipelined, in_flight)
            shapes.append(Throughput(pipelined, in_flight, watch.elapsed_s()))
    except zmq.Again:
        raise FloorError(f"no reply within {REPLY_TIMEOUT_MS} ms") from None
    finally:
        dealer.close()
        context.term()
    return ClientFloor("sync", Latency.of_ns(samples), *shapes)


async def _async_one_by_one(
    dealer: zmq.asyncio.Socket, request: bytes, total: int, in_flight: int
) -> None:
    """Keep `in_flight` requests out: each reply awaited is followed by one awaited request."""
    send, recv = dealer.send, dealer.recv
    sent = min(in_flight, total)
    for _ in range(sent):
        await send(request)
    for _ in range(total):
        await recv()
        if sent < total:
            await send(request)
            sent += 1


async def _async_drained(
    dealer: zmq.asyncio.Socket, request: bytes, total: int, in_flight: int
) -> None:
    """Like `_sync_drained`, but wait for readiness through asyncio.

    The receives and sends of a batch go through a sync shadow of the same socket, so
    they cost a call each and no future.
    """
    shadow: zmq.Socket[bytes] = zmq.Socket.shadow(dealer.underlying)
    send, recv, noblock = shadow.send, shadow.recv, zmq.NOBLOCK
    sent = min(in_flight, total)
    for _ in range(sent):
        send(request)
    done = 0
    while done < total:
        if not await dealer.poll(REPLY_TIMEOUT_MS):  # POLLIN by default
            raise zmq.Again
        ready = 0
        while True:
            try:
                recv(noblock)
            except zmq.Again:
                break
            ready += 1
        done += ready
        more = min(ready, total - sent)
        for _ in range(more):
            send(request)
        sent += more


async def measure_async_client(
    endpoint: str, request: bytes, reply: bytes, *, round_trips: int, pipelined: int, in_flight: int
) -> ClientFloor:
    """Measure an asyncio pyzmq DEALER, as Baton's processes use, against `endpoint`."""
    context = zmq.asyncio.Context()
    dealer = context.socket(zmq.DEALER)
    _connect(dealer, endpoint)
    send, recv, clock = dealer.send, dealer.recv, time.perf_counter_ns
    try:
        async with asyncio.timeout(CLIENT_TIME_LIMIT_S):
            for _ in range(WARM_UP):
                await send(request)
                _check_reply(await recv(), reply)

            samples = [0] * round_trips
            for i in range(round_trips):
                started = clock()
                await send(request)
                await recv()
                samples[i] = clock() - started

            shapes: list[Throughput] = []
            for pipeline in (_async_one_by_one, _async_drained):
                watch = Stopwatch()
                await pipeline(dealer, request, pipelined, in_flight)
                shapes.append(Throughput(pipelined, in_flight, watch.elapsed_s()))
    except zmq.Again:
        raise FloorError(f"no reply within {REPLY_TIMEOUT_MS} ms") from None
    except TimeoutError:
        raise FloorError(f"measurement took over {CLIENT_TIME_LIMIT_S} s") from None
    finally:
        dealer.close()
        context.term()
    return ClientFloor("asyncio", Latency.of_ns(samples), *shapes)


def measure_floor(
    *, round_trips: int = 5_000, pipelined: int = 50_000, in_flight: int = 100
) -> FloorResult:
    """Start an echo server in another process and measure both clients against it.

    Bounded: counts are capped, each reply is awaited at most `REPLY_TIMEOUT_MS`, the asyncio
    client's run lasts at most `CLIENT_TIME_LIMIT_S`, and the server process is stopped and
    reaped on every exit.
    """
    _check_counts(round_trips=round_trips, pipelined=pipelined, in_flight=in_flight)
    request, reply = sample_frames()
    counts = {"round_trips": round_trips, "pipelined": pipelined, "in_flight": in_flight}
    with echo_server() as endpoint:
        async_client = asyncio.run(measure_async_client(endpoint, request, reply, **counts))
        sync_client = measure_sync_client(endpoint, request, reply, **counts)
    return FloorResult(
        request_bytes=len(request),
        reply_bytes=len(reply),
        async_client=async_client,
        sync_client=sync_client,
        pyzmq=zmq.pyzmq_version(),
        libzmq=zmq.zmq_version(),
        python=platform.python_version(),
    )


# --- Command line -----------------------------------------------------------------------------


def format_table(result: FloorResult) -> str:
    """The result as a table for people."""
    in_flight = result.sync_client.drained.in_flight
    lines = [
        f"ZeroMQ floor: DEALER -> ROUTER echo in another process, tcp://{HOST}",
        f"request Assign {result.request_bytes} B, reply StepResult {result.reply_bytes} B; "
        f"protocol {PROTOCOL_VERSION}, pyzmq {result.pyzmq}, libzmq {result.libzmq}, "
        f"Python {result.python}",
        "",
        f"{'':<8} {'one at a time':^26}   {f'{in_flight} in flight, round trips/s':^28}",
        f"{'client':<8} {'p50 µs':>8} {'p99 µs':>8} {'mean µs':>8}"
        f"   {'one by one':>13} {'drained':>14}",
    ]
    for floor in (result.async_client, result.sync_client):
        lines.append(
            f"{floor.client:<8} {floor.latency.p50_us:>8.1f} {floor.latency.p99_us:>8.1f}"
            f" {floor.latency.mean_us:>8.1f}   {floor.one_by_one.per_s:>13,.0f}"
            f" {floor.drained.per_s:>14,.0f}"
        )
    sync = result.sync_client
    lines += [
        "",
        f"{sync.latency.count:,} round trips one at a time, "
        f"{sync.drained.round_trips:,} pipelined in each shape.",
        "one by one: a reply, then a request; drained: every reply ready, then as many requests.",
    ]
    return "\n".join(line.rstrip() for line in lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.floor",
        description="Measure raw ZeroMQ round trips between two processes on loopback.",
    )
    parser.add_argument("--round-trips", type=int, default=5_000, help="timed one at a time")
    parser.add_argument("--pipelined", type=int, default=50_000, help="timed with many in flight")
    parser.add_argument("--in-flight", type=int, default=100, help="requests kept outstanding")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the result here")
    parser.add_argument("--peer", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.peer:
        serve()
        return 0
    try:
        result = measure_floor(
            round_trips=args.round_trips, pipelined=args.pipelined, in_flight=args.in_flight
        )
    except (ValueError, FloorError) as exc:
        parser.exit(1, f"floor: {exc}\n")
    print(format_table(result))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result.to_dict(), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
