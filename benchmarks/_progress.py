"""How far a long measurement has got: a live bar in a terminal, a line per quarter in a log."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.progress import Progress as Bars

QUIET_S = 2.0
"""Phases shorter than this print no lines."""


class Progress(Protocol):
    """Told how many of a phase's units are done; cheap enough to call for each one."""

    def phase(self, name: str, total: int) -> None: ...

    def done(self, count: int) -> None: ...


class _Live:
    def __init__(self, bars: Bars, label: str) -> None:
        self._bars = bars
        self._label = label
        self._task = bars.add_task(label, total=None, visible=False)

    def phase(self, name: str, total: int) -> None:
        self._bars.update(
            self._task,
            description=f"{self._label}: {name}",
            total=total,
            completed=0,
            visible=True,
        )

    def done(self, count: int) -> None:
        self._bars.update(self._task, completed=count)


class _Lines:
    """For output that is not a terminal (CI logs): a line at each quarter of a phase, once
    it has taken long enough for someone to wonder."""

    def __init__(self, console: Console, label: str) -> None:
        self._console = console
        self._label = label
        self._name = ""
        self._total = 0
        self._next = 0
        self._began = 0.0

    def phase(self, name: str, total: int) -> None:
        self._name, self._total, self._next = name, total, max(1, total // 4)
        self._began = time.perf_counter()

    def done(self, count: int) -> None:
        if count < self._next:
            return
        self._next = count + max(1, self._total // 4)
        seconds = time.perf_counter() - self._began
        if seconds < QUIET_S:
            return
        self._console.print(
            f"  {self._label}: {self._name} {count:,}/{self._total:,} ({seconds:.1f} s)",
            highlight=False,
        )


@contextmanager
def shown(label: str, console: Console | None = None) -> Iterator[Progress]:
    """A progress display for the measurement `label`, on stderr."""
    console = console or Console(file=sys.stderr)
    if not console.is_terminal:
        yield _Lines(console, label)
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Bars(*columns, console=console, transient=True) as bars:
        yield _Live(bars, label)
