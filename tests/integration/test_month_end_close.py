"""The month-end close blueprint with real processes: the runtime, the ERP tool host and
each agent a process of its own, over CURVE, the people deciding by their own keys.

One close of 2026-11 is driven by hand, then submitted again; each test states one
behaviour of what happened.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest

from examples.month_end_close import demo
from examples.month_end_close.workflow import JOURNAL_LIMIT, MATERIALITY
from protocols import PendingDecision, RunRecord
from runtime import ControlClient, ControlRefused
from runtime.launch import ProcessGroup, RuntimeProcess
from runtime.security._keys import init_keys
from tests.integration.conftest import HEARTBEAT, REPO, wait_for

pytestmark = [pytest.mark.integration]

PERIOD = {"period": "2026-11"}


def data(record: RunRecord) -> Any:
    """The record's data, read as Any: indexing the deep `Value` union makes mypy crawl."""
    found: Any = record.data
    return found


@dataclass(frozen=True)
class Close:
    """What the scenario saw: the decisions it met, the preparer's refusal, both records,
    and the ERP's books afterwards."""

    first_waits: list[PendingDecision]
    refusal: ControlRefused
    first: RunRecord
    again: RunRecord
    postings: list[tuple[str, str]]


async def _decide_all(
    group: ProcessGroup, runtime: RuntimeProcess, run_id: str, seen: list[PendingDecision]
) -> RunRecord:
    """Approve what the run waits for, the checker for accounting and the controller for
    the rest, until it ends; `seen` gathers each decision met."""
    async with (
        ControlClient(runtime.control, keys=group.keys_of("preparer")) as preparer,
        ControlClient(runtime.control, keys=group.keys_of("checker")) as checker,
        ControlClient(runtime.control, keys=group.keys_of("controller")) as controller,
    ):
        with anyio.fail_after(30):
            while True:
                record = await wait_for(
                    preparer, run_id, lambda r: bool(r.pending) or r.status == "completed"
                )
                if record.status == "completed":
                    return record
                for item in record.pending:
                    seen.append(item)
                    person = checker if "accounting" in item.approvers else controller
                    await person.decide(item, "approve", comment="checked")


def _scenario(group: ProcessGroup) -> Close:
    for _, principal, role, _ in demo.ACTORS:
        group.enroll(principal, role)
    for person, roles in demo.PEOPLE.items():
        group.enroll(person, *roles)
    runtime = group.start_runtime(["examples.month_end_close:workflow"], heartbeat=HEARTBEAT)
    for spec, principal, _, concurrency in demo.ACTORS:
        group.start_actor(spec, runtime.agents, concurrency=concurrency, principal=principal)

    async def drive() -> Close:
        async with ControlClient(runtime.control, keys=group.keys_of("preparer")) as preparer:
            run_id = await preparer.start_run("month_end_close", PERIOD)
            # Both waits open once each branch reached its own: the run waits for both.
            record = await wait_for(preparer, run_id, lambda r: len(r.pending) == 2, limit=40)
            first_waits = list(record.pending)
            (posting,) = [p for p in first_waits if p.step == "post_de"]
            with pytest.raises(ControlRefused) as refused:
                await preparer.decide(posting, "approve", comment="my own journals")
            first = await _decide_all(group, runtime, run_id, [])
            again_id = await preparer.start_run("month_end_close", PERIOD)
            again = await _decide_all(group, runtime, again_id, [])
        return Close(first_waits, refused.value, first, again, [])

    close = anyio.run(drive)
    with closing(sqlite3.connect(group.workdir / "ledgers" / "erp-books.sqlite")) as books:
        postings = books.execute("SELECT key, posting_id FROM postings ORDER BY key").fetchall()
    return Close(close.first_waits, close.refusal, close.first, close.again, postings)


@pytest.fixture(scope="module")
def close(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Close]:
    """The scenario, run once for the module by its own process group, always reaped."""
    folder: Path = tmp_path_factory.mktemp("close")
    init_keys(folder / "keys")
    group = ProcessGroup(folder, cwd=REPO, keys=folder / "keys")
    try:
        yield _scenario(group)
    finally:
        group.close()
        alive = [label for label, p in group.children if p.poll() is None]
        assert not alive, f"processes left running: {alive}"


class TestMonthEndClose:
    def test_entities_run_in_parallel(self, close: Close) -> None:
        """Both entities' branches complete in one run, the second begun before the first
        had ended: the uk branch reached its checkpoint while de's posting waited."""
        steps = close.first.steps
        for entity in ("de", "uk"):
            assert steps[f"post_{entity}"].status == "completed"
        assert {p.step for p in close.first_waits} == {"post_de", "triage_uk"}
        started_uk = steps["ingest_uk"].attempts[0].started_at
        ended_de = steps["post_de"].attempts[-1].ended_at
        assert ended_de is not None
        assert started_uk < ended_de

    def test_the_preparer_may_not_approve_its_own_journals(self, close: Close) -> None:
        """The principal who started the close is refused as `unauthorized`, for separation
        of duties, although it holds the approver role; the refusal is in the history."""
        assert close.refusal.code == "unauthorized"
        assert close.refusal.message == (
            f"principal 'preparer' started run {close.first.run_id!r} and so may not approve "
            "it (separation of duties)"
        )
        refused = [h for h in close.first.history if h.event == "refused"]
        assert [(h.step, h.principal) for h in refused] == [("post_de", "preparer")]

    def test_another_checker_approves_them(self, close: Close) -> None:
        """The checker's approval is the one that let the journals over the limit post."""
        (decided,) = [
            h for h in close.first.history if h.event == "decision_made" and h.step == "post_de"
        ]
        assert decided.principal == "checker"
        assert data(close.first)["journals_de"]["total"] > JOURNAL_LIMIT

    def test_journals_under_the_limit_post_without_a_checker(self, close: Close) -> None:
        """uk's journals are under the limit: no person was asked before they posted."""
        assert data(close.first)["journals_uk"]["total"] <= JOURNAL_LIMIT
        opened = [h.step for h in close.first.history if h.event == "checkpoint_opened"]
        assert "post_uk" not in opened
        assert "post_de" in opened

    def test_posting_twice_with_the_same_key_posts_once(self, close: Close) -> None:
        """The close submitted again posts nothing: the books hold each journal once, by
        entity, period and journal id, and the second run found them posted."""
        assert data(close.again)["posted_de"]["posted"] == 0
        assert data(close.again)["posted_de"]["already"] == 4
        assert data(close.again)["posted_uk"]["already"] == 1
        keys = [key for key, _ in close.postings]
        assert keys == sorted(set(keys))
        assert keys == [
            "de:2026-11:accrual-FEES-11",
            "de:2026-11:duplicate-PO-0552",
            "de:2026-11:fx-INV-1007",
            "de:2026-11:intercompany-IC-1125",
            "uk:2026-11:accrual-FEES-11",
        ]

    def test_an_item_under_materiality_completes_with_a_flag(self, close: Close) -> None:
        """de's unexplained 12.40 stops nobody: the close goes on, and the flag travels to
        the narrative and the lock, open on the completed record."""
        exceptions = data(close.first)["exceptions_de"]
        assert 0 < exceptions["unexplained"] <= MATERIALITY
        assert close.first.status == "completed"
        assert "triage_de" not in {p.step for p in close.first_waits}
        flag = (
            "entity de: the reconciliation does not tie out; an unexplained difference is carried"
        )
        for key in ("tied_de", "narrative", "locked"):
            assert flag in close.first.flags[key]
        assert close.first.caveats["exceptions_de"] == [
            "entity de: 12.40 unexplained, under materiality: carried as a reconciling item"
        ]

    def test_an_item_above_materiality_stops_for_a_person(self, close: Close) -> None:
        """uk's unexplained wire holds the run at triage_uk for the controller, who decided."""
        (stop,) = [p for p in close.first_waits if p.step == "triage_uk"]
        assert stop.approvers == ["controller"]
        reviewed: Any = stop.reviewed
        assert reviewed["exceptions_uk"]["unexplained"] > MATERIALITY
        assert close.first.provenance["exceptions_uk"].approved_by == "controller"

    def test_the_controller_signs_the_close_off(self, close: Close) -> None:
        """The period locks only after the controller's decision on lock_period."""
        (signed,) = [
            h for h in close.first.history if h.event == "decision_made" and h.step == "lock_period"
        ]
        assert signed.principal == "controller"
        assert data(close.first)["locked"] == "locked 2026-11"
