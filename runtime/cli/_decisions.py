"""`baton inbox`, `approve`, `reject` and `escalation`: what people decide, and deciding it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from protocols import DecisionKind, PendingDecision, RunRecord
from runtime.cli._connection import CONNECTION_OPTIONS, Connection, connected
from runtime.cli._console import fail, out, print_json
from runtime.cli._options import JsonOption, RunIdArgument, option, with_options
from runtime.cli._render import pending_view, render_record
from runtime.client._client import ControlClient, ControlRefused
from runtime.client._inputs import InputInvalid, json_values

CommentOption = Annotated[str, typer.Option(help="Why; recorded in the run's history.")]
EditOption = Annotated[
    list[str] | None,
    typer.Option(
        "--edit",
        "-e",
        help="KEY=JSON: a value to change before approving (or to give, for skip); repeatable.",
    ),
]


@connected
def inbox(
    run_id: Annotated[
        str | None,
        typer.Option("--run", help="Only the decisions this run waits for.", show_default="any"),
    ] = None,
    as_json: JsonOption = False,
    *,
    connection: Connection,
) -> None:
    """List the decisions runs wait for that you may see: what, why, by whom, on what values.

    Approvers see the decisions of their groups; operators and viewers see all.
    """
    found = connection.call(lambda client: client.pending(run_id))
    if as_json:
        print_json(found)
    elif found:
        pending_view(out, found)
    else:
        out.print("no decision is waiting")


def parse_edits(edits: list[str] | None, option: str = "--edit") -> dict[str, Any]:
    """Values given as KEY=JSON, one per use of `option`, checked as the wire will check
    them; a clear failure naming `option` for the first that is not."""
    pairs: list[tuple[str, str]] = []
    for edit in edits or []:
        key, sep, raw = edit.partition("=")
        if not sep or not key:
            raise fail(f"{option} {edit!r}: expected KEY=JSON")
        pairs.append((key, raw))
    try:
        return json_values(pairs)
    except InputInvalid as exc:
        raise fail(f"{option} {exc}" if exc.key else f"{option}: {exc}") from None


@dataclass(frozen=True, slots=True)
class Decider:
    """Who decides, through which runtime, saying why, and how the outcome is shown."""

    connection: Connection
    comment: str
    as_json: bool

    @classmethod
    def from_options(
        cls, comment: str, as_json: bool, control: str, keys: Path, principal: str, insecure: bool
    ) -> Decider:
        return cls(Connection(control, keys, principal, insecure), comment, as_json)

    def decide(
        self, run_id: str, step: str, decision: DecisionKind, values: dict[str, Any]
    ) -> None:
        """Fetch the open decision, show what is decided, and decide exactly that version."""

        async def decide(client: ControlClient) -> tuple[PendingDecision, RunRecord]:
            shown = [p for p in await client.pending(run_id) if p.step == step]
            if not shown:
                raise ControlRefused(
                    "wrong_state",
                    f"run {run_id!r} waits for no decision on step {step!r} you may see",
                )
            return shown[0], await client.decide(
                shown[0], decision, comment=self.comment, values=values
            )

        shown, record = self.connection.call(decide)
        if self.as_json:
            print_json(record)
            return
        pending_view(out, [shown])
        out.print(f"{decision}: recorded for step {step} (digest {shown.digest})", highlight=False)
        render_record(out, record, history=5)


deciding = with_options(
    (
        option("comment", CommentOption, ""),
        option("as_json", JsonOption, False),
        *CONNECTION_OPTIONS,
    ),
    Decider.from_options,
    into="decider",
)
"""A command deciding for a run: a comment, --json and the connection, as its `decider`."""


@deciding
def approve(
    run_id: RunIdArgument,
    step: Annotated[str, typer.Argument(help="The step whose checkpoint to approve.")],
    edit: EditOption = None,
    *,
    decider: Decider,
) -> None:
    """Approve a checkpoint, optionally editing the values under review (needs approver:GROUP)."""
    decider.decide(run_id, step, "approve", parse_edits(edit))


@deciding
def reject(
    run_id: RunIdArgument,
    step: Annotated[str, typer.Argument(help="The step whose checkpoint to reject.")],
    *,
    decider: Decider,
) -> None:
    """Reject a checkpoint: the run takes the checkpoint's reject route (halt, or a step)."""
    decider.decide(run_id, step, "reject", {})


@deciding
def escalation(
    run_id: RunIdArgument,
    step: Annotated[str, typer.Argument(help="The step whose failure was escalated.")],
    choice: Annotated[
        str, typer.Argument(help="retry, skip (with --edit for each output) or abort.")
    ],
    edit: EditOption = None,
    *,
    decider: Decider,
) -> None:
    """Decide an escalated failure: try the step again, pass it with given outputs, or stop."""
    if choice not in ("retry", "skip", "abort"):
        raise fail(f"the choice must be retry, skip or abort, not {choice!r}")
    decision: DecisionKind = (
        "retry" if choice == "retry" else "skip" if choice == "skip" else "abort"
    )
    decider.decide(run_id, step, decision, parse_edits(edit))
