"""Model calls agents report: in the run's history with their tokens, their replies kept for
the attempt and sent with it again, refused when not the agent's to report, and counted
in the report and the metrics."""

from __future__ import annotations

import io
from typing import Any

import msgspec
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console

from protocols import (
    PROTOCOL_VERSION,
    Assign,
    Error,
    Message,
    ModelCall,
    ModelReply,
    Register,
    StartRun,
    ToolSpec,
    actor_side_codec,
    client_side_control_codec,
)
from runtime.cli._render import model_summary, render_record
from runtime.engine._events import ModelCalled, RunRecovered
from runtime.engine._models import MAX_MODEL_CALLS
from runtime.observe._observers import Observers
from runtime.observe._prometheus import PrometheusMetrics
from runtime.observe._report import report
from runtime.observe._report_render import render_report
from runtime.planes._views import record_view
from runtime.store import MemoryStore
from runtime.supervisor._batch import AGENTS
from runtime.supervisor._config import RuntimeConfig
from runtime.supervisor._core import SupervisorCore
from runtime.testing import EngineDriver, FakeClock
from runtime.workflow._definition import Role, Step, Workflow, chain
from runtime.workflow._graph import compile_workflow, output_type
from runtime.workflow._policies import Halt, Retry

pytestmark = pytest.mark.anyio

GRAPH = compile_workflow(
    Workflow(
        "drafts",
        roles=[Role("writer", tools=["search", "lookup"])],
        inputs=["topic"],
        steps=[
            Step(
                "draft",
                role="writer",
                reads=["topic"],
                writes={"text": str, "words": int, "notes": list[str]},
                tools=["search", "lookup"],
                on_failure=Retry(2, backoff=0.0, jitter=0.0, then=Halt()),
            ),
            Step("polish", role="writer", reads=["text"], writes=["final"]),
        ],
        edges=chain("draft", "polish"),
    )
)
"""Two steps; the first declares typed outputs, may call two tools, and is retried."""
ENCODE = msgspec.msgpack.Encoder().encode
AGENT = actor_side_codec()
CLIENT = client_side_control_codec()


def called(
    d: EngineDriver,
    index: int,
    *,
    step: str = "draft",
    attempt: int | None = None,
    agent: str | None = None,
    tokens: tuple[int, int] = (812, 96),
) -> None:
    """The agent reports model call `index` of the step's attempt (its current one)."""
    d.feed(
        ModelCalled(
            d.run_id, step, d.run.steps[step].attempt if attempt is None else attempt,
            agent or d.agent, index, "gpt-4o-mini", f"digest-{index}", {"answer": index},
            tokens[0], tokens[1], 1240.0, "stop",
        )
    )  # fmt: skip


def kept(d: EngineDriver, step: str = "draft") -> list[int]:
    return [reply.index for reply in d.run.steps[step].replies]


def taken(step: str = "draft") -> EngineDriver:
    """A run of `GRAPH` whose first step's first attempt is out with agent `agent`."""
    d = EngineDriver(GRAPH, {"topic": "owls"})
    d.dispatch(step)
    return d


class TestTheHistory:
    def test_a_model_call_is_in_the_history_with_its_figures(self) -> None:
        """The entry names the model, its tokens, latency and finish reason, in words and in
        its detail."""
        d = taken()
        called(d, 0)
        (entry,) = d.history("model_called")
        assert (entry.step, entry.attempt, entry.agent) == ("draft", 1, "agent")
        assert entry.message == "model gpt-4o-mini: 812 in, 96 out, 1,240 ms, finish stop"
        assert entry.detail == {
            "model": "gpt-4o-mini",
            "tokens_in": 812,
            "tokens_out": 96,
            "latency_ms": 1240.0,
            "finish_reason": "stop",
            "index": 0,
        }

    @pytest.mark.parametrize(
        ("attempt", "agent"), [(2, None), (1, "another")], ids=["later-attempt", "other-agent"]
    )
    def test_a_call_for_an_attempt_not_running_on_its_agent_is_ignored(
        self, attempt: int, agent: str | None
    ) -> None:
        """Audited as stale; nothing is kept."""
        d = taken()
        called(d, 0, attempt=attempt, agent=agent)
        assert d.history("model_called") == []
        assert [e.event for e in d.run.history][-1] == "stale_ignored"
        assert kept(d) == []


class TestRepliesOfAnAttempt:
    def test_replies_are_kept_in_order_while_the_attempt_runs(self) -> None:
        """Each reply is kept with its index and request digest."""
        d = taken()
        called(d, 0)
        called(d, 1)
        assert d.run.steps["draft"].replies == [
            ModelReply(index=0, request_digest="digest-0", reply={"answer": 0}),
            ModelReply(index=1, request_digest="digest-1", reply={"answer": 1}),
        ]

    def test_a_recovered_run_keeps_them_for_the_same_attempt(self) -> None:
        """The runtime restarted: the step goes back to the queue under its attempt, with
        its replies."""
        d = taken()
        called(d, 0)
        d.feed(RunRecovered(d.run_id))
        state = d.run.steps["draft"]
        assert (state.status, state.attempt, kept(d)) == ("queued", 1, [0])

    def test_a_new_attempt_after_a_failure_starts_with_none(self) -> None:
        """What the failed attempt was told may be why it failed."""
        d = taken()
        called(d, 0)
        d.fail("draft", "invalid_output")
        d.fire("retry", "draft")
        assert (d.run.steps["draft"].attempt, kept(d)) == (2, [])

    def test_a_new_attempt_after_its_agent_was_lost_takes_them_up(self) -> None:
        """The lost attempt's outcome was never judged: the next one replays its calls."""
        d = taken()
        called(d, 0)
        d.fail("draft", "agent_lost", "agent a was lost")
        d.fire("retry", "draft")
        assert (d.run.steps["draft"].attempt, kept(d)) == (2, [0])
        d.dispatch("draft")
        called(d, 1)
        assert kept(d) == [0, 1]

    def test_a_succeeded_attempt_lets_them_go(self) -> None:
        """Nothing sends a succeeded attempt again."""
        d = taken()
        called(d, 0)
        d.succeed("draft", {"text": "t", "words": 1, "notes": []})
        assert (d.run.steps["draft"].status, kept(d)) == ("completed", [])

    def test_at_most_the_bound_are_kept_and_every_call_is_in_the_history(self) -> None:
        """Beyond `MAX_MODEL_CALLS`, a call (which the agent plane refuses anyway) is
        recorded, not kept; a number already kept is not kept twice."""
        d = taken()
        for index in range(MAX_MODEL_CALLS + 1):
            called(d, index)
        called(d, 0)
        assert kept(d) == list(range(MAX_MODEL_CALLS))
        assert len(d.history("model_called")) == MAX_MODEL_CALLS + 2

    def test_the_journal_folds_back_to_the_same_replies(self) -> None:
        """Recovery, replay and `inspect --at` see what the live run kept."""
        d = taken()
        called(d, 0)
        called(d, 1, tokens=(5, 7))
        again = d.replayed()
        assert again.steps["draft"].replies == d.run.steps["draft"].replies
        assert record_view(again) == record_view(d.run)


class TestOutputTypes:
    @pytest.mark.parametrize(
        ("kind", "name"),
        [
            (str, "str"),
            (int, "int"),
            (float, "float"),
            (bool, "bool"),
            (list, "list"),
            (dict, "dict"),
            (object, "any"),
            (list[str], "any"),
            (bytes, "any"),
        ],
    )
    def test_each_declared_type_goes_by_its_name(self, kind: Any, name: str) -> None:
        """The plain types by their own name; the rest, and untyped outputs, as "any"."""
        assert output_type(kind) == name

    def test_the_graph_holds_each_steps_outputs(self) -> None:
        """Made once when the workflow is compiled."""
        assert GRAPH.outputs == {
            "draft": {"text": "str", "words": "int", "notes": "any"},
            "polish": {"final": "any"},
        }


# --- The agent plane ------------------------------------------------------------------------


class Plane:
    """The supervisor's core with a memory store and a fake clock, spoken to as peers would."""

    def __init__(self, store: MemoryStore | None = None) -> None:
        self.store = MemoryStore() if store is None else store
        self.core = SupervisorCore(
            [GRAPH], self.store, RuntimeConfig(heartbeat=5.0), clock=FakeClock()
        )
        self.rejects: list[str] = []
        self.out: list[tuple[bytes, Any]] = []
        """Frames sent to agents and not yet looked at, decoded."""
        reject = self.core.reject

        def counted(reason: str, identity: bytes, detail: str = "", principal: str = "") -> bool:
            self.rejects.append(reason)
            return reject(reason, identity, detail, principal)

        self.core.reject = counted  # type: ignore[method-assign]

    def send(self, identity: bytes, message: Message) -> list[Any]:
        """`message` from `identity`; what the committed batch lets leave for `identity`."""
        self.core.agents.on_frame(identity, None, ENCODE(message), 1)
        return self.flush(identity)

    def flush(self, identity: bytes) -> list[Any]:
        """Commit the batch; what has left for `identity` since last asked."""
        assert self.core.batch.append_now()
        for plane, peer, payload in self.core.batch.live(self.core.batch.take_frames()):
            if plane == AGENTS:
                self.out.append((peer, AGENT.decode(payload)))
        mine = [message for peer, message in self.out if peer == identity]
        self.out = [(peer, message) for peer, message in self.out if peer != identity]
        return mine

    def register(self, identity: bytes, **fields: Any) -> list[Any]:
        name = fields.pop("name", identity.decode())
        role = fields.pop("role", "writer")
        register = Register(protocol=PROTOCOL_VERSION, name=name, role=role, **fields)
        return self.send(identity, register)

    def start(self) -> str:
        message = StartRun(
            id=1, protocol=PROTOCOL_VERSION, workflow="drafts", inputs={"topic": "owls"}
        )
        self.core.control.on_frame(b"client", None, ENCODE(message), 1)
        self.flush(b"client")
        (run_id,) = self.core.runs
        return run_id


def model_call(run_id: str, index: int, *, attempt: int = 1, step: str = "draft") -> ModelCall:
    return ModelCall(
        run_id=run_id, step=step, attempt=attempt, index=index, model="gpt-4o-mini",
        request_digest=f"d{index}", reply={"text": f"reply {index}"}, tokens_in=812,
        tokens_out=96, latency_ms=1240.0, finish_reason="stop",
    )  # fmt: skip


class TestThePlane:
    async def test_an_assignment_tells_the_outputs_and_the_tool_specs(self) -> None:
        """The step's declared outputs with their types, and the specs its tools' hosts
        registered, in the step's order; no replies on a first dispatch."""
        plane = Plane()
        specs = [
            ToolSpec(name="lookup", description="find a fact", parameters={"type": "object"}),
            ToolSpec(name="search", description="search the web", read_only=True),
        ]
        plane.register(
            b"host", role="tools", kind="tool_host", tools=["search", "lookup"], specs=specs
        )
        plane.register(b"w1", tools=["search", "lookup"])
        plane.start()
        (assign,) = [m for m in plane.flush(b"w1") if isinstance(m, Assign)]
        assert assign.outputs == {"text": "str", "words": "int", "notes": "any"}
        assert [s.name for s in assign.tool_specs] == ["search", "lookup"]
        assert assign.tool_specs[1].parameters == {"type": "object"}
        assert assign.model_replies == []

    async def test_a_call_for_a_task_of_another_agent_is_refused(self) -> None:
        """Counted, answered `stale`, audited in the run; nothing is journaled as a call."""
        plane = Plane()
        plane.register(b"w1")
        run_id = plane.start()
        plane.flush(b"w1")
        plane.register(b"w2")
        (error,) = plane.send(b"w2", model_call(run_id, 0))
        assert isinstance(error, Error)
        assert (error.code, error.ref) == ("stale", f"{run_id}/draft/1")
        assert plane.rejects == ["stale_model_call"]
        assert plane.core.statistics().model_calls_refused == 1
        run = plane.core.runs[run_id]
        assert not [e for e in run.history if e.event == "model_called"]
        (refused,) = [e for e in run.history if e.event == "refused"]
        assert refused.detail == {"action": "model_call", "code": "stale"}

    async def test_a_call_for_a_stale_attempt_is_refused(self) -> None:
        """An agent reporting for an attempt before its current one is refused the same way."""
        plane = Plane()
        plane.register(b"w1")
        run_id = plane.start()
        plane.flush(b"w1")
        (error,) = plane.send(b"w1", model_call(run_id, 0, attempt=2))
        assert isinstance(error, Error)
        assert error.code == "stale"
        assert plane.rejects == ["stale_model_call"]

    async def test_a_number_reported_twice_is_refused(self) -> None:
        """The reply kept for a call is not replaced by another under its number."""
        plane = Plane()
        plane.register(b"w1")
        run_id = plane.start()
        plane.flush(b"w1")
        assert plane.send(b"w1", model_call(run_id, 0)) == []
        (error,) = plane.send(b"w1", model_call(run_id, 0))
        assert isinstance(error, Error)
        assert error.code == "invalid_input"
        assert plane.rejects == ["duplicate_model_call"]
        assert len(plane.core.runs[run_id].steps["draft"].replies) == 1

    async def test_the_call_is_journaled_and_goes_with_the_task_to_the_next_agent(self) -> None:
        """A valid call is in the history and the journal; when its agent is lost, the next
        attempt's assignment carries the reply."""
        plane = Plane()
        plane.register(b"w1")
        run_id = plane.start()
        plane.flush(b"w1")
        assert plane.send(b"w1", model_call(run_id, 0)) == []
        assert plane.core.statistics().model_calls == 1
        journaled = [type(r.event).__name__ for r in await plane.store.journal(run_id)]
        assert journaled[-1] == "ModelCalled"
        plane.core.agents.unreachable(b"w1")
        plane.core.fire_timers()
        (assign,) = [m for m in plane.register(b"w2") if isinstance(m, Assign)]
        assert (assign.step, assign.attempt) == ("draft", 2)
        assert assign.model_replies == [
            ModelReply(index=0, request_digest="d0", reply={"text": "reply 0"})
        ]
        events = [e.event for e in plane.core.runs[run_id].history]
        assert events.index("model_called") < events.index("step_failed")

    async def test_a_restarted_runtime_sends_the_same_attempt_with_its_replies(self) -> None:
        """The journal taken up by another core: the step in flight goes out again under its
        attempt, carrying the reply journaled before the stop."""
        store = MemoryStore()
        first = Plane(store)
        first.register(b"w1")
        run_id = first.start()
        first.flush(b"w1")
        first.send(b"w1", model_call(run_id, 0))
        second = Plane(store)
        await second.core.recover()
        (assign,) = [m for m in second.register(b"w1") if isinstance(m, Assign)]
        assert (assign.attempt, [r.index for r in assign.model_replies]) == (1, [0])

    async def test_replies_that_do_not_fit_one_frame_are_left_out_from_the_last(self) -> None:
        """The assignment stays within the frame limit the agent decodes by; the earliest
        replies go with it."""
        store = MemoryStore()
        first = Plane(store)
        first.register(b"w1")
        run_id = first.start()
        first.flush(b"w1")
        big = "x" * 40_000
        for index in range(40):
            call = msgspec.structs.replace(model_call(run_id, index), reply=big)
            assert first.send(b"w1", call) == []
        second = Plane(store)
        await second.core.recover()
        (assign,) = [m for m in second.register(b"w1") if isinstance(m, Assign)]
        indexes = [r.index for r in assign.model_replies]
        assert indexes == list(range(len(indexes)))
        assert 0 < len(indexes) < 40


# --- Report, metrics, record --------------------------------------------------------------


def finished(tokens: list[tuple[int, int]]) -> EngineDriver:
    """A run of `GRAPH` to its end, its first step making a model call of each (in, out)."""
    d = taken()
    for index, pair in enumerate(tokens):
        called(d, index, tokens=pair)
    d.succeed("draft", {"text": "t", "words": 1, "notes": []})
    d.succeed("polish")
    return d


class TestFigures:
    def test_the_report_counts_calls_and_tokens(self) -> None:
        """Per step and per workflow; tokens per run over the runs that called a model."""
        runs = [finished([(100, 10), (200, 20)]), finished([(50, 5)]), finished([])]
        figures = report(GRAPH, [d.run for d in runs])
        draft, polish = figures.steps
        assert (draft.model_calls, draft.tokens_in, draft.tokens_out) == (3, 350, 35)
        assert (polish.model_calls, polish.tokens_in, polish.tokens_out) == (0, 0, 0)
        assert (figures.tokens_in, figures.tokens_out) == (350, 35)
        assert figures.tokens_per_run == (330 + 55) / 2
        console = Console(file=io.StringIO(), width=100)
        render_report(console, figures)
        shown = console.file.getvalue()  # type: ignore[attr-defined]
        assert "model calls: 350 tokens in, 35 out, 192 per run that called one" in shown

    def test_a_report_without_model_calls_says_nothing_of_them(self) -> None:
        """No token figures, and no table of them."""
        figures = report(GRAPH, [finished([]).run])
        assert (figures.tokens_in, figures.tokens_out, figures.tokens_per_run) == (0, 0, None)
        console = Console(file=io.StringIO(), width=100)
        render_report(console, figures)
        assert "model calls" not in console.file.getvalue()  # type: ignore[attr-defined]

    def test_the_metrics_count_calls_and_tokens_by_direction(self) -> None:
        """Counters labelled by workflow and step, tokens also by direction."""
        metrics = PrometheusMetrics()
        observers = Observers([metrics])
        for d in (finished([(100, 10), (200, 20)]), finished([(50, 5)])):
            observers.observe(d.run, 0)
        text = generate_latest(metrics.registry).decode()
        seen = {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }
        step = (("step", "draft"), ("workflow", "drafts"))
        assert seen[("baton_model_calls_total", step)] == 3
        assert seen[("baton_model_tokens_total", (("direction", "in"), *step))] == 350
        assert seen[("baton_model_tokens_total", (("direction", "out"), *step))] == 35

    def test_the_record_view_sums_up_the_calls(self) -> None:
        """One line in the record's header; none for a run that called no model."""
        record = record_view(finished([(1_200, 10), (200, 20)]).run)
        assert model_summary(record.history) == "model calls: 2, tokens in/out: 1,400/30"
        console = Console(file=io.StringIO(), width=200)
        render_record(console, record)
        assert "model calls: 2, tokens in/out: 1,400/30" in console.file.getvalue()  # type: ignore[attr-defined]
        assert model_summary(record_view(finished([]).run).history) == ""
