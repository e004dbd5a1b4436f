"""The `baton` command."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import Annotated, Any

import anyio
import msgspec
import typer
import zmq
from rich.console import Console

from protocols import DEFAULT_MAX_FRAME, TERMINAL_STATUSES, Data, RunStatus, protocol_schema
from runtime._client import ControlClient, ControlRefused, RuntimeUnavailable
from runtime._config import RuntimeConfig, agents_endpoint, control_endpoint
from runtime._diagram import mermaid
from runtime._errors import BatonError, WorkflowInvalid
from runtime._graph import Graph, compile_workflow
from runtime._loader import load_workflows
from runtime._logging import LEVELS, LogFormat, configure_logging
from runtime._process import event_loop_options, tune_collector
from runtime._render import render_record, render_runs
from runtime._store import open_store
from runtime._supervisor import Supervisor

app = typer.Typer(
    name="baton",
    help="Baton: run explicit multi-agent workflows with one authoritative record per run.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console()
err = Console(stderr=True)

EXIT_OK = 0
EXIT_RUN_FAILED = 1
EXIT_USAGE = 2

ControlOption = Annotated[
    str | None,
    typer.Option(
        "--control",
        help="Control plane endpoint [default: $BATON_CONTROL or tcp://127.0.0.1:7711].",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]
LevelOption = Annotated[
    str, typer.Option("--log-level", help=f"One of {', '.join(LEVELS)}.", case_sensitive=False)
]
FormatOption = Annotated[
    str, typer.Option("--log-format", help="auto (console in a terminal), json or console.")
]


def _fail(message: str, code: int = EXIT_USAGE) -> typer.Exit:
    err.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def _logging(level: str, fmt: str) -> None:
    if level.lower() not in LEVELS:
        raise _fail(f"--log-level must be one of {', '.join(LEVELS)}, not {level!r}")
    if fmt not in ("auto", "json", "console"):
        raise _fail(f"--log-format must be auto, json or console, not {fmt!r}")
    chosen: LogFormat = "json" if fmt == "json" else "console" if fmt == "console" else "auto"
    configure_logging(level.lower(), chosen)


def _graphs(references: list[str]) -> list[Graph]:
    graphs: list[Graph] = []
    for reference in references:
        for workflow in load_workflows(reference):
            graphs.append(compile_workflow(workflow))
    names = [g.name for g in graphs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise _fail(f"workflow {duplicates[0]!r} is loaded twice")
    return graphs


def _print_json(value: Any) -> None:
    out.print_json(msgspec.json.encode(value).decode(), highlight=False)


@app.command()
def runtime(
    workflow: Annotated[
        list[str], typer.Option("--workflow", "-w", help="MODULE:ATTR of a workflow; repeatable.")
    ],
    agents: Annotated[
        str | None,
        typer.Option(help="Agent plane endpoint [default: $BATON_AGENTS or tcp://127.0.0.1:7710]."),
    ] = None,
    control: ControlOption = None,
    store: Annotated[
        str, typer.Option(help="memory:// or sqlite:///PATH[?synchronous=FULL|NORMAL].")
    ] = "memory://",
    heartbeat: Annotated[
        float, typer.Option(min=0.01, help="Seconds between heartbeats; 3 missed = agent lost.")
    ] = 1.0,
    max_frame: Annotated[
        int, typer.Option(min=1024, help="Largest accepted frame, bytes.")
    ] = DEFAULT_MAX_FRAME,
    ready_file: Annotated[
        Path | None,
        typer.Option(help="Write the bound endpoints here as JSON once listening."),
    ] = None,
    log_level: LevelOption = "info",
    log_format: FormatOption = "auto",
) -> None:
    """Run the supervisor: bind the agent and control planes and run workflows."""
    _logging(log_level, log_format)
    try:
        graphs = _graphs(workflow)
        config = RuntimeConfig(
            agents=agents or agents_endpoint(),
            control=control or control_endpoint(),
            heartbeat=heartbeat,
            max_frame=max_frame,
        )
        _require_loopback(config.agents, "--agents")
        _require_loopback(config.control, "--control")
        opened = open_store(store)
    except WorkflowInvalid as exc:
        raise _fail(str(exc)) from None
    except BatonError as exc:
        raise _fail(str(exc)) from None
    supervisor = Supervisor(graphs, opened, config)
    tune_collector()
    try:
        supervisor.bind()
    except zmq.ZMQError as exc:
        raise _fail(f"cannot bind the planes ({config.agents}, {config.control}): {exc}") from None

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            await tg.start(supervisor.serve)
            if ready_file is not None:
                temporary = ready_file.with_suffix(".tmp")
                temporary.write_text(
                    json.dumps(
                        {
                            "agents": supervisor.bound_agents,
                            "control": supervisor.bound_control,
                            "pid": os.getpid(),
                        }
                    )
                )
                temporary.replace(ready_file)
            with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for _ in signals:
                    supervisor.stop()
                    break
        await opened.close()

    anyio.run(main, backend_options=event_loop_options())


def _require_loopback(endpoint: str, flag: str) -> None:
    """Plain-text planes stay on this machine until the planes are encrypted."""
    if endpoint.startswith(("ipc://", "inproc://")):
        return
    host = endpoint.removeprefix("tcp://").rsplit(":", 1)[0].strip("[]")
    if host not in ("127.0.0.1", "localhost", "::1") and not host.startswith("127."):
        raise _fail(f"{flag} {endpoint}: only loopback or ipc:// endpoints are allowed")


@app.command()
def agent(
    spec: Annotated[str, typer.Argument(help="MODULE:CLASS of an Agent or ToolHost subclass.")],
    connect: Annotated[
        str | None,
        typer.Option(help="Agent plane endpoint [default: $BATON_AGENTS or tcp://127.0.0.1:7710]."),
    ] = None,
    concurrency: Annotated[int, typer.Option(min=1, max=4096, help="Tasks run at once.")] = 1,
    name: Annotated[
        str | None, typer.Option(help="Instance name [default: role-pid-random].")
    ] = None,
    log_level: LevelOption = "info",
    log_format: FormatOption = "auto",
) -> None:
    """Run an agent or tool host process connected to a runtime."""
    from actors import run_actor  # noqa: PLC0415 - the supervisor side never loads actors

    _logging(log_level, log_format)
    tune_collector()
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    raise typer.Exit(
        run_actor(
            spec,
            connect or agents_endpoint(),
            concurrency,
            name=name,
            backend_options=event_loop_options(),
        )
    )


def _inputs(text: str) -> dict[str, Any]:
    raw = Path(text[1:]).read_text() if text.startswith("@") else text
    try:
        value = msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:
        raise _fail(f"--input is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise _fail("--input must be a JSON object of named inputs")
    try:
        return dict(msgspec.convert(value, Data))
    except msgspec.ValidationError as exc:
        raise _fail(f"--input: {exc}") from None


def _client_call(endpoint: str | None, call: Any) -> Any:
    async def main() -> Any:
        async with ControlClient(endpoint or control_endpoint()) as client:
            return await call(client)

    try:
        return anyio.run(main)
    except ControlRefused as exc:
        raise _fail(exc.message if exc.code != "unknown_run" else str(exc)) from None
    except RuntimeUnavailable as exc:
        raise _fail(str(exc)) from None


def _exit_for(status: RunStatus) -> int:
    return EXIT_RUN_FAILED if status in ("failed", "halted") else EXIT_OK


@app.command()
def run(
    name: Annotated[str, typer.Argument(help="Name of a workflow the runtime has loaded.")],
    input: Annotated[
        str, typer.Option("--input", "-i", help="Inputs as a JSON object, or @FILE.")
    ] = "{}",
    wait: Annotated[bool, typer.Option("--wait", help="Wait for the run to end.")] = False,
    timeout: Annotated[float, typer.Option(min=0.1, help="Longest wait, seconds.")] = 300.0,
    as_json: JsonOption = False,
    control: ControlOption = None,
) -> None:
    """Start a run; print its id, or with --wait its final record."""
    inputs = _inputs(input)

    async def call(client: ControlClient) -> tuple[str, Any]:
        run_id = await client.start_run(name, inputs)
        if not wait:
            return run_id, None
        return run_id, await client.wait_run(run_id, max_wait=timeout)

    run_id, waited = _client_call(control, call)
    if waited is None:
        if as_json:
            _print_json({"run_id": run_id})
        else:
            out.print(run_id)
        return
    record, timed_out = waited
    if as_json:
        _print_json(record)
    else:
        render_record(out, record, history=20)
    if timed_out:
        raise _fail(f"run {run_id} had not ended after {timeout:g}s (status {record.status})")
    raise typer.Exit(_exit_for(record.status))


@app.command()
def inspect(
    run_id: Annotated[str, typer.Argument(help="The run's id.")],
    as_json: JsonOption = False,
    control: ControlOption = None,
) -> None:
    """Show the record of a run: status, data with provenance, steps, history."""

    async def call(client: ControlClient) -> Any:
        return await client.get_run(run_id)

    record = _client_call(control, call)
    if as_json:
        _print_json(record)
    else:
        render_record(out, record)
    if record.status in TERMINAL_STATUSES:
        raise typer.Exit(_exit_for(record.status))


@app.command()
def runs(
    status: Annotated[
        str | None, typer.Option(help="running, waiting, completed, failed or halted.")
    ] = None,
    workflow: Annotated[str | None, typer.Option(help="Only runs of this workflow.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=100_000)] = 100,
    as_json: JsonOption = False,
    control: ControlOption = None,
) -> None:
    """List runs, newest first."""
    statuses = ("running", "waiting", "completed", "failed", "halted")
    if status is not None and status not in statuses:
        raise _fail(f"--status must be one of {', '.join(statuses)}, not {status!r}")
    chosen: RunStatus | None = msgspec.convert(status, RunStatus | None)

    async def call(client: ControlClient) -> Any:
        return await client.list_runs(status=chosen, workflow=workflow, limit=limit)

    found = _client_call(control, call)
    if as_json:
        _print_json(found)
    else:
        render_runs(out, found)


@app.command()
def validate(
    reference: Annotated[str, typer.Argument(help="MODULE:ATTR of a workflow or list of them.")],
    as_json: JsonOption = False,
) -> None:
    """Check a workflow statically; exit 2 with every problem when it is invalid."""
    try:
        workflows = load_workflows(reference)
    except BatonError as exc:
        raise _fail(str(exc)) from None
    report: list[dict[str, Any]] = []
    invalid = False
    for workflow in workflows:
        try:
            graph = compile_workflow(workflow)
        except WorkflowInvalid as exc:
            invalid = True
            report.append(
                {
                    "workflow": workflow.name,
                    "valid": False,
                    "problems": [
                        {"code": p.code, "message": p.message, "step": p.step, "key": p.key}
                        for p in exc.problems
                    ],
                }
            )
            if not as_json:
                err.print(f"[red]✗[/red] {exc}", highlight=False)
            continue
        report.append(
            {
                "workflow": graph.name,
                "valid": True,
                "version": workflow.version,
                "fingerprint": graph.fingerprint,
                "steps": len(graph.nodes),
            }
        )
        if not as_json:
            out.print(
                f"[green]✓[/green] {graph.name} v{workflow.version}: {len(graph.nodes)} steps, "
                f"fingerprint {graph.fingerprint}",
                highlight=False,
            )
    if as_json:
        _print_json(report)
    raise typer.Exit(EXIT_USAGE if invalid else EXIT_OK)


@app.command()
def diagram(
    reference: Annotated[str, typer.Argument(help="MODULE:ATTR of a workflow.")],
) -> None:
    """Print the workflow as a Mermaid flowchart."""
    try:
        graphs = [compile_workflow(w) for w in load_workflows(reference)]
    except BatonError as exc:
        raise _fail(str(exc)) from None
    for graph in graphs:
        sys.stdout.write(mermaid(graph) + "\n")


@app.command()
def protocol(
    schema: Annotated[bool, typer.Option("--schema", help="Print the JSON Schema.")] = False,
) -> None:
    """Describe the wire protocol, for actors and clients in other languages."""
    if not schema:
        raise _fail("say what to print: --schema")
    sys.stdout.write(json.dumps(protocol_schema(), indent=2) + "\n")


@app.command()
def demo(
    runs_per_kind: Annotated[int, typer.Option("--runs", min=1, max=50)] = 1,
) -> None:
    """Launch a runtime and the example agents as processes, run requests, show records."""
    from runtime._demo import run_demo  # noqa: PLC0415 - the demo needs the checkout's examples

    raise typer.Exit(run_demo(out, err, runs_per_kind=runs_per_kind))


def main() -> None:
    """Entry point of the `baton` script."""
    app()
