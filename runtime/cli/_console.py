"""Where the `baton` command writes, how it fails, and its exit statuses."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import msgspec
import typer
from rich.console import Console
from rich.markup import escape

from runtime.errors import BatonError

out = Console()
"""Results: what a user reads or pipes on."""
err = Console(stderr=True)
"""Errors and notes beside the results."""

EXIT_OK = 0
EXIT_RUN_FAILED = 1
EXIT_USAGE = 2


def fail(message: str, code: int = EXIT_USAGE) -> typer.Exit:
    """Say what went wrong on stderr; the exit to raise."""
    # Escaped: Z85 keys, msgspec paths and user input hold brackets rich reads as markup.
    err.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def print_json(value: Any) -> None:
    out.print_json(msgspec.json.encode(value).decode(), highlight=False)


@contextmanager
def usage_errors() -> Iterator[None]:
    """A `BatonError` raised inside is the user's to fix: its message, and exit status 2."""
    try:
        yield
    except BatonError as exc:
        raise fail(str(exc)) from None
