"""What a page reads from the control plane: filtered pages of runs, watches on changes,
and the loaded workflows' graphs; on the supervisor's core, with no socket and a fake clock.

Replies leave only once the batch that journaled what they report is committed, so each
test commits (`sent`) before it looks at what was answered.
"""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from protocols import (
    PROTOCOL_VERSION,
    Changed,
    ControlError,
    ControlRequest,
    ListRuns,
    ListWorkflows,
    Message,
    Register,
    RunAccepted,
    RunsReply,
    StartRun,
    Watch,
    WorkflowsReply,
    client_side_control_codec,
)
from runtime.engine._events import RunStarted
from runtime.planes._watches import WATCHES_PER_CLIENT
from runtime.store import JournalRecord, MemoryStore
from runtime.store._held import HeldRun
from runtime.supervisor._batch import CONTROL
from runtime.supervisor._config import RuntimeConfig
from runtime.supervisor._core import SupervisorCore
from runtime.testing import FakeClock
from runtime.workflow._conditions import key
from runtime.workflow._definition import Decision, Role, Route, Step, Workflow
from runtime.workflow._diagram import mermaid
from runtime.workflow._graph import compile_workflow
from runtime.workflow._policies import Goto, Halt, Retry

ENCODE = msgspec.msgpack.Encoder().encode
CLIENT = client_side_control_codec()

ONE = compile_workflow(
    Workflow(
        "one",
        roles=[Role("worker")],
        inputs=["note"],
        steps=[Step("a", role="worker", reads=["note"], timeout=5.0, on_failure=Halt())],
    )
)
"""One step, which waits for an agent of role worker."""
TRIAGE = compile_workflow(
    Workflow(
        "triage",
        roles=[Role("clerk", tools=["lookup"])],
        inputs=["amount"],
        steps=[
            Step(
                "check",
                role="clerk",
                reads=["amount"],
                writes={"ok": bool},
                tools=["lookup"],
                consequence="costly",
                on_failure=Retry(2, then=Goto("by_hand")),
            ),
            Decision("fine", [Route(key("ok") == True, "done")], default="manual"),  # noqa: E712
            Step("by_hand", role="clerk", writes={"ok": bool}),
            Step("manual", role="clerk"),
            Step("done", role="clerk"),
        ],
        edges=[("check", "fine")],
    )
)
"""A step with tools, a note and a fallback, a decision with a route and a default."""


def core_on(clock: FakeClock | None = None) -> SupervisorCore:
    return SupervisorCore([ONE, TRIAGE], MemoryStore(), RuntimeConfig(), clock=clock or FakeClock())


def ask(core: SupervisorCore, request: ControlRequest, client: bytes = b"client") -> None:
    core.control.on_frame(client, None, ENCODE(request), 1)


def sent(core: SupervisorCore) -> list[tuple[bytes, Message]]:
    """Commit the batch, then the replies it lets leave, with the client each is for."""
    assert core.batch.append_now()
    return [
        (identity, CLIENT.decode(payload))
        for plane, identity, payload in core.batch.live(core.batch.take_frames())
        if plane == CONTROL
    ]


def replies(core: SupervisorCore) -> list[Message]:
    return [message for _, message in sent(core)]


def start(core: SupervisorCore, note: Any = "hi") -> str:
    ask(core, StartRun(id=1, protocol=PROTOCOL_VERSION, workflow="one", inputs={"note": note}))
    (accepted,) = [m for m in replies(core) if isinstance(m, RunAccepted)]
    return accepted.run_id


def register(core: SupervisorCore) -> None:
    """An agent of role worker: the queued step of each run is dispatched to it."""
    message = Register(protocol=PROTOCOL_VERSION, name="w", role="worker", capacity=100)
    core.agents.on_frame(b"agent", None, ENCODE(message), 1)


def listed(core: SupervisorCore, **filters: Any) -> RunsReply:
    ask(core, ListRuns(id=9, protocol=PROTOCOL_VERSION, **filters))
    (reply,) = replies(core)
    assert isinstance(reply, RunsReply)
    return reply


def watch(**fields: Any) -> Watch:
    return Watch(id=fields.pop("id", 5), protocol=PROTOCOL_VERSION, **fields)


class TestListRunsFilters:
    def test_a_page_is_cut_from_the_matches_newest_first_with_their_total(self) -> None:
        """`total` counts every match; `offset` and `limit` choose the page of them."""
        clock = FakeClock()
        core = core_on(clock)
        runs = []
        for n in range(5):
            runs.append(start(core, f"n{n}"))
            clock.advance(1)
        reply = listed(core, offset=1, limit=2)
        assert [s.run_id for s in reply.runs] == [runs[3], runs[2]]
        assert reply.total == 5

    def test_since_and_until_bound_when_a_run_was_created(self) -> None:
        """Both bounds are inclusive, in seconds since the epoch."""
        clock = FakeClock()
        core = core_on(clock)
        created = []
        for n in range(4):
            created.append((start(core, f"n{n}"), clock.wall()))
            clock.advance(10)
        (_, first), (second, at_second), (third, at_third), _ = created
        reply = listed(core, since=at_second, until=at_third)
        assert [s.run_id for s in reply.runs] == [third, second]
        assert reply.total == 2
        assert listed(core, until=first).total == 1

    @pytest.mark.parametrize(
        ("value", "matches"),
        [
            ("hello", ["hello"]),
            ("42", [42, "42"]),
            ("true", [True]),
            ('{"a":1}', [{"a": 1}]),
            ("[1,2]", [[1, 2]]),
            ("nothing", []),
        ],
    )
    def test_a_value_matches_as_text_or_as_compact_json(
        self, value: str, matches: list[Any]
    ) -> None:
        """A string value is compared as is, any other as its compact JSON."""
        core = core_on()
        notes: list[Any] = ["hello", 42, "42", True, {"a": 1}, [1, 2], None]
        by_run = {start(core, note): note for note in notes}
        reply = listed(core, key="note", value=value)
        assert sorted(map(repr, (by_run[s.run_id] for s in reply.runs))) == sorted(
            map(repr, matches)
        )
        assert reply.total == len(matches)

    def test_a_key_keeps_only_the_runs_whose_data_holds_it(self) -> None:
        """Runs of a workflow without that key, and held runs, which have no data, are left
        out; the status filter applies with it."""
        core = core_on()
        run_id = start(core)
        ask(
            core, StartRun(id=2, protocol=PROTOCOL_VERSION, workflow="triage", inputs={"amount": 1})
        )
        sent(core)
        started = RunStarted("held-1", "gone", "1", "f", inputs={"note": "x"})
        core.held["held-1"] = HeldRun("held-1", [JournalRecord("held-1", 1, 1.0, started)], "no")
        reply = listed(core, key="note")
        assert [s.run_id for s in reply.runs] == [run_id]
        assert listed(core).total == 3
        assert listed(core, key="note", status="waiting").total == 1
        assert listed(core, key="note", status="running").total == 0

    def test_a_value_without_a_key_is_refused(self) -> None:
        """There is nothing to compare it with."""
        core = core_on()
        ask(core, ListRuns(id=3, protocol=PROTOCOL_VERSION, value="x"))
        (reply,) = replies(core)
        assert isinstance(reply, ControlError)
        assert (reply.code, reply.message) == (
            "invalid_input",
            "a value filter compares the value of a key: give the key too",
        )


class TestWatchOnARun:
    def test_a_run_past_the_version_seen_is_answered_at_once(self) -> None:
        """The cursor is the run's version now."""
        core = core_on()
        run_id = start(core)
        ask(core, watch(run_id=run_id, after=0))
        assert replies(core) == [Changed(id=5, cursor=core.runs[run_id].seq)]

    def test_a_change_journaled_for_the_run_answers_once_committed(self) -> None:
        """The watch is answered by the dispatch of its step, in the batch that journals it,
        and nothing leaves before that batch is committed."""
        core = core_on()
        run_id = start(core)
        seen = core.runs[run_id].seq
        ask(core, watch(run_id=run_id, after=seen, timeout_ms=60_000))
        assert replies(core) == []
        register(core)
        assert [f for f in core.batch.frames if f[0] == CONTROL] == [], "not before the commit"
        frames = [m for m in replies(core) if isinstance(m, Changed)]
        assert frames == [Changed(id=5, cursor=core.runs[run_id].seq)]
        assert core.runs[run_id].seq > seen
        assert len(core.control.watches) == 0

    def test_another_runs_change_does_not_answer_it(self) -> None:
        """Only events of the watched run count."""
        core = core_on()
        run_id = start(core)
        ask(core, watch(run_id=run_id, after=core.runs[run_id].seq))
        start(core)
        assert len(core.control.watches) == 1

    def test_the_wait_ends_timed_out_with_the_same_version(self) -> None:
        """Nothing changed within the wait: answered on its timer, timed out."""
        clock = FakeClock()
        core = core_on(clock)
        run_id = start(core)
        seq = core.runs[run_id].seq
        ask(core, watch(run_id=run_id, after=seq, timeout_ms=2_000))
        clock.advance(1.9)
        core.fire_timers()
        assert replies(core) == []
        clock.advance(0.2)
        core.fire_timers()
        assert replies(core) == [Changed(id=5, cursor=seq, timed_out=True)]

    def test_an_unknown_run_is_refused(self) -> None:
        """As a read of it would be."""
        core = core_on()
        ask(core, watch(run_id="nope"))
        (reply,) = replies(core)
        assert isinstance(reply, ControlError)
        assert (reply.code, reply.message) == ("unknown_run", "no run 'nope'")


class TestWatchOnTheRuntime:
    def test_a_run_started_elsewhere_moves_the_cursor_and_answers(self) -> None:
        """A client watching the cursor it saw hears of a run another client started, with
        the cursor after it."""
        core = core_on()
        start(core)
        cursor = core.control.watches.cursor
        ask(core, watch(after=cursor), b"page")
        assert sent(core) == []
        ask(core, StartRun(id=1, protocol=PROTOCOL_VERSION, workflow="one", inputs={"note": 1}))
        answered = [(who, m) for who, m in sent(core) if isinstance(m, Changed)]
        assert answered == [(b"page", Changed(id=5, cursor=cursor + 1))]

    def test_a_cursor_already_passed_is_answered_at_once(self) -> None:
        """Changes since the cursor seen are not waited for again."""
        core = core_on()
        start(core)
        start(core)
        ask(core, watch(after=1))
        assert replies(core) == [Changed(id=5, cursor=2)]

    def test_a_cursor_from_an_earlier_life_is_answered_at_once(self) -> None:
        """A cursor beyond this runtime's was seen before it restarted: the client goes on
        from the cursor now."""
        core = core_on()
        start(core)
        ask(core, watch(after=500))
        assert replies(core) == [Changed(id=5, cursor=1)]

    def test_the_wait_ends_timed_out_with_the_same_cursor(self) -> None:
        """No change within the wait."""
        clock = FakeClock()
        core = core_on(clock)
        start(core)
        ask(core, watch(after=1, timeout_ms=500))
        clock.advance(0.5)
        core.fire_timers()
        assert replies(core) == [Changed(id=5, cursor=1, timed_out=True)]
        assert len(core.control.watches) == 0


class TestWatchBounds:
    def test_a_client_may_keep_so_many_watches_open(self) -> None:
        """One more is refused as overloaded, while another client may still watch."""
        core = core_on()
        for request in range(1, WATCHES_PER_CLIENT + 1):
            ask(core, watch(id=request))
        ask(core, watch(id=1_000))
        (reply,) = replies(core)
        assert isinstance(reply, ControlError)
        assert reply.code == "overloaded"
        assert reply.message == (
            f"this connection has {WATCHES_PER_CLIENT} watches open, the limit is "
            f"{WATCHES_PER_CLIENT}: wait for one to be answered first"
        )
        ask(core, watch(id=1), b"other")
        assert replies(core) == []
        assert len(core.control.watches) == WATCHES_PER_CLIENT + 1

    def test_an_answered_watch_frees_its_place(self) -> None:
        """Once the change came, the client may open as many again."""
        core = core_on()
        for request in range(1, WATCHES_PER_CLIENT + 1):
            ask(core, watch(id=request))
        start(core)
        for request in range(1, WATCHES_PER_CLIENT + 1):
            ask(core, watch(id=request, after=1))
        assert replies(core) == []

    def test_a_request_id_already_watching_is_refused(self) -> None:
        """Its answer could not be told from the other's."""
        core = core_on()
        ask(core, watch())
        ask(core, watch())
        (reply,) = replies(core)
        assert isinstance(reply, ControlError)
        assert (reply.code, reply.message) == (
            "invalid_input",
            "request id 5 is already watching",
        )


class TestListWorkflows:
    def test_each_workflow_comes_with_its_graph_as_the_mermaid_export_draws_it(self) -> None:
        """Nodes, edges and notes are those of the diagram; the Mermaid text is `mermaid`'s."""
        core = core_on()
        ask(core, ListWorkflows(id=4, protocol=PROTOCOL_VERSION))
        (reply,) = replies(core)
        assert isinstance(reply, WorkflowsReply)
        assert [w.name for w in reply.workflows] == ["one", "triage"]
        triage = reply.workflows[1]
        assert (triage.version, triage.fingerprint) == ("1", TRIAGE.fingerprint)
        assert triage.inputs == ["amount"]
        assert triage.mermaid == mermaid(TRIAGE)
        nodes = [(n.name, n.kind, n.role, n.tools, n.notes) for n in triage.nodes]
        assert nodes == [
            (
                "check",
                "step",
                "clerk",
                ["lookup"],
                ["consequence: costly", "on failure: retry x2 then goto by_hand"],
            ),
            ("fine", "decision", "", [], []),
            ("by_hand", "step", "clerk", [], []),
            ("manual", "step", "clerk", [], []),
            ("done", "step", "clerk", [], []),
        ]
        edges = [(e.source, e.target, e.label, e.kind) for e in triage.edges]
        assert edges == [
            ("check", "fine", "", "next"),
            ("check", "by_hand", "on any: fallback", "fallback"),
            ("fine", "done", "ok == true", "route"),
            ("fine", "manual", "default", "route"),
        ]
