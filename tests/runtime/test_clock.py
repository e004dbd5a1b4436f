"""Deadlines kept across restarts, with a wall clock that jumps: the supervisor's core on a
real SQLite journal, on a fake clock the test moves.

The runtime's timers run on the monotonic clock; a run's deadlines are kept as wall-clock
times. A checkpoint that had an hour left must still have what is left of that hour after
a restart, whatever the wall clock says.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest
import structlog
from structlog.typing import EventDict, WrappedLogger

import runtime.supervisor._clock
import runtime.supervisor._core
from protocols import RunRecord
from runtime.planes._views import record_view
from runtime.store import ClockReading, SqliteStore
from runtime.supervisor._clock import clock_skew
from runtime.supervisor._config import RuntimeConfig
from runtime.supervisor._core import SupervisorCore
from runtime.testing import FakeClock
from runtime.workflow._checkpoints import Checkpoint
from runtime.workflow._definition import Role, Step, Workflow
from runtime.workflow._graph import compile_workflow

pytestmark = pytest.mark.anyio

HOUR = 3600.0
GRAPH = compile_workflow(
    Workflow(
        "payout",
        roles=[Role("clerk")],
        inputs=["amount"],
        steps=[
            Step(
                "pay",
                role="clerk",
                reads=["amount"],
                writes={"receipt": str},
                consequence="irreversible",
                checkpoint=Checkpoint(["finance"], timeout=HOUR),
            )
        ],
    )
)
"""Waits for a person before its only step, an hour at most: no agent is needed."""

T = TypeVar("T")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@contextmanager
def capture_logs() -> Iterator[list[dict[str, Any]]]:
    """What the supervisor logs meanwhile, each line with its `log_level`, whatever
    structlog's global configuration (a CLI run in this process caches its loggers)."""
    kept: list[dict[str, Any]] = []

    def keep(logger: WrappedLogger, name: str, event: EventDict) -> EventDict:
        kept.append({**event, "log_level": name})
        raise structlog.DropEvent

    logger = structlog.wrap_logger(
        None, processors=[keep], wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG)
    )
    with pytest.MonkeyPatch.context() as patch:
        for module in (runtime.supervisor._core, runtime.supervisor._clock):
            patch.setattr(module, "log", logger)
        yield kept


async def serving(path: Path, clock: FakeClock, body: Callable[[SupervisorCore], T]) -> T:
    """Take up the journal at `path` in a supervisor's core, as a runtime starting on it
    does, for as long as `body` takes; then stop (the store is closed)."""
    store = SqliteStore(path)
    try:
        core = SupervisorCore([GRAPH], store, RuntimeConfig(), clock=clock)
        core.schedule_heartbeat()
        await core.recover()
        return body(core)
    finally:
        await store.close()


def record(core: SupervisorCore, run_id: str) -> RunRecord:
    """The run's record, once what the core journaled is committed."""
    assert core.batch.append_now()
    return record_view(core.runs[run_id])


def later(core: SupervisorCore, clock: FakeClock, seconds: float, run_id: str) -> RunRecord:
    """The run's record once `seconds` passed and the timers due fired."""
    clock.advance(seconds)
    core.fire_timers()
    return record(core, run_id)


async def waiting_run(path: Path, clock: FakeClock, running: float) -> tuple[str, float]:
    """Start a run that waits at its checkpoint, let the runtime go on for `running`
    seconds, then stop it; the run's id and its deadline."""

    def body(core: SupervisorCore) -> tuple[str, float]:
        run_id = core.start_run(GRAPH, {"amount": 900})
        (pending,) = record(core, run_id).pending
        assert pending.deadline == pytest.approx(clock.wall() + HOUR)
        assert later(core, clock, running, run_id).status == "waiting"
        return run_id, pending.deadline

    return await serving(path, clock, body)


def wait_left(core: SupervisorCore, clock: FakeClock, run_id: str) -> float:
    """Seconds until the runtime's timer for the run's decision fires."""
    due = core.timers.deadline(("step", run_id, "decision", "pay", 1))
    assert due is not None
    return due - clock.monotonic()


def jumps(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The runtime's lines about jumps of its clock (each run's history has its own)."""
    return [line for line in logs if line["event"] == "clock.jumped" and "run_id" not in line]


class TestRestartedWithTheWallClockAhead:
    async def test_a_checkpoint_keeps_the_time_it_really_had_left(self, tmp_path: Path) -> None:
        """Ten minutes into an hour's wait, the runtime stops for one minute and comes back
        with its wall clock an hour ahead: 50 minutes are left, not none. A second restart
        then finds the deadline where the first one moved it."""
        journal = tmp_path / "journal.db"
        clock = FakeClock()
        run_id, deadline = await waiting_run(journal, clock, running=600)
        clock.advance(60)
        clock.jump(HOUR)

        def first_restart(core: SupervisorCore) -> None:
            taken_up = record(core, run_id)
            assert taken_up.status == "waiting"
            assert taken_up.pending[0].deadline == pytest.approx(deadline + HOUR)
            assert [h.event for h in taken_up.history][-2:] == ["clock_jumped", "run_recovered"]
            assert wait_left(core, clock, run_id) == pytest.approx(HOUR - 660)
            assert later(core, clock, 1_000, run_id).status == "waiting"

        with capture_logs() as logs:
            await serving(journal, clock, first_restart)
        (jumped,) = jumps(logs)
        assert (jumped["log_level"], jumped["skew"], jumped["runs"]) == ("warning", HOUR, 1)
        clock.advance(100)

        def second_restart(core: SupervisorCore) -> None:
            assert wait_left(core, clock, run_id) == pytest.approx(HOUR - 1_760)
            assert later(core, clock, HOUR - 1_761, run_id).status == "waiting"
            timed_out = later(core, clock, 2, run_id)
            assert timed_out.status == "halted"
            assert "nobody decided" in timed_out.reason

        await serving(journal, clock, second_restart)

    async def test_a_jump_while_running_is_kept_for_the_next_restart(self, tmp_path: Path) -> None:
        """The wall clock jumps an hour ahead while the runtime runs: its timer is on the
        monotonic clock and does not care, and the journal moves the deadline so that the
        runtime started next does not time the checkpoint out at once."""
        journal = tmp_path / "journal.db"
        clock = FakeClock()

        def body(core: SupervisorCore) -> str:
            run_id = core.start_run(GRAPH, {"amount": 900})
            later(core, clock, 300, run_id)
            clock.jump(HOUR)
            waiting = later(core, clock, 2, run_id)  # a heartbeat notices
            assert waiting.status == "waiting"
            assert wait_left(core, clock, run_id) == pytest.approx(HOUR - 302)
            return run_id

        with capture_logs() as logs:
            run_id = await serving(journal, clock, body)
        clock.advance(60)

        def restarted(core: SupervisorCore) -> RunRecord:
            taken_up = record(core, run_id)
            assert taken_up.status == "waiting"
            assert wait_left(core, clock, run_id) == pytest.approx(HOUR - 362)
            return taken_up

        with capture_logs() as later_logs:
            taken_up = await serving(journal, clock, restarted)
        (jumped,) = jumps(logs)
        assert jumped["noticed"] == "while running"
        assert jumps(later_logs) == []
        assert [h.event for h in taken_up.history][-2:] == ["clock_jumped", "run_recovered"]

    async def test_moves_within_the_tolerance_add_up(self, tmp_path: Path) -> None:
        """Two restarts, each after the wall clock moved 0.6 s: the second sees 1.2 s."""
        journal = tmp_path / "journal.db"
        clock = FakeClock()
        run_id, deadline = await waiting_run(journal, clock, running=10)

        def pending(core: SupervisorCore) -> float | None:
            return record(core, run_id).pending[0].deadline

        clock.jump(0.6)
        assert await serving(journal, clock, pending) == deadline
        clock.jump(0.6)
        assert await serving(journal, clock, pending) == pytest.approx(deadline + 1.2)

    async def test_after_a_reboot_the_wall_clock_is_taken_at_its_word(self, tmp_path: Path) -> None:
        """The monotonic clock of another boot says nothing about this one: the deadline is
        the wall clock's, and an hour ahead it has passed."""
        journal = tmp_path / "journal.db"
        clock = FakeClock()
        run_id, _ = await waiting_run(journal, clock, running=600)
        clock.jump(HOUR)
        clock.reboot()

        def rebooted(core: SupervisorCore) -> RunRecord:
            return later(core, clock, 0, run_id)

        with capture_logs() as logs:
            taken_up = await serving(journal, clock, rebooted)
        assert taken_up.status == "halted"
        (unchecked,) = [line for line in logs if line["event"] == "clock.unchecked"]
        assert "the machine restarted" in unchecked["reason"]


class TestClockSkew:
    def test_within_one_boot_the_jump_is_what_the_wall_clock_moved_beyond_the_other(
        self,
    ) -> None:
        before = ClockReading(1_000.0, 50.0, "b")
        assert clock_skew(before, ClockReading(1_100.0, 150.0, "b")) == 0.0
        assert clock_skew(before, ClockReading(4_700.0, 100.0, "b")) == 3_650.0
        assert clock_skew(before, ClockReading(900.0, 100.0, "b")) == -150.0

    def test_across_boots_or_without_a_reading_nothing_tells(self) -> None:
        here = ClockReading(1_100.0, 150.0, "b")
        assert clock_skew(None, here) is None
        assert clock_skew(ClockReading(1_000.0, 50.0, "a"), here) is None
        assert clock_skew(ClockReading(1_000.0, 50.0, ""), ClockReading(1.0, 2.0, "")) is None
