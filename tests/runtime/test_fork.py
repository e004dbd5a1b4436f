"""Forks: a run that begins as another's record at an earlier version, in the engine and in
the supervisor's core (no socket, a real store, a fake clock)."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from protocols import (
    PROTOCOL_VERSION,
    Assign,
    ControlError,
    ForkRun,
    Register,
    RunAccepted,
    StartRun,
    StepResult,
    actor_side_codec,
    client_side_control_codec,
)
from runtime.engine import DecisionMade, Dispatch, RunForked, StartTimer, apply
from runtime.engine._run import Run
from runtime.security._principals import Principal
from runtime.store import JournalRecord, MemoryStore, replay
from runtime.supervisor._batch import AGENTS
from runtime.supervisor._config import RuntimeConfig
from runtime.supervisor._core import SupervisorCore
from runtime.supervisor._fork import copied_events
from runtime.testing import EngineDriver, FakeClock, of_kind
from runtime.workflow import Catalog
from runtime.workflow._checkpoints import Checkpoint
from runtime.workflow._conditions import key
from runtime.workflow._definition import Role, Step, Workflow, chain
from runtime.workflow._graph import Graph, compile_workflow

pytestmark = pytest.mark.anyio

ENCODE = msgspec.msgpack.Encoder().encode
AGENT = actor_side_codec()
CLIENT = client_side_control_codec()


def three_steps(checkpoint: Checkpoint | None = None) -> Graph:
    """draft (writes text) -> review (reads text, writes score: int) -> publish."""
    return compile_workflow(
        Workflow(
            "article",
            roles=[Role("writer")],
            inputs=["topic"],
            steps=[
                Step("draft", role="writer", reads=["topic"], writes=["text"]),
                Step(
                    "review",
                    role="writer",
                    reads=["text"],
                    writes={"score": int},
                    checkpoint=checkpoint,
                    consequence="irreversible" if checkpoint else "reversible",
                ),
                Step("publish", role="writer", reads=["text", "score"], writes=["url"]),
            ],
            edges=chain("draft", "review", "publish"),
        )
    )


GRAPH = three_steps()


def fork_records(
    graph: Graph,
    journal: list[JournalRecord],
    at: int,
    values: dict[str, Any] | None = None,
    *,
    fork_id: str = "fork-1",
    now: float = 100.0,
    principal: str = "pat",
) -> list[JournalRecord]:
    """The journal of a fork of the run of `journal` at version `at`, as the core writes it:
    the records that brought the parent to that version, copied under `fork_id`, then
    `RunForked`."""
    taken: list[JournalRecord] = []
    for record in journal:
        if taken and replay(Catalog([graph]), taken).seq >= at:
            break
        taken.append(record)
    copies = [
        JournalRecord(fork_id, seq, at, event)
        for seq, (event, at) in enumerate(copied_events(Catalog([graph]), taken, fork_id)[0], 1)
    ]
    event = RunForked(fork_id, journal[0].run_id, at, principal, "try again", dict(values or {}))
    return [*copies, JournalRecord(fork_id, len(copies) + 1, now, event)]


def fork_of(
    parent: EngineDriver,
    at: int,
    values: dict[str, Any] | None = None,
    *,
    now: float = 100.0,
    principal: str = "pat",
) -> tuple[Run, list[Any]]:
    """The fork of `parent` at version `at` as the core makes it; the run and its commands."""
    records = fork_records(parent.graph, parent.journal, at, values, now=now, principal=principal)
    run = replay(Catalog([parent.graph]), records[:-1])
    return run, apply(run, records[-1].event, now)


def version_of(driver: EngineDriver, event: str, step: str) -> int:
    return next(h.seq for h in driver.run.history if h.event == event and h.step == step)


class TestForkInTheEngine:
    def test_completed_steps_stay_done_and_in_flight_ones_go_out_again(self) -> None:
        """Forked once `draft` completed and `review` was out: only `review` is dispatched, under
        the fork's id and the attempt it had, and `draft`'s outputs are kept."""
        d = EngineDriver(GRAPH, {"topic": "owls"})
        d.succeed("draft")
        d.dispatch("review")
        at = version_of(d, "step_dispatched", "review")
        d.succeed("review")
        d.succeed("publish")
        run, commands = fork_of(d, at)
        assert [(c.run_id, c.step, c.attempt) for c in of_kind(Dispatch, commands)] == [
            ("fork-1", "review", 1)
        ]
        assert run.steps["draft"].status == "completed"
        assert run.data == {"topic": "owls", "text": "draft.text"}
        assert run.status == "running"
        assert [h.event for h in run.history[-2:]] == ["run_forked", "step_requeued"]

    def test_values_given_are_written_with_who_gave_them(self) -> None:
        """The edited value replaces the data, its provenance names the principal, and the
        history says from where and at what version the run was forked."""
        d = EngineDriver(GRAPH, {"topic": "owls"})
        d.succeed("draft")
        at = version_of(d, "step_succeeded", "draft")
        run, _ = fork_of(d, at, {"text": "better"})
        assert run.data["text"] == "better"
        prov = run.provenance["text"]
        assert (prov.step, prov.attempt, prov.edited_by, prov.rationale) == (
            "fork", 0, "pat", "try again",
        )  # fmt: skip
        entry = next(h for h in run.history if h.event == "run_forked")
        assert entry.message == (
            f"forked from run run-1 at version {at} by pat; text given by pat: try again"
        )
        assert prov.seq == entry.seq
        assert (run.forked_from, run.forked_at, run.started_by) == ("run-1", at, "pat")

    def test_a_checkpoint_waiting_before_a_step_shows_the_edited_value(self) -> None:
        """A decision open at the fork's version reviews the value given, under a new digest,
        and keeps the time it had left."""
        graph = three_steps(Checkpoint(["editors"], condition=key("text") != "", timeout=60))
        d = EngineDriver(graph, {"topic": "owls"}, at=10.0)
        d.succeed("draft")
        waiting = d.run.decisions["review"]
        at = version_of(d, "checkpoint_opened", "review")
        run, commands = fork_of(d, at, {"text": "better"}, now=1_000.0)
        forked = run.decisions["review"]
        assert forked.reviewed == {"text": "better"}
        assert forked.digest not in ("", waiting.digest)
        (timer,) = of_kind(StartTimer, commands)
        assert timer.purpose == "decision"
        assert timer.delay == pytest.approx(60.0)

    def test_a_decision_the_parent_took_before_the_version_holds_in_the_fork(self) -> None:
        """A decision quotes a digest that names its run: the fork's copy quotes the fork's,
        so the approval stands there and the step goes out, not back to the inbox; one the
        parent ignored stays ignored."""
        graph = three_steps(Checkpoint(["editors"], condition=key("text") != ""))
        d = EngineDriver(graph, {"topic": "owls"})
        d.succeed("draft")
        stale = d.run.decisions["review"]
        d.feed(msgspec.structs.replace(
            _decision_on(d, "review"), digest="not-the-one", comment="stale"
        ))  # fmt: skip
        assert d.run.decisions["review"] is stale
        d.decide("review", "approve", {"text": "checked"})
        at = version_of(d, "decision_made", "review")
        run, commands = fork_of(d, at, {"topic": "owls again"})
        assert "review" not in run.decisions
        assert [h.event for h in run.history].count("decision_ignored") == 1
        assert run.data["text"] == "checked"
        assert [c.step for c in of_kind(Dispatch, commands)] == ["review"]

    def test_a_fork_of_a_fork_names_the_run_it_was_forked_from(self) -> None:
        """Forked again after its own fork event, a fork's values and in-flight steps are
        taken up as for any run, and the new fork names the fork as its parent."""
        d = EngineDriver(GRAPH, {"topic": "owls"})
        d.succeed("draft")
        at = version_of(d, "step_succeeded", "draft")
        first = fork_records(GRAPH, d.journal, at, {"text": "a"})
        seq = replay(Catalog([GRAPH]), first).seq
        second = fork_records(GRAPH, first, seq, {"text": "b"}, fork_id="fork-2", principal="quinn")
        run = replay(Catalog([GRAPH]), second[:-1])
        commands = apply(run, second[-1].event, 200.0)
        assert (run.run_id, run.forked_from, run.forked_at) == ("fork-2", "fork-1", seq)
        assert (run.data["text"], run.provenance["text"].edited_by) == ("b", "quinn")
        assert [h.event for h in run.history].count("run_forked") == 2
        assert [c.step for c in of_kind(Dispatch, commands)] == ["review"]


def _decision_on(driver: EngineDriver, step: str) -> DecisionMade:
    waiting = driver.run.decisions[step]
    return DecisionMade(
        driver.run_id, step, waiting.attempt, "approve", "ed", waiting.digest, "", {}
    )


# -- the core -------------------------------------------------------------------------------


def core_on(store: MemoryStore, clock: FakeClock | None = None, **config: Any) -> SupervisorCore:
    return SupervisorCore([GRAPH], store, RuntimeConfig(**config), clock=clock or FakeClock())


def ask(core: SupervisorCore, message: Any) -> None:
    core.control.on_frame(b"client", None, ENCODE(message), 1)


def sent(core: SupervisorCore) -> list[Any]:
    """Commit the batch, then what it lets leave, decoded by each peer's codec."""
    assert core.batch.append_now()
    return [
        AGENT.decode(payload) if plane == AGENTS else CLIENT.decode(payload)
        for plane, _, payload in core.batch.live(core.batch.take_frames())
    ]


async def forked(core: SupervisorCore) -> list[Any]:
    """Make every fork asked for, as the shell does off its loop; what leaves then."""
    refusals = [await core.fork(asked) for asked in core.forks.take()]
    return [r for r in refusals if r is not None] + sent(core)


def register(core: SupervisorCore) -> None:
    core.agents.on_frame(b"agent", None, ENCODE(Register(protocol=PROTOCOL_VERSION, name="w",
                                                         role="writer")), 1)  # fmt: skip


def start(core: SupervisorCore) -> None:
    ask(core, StartRun(id=1, protocol=PROTOCOL_VERSION, workflow="article",
                       inputs={"topic": "owls"}))  # fmt: skip


def fork_request(run_id: str, at: int, values: dict[str, Any] | None = None) -> ForkRun:
    return ForkRun(id=7, protocol=PROTOCOL_VERSION, run_id=run_id, at=at, values=values or {})


class TestForkInTheCore:
    async def test_a_fork_is_journaled_as_a_copy_then_its_own_way(self) -> None:
        """The fork's journal is the parent's records up to the version, under the new id,
        then `RunForked`; the parent's journal is untouched; only later steps run again."""
        store = MemoryStore()
        core = core_on(store)
        register(core)
        start(core)
        work_from(core, sent(core))
        (parent,) = core.runs
        before = await store.journal(parent)
        at = next(h.seq for h in core.runs[parent].history if h.event == "step_succeeded")
        ask(core, fork_request(parent, at, {"text": "better"}))
        messages = await forked(core)
        (accepted,) = [m for m in messages if isinstance(m, RunAccepted)]
        child = accepted.run_id
        assert [a.step for a in messages if isinstance(a, Assign)] == ["review"]
        assert await store.journal(parent) == before
        journal = await store.journal(child)
        cut = next(i for i, r in enumerate(journal) if isinstance(r.event, RunForked))
        assert [(r.seq, r.at, r.event) for r in journal[:cut]] == [
            (r.seq, r.at, msgspec.structs.replace(r.event, run_id=child)) for r in before[:cut]
        ]
        assert cut == 3
        done = work_from(core, messages)
        assert [a.step for a in done] == ["review", "publish"]
        assert "better" in str(done[0].inputs)
        run = core.runs[child]
        assert run.status == "completed"
        assert (run.forked_from, run.forked_at) == (parent, at)
        again = core_on(store)
        await again.recover()
        assert (again.runs[child].forked_from, again.runs[child].seq) == (parent, run.seq)

    @pytest.mark.parametrize(
        ("at", "values", "code", "message"),
        [
            (0, {}, "invalid_input", "has versions 1 to"),
            (999, {}, "invalid_input", "has versions 1 to"),
            (2, {"nope": 1}, "invalid_input", "'nope' is neither an input nor a step's output"),
            (2, {"score": "high"}, "invalid_input", "value for 'score': Expected `int`"),
        ],
    )
    async def test_refusals_before_the_journal_is_read(
        self, at: int, values: dict[str, Any], code: str, message: str
    ) -> None:
        """A version outside the record's, or a value the workflow does not know or of the
        wrong type, is refused at once, and nothing is journaled."""
        store = MemoryStore()
        core = core_on(store)
        parent = finished_parent_via(core)
        count = len(await store.journal(parent))
        ask(core, fork_request(parent, at, values))
        (error,) = sent(core)
        assert isinstance(error, ControlError)
        assert (error.code, message in error.message) == (code, True), error.message
        assert core.forks.take() == []
        assert list(core.runs) == [parent]
        assert len(await store.journal(parent)) == count

    async def test_a_viewer_may_not_fork(self) -> None:
        """Forking acts: a principal who may only read is refused, and the refusal is in the
        parent's history; an operator may."""
        store = MemoryStore()
        parent = finished_parent_via(core_on(store))
        core = SupervisorCore([GRAPH], store, RuntimeConfig(), clock=FakeClock(), secure=True)
        await core.recover()
        seq = core.runs[parent].seq
        viewer = Principal("vic", b"v" * 40, frozenset({"viewer"}))
        core.control.on_frame(b"client", viewer, ENCODE(fork_request(parent, 2)), 1)
        (error,) = sent(core)
        assert (error.code, error.message) == (
            "unauthorized", "principal 'vic' may not fork run: it needs role 'operator'",
        )  # fmt: skip
        assert core.runs[parent].history[-1].event == "refused"
        assert core.forks.take() == []
        operator = Principal("olga", b"o" * 40, frozenset({"operator"}))
        core.control.on_frame(b"client", operator, ENCODE(fork_request(parent, 2)), 1)
        (accepted,) = [m for m in await forked(core) if isinstance(m, RunAccepted)]
        fork = core.runs[accepted.run_id]
        assert (fork.started_by, fork.history[-2].principal) == ("olga", "olga")
        assert core.runs[parent].seq == seq + 1

    async def test_an_unknown_run_is_refused(self) -> None:
        """A run this runtime does not hold (and no cluster to ask) cannot be forked."""
        core = core_on(MemoryStore())
        ask(core, fork_request("nope", 1))
        (error,) = sent(core)
        assert (error.code, error.message) == ("unknown_run", "no run 'nope'")

    async def test_a_version_at_which_the_run_had_ended_is_refused(self) -> None:
        """Forking the version that completed the run would give a fork with nothing to do."""
        core = core_on(MemoryStore())
        parent = finished_parent_via(core)
        ask(core, fork_request(parent, core.runs[parent].seq))
        (error,) = await forked(core)
        assert error.code == "invalid_input"
        assert "had already ended (completed)" in error.message
        assert list(core.runs) == [parent]

    async def test_the_limit_of_active_runs_holds(self) -> None:
        """With as many runs in progress as allowed, a fork is refused as overloaded."""
        core = core_on(MemoryStore(), max_active_runs=1)
        start(core)
        sent(core)
        (parent,) = core.runs
        ask(core, fork_request(parent, 1))
        (error,) = sent(core)
        assert (error.code, error.message) == (
            "overloaded", "1 runs are in progress, the limit is 1",
        )  # fmt: skip


def finished_parent_via(core: SupervisorCore) -> str:
    register(core)
    start(core)
    work_from(core, sent(core))
    (run_id,) = core.runs
    assert core.runs[run_id].status == "completed"
    return run_id


def work_from(core: SupervisorCore, messages: list[Any]) -> list[Assign]:
    """Answer the assignments among `messages`, then every one that follows."""
    done: list[Assign] = []
    pending = [m for m in messages if isinstance(m, Assign)]
    while pending:
        assign = pending.pop(0)
        outputs: dict[str, Any] = {
            k: (3 if k == "score" else f"{assign.step}:{assign.inputs}")
            for k in GRAPH.step(assign.step).writes
        }
        result = StepResult(
            run_id=assign.run_id, step=assign.step, attempt=assign.attempt, outputs=outputs
        )
        core.agents.on_frame(b"agent", None, ENCODE(result), 1)
        done.append(assign)
        pending += [m for m in sent(core) if isinstance(m, Assign)]
    return done
