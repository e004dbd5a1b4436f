"""Feeding a world the frames of one example, and checking each step against the oracle
and the invariants.

After every frame: the codec's verdict, that the handler returned, that a refused frame
was counted and answered with a typed error that the peer's own codec decodes (what the
handler said must match what the oracle expects), that every event journaled reads
back, and that the registry, the queues, the waits and the runs agree with each other.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

import msgspec

from protocols import (
    Assign,
    CancelRun,
    Changed,
    ControlError,
    ControlReply,
    ControlRequest,
    Decide,
    Error,
    GetRun,
    ListRuns,
    ModelCall,
    PendingReply,
    ProtocolError,
    ResumeRun,
    RunAccepted,
    RunRecord,
    RunReply,
    RunsReply,
    RunSummary,
    RuntimeMessage,
    ToolReply,
    WaitRun,
    Welcome,
    actor_side_codec,
    client_side_control_codec,
)
from runtime.planes._views import summary
from runtime.security._principals import Principal
from tests.runtime.fuzz.frames import Frames
from tests.runtime.fuzz.invariants import check_registry, check_runs, idle_tool_hosts
from tests.runtime.fuzz.oracle import (
    CONTROL_TYPES,
    KNOWN_DEFECTS,
    RUNTIME_TYPES,
    Oracle,
    decode_outcome,
)
from tests.runtime.fuzz.peers import AGENT_PEERS, CONTROL_PEERS, PRINCIPALS
from tests.runtime.fuzz.world import World


@dataclass(slots=True)
class Stats:
    """What a fuzz test fed and provoked, so that it can check its own reach."""

    frames: int = 0
    decoded: Counter[str] = field(default_factory=Counter)
    agent_rejects: Counter[str] = field(default_factory=Counter)
    control_rejects: Counter[str] = field(default_factory=Counter)
    sent: Counter[str] = field(default_factory=Counter)
    """Messages queued for peers, by type, and errors by code (`Error:stale`)."""
    runs_ended: Counter[str] = field(default_factory=Counter)
    defects: Counter[str] = field(default_factory=Counter)
    model_calls: int = 0
    """Model calls journaled."""


class Fuzz:
    """Feeds one world the frames of one example and checks every step."""

    def __init__(
        self, world: World, frames: Frames, stats: Stats, *, max_frame: int, secure: bool
    ) -> None:
        self.world = world
        self.frames = frames
        self.stats = stats
        self.secure = secure
        self.oracle = Oracle(world, stats.decoded, max_frame=max_frame, secure=secure)
        self.actor_side = actor_side_codec()
        self.client_side = client_side_control_codec()
        self.trail: deque[str] = deque(maxlen=8)
        self.sent_agent = 0
        self.sent_control = 0

    def fail(self, problem: str) -> AssertionError:
        trail = "\n  ".join(self.trail)
        return AssertionError(f"{problem:.2000}\nlast frames, oldest first:\n  {trail}")

    def run(self, count: int) -> None:
        rng = self.frames.rng
        for _ in range(count):
            if rng.random() < 0.03:
                seconds = rng.choice((0.05, 0.5, 1.0, 4.0))
                self.trail.append(f"tick {seconds}s")
                self.world.tick(seconds)
                self.check_sent()
                self.check_state()
            if rng.random() < 0.68:
                identity, home = rng.choice(AGENT_PEERS)
                who = self.who(home)
                payload, parts = self.frames.agent(identity)
                self.agent_frame(identity, who, payload, parts)
            else:
                identity, home = rng.choice(CONTROL_PEERS)
                who = self.who(home)
                payload, parts = self.frames.control()
                self.control_frame(identity, who, payload, parts)
            self.stats.frames += 1
            self.check_state()

    def who(self, home: Principal) -> Principal | None:
        """The key a frame arrives under: usually its peer's own, sometimes another's."""
        if not self.secure:
            return None
        r = self.frames.rng.random()
        if r < 0.9:
            return home
        if r < 0.98:
            return self.frames.rng.choice(PRINCIPALS)
        return None  # not possible behind CURVE, but the planes must still refuse it

    def note(
        self, plane: str, identity: bytes, who: Principal | None, payload: bytes, parts: int
    ) -> None:
        shown = payload[:120].hex() + ("..." if len(payload) > 120 else "")
        name = "-" if who is None else who.name
        self.trail.append(f"{plane} {identity!r} as {name} parts={parts} ({len(payload)}B) {shown}")

    # -- the agent plane ---------------------------------------------------------------------------

    def agent_frame(
        self, identity: bytes, who: Principal | None, payload: bytes, parts: int
    ) -> None:
        world = self.world
        self.note("agent", identity, who, payload, parts)
        expected = self.oracle.expect_agent(identity, who, payload, parts)
        rejects = len(world.rejects)
        # The supervisor hands the plane a view of the socket's buffer, not a copy.
        view: bytes | memoryview = (
            memoryview(payload) if self.frames.rng.random() < 0.3 else payload
        )
        try:
            world.agent_frame(identity, who, view, parts)
        except Exception as exc:
            raise self.fail(f"agent plane raised {exc!r}") from exc
        refused = world.rejects[rejects:]
        self.check_refused(refused, identity, who, expected.reject, self.stats.agent_rejects)
        replies = [m for peer, m in self.check_sent()[0] if peer == identity]
        errors = [m.code for m in replies if isinstance(m, Error)]
        answer = [expected.error] if expected.error else []
        # A refusal the host did not log (the same again within a second) may go unanswered.
        paced = bool(refused) and not refused[0][4]
        if errors != answer and not (paced and not errors):
            raise self.fail(f"answered with errors {errors}, expected {expected.error}")
        welcomes = [m for m in replies if isinstance(m, Welcome)]
        if expected.welcome is None:
            if welcomes:
                raise self.fail(f"unexpected {welcomes}")
        else:
            session = world.agents._registry.by_identity.get(identity)
            if (
                len(welcomes) != 1
                or welcomes[0].session != expected.welcome
                or session is None
                or session.name != expected.welcome
            ):
                raise self.fail(f"registered as {expected.welcome!r}, but got {welcomes}")
        if expected.stale_call is not None and not any(
            isinstance(m, ToolReply)
            and (m.call_id, m.ok, m.error) == (expected.stale_call, False, "stale")
            for m in replies
        ):
            raise self.fail(f"tool call {expected.stale_call} not refused as stale: {replies}")
        if expected.model_call is not None:
            self.check_model_call(expected.model_call)

    def check_model_call(self, call: ModelCall) -> None:
        """The call is the last entry of its run's history, and its reply is kept last."""
        state = self.world.runs[call.run_id].steps[call.step]
        entry = self.world.runs[call.run_id].history[-1]
        kept = state.replies[-1] if state.replies else None
        if (
            (entry.event, entry.step, entry.attempt) != ("model_called", call.step, call.attempt)
            or entry.detail.get("tokens_in") != call.tokens_in
            or kept is None
            or (kept.index, kept.request_digest) != (call.index, call.request_digest)
        ):
            raise self.fail(f"model call {call.index} not journaled: {entry!r:.300}")
        self.stats.model_calls += 1

    # -- the control plane -------------------------------------------------------------------------

    def control_frame(
        self, identity: bytes, who: Principal | None, payload: bytes, parts: int
    ) -> None:
        world = self.world
        self.note("control", identity, who, payload, parts)
        expected = self.oracle.expect_control(identity, who, payload, parts)
        rejects = len(world.rejects)
        runs_before = set(world.runs)
        # A request that ends a run (cancel, a decision) first answers the waits open on it,
        # this client's included: those replies come before its own.
        run_id = getattr(expected.message, "run_id", None)
        waiting_before = [
            w for w in world.control._waiters.get(run_id or "", []) if w[0] == identity
        ]
        # What it journals answers the watches open on it, this client's included: those
        # replies leave with the batch, after its own.
        watching_before = {w for w in world.control.watches._open if w[0] == identity}
        view: bytes | memoryview = (
            memoryview(payload) if self.frames.rng.random() < 0.3 else payload
        )
        try:
            world.control_frame(identity, who, view, parts)
        except Exception as exc:
            raise self.fail(f"control plane raised {exc!r}") from exc
        refused = world.rejects[rejects:]
        verdict = expected.reject
        if expected.or_error is not None and [r[0] for r in refused] == [expected.or_error]:
            verdict = expected.or_error
        self.check_refused(refused, identity, who, verdict, self.stats.control_rejects)
        still = world.control._waiters.get(run_id or "", [])
        ended_waits = sum(1 for w in waiting_before if w not in still)
        answered = {w[1] for w in watching_before if w not in world.control.watches._open}
        replies = [
            m
            for peer, m in self.check_sent()[1]
            if peer == identity and not (isinstance(m, Changed) and m.id in answered)
        ][ended_waits:]
        if not replies and refused and not refused[0][4]:
            return  # paced: the same refusal was answered within the second
        if expected.past is not None:
            if replies or not world.past or world.past[-1] != expected.past:
                raise self.fail(f"expected {expected.past} handed over, got {replies}")
            return
        if expected.fork is not None:
            last = world.forks[-1] if world.forks else None
            handed = None if last is None else (last.identity, last.request, last.parent, last.at)
            if replies or handed != expected.fork:
                raise self.fail(f"expected the fork {expected.fork} handed over, got {replies}")
            return
        if expected.watch is not None:
            _, request_id, target = expected.watch
            if replies or world.control.watches._open.get((identity, request_id)) != target:
                raise self.fail(f"expected the watch {expected.watch}, got {replies}")
            return
        if expected.wait is not None:
            waiters = world.control._waiters.get(expected.wait[3], [])
            if replies or not any(w[:2] == expected.wait[1:3] for w in waiters):
                raise self.fail(f"expected the wait {expected.wait}, got {replies}")
            return
        if len(replies) != 1 or replies[0].id != expected.request:
            raise self.fail(f"expected one reply to request {expected.request}, got {replies}")
        reply = replies[0]
        if (
            expected.or_error is not None
            and isinstance(reply, ControlError)
            and reply.code == expected.or_error
        ):
            return
        if expected.error is not None:
            if not isinstance(reply, ControlError) or reply.code != expected.error:
                raise self.fail(f"expected error {expected.error}, got {reply!r}")
            return
        if type(reply) is not expected.reply:
            raise self.fail(f"expected a {expected.reply}, got {reply!r}")
        self.check_reply(reply, expected.message, runs_before)

    def check_refused(
        self,
        refused: list[tuple[str, bytes, str, str, bool]],
        identity: bytes,
        who: Principal | None,
        expected: str | None,
        counter: Counter[str],
    ) -> None:
        """The frame was counted as refused for the reason expected, against its sender."""
        for reason, peer, _, name, _ in refused:
            counter[reason] += 1
            if peer != identity or name != ("" if who is None else who.name):
                raise self.fail(f"refusal {reason} counted against {peer!r} as {name!r}")
        reasons = [r[0] for r in refused]
        if reasons != ([expected] if expected else []):
            raise self.fail(f"counted {reasons}, expected {expected}")

    def check_reply(
        self, reply: ControlReply, request: ControlRequest | None, runs_before: set[str]
    ) -> None:
        """The reply says what was asked: the new run, the run asked for, the runs listed."""
        runs = self.world.runs
        match reply:
            case RunAccepted():
                if reply.run_id not in runs or reply.run_id in runs_before:
                    raise self.fail(f"accepted unknown or old run {reply.run_id!r}")
            case RunReply():
                assert isinstance(request, GetRun | WaitRun | CancelRun | ResumeRun | Decide)
                if reply.record.run_id != request.run_id:
                    raise self.fail(f"asked for {request.run_id!r}, got {reply.record.run_id!r}")
                if isinstance(request, CancelRun) and reply.record.status != "cancelled":
                    raise self.fail(
                        f"cancelled {request.run_id!r}, yet it is {reply.record.status}"
                    )
            case PendingReply():
                for item in reply.pending:
                    run = runs.get(item.run_id)
                    waiting = run.decisions.get(item.step) if run is not None else None
                    if waiting is None or waiting.digest != item.digest:
                        raise self.fail(f"listed a decision that is not open: {item!r}")
            case RunsReply() if isinstance(request, WaitRun):
                if [s.run_id for s in reply.runs] != [request.run_id]:
                    raise self.fail(f"asked for {request.run_id!r}, got {reply.runs}")
            case RunsReply():
                assert isinstance(request, ListRuns)
                connected = self.world.agents.agents_by_role()
                matching = [
                    s
                    for s in (summary(r, connected) for r in runs.values())
                    if (request.workflow is None or s.workflow == request.workflow)
                    and (request.status is None or s.status == request.status)
                ]
                if len(reply.runs) != min(len(matching), request.limit) or any(
                    s not in matching for s in reply.runs
                ):
                    raise self.fail(f"{request!r} listed {reply.runs}")

    # -- what left, and the state left behind ------------------------------------------------------

    def check_sent(
        self,
    ) -> tuple[list[tuple[bytes, RuntimeMessage]], list[tuple[bytes, ControlReply]]]:
        """What was queued for actors and clients since the last call, decoded by their codecs;
        a frame the other side would refuse fails the test."""
        world = self.world
        to_actors: list[tuple[bytes, RuntimeMessage]] = []
        for peer, frame in world.agent_out[self.sent_agent :]:
            message = decode_outcome(self.actor_side, frame)
            if isinstance(message, ProtocolError):
                message = self.defective(peer, frame, message, RUNTIME_TYPES)
            self.stats.sent[type(message).__name__] += 1
            if isinstance(message, Error):
                self.stats.sent[f"Error:{message.code}"] += 1
            if isinstance(message, Assign):
                self.frames.assigned.append((message.run_id, message.step, message.attempt))
            to_actors.append((peer, message))
        self.sent_agent = len(world.agent_out)
        to_clients: list[tuple[bytes, ControlReply]] = []
        for peer, frame in world.control_out[self.sent_control :]:
            reply = decode_outcome(self.client_side, frame)
            if isinstance(reply, ProtocolError):
                reply = self.defective(peer, frame, reply, CONTROL_TYPES)
            self.stats.sent[type(reply).__name__] += 1
            if isinstance(reply, ControlError):
                self.stats.sent[f"ControlError:{reply.code}"] += 1
            to_clients.append((peer, reply))
        self.sent_control = len(world.control_out)
        return to_actors, to_clients

    def defective(
        self, peer: bytes, frame: bytes, exc: ProtocolError, types: dict[str, type[Any]]
    ) -> Any:
        """A frame the other side refuses: a failure, unless it is a known defect.

        A known defect is counted and its frame stands in, unvalidated, for the message
        it should have been, so that the fuzz goes on checking everything else.
        """
        fields: Any = msgspec.msgpack.decode(frame)
        tag = fields.pop("type", None) if isinstance(fields, dict) else None
        defect = next((d.name for d in KNOWN_DEFECTS if d.matches(tag, exc.detail)), None)
        if defect is None or tag not in types:
            raise self.fail(f"sent {peer!r} a frame its codec refuses: {exc}")
        self.stats.defects[defect] += 1
        if tag == "run":
            fields["record"] = RunRecord(**fields["record"])
        if tag == "runs":
            fields["runs"] = [RunSummary(**s) for s in fields["runs"]]
        return types[tag](**fields)

    def check_state(self) -> None:
        for event, detail in self.world.unreadable:
            tag = event.__struct_config__.tag
            defect = next((d.name for d in KNOWN_DEFECTS if d.matches(tag, detail)), None)
            if defect is None:
                raise self.fail(f"journaled {event!r:.300}, which does not read back: {detail}")
            self.stats.defects[defect] += 1
        self.world.unreadable.clear()
        try:
            check_registry(self.world)
            untimed = check_runs(self.world)
        except AssertionError as exc:
            raise self.fail(f"inconsistent state: {exc}") from None
        if untimed:
            raise self.fail(f"inconsistent state: waits {untimed} have no timer")
        idle = idle_tool_hosts(self.world)
        if idle:
            raise self.fail(f"inconsistent state: tool calls wait beside idle hosts: {idle}")
