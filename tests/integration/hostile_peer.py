"""Peers that hold a valid key and abuse it without flooding past their rate limit.

`python -m tests.integration.hostile_peer deaf ENDPOINT KEYS PRINCIPAL CONNECTIONS RATE SECONDS OUT`
opens CONNECTIONS connections with one key that send invalid frames at RATE frames per
second in all and never read what comes back, plus one more connection with the same
key that sends twenty a second (malformed and invalid in turn) and counts the replies.

`python -m tests.integration.hostile_peer parts ENDPOINT KEYS PRINCIPAL PARTS OUT`
sends one message of PARTS empty parts, then a heartbeat, and records the replies.

Each writes OUT (JSON) when done and stops by itself; SECONDS bounds the deaf peer,
and the parts peer gives up waiting for replies after `REPLY_WAIT` seconds.
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from pathlib import Path

import msgspec
import zmq
from zmq.utils.monitor import parse_monitor_message

from protocols import ClientKeys, Error, Heartbeat, actor_side_codec
from runtime.security._keys import load_client_keys

BURSTS_PER_SECOND = 100
READER_RATE = 20
"""Frames per second the reading connection sends."""
REPLY_WAIT = 30.0

MALFORMED = b"\xc1"
INVALID = msgspec.msgpack.encode({"type": "x" * 2_000})
"""A tag the codec quotes back: the longest error reply a frame could earn."""


def connect(
    ctx: zmq.Context[zmq.Socket[bytes]], endpoint: str, keys: ClientKeys, *, deaf: bool = False
) -> zmq.Socket[bytes]:
    """A DEALER with `keys`, returned once its CURVE handshake succeeded.

    A deaf one reads nothing and lets the kernel hold as little as it will, so that what
    the runtime sends it stays queued in the runtime.
    """
    sock = ctx.socket(zmq.DEALER)
    if deaf:
        sock.setsockopt(zmq.RCVHWM, 1)
        sock.setsockopt(zmq.RCVBUF, 4_096)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SNDHWM, 0)
    sock.curve_secretkey = keys.secret
    sock.curve_publickey = keys.public
    sock.curve_serverkey = keys.server
    monitor = sock.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED)
    try:
        sock.connect(endpoint)
        if not monitor.poll(10_000):
            raise SystemExit("no handshake")
        parse_monitor_message(monitor.recv_multipart())
    finally:
        sock.disable_monitor()
        monitor.close(linger=0)
    return sock


def deaf(
    endpoint: str, keys: ClientKeys, connections: int, rate: int, seconds: float, out: Path
) -> None:
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    deaf_socks = [connect(ctx, endpoint, keys, deaf=True) for _ in range(connections)]
    reader = connect(ctx, endpoint, keys)
    replies: Counter[str] = Counter()
    codec = actor_side_codec()
    per_burst = max(1, rate // BURSTS_PER_SECOND // connections)
    sent = 0
    began = time.monotonic()
    ticks = int(seconds * BURSTS_PER_SECOND)
    try:
        for tick in range(ticks):
            for sock in deaf_socks:
                for _ in range(per_burst):
                    sock.send(INVALID, zmq.NOBLOCK)
                    sent += 1
            every = BURSTS_PER_SECOND // READER_RATE
            if tick % every == 0:
                reader.send(INVALID if tick // every % 2 else MALFORMED, zmq.NOBLOCK)
            while reader.poll(0):
                reply = codec.decode(reader.recv())
                replies[reply.code if isinstance(reply, Error) else type(reply).__name__] += 1
            pause = began + (tick + 1) / BURSTS_PER_SECOND - time.monotonic()
            if pause > 0:
                time.sleep(pause)
        window = time.monotonic() - began
    finally:
        for sock in [*deaf_socks, reader]:
            sock.close(linger=0)
        ctx.term()
    out.write_text(json.dumps({"sent": sent, "window": window, "replies": dict(replies)}))


def parts(endpoint: str, keys: ClientKeys, count: int, out: Path) -> None:
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    sock = connect(ctx, endpoint, keys)
    codec = actor_side_codec()
    codes: list[str] = []
    try:
        began = time.monotonic()
        for _ in range(count - 1):
            sock.send(b"", zmq.SNDMORE)
        sock.send(b"")
        sent_at = time.monotonic()
        sock.send(codec.encode(Heartbeat()))
        deadline = sent_at + REPLY_WAIT
        while len(codes) < 2 and time.monotonic() < deadline:
            if sock.poll(100):
                reply = codec.decode(sock.recv())
                codes.append(reply.code if isinstance(reply, Error) else type(reply).__name__)
        answered_at = time.monotonic()
    finally:
        sock.close(linger=0)
        ctx.term()
    out.write_text(
        json.dumps(
            {
                "codes": codes,
                "send_seconds": sent_at - began,
                "answer_seconds": answered_at - sent_at,
            }
        )
    )


if __name__ == "__main__":
    mode, endpoint, keys_dir, principal = sys.argv[1:5]
    client = load_client_keys(Path(keys_dir), principal)
    if mode == "deaf":
        connections, rate, seconds, result = sys.argv[5:9]
        deaf(endpoint, client, int(connections), int(rate), float(seconds), Path(result))
    else:
        count, result = sys.argv[5:7]
        parts(endpoint, client, int(count), Path(result))
