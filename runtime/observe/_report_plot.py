"""`baton report --plot FILE`: the report as a picture to read at a glance.

Left, the funnel of the step chain: each step's visits, split into first-try
successes and the rest, with the compounded rate beside the observed one.
Right, where runs went wrong. Needs the `report` extra (matplotlib).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from protocols import Report
from runtime.errors import BatonError


class PlotUnavailable(BatonError):
    """matplotlib is not installed: `pip install 'baton-runtime[report]'`."""


def plot_report(figures: Report, path: Path) -> None:
    """Draw `figures` into the PNG file `path`."""
    try:
        import matplotlib  # noqa: PLC0415 - an optional extra, loaded only to plot

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # noqa: PLC0415
        from matplotlib.ticker import PercentFormatter  # noqa: PLC0415
    except ImportError:
        raise PlotUnavailable(
            "--plot needs matplotlib: pip install 'baton-runtime[report]'"
        ) from None
    steps = [s for s in figures.steps if s.visits]
    names = [s.step for s in steps][::-1]
    first = [round((s.first_try_success or 0) * s.visits) for s in steps][::-1]
    rest = [s.visits - f for s, f in zip(steps[::-1], first, strict=True)]
    fig: Any
    fig, (funnel, clusters) = plt.subplots(
        1, 2, figsize=(13, max(3.5, 0.55 * len(names) + 2)), width_ratios=[3, 2]
    )
    funnel.barh(names, first, color="#2e7d32", label="succeeded on the first try")
    funnel.barh(names, rest, left=first, color="#c62828", label="needed a retry, or failed")
    for y, s in enumerate(steps[::-1]):
        rate = s.first_try_success
        label = "-" if rate is None else f"{rate:.0%}"
        funnel.text(s.visits, y, f"  {label}", va="center", fontsize=9)
    compounded = figures.compounded_first_try
    clean = figures.clean_rate
    funnel.set_title(
        f"{figures.workflow}: {figures.runs} runs — the chain compounds to "
        f"{'-' if compounded is None else f'{compounded:.0%}'}, "
        f"{'-' if clean is None else f'{clean:.0%}'} of runs went clean",
        loc="left",
        fontsize=10,
    )
    funnel.set_xlabel("visits")
    funnel.set_xlim(0, max((s.visits for s in steps), default=1) * 1.15)
    funnel.legend(loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=2, fontsize=8)
    if figures.clusters:
        shown = figures.clusters[:8][::-1]
        clusters.barh(
            [c.step for c in shown], [c.share for c in shown], height=0.5, color="#ef6c00"
        )
        for y, c in enumerate(shown):
            runs = f"{c.runs} run" + ("s" if c.runs != 1 else "")
            clusters.text(c.share, y, f"  {runs} ({c.share:.0%})", va="center", fontsize=9)
        clusters.set_xlim(0, 1.3)
        clusters.set_xticks([0, 0.25, 0.5, 0.75, 1.0])
        clusters.xaxis.set_major_formatter(PercentFormatter(1.0))
        clusters.set_xlabel("share of the runs that failed, halted or were flagged")
        # A bar or two keep their height, at the top, instead of filling the panel.
        clusters.set_ylim(len(shown) - max(len(shown), 4) - 0.5, len(shown) - 0.5)
    else:
        clusters.text(0.5, 0.5, "no run failed or was flagged", ha="center", va="center")
        clusters.set_yticks([])
    clusters.set_title("where runs went wrong", loc="left", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
