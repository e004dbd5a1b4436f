"""`baton report` in a terminal: the workflow's figures, its steps, where it breaks."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from runtime._report import Report


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.1f} s"


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
    steps = Table(title="steps, in the order of the graph", title_justify="left")
    for column in (
        "step",
        "visits",
        "first try",
        "retries",
        "failures",
        "flagged",
        "p50",
        "p95",
        "decisions",
        "caught",
        "human wait p50",
    ):
        steps.add_column(column, overflow="fold")
    for s in figures.steps:
        name = s.step + (" ⏸" if s.checkpoint else "")
        if s.consequence != "reversible":
            name += f" ({s.consequence})"
        rate = s.first_try_success
        style = "" if rate is None or rate >= 0.95 else "yellow" if rate >= 0.8 else "red"
        steps.add_row(
            name,
            str(s.visits),
            Text(_rate(rate), style=style),
            str(s.retries),
            ", ".join(f"{kind} {n}" for kind, n in s.failures.items()),
            str(s.flagged or ""),
            _seconds(s.p50_seconds),
            _seconds(s.p95_seconds),
            str(s.decisions or ""),
            str(s.rejected_or_edited or ""),
            _seconds(s.human_wait_p50_seconds),
        )
    console.print(steps)
    if figures.clusters:
        clusters = Table(title="where runs went wrong (failed, halted or flagged)")
        for column in ("step", "runs", "share"):
            clusters.add_column(column)
        for c in figures.clusters:
            clusters.add_row(c.step, str(c.runs), f"{c.share:.0%}")
        console.print(clusters)
    for flag, n in figures.open_flags.items():
        console.print(Text(f"⚑ open in {n} run(s): {flag}", style="yellow"))
    for line in figures.advice:
        console.print(Text(f"→ {line}", style="cyan"))
