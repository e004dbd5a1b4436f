"""How runs, records and open decisions look, in a terminal and in a pipe."""

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
from runtime.cli._sheets import Sheet, show, write_lines

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


def version_label(version: str) -> str:
    """A workflow version as written, with a `v` before it only when it is a bare number."""
    return f"v{version}" if version[:1].isdigit() else version


def runs_sheet(runs: Sequence[RunSummary]) -> Sheet:
    sheet = Sheet(
        f"{len(runs)} run(s)",
        ("run", "workflow", "status", "started (UTC)", "note"),
        whole=("run", "workflow", "status"),
    )
    for run in runs:
        sheet.add(
            run.run_id, run.workflow, status_text(run.status), _when(run.created_at), run.reason
        )
    return sheet


def _approval(approved_by: str, edited_by: str) -> str:
    marks = []
    if approved_by:
        marks.append(f"approved by {approved_by}")
    if edited_by:
        marks.append(f"edited by {edited_by}")
    return "; ".join(marks)


def pending_blocks(pending: Sequence[PendingDecision]) -> Group:
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


def pending_view(console: Console, pending: Sequence[PendingDecision]) -> None:
    """The open decisions; in a pipe each line whole, so that a command can be grepped out."""
    console.print(pending_blocks(pending), soft_wrap=not console.is_terminal)


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


def history_sheet(events: Sequence[HistoryEntry]) -> Sheet:
    """A run's history, one event a row; `seq` is the record version after the event."""
    sheet = Sheet(
        "history",
        ("seq", "at (UTC)", "event", "step", "agent", "principal", "message"),
        whole=("seq", "at (UTC)", "event"),
    )
    for entry in events:
        sheet.add(
            str(entry.seq),
            _when(entry.at)[11:],
            entry.event,
            f"{entry.step}#{entry.attempt}" if entry.attempt else entry.step,
            entry.agent,
            entry.principal,
            entry.message,
        )
    return sheet


def _data_sheet(record: RunRecord) -> Sheet:
    sheet = Sheet(
        "data",
        ("key", "value", "written by", "agent", "conf.", "rationale", "approved / edited by",
         "flags / caveats"),
    )  # fmt: skip
    for key, value in record.data.items():
        prov = record.provenance.get(key)
        if prov is None:
            sheet.add(key, _short(value), "input", "", "", "", "", "")
            continue
        if prov.attempt == 0:  # given at the run's start; its rationale says by whom
            sheet.add(key, _short(value), "input", "", "", _short(prov.rationale, 40), "", "")
            continue
        notes = [*(f"⚑ {f}" for f in prov.flags), *(f"• {c}" for c in prov.caveats)]
        sheet.add(
            key,
            _short(value),
            f"{prov.step}#{prov.attempt}",
            prov.agent,
            f"{prov.confidence:.2f}",
            _short(prov.rationale, 40) if prov.rationale else "",
            _approval(prov.approved_by, prov.edited_by),
            Text("\n".join(notes), style="yellow") if notes else "",
        )
    return sheet


def _steps_sheet(record: RunRecord) -> Sheet:
    sheet = Sheet(
        "steps", ("step", "status", "visits", "attempts", "last"), whole=("step", "status")
    )
    for name, step in record.steps.items():
        last = step.attempts[-1] if step.attempts else None
        detail = ""
        if last is not None:
            detail = f"#{last.attempt} {last.outcome}"
            if last.agent:
                detail += f" on {last.agent}"
            if last.failure:
                detail += f" ({last.failure}: {last.message})"
        sheet.add(name, status_text(step.status), str(step.visits), str(len(step.attempts)), detail)
    return sheet


def model_summary(history: Sequence[HistoryEntry]) -> str:
    """One line on the model calls of a run's history and their tokens; "" if it has none."""
    calls = tokens_in = tokens_out = 0
    for entry in history:
        if entry.event == "model_called":
            # Read as Any: inferring `get` over the deep `Value` union takes mypy minutes.
            detail: dict[str, Any] = dict(entry.detail)
            calls += 1
            tokens_in += int(detail.get("tokens_in", 0))
            tokens_out += int(detail.get("tokens_out", 0))
    if not calls:
        return ""
    return f"model calls: {calls:,}, tokens in/out: {tokens_in:,}/{tokens_out:,}"


def render_record(console: Console, record: RunRecord, *, history: int | None = None) -> None:
    """The record: header, data with provenance, steps, then the history (last `history`)."""
    header = Text.assemble(
        ("run ", "bold"),
        (record.run_id, "bold"),
        "  ",
        status_text(record.status),
        f"\nworkflow {record.workflow} {version_label(record.version)}  "
        f"fingerprint {record.fingerprint}",
        f"\nstarted {_when(record.created_at)}  updated {_when(record.updated_at)}",
    )
    if record.reason:
        header.append(f"\nreason: {record.reason}", style="red")
    if record.waiting_for:
        header.append(f"\nwaiting for {record.waiting_for}", style="yellow")
    models = model_summary(record.history)
    if models:
        header.append(f"\n{models}")
    events = record.history if history is None else record.history[-history:]
    sheets = [_data_sheet(record), _steps_sheet(record), history_sheet(events)]
    flags = "; ".join(f"{k}: {', '.join(v)}" for k, v in record.flags.items())
    if console.is_terminal:
        console.print(Panel(header, expand=False))
        parts: list[Table | Group] = [sheets[0].table(), sheets[1].table()]
        if record.pending:
            parts.append(pending_blocks(record.pending))
        console.print(Group(*parts, sheets[2].table()))
    else:
        write_lines(console, header.plain.splitlines())
        show(console, sheets[0], titled=True)
        show(console, sheets[1], titled=True)
        if record.pending:
            pending_view(console, record.pending)
        show(console, sheets[2], titled=True)
    if flags:
        console.print(
            Text(f"open flags: {flags}", style="yellow"), soft_wrap=not console.is_terminal
        )
