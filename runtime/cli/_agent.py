"""`baton agent`: an agent or tool host process, connected to a runtime's agent plane."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from runtime.cli._connection import client_keys, endpoint_list
from runtime.cli._console import fail
from runtime.cli._options import (
    DEFAULT_AGENTS,
    DEFAULT_KEYS,
    ConnectOption,
    InsecureOption,
    KeysOption,
    logged,
)
from runtime.cli._process import event_loop_options, kill_points, span_file, tune_collector

if TYPE_CHECKING:
    from actors import SpanRecorder

DEFAULT_LEDGERS = ".baton/ledgers"
"""Where tool hosts keep their ledgers unless `BATON_LEDGERS` names another folder."""


@logged
def agent(
    spec: Annotated[str, typer.Argument(help="MODULE:CLASS of an Agent or ToolHost subclass.")],
    connect: ConnectOption = None,
    concurrency: Annotated[
        int,
        typer.Option(
            min=1, max=4096, help="Tasks (or tool calls) run at once, for each supervisor served."
        ),
    ] = 1,
    name: Annotated[
        str | None,
        typer.Option(
            help="Instance name, when insecure; with keys the runtime names the session "
            "after its principal.",
            show_default="role-pid-random",
        ),
    ] = None,
    keys: KeysOption = DEFAULT_KEYS,
    principal: Annotated[
        str | None,
        typer.Option(
            "--principal",
            help="Whose keys to use, from the key directory.",
            show_default="the agent's role, or the tool host's name",
        ),
    ] = None,
    insecure: InsecureOption = False,
    ledger: Annotated[
        str | None,
        typer.Option(
            "--ledger",
            help="A tool host's ledger of side effects: a SQLite PATH or memory://.",
            show_default=f"NAME.db in $BATON_LEDGERS, else in {DEFAULT_LEDGERS}",
        ),
    ] = None,
    trace_file: Annotated[
        Path | None,
        typer.Option(
            help="Append OpenTelemetry spans of the tasks and tool calls the runtime traces, "
            "and of spans handlers start inside them, to this file as JSON lines "
            "(needs the traces extra).",
            show_default="no traces",
        ),
    ] = None,
) -> None:
    """Run an agent or tool host process serving the runtimes it connects to, and their peers."""
    # The supervisor side never loads actors, so they are imported only here.
    from actors import ActorLoadError, declared_role, run_actor  # noqa: PLC0415

    tune_collector()
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        declared = declared_role(spec)
    except ActorLoadError as exc:
        raise fail(str(exc)) from None
    if ledger is None:
        ledgers = Path(os.environ.get("BATON_LEDGERS") or DEFAULT_LEDGERS)
        ledger = str(ledgers / f"{declared}.db")
    endpoints = endpoint_list(connect or [DEFAULT_AGENTS], "--connect", insecure=insecure)
    if not endpoints:
        raise fail("--connect: no endpoint given")
    credentials = client_keys(keys, principal or declared, insecure, endpoints[0], "--connect")
    spans = None if trace_file is None else _agent_spans(trace_file, declared)
    try:
        status = run_actor(
            spec,
            endpoints,
            concurrency,
            name=name,
            keys=credentials,
            ledger=ledger,
            kill_points=kill_points(),
            spans=spans,
            backend_options=event_loop_options(),
        )
    finally:
        if spans is not None:
            spans.close()
    raise typer.Exit(status)


def _agent_spans(path: Path, role: str) -> SpanRecorder:
    exporter = span_file(path)
    from opentelemetry import trace  # noqa: PLC0415 - the traces extra, present

    from actors import SpanRecorder  # noqa: PLC0415

    recorder = SpanRecorder(exporter, f"baton-{role}")
    # The process's provider, so that spans a handler starts through the OpenTelemetry
    # API are exported too, nested under the step's span.
    trace.set_tracer_provider(recorder.provider)
    return recorder
