"""`baton fork`: a new run from an earlier version of a run's record."""

from __future__ import annotations

from typing import Annotated

import typer

from runtime.cli._connection import Connection, connected
from runtime.cli._console import out, print_json
from runtime.cli._decisions import parse_edits
from runtime.cli._options import JsonOption, RunIdArgument

SetOption = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        "-s",
        help="KEY=JSON: a value to write over the fork's data (an input or a step's output); "
        "repeatable.",
    ),
]


@connected
def fork(
    run_id: RunIdArgument,
    at: Annotated[
        int,
        typer.Option(
            "--at",
            min=1,
            help="The version of the run's record to fork from (a `seq` of its history).",
        ),
    ],
    edit: SetOption = None,
    reason: Annotated[str, typer.Option(help="Why, for the fork's record.")] = "",
    as_json: JsonOption = False,
    *,
    connection: Connection,
) -> None:
    """Start a new run from a run's record as it was at a version; print the new run's id.

    Steps completed by then are not run again; those in flight or waiting then are, and
    everything after. The run forked from is left as it is.
    """
    values = parse_edits(edit, "--set")
    new_id = connection.call(
        lambda client: client.fork_run(run_id, at, values=values, reason=reason)
    )
    if as_json:
        print_json({"run_id": new_id, "forked_from": run_id, "forked_at": at})
    else:
        out.print(new_id, highlight=False)
