"""Deadlines kept across restarts, with a wall clock that jumps: a real supervisor on a real
SQLite journal, on clocks the test moves.

The runtime's timers run on the monotonic clock; a run's deadlines are kept as wall-clock
times. A checkpoint that had an hour left must still have what is left of that hour after
a restart, whatever the wall clock says.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import anyio
import pytest
import structlog
from structlog.typing import EventDict, WrappedLogger

import runtime.supervisor._supervisor
from protocols import RunRecord
from runtime import ControlClient
from runtime.store import ClockReading, SqliteStore
from runtime.supervisor._clock import clock_skew
from runtime.supervisor._config import RuntimeConfig
from runtime.supervisor._supervisor import Supervisor
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
        patch.setattr(runtime.supervisor._supervisor, "log", logger)
        yield kept


class Clocks:
    """A wall clock and a monotonic one that move on together when told, and a wall clock
    that can be set wrong."""

    def __init__(self) -> None:
        self.elapsed = 0.0
        self.wall_error = 0.0

    def wall(self) -> float:
        return 1_700_000_000.0 + self.elapsed + self.wall_error

    def monotonic(self) -> float:
        return 20_000.0 + self.elapsed


async def serving(
    path: Path,
    clocks: Clocks,
    body: Callable[[Supervisor, ControlClient], Awaitable[T]],
    *,
    boot: str = "boot-1",
) -> T:
    """Run a supervisor on the journal at `path` for as long as `body` takes, then stop it."""
    store = SqliteStore(path)
    supervisor = Supervisor(
        [GRAPH],
        store,
        RuntimeConfig(agents="tcp://127.0.0.1:0", control="tcp://127.0.0.1:0"),
        security=None,
        clock=clocks.wall,
        monotonic=clocks.monotonic,
        boot=boot,
    )
    try:
        async with anyio.create_task_group() as tasks:
            await tasks.start(supervisor.serve)
            try:
                async with ControlClient(supervisor.bound_control) as client:
                    return await body(supervisor, client)
            finally:
                supervisor.stop()
    except BaseExceptionGroup as group:
        # The test's own failure, rather than the task group's wrapping of it.
        if len(group.exceptions) == 1:
            raise group.exceptions[0] from None
        raise
    finally:
        await store.close()


async def later(client: ControlClient, clocks: Clocks, seconds: float, run_id: str) -> RunRecord:
    """The run's record once `seconds` passed (the request after the one that wakes the
    runtime, which fires the timers due)."""
    clocks.elapsed += seconds
    await client.get_run(run_id)
    return await client.get_run(run_id)


async def waiting_run(path: Path, clocks: Clocks, running: float) -> tuple[str, float]:
    """Start a run that waits at its checkpoint, let the runtime go on for `running`
    seconds, then stop it; the run's id and its deadline."""

    async def body(supervisor: Supervisor, client: ControlClient) -> tuple[str, float]:
        run_id = await client.start_run("payout", {"amount": 900})
        (pending,) = (await client.get_run(run_id)).pending
        assert pending.deadline == pytest.approx(clocks.wall() + HOUR)
        record = await later(client, clocks, running, run_id)
        assert record.status == "waiting"
        return run_id, pending.deadline

    return await serving(path, clocks, body)


def wait_left(supervisor: Supervisor, clocks: Clocks, run_id: str) -> float:
    """Seconds until the runtime's timer for the run's decision fires."""
    key = ("step", run_id, "decision", "pay", 1)
    due = [deadline for deadline, _, k in supervisor._timers._heap if k == key]
    assert len(due) == 1
    return due[0] - clocks.monotonic()


def jumps(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The runtime's lines about jumps of its clock (each run's history has its own)."""
    return [line for line in logs if line["event"] == "clock.jumped" and "run_id" not in line]


class TestRestartedWithTheWallClockAhead:
    async def test_a_checkpoint_keeps_the_time_it_really_had_left(self, tmp_path: Path) -> None:
        """Ten minutes into an hour's wait, the runtime stops for one minute and comes back
        with its wall clock an hour ahead: 50 minutes are left, not none. A second restart
        then finds the deadline where the first one moved it."""
        journal = tmp_path / "journal.db"
        clocks = Clocks()
        run_id, deadline = await waiting_run(journal, clocks, running=600)
        clocks.elapsed += 60
        clocks.wall_error = HOUR

        async def first_restart(supervisor: Supervisor, client: ControlClient) -> None:
            record = await client.get_run(run_id)
            assert record.status == "waiting"
            assert record.pending[0].deadline == pytest.approx(deadline + HOUR)
            assert [h.event for h in record.history][-2:] == ["clock_jumped", "run_recovered"]
            assert wait_left(supervisor, clocks, run_id) == pytest.approx(HOUR - 660)
            assert (await later(client, clocks, 1_000, run_id)).status == "waiting"

        with capture_logs() as logs:
            await serving(journal, clocks, first_restart)
        (jumped,) = jumps(logs)
        assert (jumped["log_level"], jumped["skew"], jumped["runs"]) == ("warning", HOUR, 1)
        clocks.elapsed += 100

        async def second_restart(supervisor: Supervisor, client: ControlClient) -> None:
            assert wait_left(supervisor, clocks, run_id) == pytest.approx(HOUR - 1_760)
            assert (await later(client, clocks, HOUR - 1_761, run_id)).status == "waiting"
            timed_out = await later(client, clocks, 2, run_id)
            assert timed_out.status == "halted"
            assert "nobody decided" in timed_out.reason

        await serving(journal, clocks, second_restart)

    async def test_a_jump_while_running_is_kept_for_the_next_restart(self, tmp_path: Path) -> None:
        """The wall clock jumps an hour ahead while the runtime runs: its timer is on the
        monotonic clock and does not care, and the journal moves the deadline so that the
        runtime started next does not time the checkpoint out at once."""
        journal = tmp_path / "journal.db"
        clocks = Clocks()

        async def body(supervisor: Supervisor, client: ControlClient) -> str:
            run_id = await client.start_run("payout", {"amount": 900})
            await later(client, clocks, 300, run_id)
            clocks.wall_error = HOUR
            record = await later(client, clocks, 2, run_id)  # a heartbeat notices
            assert record.status == "waiting"
            assert wait_left(supervisor, clocks, run_id) == pytest.approx(HOUR - 302)
            return run_id

        with capture_logs() as logs:
            run_id = await serving(journal, clocks, body)
        clocks.elapsed += 60

        async def restarted(supervisor: Supervisor, client: ControlClient) -> RunRecord:
            record = await client.get_run(run_id)
            assert record.status == "waiting"
            assert wait_left(supervisor, clocks, run_id) == pytest.approx(HOUR - 362)
            return record

        with capture_logs() as later_logs:
            record = await serving(journal, clocks, restarted)
        (jumped,) = jumps(logs)
        assert jumped["noticed"] == "while running"
        assert jumps(later_logs) == []
        assert [h.event for h in record.history][-2:] == ["clock_jumped", "run_recovered"]

    async def test_moves_within_the_tolerance_add_up(self, tmp_path: Path) -> None:
        """Two restarts, each after the wall clock moved 0.6 s: the second sees 1.2 s."""
        journal = tmp_path / "journal.db"
        clocks = Clocks()
        run_id, deadline = await waiting_run(journal, clocks, running=10)

        async def pending(supervisor: Supervisor, client: ControlClient) -> float | None:
            return (await client.get_run(run_id)).pending[0].deadline

        clocks.wall_error += 0.6
        assert await serving(journal, clocks, pending) == deadline
        clocks.wall_error += 0.6
        assert await serving(journal, clocks, pending) == pytest.approx(deadline + 1.2)

    async def test_after_a_reboot_the_wall_clock_is_taken_at_its_word(self, tmp_path: Path) -> None:
        """The monotonic clock of another boot says nothing about this one: the deadline is
        the wall clock's, and an hour ahead it has passed."""
        journal = tmp_path / "journal.db"
        clocks = Clocks()
        run_id, _ = await waiting_run(journal, clocks, running=600)
        clocks.wall_error = HOUR

        async def rebooted(supervisor: Supervisor, client: ControlClient) -> RunRecord:
            return await later(client, clocks, 0, run_id)

        with capture_logs() as logs:
            record = await serving(journal, clocks, rebooted, boot="boot-2")
        assert record.status == "halted"
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
