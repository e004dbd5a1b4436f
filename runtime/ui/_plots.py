"""The report's plots as SVG bars: outcomes, where runs break, and the compounded chain.

Drawn on the server from the figures alone (no plotting library in the page or the
browser), with the number written beside each bar so that the plot reads without a
legend and a screen reader gets the same from its label.
"""

from __future__ import annotations

from html import escape

from protocols import Report

BAR_HEIGHT = 22
LABEL_WIDTH = 190
BAR_WIDTH = 320
VALUE_WIDTH = 80


def bars(title: str, items: list[tuple[str, float, str]], *, rate: bool) -> str:
    """Horizontal bars: (label, value, css class) each; rates as percentages."""
    top = max((value for _, value, _ in items), default=0.0)
    scale = 1.0 if rate else top or 1.0
    height = 28 + len(items) * (BAR_HEIGHT + 6)
    width = LABEL_WIDTH + BAR_WIDTH + VALUE_WIDTH
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="plot" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-label="{escape(title)}">',
        f'<text x="0" y="16" class="plot-title">{escape(title)}</text>',
    ]
    for index, (label, value, css) in enumerate(items):
        y = 28 + index * (BAR_HEIGHT + 6)
        length = max(1.0, BAR_WIDTH * value / scale) if value else 0.0
        shown = f"{value:.0%}" if rate else f"{value:,.0f}"
        parts.append(
            f'<text x="{LABEL_WIDTH - 8}" y="{y + 16}" text-anchor="end" class="plot-label">'
            f"{escape(label)}</text>"
            f'<rect x="{LABEL_WIDTH}" y="{y}" width="{length:.1f}" height="{BAR_HEIGHT}" '
            f'class="bar {css}"><title>{escape(label)}: {shown}</title></rect>'
            f'<text x="{LABEL_WIDTH + length + 6:.1f}" y="{y + 16}" class="plot-value">'
            f"{shown}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def report_plots(report: Report) -> dict[str, str]:
    """The plots of a workflow's report, by name."""
    plots = {
        "outcomes": bars(
            f"Runs by outcome ({report.runs:,} runs)",
            [(status, float(n), f"st-{status}") for status, n in report.outcomes.items()],
            rate=False,
        )
    }
    chain = [
        ("first tries, compounded", report.compounded_first_try, "bar-promised"),
        ("runs clean end to end", report.clean_rate, "bar-observed"),
        ("runs completed", report.completion_rate, "bar-completed"),
    ]
    plots["chain"] = bars(
        "What the chain promises beside what the runs did",
        [(label, value, css) for label, value, css in chain if value is not None],
        rate=True,
    )
    if report.clusters:
        plots["clusters"] = bars(
            "Where runs went wrong (share of failed, halted or flagged runs)",
            [(c.step, c.share, "bar-failure") for c in report.clusters],
            rate=True,
        )
    funnel = [(s.step, s.first_try_success, "bar-step") for s in report.steps]
    plots["steps"] = bars(
        "First-try success by step",
        [(label, value, css) for label, value, css in funnel if value is not None],
        rate=True,
    )
    return plots
