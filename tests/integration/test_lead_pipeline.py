"""The lead pipeline blueprint with real processes: the runtime, the CRM tool host and each
agent a process of its own, over CURVE, the sales manager deciding by its own key.

The day's five leads run once; the outbox (the mail gateway's own record, with the time
each email left) is read before and after the approvals. Each test states one behaviour.
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

from examples.lead_pipeline import demo
from examples.lead_pipeline.tools import SENDS_PER_SECOND
from examples.lead_pipeline.workflow import LOW_EVIDENCE
from protocols import TERMINAL_STATUSES, RunRecord
from runtime import ControlClient
from runtime.launch import ProcessGroup
from runtime.security._keys import init_keys
from tests.integration.conftest import HEARTBEAT, REPO, wait_for

pytestmark = [pytest.mark.integration]

SLACK = 0.05
"""Seconds the outbox's wall-clock stamps may differ from the gateway's monotonic clock."""


def data(record: RunRecord) -> Any:
    """The record's data, read as Any: indexing the deep `Value` union makes mypy crawl."""
    found: Any = record.data
    return found


@dataclass(frozen=True)
class Day:
    """Records by lead email, what waited and what the outbox held before and after."""

    records: dict[str, RunRecord]
    waiting: dict[str, str]
    sent_before: list[Any]
    sent: list[tuple[str, float]]
    follow_ups: list[tuple[str, str]]


def _outbox(group: ProcessGroup, query: str) -> list[Any]:
    with closing(sqlite3.connect(group.workdir / "ledgers" / "crm-outbox.sqlite")) as db:
        return db.execute(query).fetchall()


def _email(record: RunRecord) -> str:
    lead: Any = record.inputs["lead"]
    return str(lead["email"]).lower()


def _scenario(group: ProcessGroup) -> Day:
    for _, principal, role, _ in demo.ACTORS:
        group.enroll(principal, role)
    for person, roles in demo.PEOPLE.items():
        group.enroll(person, *roles)
    runtime = group.start_runtime(["examples.lead_pipeline:workflow"], heartbeat=HEARTBEAT)
    for spec, principal, _, concurrency in demo.ACTORS:
        group.start_actor(spec, runtime.agents, concurrency=concurrency, principal=principal)
    ((_, leads),) = demo.BATCHES

    async def drive() -> tuple[dict[str, RunRecord], dict[str, str], list[Any]]:
        async with (
            ControlClient(runtime.control, keys=runtime.operator) as operator,
            ControlClient(runtime.control, keys=group.keys_of("sales-manager")) as manager,
        ):
            ids = [await operator.start_run("lead_pipeline", dict(lead)) for lead in leads]
            held = [
                await wait_for(
                    operator, i, lambda r: bool(r.pending) or r.status in TERMINAL_STATUSES,
                    limit=40,
                )
                for i in ids
            ]  # fmt: skip
            waiting = {_email(r): r.pending[0].step for r in held if r.pending}
            # Every run has gone as far as it can without a person: nothing has left yet.
            before = _outbox(group, "SELECT * FROM sent")
            for record in held:
                for item in record.pending:
                    await manager.decide(item, "approve", comment="good to go")
            records = {}
            for run_id in ids:
                record, _ = await operator.wait_run(run_id, max_wait=30)
                records[_email(record)] = record
        return records, waiting, before

    records, waiting, before = anyio.run(drive)
    sent = _outbox(group, "SELECT recipient, sent_at FROM sent ORDER BY sent_at")
    follow_ups = _outbox(group, "SELECT email, due FROM follow_ups ORDER BY email")
    return Day(records, waiting, before, sent, follow_ups)


@pytest.fixture(scope="module")
def day(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Day]:
    """The scenario, run once for the module by its own process group, always reaped."""
    folder: Path = tmp_path_factory.mktemp("leads")
    init_keys(folder / "keys")
    group = ProcessGroup(folder, cwd=REPO, keys=folder / "keys")
    try:
        yield _scenario(group)
    finally:
        group.close()
        alive = [label for label, p in group.children if p.poll() is None]
        assert not alive, f"processes left running: {alive}"


QUALIFIED = ["ada@northwind.example", "edsger@globex.example", "grace@contoso.example"]


class TestLeadPipeline:
    def test_every_lead_completes(self, day: Day) -> None:
        """All five runs end completed, whichever path they took."""
        assert {e: r.status for e, r in day.records.items()} == dict.fromkeys(
            day.records, "completed"
        )
        assert len(day.records) == 5

    def test_a_duplicate_lead_is_dropped(self, day: Day) -> None:
        """A lead the CRM knows goes to `drop`: it is neither enriched, scored nor mailed."""
        alan = day.records["alan@initech.example"]
        assert data(alan)["known_as"] == "crm-0017"
        assert data(alan)["dropped"] == "alan@initech.example is contact crm-0017 already"
        assert "score" not in alan.data
        assert "enrich_company" not in alan.steps or not alan.steps["enrich_company"].attempts

    def test_a_failing_source_gives_a_flagged_low_evidence_score(self, day: Day) -> None:
        """The intent source fails for contoso: the run goes on with a flag, the score says
        its evidence is low, and the flag travels to the email sent and the follow-up."""
        grace = day.records["grace@contoso.example"]
        assert grace.steps["enrich_intent"].attempts[-1].outcome != "succeeded"
        assert data(grace)["score"]["evidence"] == "low"
        for key in ("signals", "score", "message_id", "follow_up"):
            assert grace.flags[key] == [LOW_EVIDENCE]
        assert grace.caveats["score"] == ["score without intent signals: low evidence"]
        assert data(day.records["ada@northwind.example"])["score"]["evidence"] == "full"

    def test_nothing_is_sent_before_approval(self, day: Day) -> None:
        """Each qualified lead waited at send_outreach with an empty outbox; each email left
        after the sales manager's approval."""
        assert day.waiting == dict.fromkeys(QUALIFIED, "send_outreach")
        assert day.sent_before == []
        for email in QUALIFIED:
            (decided,) = [
                h for h in day.records[email].history
                if h.event == "decision_made" and h.step == "send_outreach"
            ]  # fmt: skip
            assert decided.principal == "sales-manager"
        assert sorted(r for r, _ in day.sent) == QUALIFIED

    def test_sends_respect_the_rate_limit(self, day: Day) -> None:
        """No more than the gateway's sends per second left in any one second, though all
        three were approved at once; a refused send was tried again, not lost."""
        stamps = [at for _, at in day.sent]
        for first, later in zip(stamps, stamps[SENDS_PER_SECOND:], strict=False):
            assert later - first >= 1.0 - SLACK, stamps

    def test_follow_ups_are_scheduled(self, day: Day) -> None:
        """Each email sent has a follow-up, due three days after the lead came in."""
        assert day.follow_ups == [(email, "2026-12-03") for email in QUALIFIED]
        for email in QUALIFIED:
            assert data(day.records[email])["follow_up"]["due"] == "2026-12-03"

    def test_a_poor_fit_is_nurtured(self, day: Day) -> None:
        """A lead under the bar is put on the nurture list, and nothing is drafted for it."""
        barbara = day.records["barbara@tinyco.example"]
        assert data(barbara)["score"]["points"] < 60
        assert data(barbara)["nurtured"] == "nurture-barbara@tinyco.example"
        assert "draft" not in barbara.data
