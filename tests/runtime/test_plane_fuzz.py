"""Fuzz of the codec and of both plane handlers with whatever an authenticated peer may send.

Each example builds a `World` around the supervisor's own core (the host of both
planes, folding events through the pure engine, committing each batch before what it
caused is sent), with no socket, and feeds its agent and control planes 500
interleaved frames from a pool of peers: arbitrary bytes, valid messages of every type
(many of them about the tasks and runs the world really has, so sessions register,
take steps, call tools and end runs), those messages mutated, hand-built maps with
wrong, unknown or deeply nested fields, and frames split into the wrong number of parts
(`tests.runtime.fuzz.frames`). Hypothesis draws a seed and a small corpus of messages
(`tests.runtime.fuzz.corpus`); a seeded `random.Random` expands them into many frames,
which is far cheaper than having Hypothesis build every frame.

After every frame the test checks the codec's verdict, that the handler returned, that
a refused frame was counted and answered with a typed error that the peer's own codec
decodes (what the handler said must match what a small model of the plane expects,
`tests.runtime.fuzz.oracle`), that every event journaled reads back, and that the
registry, the queues, the waits and the runs agree with each other
(`tests.runtime.fuzz.invariants`).

Should a bug need tolerating while it is fixed, `KNOWN_DEFECTS` lets the fuzz count it
and go on checking everything else. The eight it found are fixed; `TestFoundDefects`
reproduces each in its smallest form and holds the planes to the fix.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from typing import get_args

import pytest
import structlog
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from protocols import (
    DEFAULT_MAX_FRAME,
    MAX_TEXT,
    PROTOCOL_VERSION,
    VALUE_DEPTH,
    ActorMessage,
    Bye,
    ControlError,
    ControlRequest,
    Error,
    ListRuns,
    RunReply,
    RunsReply,
    StepFailure,
    StepResult,
    ToolCall,
    ToolReply,
    WaitRun,
    Welcome,
)
from tests.runtime.fuzz.corpus import AGENT_MESSAGES, CONTROL_MESSAGES, corpora
from tests.runtime.fuzz.frames import Frames
from tests.runtime.fuzz.noise import nested
from tests.runtime.fuzz.oracle import AGENT_CODES, CODEC_REASONS, CONTROL_CODES
from tests.runtime.fuzz.runner import Fuzz, Stats
from tests.runtime.fuzz.world import AGENT, CLIENT, ENCODE, FLAGGED, SMALL_FRAME, TINY, Peers, World

FRAMES_PER_EXAMPLE = 500
EXAMPLES = 55
CONFIGURATIONS = [
    pytest.param(False, SMALL_FRAME, id="insecure-4KiB"),
    pytest.param(True, SMALL_FRAME, id="secure-4KiB"),
    pytest.param(False, DEFAULT_MAX_FRAME, id="insecure-1MiB"),
    pytest.param(True, DEFAULT_MAX_FRAME, id="secure-1MiB"),
]
TOTAL_FRAMES = 100_000
FED: dict[str, int] = {}
"""Frames fed by each configuration of the fuzz test, for the total checked last."""

FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    # A failure reports the frames that led to it; shrinking a seed would not shorten them.
    phases=(Phase.explicit, Phase.generate),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@contextmanager
def quiet() -> Iterator[None]:
    # The planes log every registration and refusal; capture the events instead of printing.
    with structlog.testing.capture_logs():
        yield


@pytest.fixture(autouse=True)
def _captured_logs() -> Iterator[None]:
    """Every test here runs with the planes' log events captured, whatever logging an
    earlier test configured (a CLI test may leave it writing to a closed stream)."""
    with quiet():
        yield


# --- Tests --------------------------------------------------------------------------------------


class TestStrategies:
    """The corpus strategies cover both incoming unions."""

    def test_every_incoming_message_has_a_strategy(self) -> None:
        """Each message the agent plane or the control plane may receive can be drawn."""
        assert set(AGENT_MESSAGES) == set(get_args(ActorMessage))
        assert set(CONTROL_MESSAGES) == set(get_args(ControlRequest))


class TestPlaneFuzz:
    """Hostile and honest frames never break a plane, and every refusal is typed and counted."""

    @pytest.mark.parametrize(("secure", "max_frame"), CONFIGURATIONS)
    def test_frames_from_peers(self, secure: bool, max_frame: int) -> None:
        """Over `EXAMPLES` worlds of `FRAMES_PER_EXAMPLE` frames each: no handler raises; the
        codec refuses only with `ProtocolError`; each frame is counted, answered and acted on
        as the model says; everything queued decodes on the other side; state stays consistent;
        and the frames reached every message type, refusal and reply."""
        stats = Stats()

        @FUZZ_SETTINGS
        @given(seed=st.integers(0, 2**64 - 1), corpus=corpora)
        def fuzz(seed: int, corpus: list[bytes]) -> None:
            world = World(secure=secure, max_frame=max_frame)
            frames = Frames(random.Random(seed), world, corpus, max_frame=max_frame)
            Fuzz(world, frames, stats, max_frame=max_frame, secure=secure).run(FRAMES_PER_EXAMPLE)
            stats.runs_ended.update(world.ended)

        with quiet():
            fuzz()
        FED[f"{secure}-{max_frame}"] = stats.frames
        assert stats.frames == EXAMPLES * FRAMES_PER_EXAMPLE
        # The fuzz proves little unless it reached each kind of message, refusal and reply.
        incoming = {cls.__name__ for cls in (*get_args(ActorMessage), *get_args(ControlRequest))}
        assert incoming <= set(stats.decoded), f"never decoded {incoming - set(stats.decoded)}"
        # `too_deep` is left out: whether msgspec meets Python's recursion limit before
        # its own bounds depends on how deep the stack already is (Hypothesis changes it).
        reached = CODEC_REASONS - {"too_deep"}
        expected_rejects = {
            *reached, "not_registered", "stale_result", "stale_tool_reply", "stale_model_call",
            "duplicate_model_call",
        }  # fmt: skip
        if secure:
            expected_rejects |= {"identity_mismatch", "session_exists", "role_refused"}
        assert expected_rejects <= set(stats.agent_rejects), stats.agent_rejects
        control_rejects = {*reached, "unauthorized"} if secure else reached
        assert control_rejects <= set(stats.control_rejects), stats.control_rejects
        replies = {
            "Welcome",
            "Assign",
            "Cancel",
            "ToolCall",
            "ToolReply",
            "Heartbeat",
            "Error",
            "RunAccepted",
            "RunReply",
            "RunsReply",
            "ControlError",
        }
        assert replies <= set(stats.sent), f"never sent {replies - set(stats.sent)}"
        errors = {
            *(f"Error:{c}" for c in AGENT_CODES.values()),
            "Error:not_registered",
            "Error:stale",
            "Error:incompatible_protocol",
            "Error:role_refused",
            "Error:tool_refused",
            *(f"ControlError:{c}" for c in CONTROL_CODES.values()),
            "ControlError:malformed",
            "ControlError:incompatible_protocol",
            "ControlError:unknown_workflow",
            "ControlError:unknown_run",
            "ControlError:invalid_input",
            "ControlError:overloaded",
        }
        if secure:
            errors |= {"Error:unauthorized", "Error:session_exists", "ControlError:unauthorized"}
        assert errors <= set(stats.sent), f"never answered {errors - set(stats.sent)}"
        assert stats.runs_ended["completed"] > 0, stats.runs_ended
        assert stats.model_calls > 0

    def test_total_frames(self) -> None:
        """The configurations above fed at least `TOTAL_FRAMES` frames between them."""
        if len(FED) < len(CONFIGURATIONS):
            pytest.skip("only meaningful when every configuration of the fuzz test ran")
        assert sum(FED.values()) >= TOTAL_FRAMES


# --- Defects the fuzz found, reproduced ----------------------------------------------------------
# Each in its smallest form, so that a regression fails here with a readable cause.


class TestFoundDefects:
    """The defects the fuzz found, each reproduced with a few frames."""

    def test_second_agent_of_a_name_reads_its_welcome(self) -> None:
        """Two agents asking for one name on an insecure runtime both get a `Welcome` they
        can decode."""
        peers = Peers(TINY)
        peers.register(b"one", "a")
        (frame,) = peers.register(b"two", "a")
        assert isinstance(AGENT.decode(frame), Welcome)

    def test_record_with_deep_tool_args_reads(self) -> None:
        """A tool call whose args nest as deep as the protocol allows leaves a record that
        clients can decode."""
        peers = Peers(TINY)
        peers.register(b"agent", "a", tools=["search"])
        run_id = peers.start()
        (task,) = peers.assigned(b"agent")
        call = ToolCall(
            call_id=1, run_id=run_id, step=task.step, attempt=task.attempt, tool="search",
            args={"q": nested(VALUE_DEPTH)},
        )  # fmt: skip
        peers.agent(b"agent", call)
        assert isinstance(CLIENT.decode(peers.record(run_id)), RunReply)

    @pytest.mark.parametrize("plane", ["agent", "control"])
    def test_refusal_of_a_long_tag_reads(self, plane: str) -> None:
        """A frame whose tag is longer than any text is refused with an error its sender
        can decode."""
        peers = Peers(TINY)
        frame = ENCODE({"type": "x" * (MAX_TEXT + 1)})
        if plane == "agent":
            peers.world.agent_frame(b"peer", None, frame, 1)
            ((_, reply),) = peers.world.agent_out
            assert isinstance(AGENT.decode(reply), Error)
        else:
            peers.world.control_frame(b"peer", None, frame, 1)
            ((_, reply),) = peers.world.control_out
            assert isinstance(CLIENT.decode(reply), ControlError)

    @pytest.mark.parametrize("view", ["record", "summary"])
    def test_run_halted_by_a_long_failure_message_reads(self, view: str) -> None:
        """A run halted by a failure whose message is as long as a text may be still has a
        record and a summary that clients can decode."""
        peers = Peers(TINY)
        peers.register(b"agent", "a")
        run_id = peers.start()
        (task,) = peers.assigned(b"agent")
        failure = StepFailure(
            run_id=run_id, step=task.step, attempt=task.attempt, reason="error",
            message="m" * MAX_TEXT,
        )  # fmt: skip
        peers.agent(b"agent", failure)
        assert peers.world.runs[run_id].status == "halted"
        if view == "record":
            assert isinstance(CLIENT.decode(peers.record(run_id)), RunReply)
        else:
            (frame,) = peers.client(ListRuns(id=3, protocol=PROTOCOL_VERSION))
            assert isinstance(CLIENT.decode(frame), RunsReply)

    def test_agent_lost_after_a_long_bye_journals_a_readable_event(self) -> None:
        """An agent leaving with a reason as long as a text may be, while holding a task,
        leaves a journal the store can read back."""
        peers = Peers(TINY)
        peers.register(b"agent", "a")
        peers.start()
        peers.agent(b"agent", Bye(reason="r" * MAX_TEXT))
        assert peers.world.unreadable == []

    def test_step_after_many_caveats_and_a_flag_reads_its_assignment(self) -> None:
        """A step reading a key with a flag and 256 caveats (the most a result may carry)
        gets an `Assign` its agent can decode."""
        peers = Peers(FLAGGED)
        peers.register(b"agent", "a")
        run_id = peers.start()
        assert len(peers.assigned(b"agent")) == 1
        peers.agent(b"agent", StepFailure(run_id=run_id, step="a", attempt=1, reason="error"))
        result = StepResult(
            run_id=run_id, step="b", attempt=1, outputs={"y": 1}, caveats=["c"] * 256
        )
        frames = peers.agent(b"agent", result)
        assert [AGENT.decode(f) for f in frames]

    def test_tool_host_serving_two_tools_takes_the_next_call_of_either(self) -> None:
        """A host of capacity 1 serving two tools, once it answers a call of one, is given
        the call of the other that was waiting."""
        peers = Peers(TINY)
        peers.register(b"host", "h", kind="tool_host", tools=["search", "fetch"])
        peers.register(b"agent", "a", tools=["search", "fetch"], capacity=2)
        peers.start()
        peers.start()
        tasks = peers.assigned(b"agent")
        for call, (task, tool) in enumerate(zip(tasks, ["search", "fetch"], strict=True), 1):
            message = ToolCall(
                call_id=call, run_id=task.run_id, step=task.step, attempt=task.attempt, tool=tool
            )
            peers.agent(b"agent", message)
        (first,) = [  # the host has room for one call at a time
            m
            for peer, frame in peers.world.agent_out
            if peer == b"host" and isinstance(m := AGENT.decode(frame), ToolCall)
        ]
        replied = peers.agent(b"host", ToolReply(call_id=first.call_id, ok=True))
        calls = [m for m in map(AGENT.decode, replied) if isinstance(m, ToolCall)]
        assert [c.tool for c in calls] == ["fetch"]

    def test_every_wait_is_answered_by_its_timeout(self) -> None:
        """A client that waits twice under one request id is refused the second wait at
        once, and the first is answered by its timeout."""
        peers = Peers(TINY)
        run_id = peers.start()
        for _ in range(2):
            peers.client(WaitRun(id=7, protocol=PROTOCOL_VERSION, run_id=run_id, timeout_ms=1_000))
        peers.world.tick(2.0)
        answers = [CLIENT.decode(f) for _, f in peers.world.control_out[1:]]
        assert [a.id for a in answers] == [7, 7]
        refused, timed_out = answers
        assert isinstance(refused, ControlError)
        assert refused.code == "invalid_input"
        assert isinstance(timed_out, RunReply)
        assert timed_out.timed_out
