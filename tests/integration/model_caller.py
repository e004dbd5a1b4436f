"""A raw agent that calls a model (played: no model is reached) and reports each call, and
the workflow it serves.

`python -m tests.integration.model_caller ENDPOINT KEYS PRINCIPAL OUT MODE` registers
as a `writer` and, for each task, makes `CALLS` model calls numbered from 0. A call
whose reply came with the assignment (`Assign.model_replies`, same number and request)
is taken from there; any other is "made" and reported with a `ModelCall` frame. In mode
`finish` it then returns the step's result; in mode `hold` it stops after its first new
call and keeps the task, heartbeating, until it is killed. Each assignment it receives
is appended to OUT as a JSON line, so that a test can see what it was sent.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import msgspec
import zmq

from protocols import (
    PROTOCOL_VERSION,
    Assign,
    Bye,
    Heartbeat,
    ModelCall,
    Register,
    StepResult,
    Welcome,
    actor_side_codec,
)
from runtime import Retry, Role, Step, Workflow
from runtime.security._keys import load_client_keys
from tests.integration.hostile_peer import connect

drafting = Workflow(
    "drafting",
    roles=[Role("writer")],
    inputs=["topic"],
    steps=[
        Step(
            "draft",
            role="writer",
            reads=["topic"],
            writes={"text": str, "words": int},
            on_failure=Retry(attempts=3, backoff=0.01),
        )
    ],
)

CALLS = 2
"""Model calls each task makes."""
TOKENS = ((812, 96), (430, 61))
"""Tokens in and out of each call, by its number."""


def digest(assign: Assign, index: int) -> str:
    """The request of call `index` of the task: the same on every attempt of the step."""
    return f"{assign.run_id}/{assign.step}/{index}/{assign.inputs['topic']}"


def serve(endpoint: str, keys_dir: Path, principal: str, out: Path, mode: str) -> None:
    codec = actor_side_codec()
    encode = msgspec.msgpack.Encoder().encode
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    sock = connect(ctx, endpoint, load_client_keys(keys_dir, principal))
    sock.send(encode(Register(protocol=PROTOCOL_VERSION, name=principal, role="writer")))
    beat = 1.0
    held = 0
    try:
        while True:
            if not sock.poll(int(beat * 1000)):
                sock.send(encode(Heartbeat(in_flight=held)))
                continue
            message = codec.decode(sock.recv())
            match message:
                case Welcome():
                    beat = message.heartbeat_ms / 1000
                case Assign():
                    with out.open("a") as file:
                        file.write(json.dumps(msgspec.to_builtins(message)) + "\n")
                    held += work(sock, encode, message, hold=mode == "hold")
                case Heartbeat():
                    sock.send(encode(Heartbeat(in_flight=held)))
                case Bye():
                    return
                case _:
                    pass
    finally:
        sock.close(linger=0)
        ctx.term()


def work(
    sock: zmq.Socket[bytes], encode: msgspec.msgpack.Encoder, assign: Assign, *, hold: bool
) -> int:
    """Make the task's calls and answer it; 1 if it holds the task instead."""
    journaled = {(r.index, r.request_digest): r.reply for r in assign.model_replies}
    replies = []
    for index in range(CALLS):
        request = digest(assign, index)
        if (index, request) in journaled:
            replies.append(journaled[index, request])
            continue
        reply = {"text": f"draft {index} on {assign.inputs['topic']}"}
        tokens_in, tokens_out = TOKENS[index]
        sock.send(
            encode(
                ModelCall(
                    run_id=assign.run_id, step=assign.step, attempt=assign.attempt, index=index,
                    model="gpt-4o-mini", request_digest=request, reply=reply,
                    tokens_in=tokens_in, tokens_out=tokens_out, latency_ms=1240.0,
                    finish_reason="stop",
                )
            )
        )  # fmt: skip
        replies.append(reply)
        if hold:
            return 1
    text = " / ".join(str(r["text"]) for r in replies)
    result = StepResult(
        run_id=assign.run_id, step=assign.step, attempt=assign.attempt,
        outputs={"text": text, "words": len(text.split())}, rationale="drafted",
    )  # fmt: skip
    sock.send(encode(result))
    return 0


if __name__ == "__main__":
    endpoint, keys_dir, principal, out, mode = sys.argv[1:6]
    serve(endpoint, Path(keys_dir), principal, Path(out), mode)
