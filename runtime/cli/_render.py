"""How records look in a terminal."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from protocols import HistoryEntry, PendingDecision, RunRecord, RunSummary

STATUS_STYLE = {
    "completed": "green",
    "running": "cyan",
    "waiting": "yellow",
    "failed": "red",
    "halted": "red",
    "stuck": "bold magenta",
    "cancelled": "dim",
}


def _when(at: float | None) -> str:
    if at is None:
        return "-"
    return datetime.fromtimestamp(at, tz=UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _short(value: Any, width: int = 60) -> str:
    text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= width else text[: width - 1] + "…"


def status_text(status: str) -> Text:
    return Text(status, style=STATUS_STYLE.get(status, ""))


def render_runs(console: Console, runs: Sequence[RunSummary]) -> None:
    table = Table(title=f"{len(runs)} run(s)", title_justify="left")
    for column in ("run", "workflow", "status", "started (UTC)", "note"):
        table.add_column(column)
    for run in runs:
        table.add_row(
            run.run_id, run.workflow, status_text(run.status), _when(run.created_at), run.reason
        )
    console.print(table)


def _approval(approved_by: str, edited_by: str) -> str:
    marks = []
    if approved_by:
        marks.append(f"approved by {approved_by}")
    if edited_by:
        marks.append(f"edited by {edited_by}")
    return "; ".join(marks)


def pending_table(pending: Sequence[PendingDecision]) -> Group:
    """Open decisions, a block each: what is decided, why, by whom, on what, and how."""
    blocks: list[Text] = [Text(f"{len(pending)} decision(s) waiting", style="bold")]
    for item in pending:
        kind = "escalated failure" if item.kind == "escalation" else f"checkpoint {item.when}"
        block = Text.assemble(
            ("run ", "bold"),
            (item.run_id, "bold"),
            f"  step {item.step}#{item.attempt}  {kind}  since {_when(item.opened_at)}",
        )
        block.append(f"\n  why: {item.reason}")
        who = ", ".join(f"approver:{g}" for g in item.approvers)
        if item.separate_duties and item.started_by:
            who += f" (not {item.started_by}, who started the run)"
        block.append(f"\n  who may decide: {who}")
        if item.deadline is not None:
            block.append(f"\n  decide by: {_when(item.deadline)}")
        block.append(f"\n  under review: {_short(item.reviewed, 200)}")
        commands = {
            "approve": f"baton approve {item.run_id} {item.step} [--edit KEY=JSON]",
            "reject": f"baton reject {item.run_id} {item.step}",
            "retry": f"baton escalation {item.run_id} {item.step} retry",
            "skip": f"baton escalation {item.run_id} {item.step} skip --edit KEY=JSON",
            "abort": f"baton escalation {item.run_id} {item.step} abort",
        }
        for choice in item.choices:
            block.append(f"\n  {choice}: {commands[choice]}", style="cyan")
        block.append(f"\n  digest: {item.digest}", style="dim")
        blocks.append(block)
    return Group(*blocks)


def progress_view(record: RunRecord, elapsed: float) -> Group:
    """A run as it goes: its status, what it waits for, and each step reached so far."""
    head = Text.assemble(
        ("run ", "bold"), (record.run_id, "bold"), "  ", status_text(record.status),
        f"  {elapsed:.1f}s",
    )  # fmt: skip
    if record.waiting_for:
        head.append(f"\nwaiting for {record.waiting_for}", style="yellow")
    steps = Table(box=None, show_header=False, padding=(0, 2))
    for name, step in record.steps.items():
        if step.status in ("pending", "skipped") and not step.attempts:
            continue
        last = step.attempts[-1] if step.attempts else None
        note = ""
        if last is not None:
            note = f"attempt {last.attempt}" + (f" on {last.agent}" if last.agent else "")
            if last.failure:
                note += f", {last.failure}"
        steps.add_row(name, status_text(step.status), note)
    return Group(head, steps)


def history_table(events: Sequence[HistoryEntry]) -> Table:
    """A run's history, one event a row; `seq` is the record version after the event."""
    log = Table(title="history", title_justify="left")
    for column in ("seq", "at (UTC)", "event", "step", "agent", "principal", "message"):
        log.add_column(column, overflow="fold")
    for entry in events:
        log.add_row(
            str(entry.seq),
            _when(entry.at)[11:],
            entry.event,
            f"{entry.step}#{entry.attempt}" if entry.attempt else entry.step,
            entry.agent,
            entry.principal,
            entry.message,
        )
    return log


def render_record(console: Console, record: RunRecord, *, history: int | None = None) -> None:
    """The record: header, data with provenance, steps, then the history (last `history`)."""
    header = Text.assemble(
        ("run ", "bold"),
        (record.run_id, "bold"),
        "  ",
        status_text(record.status),
        f"\nworkflow {record.workflow} v{record.version}  fingerprint {record.fingerprint}",
        f"\nstarted {_when(record.created_at)}  updated {_when(record.updated_at)}",
    )
    if record.reason:
        header.append(f"\nreason: {record.reason}", style="red")
    if record.waiting_for:
        header.append(f"\nwaiting for {record.waiting_for}", style="yellow")

    data = Table(title="data", title_justify="left", expand=False)
    for column in (
        "key",
        "value",
        "written by",
        "agent",
        "conf.",
        "rationale",
        "approved / edited by",
        "flags / caveats",
    ):
        data.add_column(column, overflow="fold")
    for key, value in record.data.items():
        prov = record.provenance.get(key)
        if prov is None:
            data.add_row(key, _short(value), "input", "", "", "", "", "")
            continue
        notes = [*(f"⚑ {f}" for f in prov.flags), *(f"• {c}" for c in prov.caveats)]
        data.add_row(
            key,
            _short(value),
            f"{prov.step}#{prov.attempt}",
            prov.agent,
            f"{prov.confidence:.2f}",
            _short(prov.rationale, 40) if prov.rationale else "",
            _approval(prov.approved_by, prov.edited_by),
            Text("\n".join(notes), style="yellow") if notes else "",
        )

    steps = Table(title="steps", title_justify="left")
    for column in ("step", "status", "visits", "attempts", "last"):
        steps.add_column(column)
    for name, step in record.steps.items():
        last = step.attempts[-1] if step.attempts else None
        detail = ""
        if last is not None:
            detail = f"#{last.attempt} {last.outcome}"
            if last.agent:
                detail += f" on {last.agent}"
            if last.failure:
                detail += f" ({last.failure}: {last.message})"
        steps.add_row(
            name, status_text(step.status), str(step.visits), str(len(step.attempts)), detail
        )

    events = record.history if history is None else record.history[-history:]
    console.print(Panel(header, expand=False))
    parts: list[Table | Group] = [data, steps]
    if record.pending:
        parts.append(pending_table(record.pending))
    console.print(Group(*parts, history_table(events)))
    if record.flags:
        console.print(
            Text(
                "open flags: " + "; ".join(f"{k}: {', '.join(v)}" for k, v in record.flags.items()),
                style="yellow",
            )
        )
