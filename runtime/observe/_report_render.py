"""`baton report` in a terminal: the workflow's figures, its steps, where it breaks."""

from __future__ import annotations

from rich import box
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from protocols import Report, StepFigures


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.1f} s"


def _table(title: str) -> Table:
    # A rule under the header and none between columns: the steps table fits 80 columns,
    # what a pipe or a log gets, with the step names whole.
    return Table(
        title=title,
        title_justify="left",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        padding=(0, 1, 0, 0),
        min_width=len(title),
    )


def _print_table(console: Console, table: Table) -> None:
    """Print `table` whole: in a pipe or a log, wider than the console rather than with
    figures cut to "…" (a terminal keeps its width; its user can widen it)."""
    if console.is_terminal:
        console.print(table)
        return
    wide = console.options.update_width(10_000)
    needed = Measurement.get(console, wide, table).maximum
    if needed <= console.width:
        console.print(table)
        return
    width = console.width
    console.width = needed
    try:
        console.print(table)
    finally:
        console.width = width


def _step_name(s: StepFigures) -> Text:
    name = Text(s.step + (" ⏸" if s.checkpoint else ""))
    if s.consequence != "reversible":
        name.append(f"\n{s.consequence}", style="dim")
    return name


def render_report(console: Console, figures: Report) -> None:
    outcomes = ", ".join(f"{n} {status}" for status, n in figures.outcomes.items()) or "none"
    head = Text.assemble(
        ("workflow ", "bold"),
        (figures.workflow, "bold"),
        f": {figures.runs} runs ({outcomes})\n",
        f"completed {_rate(figures.completion_rate)} of ended runs, "
        f"failed or halted {_rate(figures.error_rate)}\n",
        "the steps' first-try rates compound to ",
        (_rate(figures.compounded_first_try), "bold yellow"),
        "; runs that went through with no retry, flag or fallback: ",
        (_rate(figures.clean_rate), "bold"),
    )
    console.print(head)
    steps = _table("steps, in the order of the graph")
    steps.add_column("step", no_wrap=True)
    for column in ("runs", "first try", "retries", "failures", "flagged", "p50", "p95"):
        steps.add_column(column, justify="right", no_wrap=True)
    for s in figures.steps:
        rate = s.first_try_success
        style = "" if rate is None or rate >= 0.95 else "yellow" if rate >= 0.8 else "red"
        steps.add_row(
            _step_name(s),
            str(s.visits),
            Text(_rate(rate), style=style),
            str(s.retries),
            "\n".join(f"{kind} {n}" for kind, n in s.failures.items()),
            str(s.flagged or ""),
            _seconds(s.p50_seconds),
            _seconds(s.p95_seconds),
        )
    _print_table(console, steps)
    # Only the steps a person looks at: most steps of most workflows have none.
    reviewed = [s for s in figures.steps if s.checkpoint or s.decisions]
    if reviewed:
        people = _table("decisions people made")
        people.add_column("step", no_wrap=True)
        for column in ("decisions", "rejected or edited", "wait p50"):
            people.add_column(column, justify="right", no_wrap=True)
        for s in reviewed:
            people.add_row(
                _step_name(s),
                str(s.decisions),
                str(s.rejected_or_edited),
                _seconds(s.human_wait_p50_seconds),
            )
        _print_table(console, people)
    # Only where agents call models: most workflows of rules and tools make no such call.
    modelled = [s for s in figures.steps if s.model_calls]
    if modelled:
        per_run = figures.tokens_per_run
        models = _table(
            f"model calls: {figures.tokens_in:,} tokens in, {figures.tokens_out:,} out"
            + ("" if per_run is None else f", {per_run:,.0f} per run that called one")
        )
        models.add_column("step", no_wrap=True)
        for column in ("calls", "tokens in", "tokens out"):
            models.add_column(column, justify="right", no_wrap=True)
        for s in modelled:
            models.add_row(
                _step_name(s), f"{s.model_calls:,}", f"{s.tokens_in:,}", f"{s.tokens_out:,}"
            )
        _print_table(console, models)
    if figures.clusters:
        clusters = _table("where runs went wrong (failed, halted or flagged)")
        clusters.add_column("step", no_wrap=True)
        for column in ("runs", "share"):
            clusters.add_column(column, justify="right", no_wrap=True)
        for c in figures.clusters:
            clusters.add_row(c.step, str(c.runs), f"{c.share:.0%}")
        _print_table(console, clusters)
    for flag, n in figures.open_flags.items():
        console.print(Text(f"⚑ open in {n} run(s): {flag}", style="yellow"))
    for line in figures.advice:
        console.print(Text(f"→ {line}", style="cyan"))
