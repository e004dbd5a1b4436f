"""`baton report` and `backup`: reading a runtime's journal from beside it (a SQLite file,
or the PostgreSQL database of a cluster)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import anyio
import typer

from runtime.cli._console import err, fail, out, print_json, usage_errors
from runtime.cli._options import DEFAULT_STORE, JsonOption
from runtime.cli._workflows import load_graphs
from runtime.client._inputs import InputInvalid, age_seconds
from runtime.engine._run import Run
from runtime.observe._report import report as build_report
from runtime.observe._report_plot import plot_report
from runtime.observe._report_render import render_report
from runtime.store import JournalRecord, JournalUnreadable, read_journals, replay
from runtime.store import backup as store_backup
from runtime.store._open import POSTGRES_SCHEMES, open_postgres
from runtime.workflow._catalog import Catalog


def _journal_file(store: str, refusal: str) -> Path:
    """The file a sqlite:/// store names; `refusal` says why any other store will not do."""
    if not store.startswith("sqlite:///"):
        raise fail(f"--store {store}: {refusal}")
    return Path(store.removeprefix("sqlite:///").partition("?")[0])


def _journals(store: str) -> dict[str, list[JournalRecord]]:
    """Every run's journal in the store, read without writing to it."""
    if not store.startswith(POSTGRES_SCHEMES):
        return read_journals(_journal_file(store, "a report reads a SQLite or PostgreSQL journal"))

    async def read() -> dict[str, list[JournalRecord]]:
        database = open_postgres(store, migrate=False)
        await database.open(migrate=False)
        try:
            return await database.all_journals()
        finally:
            await database.close()

    return anyio.run(read)


def duration(text: str) -> float:
    """Seconds in `text`, a number and a unit: 30m, 12h, 7d (for `--since`)."""
    try:
        return age_seconds(text)
    except InputInvalid as exc:
        raise fail(f"--since {exc}") from None


def report(
    name: Annotated[
        str | None,
        typer.Argument(help="The workflow to report on.", show_default="each one given"),
    ] = None,
    workflow: Annotated[
        list[str] | None,
        typer.Option("--workflow", "-w", help="MODULE:ATTR of the workflow; repeatable."),
    ] = None,
    previous: Annotated[
        list[str] | None, typer.Option(help="MODULE:ATTR of an earlier version; repeatable.")
    ] = None,
    store: Annotated[
        str,
        typer.Option(help="The runtime's journal: sqlite:///PATH, or a cluster's postgresql://..."),
    ] = DEFAULT_STORE,
    since: Annotated[
        str | None,
        typer.Option(
            help="Only runs started this long ago or later: 30m, 12h, 7d.", show_default="all"
        ),
    ] = None,
    plot: Annotated[
        Path | None,
        typer.Option(help="Also draw the report into this PNG file (needs the report extra)."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """How a workflow's runs went, from its journal: outcomes, each step, where it breaks.

    Reads the journal without writing to it, so it may run beside the runtime; from
    PostgreSQL, every run of every runtime of the cluster.
    """
    oldest = 0.0 if since is None else time.time() - duration(since)
    with usage_errors():
        catalog = Catalog(load_graphs(workflow or []), load_graphs(previous or []))
        journals = _journals(store)
    if not catalog.current:
        raise fail("name the workflow with --workflow MODULE:ATTR, as the runtime loads it")
    graphs = [g for g in catalog.current.values() if name is None or g.name == name]
    if not graphs:
        raise fail(f"no workflow {name!r} among those given: {', '.join(catalog.current)}")
    runs: list[Run] = []
    unreadable = 0
    for records in journals.values():
        try:
            run = replay(catalog, records)
        except JournalUnreadable:
            unreadable += 1
            continue
        if run.created_at >= oldest:
            runs.append(run)
    reports = [build_report(graph, runs) for graph in graphs]
    if plot is not None:
        for figures in reports:
            target = (
                plot if len(reports) == 1 else plot.with_stem(f"{plot.stem}-{figures.workflow}")
            )
            with usage_errors():
                plot_report(figures, target)
            err.print(f"chart written to {target}", highlight=False)
    if as_json:
        print_json(reports)
        return
    for figures in reports:
        render_report(out, figures)
    if unreadable:
        err.print(f"{unreadable} run(s) left out: their workflow version is not given")


def backup(
    destination: Annotated[Path, typer.Argument(help="The new file to write the copy to.")],
    store: Annotated[
        str, typer.Option(help="The runtime's journal: sqlite:///PATH.")
    ] = DEFAULT_STORE,
) -> None:
    """Copy a journal safely while its runtime runs (SQLite's online backup), then check it."""
    source = _journal_file(store, "only a SQLite journal can be backed up")
    with usage_errors():
        count = store_backup(source, destination)
    out.print(f"{destination}: {count:,} events, integrity ok", highlight=False, soft_wrap=True)
