"""Settings of a whole runtime process, applied once by the command that owns it."""

from __future__ import annotations

import gc

COLLECT_AFTER = 50_000
"""Allocations between young-generation collections (CPython's default is 700)."""


def tune_collector() -> None:
    """Make the cyclic garbage collector run rarely.

    Each step allocates a few dozen small, acyclic objects while the process
    holds many live runs; with the default thresholds the collector runs
    every few steps and rescans that heap, which measured as about a fifth
    of the supervisor's time under load. What exists at start-up is frozen
    out of the collector's view.
    """
    gc.freeze()
    gc.set_threshold(COLLECT_AFTER, 20, 20)


def event_loop_options() -> dict[str, object]:
    """anyio backend options: uvloop's faster event loop when it is installed."""
    try:
        import uvloop  # noqa: F401, PLC0415 - optional: the `fast` extra
    except ImportError:
        return {}
    return {"use_uvloop": True}
