"""The options several `baton` commands share, each defined once with its variable and default.

Options that always travel together (how to reach the runtime; how to log)
are added to a command by a decorator, `with_options`, which hands their
values to one function instead of to each command.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from runtime.cli._console import fail
from runtime.observe._logging import LEVELS, LogFormat, configure_logging
from runtime.security._keys import DEFAULT_KEYS_DIR
from runtime.supervisor._config import DEFAULT_AGENTS_ENDPOINT, DEFAULT_CONTROL_ENDPOINT

R = TypeVar("R")

DEFAULT_STORE = "sqlite:///baton.db"
"""A journal in the working directory: runs survive the runtime."""
DEFAULT_KEYS = DEFAULT_KEYS_DIR
DEFAULT_CONTROL = DEFAULT_CONTROL_ENDPOINT
DEFAULT_AGENTS = DEFAULT_AGENTS_ENDPOINT
DEFAULT_PRINCIPAL = "operator"

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]
KeysOption = Annotated[
    Path,
    typer.Option("--keys", envvar="BATON_KEYS", help="Key directory, from `baton keys init`."),
]
InsecureOption = Annotated[
    bool,
    typer.Option(
        "--insecure",
        help="No CURVE: plain text and no authentication. Loopback development only.",
    ),
]
ControlOption = Annotated[
    str, typer.Option("--control", envvar="BATON_CONTROL", help="Control plane endpoint.")
]
PrincipalOption = Annotated[
    str,
    typer.Option(
        "--principal", envvar="BATON_PRINCIPAL", help="Whose keys to use, from the key directory."
    ),
]
AgentsOption = Annotated[
    str, typer.Option("--agents", envvar="BATON_AGENTS", help="Agent plane endpoint to bind.")
]
ConnectOption = Annotated[
    list[str] | None,
    typer.Option(
        "--connect",
        envvar="BATON_AGENTS",
        help="Agent plane endpoint of a supervisor to serve; repeatable or comma-separated. "
        "The actor serves every supervisor of a cluster: those named here and those they "
        "name as their peers (with CURVE, every supervisor of a cluster uses the same "
        "runtime key).",
        show_default=DEFAULT_AGENTS_ENDPOINT,
    ),
]
RunIdArgument = Annotated[str, typer.Argument(help="The run's id.")]
LevelOption = Annotated[
    str, typer.Option("--log-level", help=f"One of {', '.join(LEVELS)}.", case_sensitive=False)
]
FormatOption = Annotated[
    str, typer.Option("--log-format", help="auto (console in a terminal), json or console.")
]


def command_group(name: str, about: str) -> typer.Typer:
    """A group of commands as `baton` shows them: its help when called bare, and errors
    as messages rather than typer's tracebacks."""
    return typer.Typer(
        name=name,
        help=about,
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )


def option(name: str, annotation: Any, default: Any) -> inspect.Parameter:
    """A command-line option as typer reads it from a signature."""
    return inspect.Parameter(
        name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation
    )


def with_options(
    options: Sequence[inspect.Parameter], use: Callable[..., Any], *, into: str | None = None
) -> Callable[[Callable[..., R]], Callable[..., R]]:
    """A decorator adding `options` to a command's command line.

    Their values go to `use`, in order, before the command runs; what it
    returns is the command's argument `into`, which the command line then
    does not show.
    """

    def decorate(command: Callable[..., R]) -> Callable[..., R]:
        own = inspect.signature(command, eval_str=True)
        kept = [p for p in own.parameters.values() if p.name != into]
        names = [p.name for p in options]

        @functools.wraps(command)
        def with_values(**given: Any) -> R:
            made = use(*(given.pop(name) for name in names))
            return command(**given) if into is None else command(**given, **{into: made})

        parameters = [*kept, *options]
        with_values.__signature__ = own.replace(parameters=parameters)  # type: ignore[attr-defined]
        with_values.__annotations__ = {p.name: p.annotation for p in parameters}
        return with_values

    return decorate


def apply_logging(level: str, fmt: str) -> None:
    """Configure the process's logs from `--log-level` and `--log-format`."""
    if level.lower() not in LEVELS:
        raise fail(f"--log-level must be one of {', '.join(LEVELS)}, not {level!r}")
    if fmt not in ("auto", "json", "console"):
        raise fail(f"--log-format must be auto, json or console, not {fmt!r}")
    chosen: LogFormat = "json" if fmt == "json" else "console" if fmt == "console" else "auto"
    configure_logging(level.lower(), chosen)


logged = with_options(
    (option("log_level", LevelOption, "info"), option("log_format", FormatOption, "auto")),
    apply_logging,
)
"""A process's command: `--log-level` and `--log-format`, applied before it starts."""
