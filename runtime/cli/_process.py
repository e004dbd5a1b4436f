"""Settings of a whole runtime or actor process, applied once by the command that owns it."""

from __future__ import annotations

import gc
from pathlib import Path
from typing import TYPE_CHECKING

from actors import KillPoints, KillPointsInvalid
from runtime.cli._console import fail

if TYPE_CHECKING:
    from runtime.observe._span_file import SpanFile

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


def kill_points() -> KillPoints:
    """The points `BATON_KILL_POINTS` asks this process to die at, for fault tests."""
    try:
        return KillPoints.from_environment()
    except KillPointsInvalid as exc:
        raise fail(str(exc)) from None


def span_file(path: Path) -> SpanFile:
    """The file `--trace-file` names, open for appending spans; a clear error without the
    `traces` extra or when it cannot be opened."""
    try:
        from runtime.observe._span_file import SpanFile  # noqa: PLC0415 - optional extra
    except ImportError:
        raise fail(
            "--trace-file needs opentelemetry-sdk: pip install 'baton-runtime[traces]'"
        ) from None
    try:
        return SpanFile(path)
    except OSError as exc:
        raise fail(f"--trace-file {path}: {exc}") from None
