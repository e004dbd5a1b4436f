"""`baton run`, `inspect`, `history`, `runs`, `cancel` and `resume`: runs, through the control
plane."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any, get_args

import msgspec
import typer
from rich.live import Live

from protocols import TERMINAL_STATUSES, Data, RunRecord, RunStatus
from runtime.cli._connection import Connection, connected
from runtime.cli._console import EXIT_OK, EXIT_RUN_FAILED, fail, out, print_json
from runtime.cli._journal import duration
from runtime.cli._options import JsonOption, RunIdArgument
from runtime.cli._render import history_sheet, progress_view, render_record, runs_sheet
from runtime.cli._sheets import show
from runtime.client._client import ControlClient


def _inputs(text: str) -> dict[str, Any]:
    raw = Path(text[1:]).read_text() if text.startswith("@") else text
    try:
        value = msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:
        raise fail(f"--input is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise fail("--input must be a JSON object of named inputs")
    try:
        return dict(msgspec.convert(value, Data))
    except msgspec.ValidationError as exc:
        raise fail(f"--input: {exc}") from None


def _exit_for(status: RunStatus) -> int:
    return EXIT_RUN_FAILED if status in ("failed", "halted", "cancelled") else EXIT_OK


@connected
def run(
    name: Annotated[str, typer.Argument(help="Name of a workflow the runtime has loaded.")],
    input: Annotated[
        str, typer.Option("--input", "-i", help="Inputs as a JSON object, or @FILE.")
    ] = "{}",
    wait: Annotated[bool, typer.Option("--wait", help="Wait for the run to end.")] = False,
    timeout: Annotated[float, typer.Option(min=0.1, help="Longest wait, seconds.")] = 300.0,
    as_json: JsonOption = False,
    *,
    connection: Connection,
) -> None:
    """Start a run; print its id, or with --wait its final record."""
    inputs = _inputs(input)

    async def start(client: ControlClient) -> tuple[str, Any]:
        run_id = await client.start_run(name, inputs)
        if not wait:
            return run_id, None
        if out.is_terminal and not as_json:
            return run_id, await _watch(client, run_id, timeout)
        return run_id, await client.wait_run(run_id, max_wait=timeout)

    run_id, waited = connection.call(start)
    if waited is None:
        if as_json:
            print_json({"run_id": run_id})
        else:
            out.print(run_id)
        return
    record, timed_out = waited
    if as_json:
        print_json(record)
    else:
        render_record(out, record, history=20)
    if timed_out:
        raise fail(f"run {run_id} had not ended after {timeout:g}s (status {record.status})")
    raise typer.Exit(_exit_for(record.status))


async def _watch(client: ControlClient, run_id: str, longest: float) -> tuple[Any, bool]:
    """Wait for the run, showing its steps live; the final record and whether time ran out."""
    began = time.monotonic()
    with Live(console=out, transient=True, refresh_per_second=8) as live:
        while True:
            left = longest - (time.monotonic() - began)
            record, timed_out = await client.wait_run(run_id, max_wait=min(0.25, max(0.0, left)))
            live.update(progress_view(record, time.monotonic() - began))
            if not timed_out or left <= 0:
                return record, timed_out and left <= 0


@connected
def inspect(
    run_id: RunIdArgument,
    at: Annotated[
        int | None,
        typer.Option(
            "--at",
            min=1,
            help="The record as it was at this version (a `seq` of its history).",
            show_default="now",
        ),
    ] = None,
    as_json: JsonOption = False,
    *,
    connection: Connection,
) -> None:
    """Show the record of a run: status, data with provenance, steps, history.

    With --at, the record is rebuilt from the run's journal as it was then.
    """
    record = connection.call(lambda client: client.get_run(run_id, at=at))
    if as_json:
        print_json(record)
    else:
        render_record(out, record)
    if record.status in TERMINAL_STATUSES and at is None:
        raise typer.Exit(_exit_for(record.status))


@connected
def history(run_id: RunIdArgument, as_json: JsonOption = False, *, connection: Connection) -> None:
    """List a run's events, oldest first; each `seq` can be given to `inspect --at`."""
    record = connection.call(lambda client: client.get_run(run_id))
    if as_json:
        print_json(record.history)
    else:
        show(out, history_sheet(record.history))


@connected
def runs(
    status: Annotated[
        str | None,
        typer.Option(
            help="Only runs in this status: running, waiting, stuck, completed, failed, "
            "halted or cancelled.",
            show_default="any",
        ),
    ] = None,
    workflow: Annotated[
        str | None, typer.Option(help="Only runs of this workflow.", show_default="any")
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            help="Only runs started this long ago or later: 30m, 12h, 7d.", show_default="all"
        ),
    ] = None,
    key: Annotated[
        str | None,
        typer.Option(help="Only runs whose data holds this key.", show_default="any"),
    ] = None,
    value: Annotated[
        str | None,
        typer.Option(
            help="With --key: only runs whose value there reads so (a string as is, "
            'anything else as JSON: 42, true, {"a":1}).',
            show_default="any",
        ),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=100_000, help="Most runs to list.")] = 100,
    as_json: JsonOption = False,
    *,
    connection: Connection,
) -> None:
    """List runs, newest first."""
    statuses: tuple[str, ...] = get_args(RunStatus)
    if status is not None and status not in statuses:
        raise fail(f"--status must be one of {', '.join(statuses)}, not {status!r}")
    if value is not None and key is None:
        raise fail("--value compares the value of a key: give --key too")
    chosen: RunStatus | None = msgspec.convert(status, RunStatus | None)
    oldest = None if since is None else time.time() - duration(since)
    found = connection.call(
        lambda client: client.list_runs(
            status=chosen, workflow=workflow, limit=limit, since=oldest, key=key, value=value
        )
    )
    if as_json:
        print_json(found)
    else:
        show(out, runs_sheet(found))


@connected
def cancel(
    run_id: RunIdArgument,
    reason: Annotated[str, typer.Option(help="Why, for the run's record.")] = "",
    as_json: JsonOption = False,
    *,
    connection: Connection,
) -> None:
    """Stop a run that has not ended (stuck ones included); its steps in flight are withdrawn."""
    _print_record(connection.call(lambda client: client.cancel_run(run_id, reason)), as_json)


@connected
def resume(run_id: RunIdArgument, as_json: JsonOption = False, *, connection: Connection) -> None:
    """Let a stuck run carry on from where its journal left it."""
    _print_record(connection.call(lambda client: client.resume_run(run_id)), as_json)


def _print_record(record: RunRecord, as_json: bool) -> None:
    """A record an operator's action returned: JSON, or its head and last events."""
    if as_json:
        print_json(record)
    else:
        render_record(out, record, history=5)
