"""A flooding peer: authenticates with a real key, then sends far above its rate limit.

Run as `python -m tests.integration.flooder ENDPOINT KEYS PRINCIPAL RATE SECONDS READY`.
It sends heartbeats at RATE frames per second (in bursts of 1% of a second), stops
by itself after SECONDS, and writes READY once it has flooded for a whole second,
past any burst allowance, so that the test measures only while the flood is on.

The rate is fixed rather than "as fast as it can": on the test's two cores an
unbounded sender mostly measures how the kernel shares the CPU between it and the
runtime, where a real attacker's CPU is its own machine's.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import zmq
from zmq.utils.monitor import parse_monitor_message

from protocols import Heartbeat, actor_side_codec
from runtime.security._keys import load_client_keys

BURSTS_PER_SECOND = 100


def flood(
    endpoint: str, keys_dir: Path, principal: str, rate: int, seconds: float, ready: Path
) -> int:
    keys = load_client_keys(keys_dir, principal)
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SNDHWM, 100_000)
    sock.curve_secretkey = keys.secret
    sock.curve_publickey = keys.public
    sock.curve_serverkey = keys.server
    monitor = sock.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED)
    sock.connect(endpoint)
    if not monitor.poll(10_000):
        return 2
    parse_monitor_message(monitor.recv_multipart())
    frame = actor_side_codec().encode(Heartbeat(in_flight=0))
    burst = max(1, rate // BURSTS_PER_SECOND)
    sent = 0
    began = time.monotonic()
    try:
        for tick in range(int(seconds * BURSTS_PER_SECOND)):
            for _ in range(burst):
                try:
                    sock.send(frame, zmq.NOBLOCK)
                    sent += 1
                except zmq.Again:
                    break
            while sock.poll(0):
                sock.recv()
            if tick == BURSTS_PER_SECOND:
                ready.write_text(str(sent))
            pause = began + (tick + 1) / BURSTS_PER_SECOND - time.monotonic()
            if pause > 0:
                time.sleep(pause)
    finally:
        sock.disable_monitor()
        monitor.close(linger=0)
        sock.close(linger=0)
        ctx.term()
    return 0


if __name__ == "__main__":
    endpoint, keys_dir, principal, rate, seconds, ready = sys.argv[1:7]
    raise SystemExit(
        flood(endpoint, Path(keys_dir), principal, int(rate), float(seconds), Path(ready))
    )
