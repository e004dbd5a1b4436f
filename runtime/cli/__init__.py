"""The `baton` command."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, get_args

import anyio
import anyio.abc
import msgspec
import structlog
import typer
import zmq
from rich.console import Console
from rich.live import Live
from rich.markup import escape

from actors import KillPoints, KillPointsInvalid
from protocols import (
    DEFAULT_MAX_FRAME,
    TERMINAL_STATUSES,
    ClientKeys,
    Data,
    DecisionKind,
    RunRecord,
    RunStatus,
    protocol_schema,
)
from runtime.cli._keys import keys_app
from runtime.cli._process import event_loop_options, tune_collector
from runtime.cli._render import (
    history_table,
    pending_table,
    progress_view,
    render_record,
    render_runs,
)
from runtime.client._client import ControlClient, ControlRefused, RuntimeUnavailable
from runtime.engine._run import Run
from runtime.errors import BatonError, StoreError, WorkflowInvalid
from runtime.observe._logging import LEVELS, LogFormat, configure_logging
from runtime.observe._report import report as build_report
from runtime.observe._report_plot import plot_report
from runtime.observe._report_render import render_report
from runtime.security._certificates import KeysInvalid
from runtime.security._keys import keys_dir, load_client_keys, load_principals, load_server_keys
from runtime.store import JournalUnreadable, open_store, read_journals, replay
from runtime.store import backup as store_backup
from runtime.supervisor._config import RuntimeConfig, Security, agents_endpoint, control_endpoint
from runtime.supervisor._supervisor import AuthenticatorDied, Supervisor
from runtime.workflow._catalog import Catalog
from runtime.workflow._diagram import mermaid
from runtime.workflow._graph import Graph, compile_workflow
from runtime.workflow._loader import load_workflows

app = typer.Typer(
    name="baton",
    help="Baton: run explicit multi-agent workflows with one authoritative record per run.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(keys_app, name="keys")
out = Console()
err = Console(stderr=True)
if TYPE_CHECKING:
    from actors import SpanRecorder
    from runtime.observe._prometheus import PrometheusMetrics
    from runtime.observe._span_file import SpanFile
    from runtime.observe._tracing import RunTracer

log = structlog.get_logger("baton.runtime")

DEFAULT_STORE = "sqlite:///baton.db"
"""A journal in the working directory: runs survive the runtime."""

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
KeysOption = Annotated[
    Path | None,
    typer.Option(
        "--keys",
        help="Key directory (from `baton keys init`) [default: $BATON_KEYS or .baton/keys].",
    ),
]
InsecureOption = Annotated[
    bool,
    typer.Option(
        "--insecure",
        help="No CURVE: plain text and no authentication. Loopback development only.",
    ),
]
PrincipalOption = Annotated[
    str | None,
    typer.Option(
        "--principal",
        help="Whose keys to use, from the key directory [default: $BATON_PRINCIPAL or operator].",
    ),
]
LevelOption = Annotated[
    str, typer.Option("--log-level", help=f"One of {', '.join(LEVELS)}.", case_sensitive=False)
]
FormatOption = Annotated[
    str, typer.Option("--log-format", help="auto (console in a terminal), json or console.")
]


def _fail(message: str, code: int = EXIT_USAGE) -> typer.Exit:
    # Escaped: Z85 keys and user input may contain what rich reads as markup.
    err.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def _logging(level: str, fmt: str) -> None:
    if level.lower() not in LEVELS:
        raise _fail(f"--log-level must be one of {', '.join(LEVELS)}, not {level!r}")
    if fmt not in ("auto", "json", "console"):
        raise _fail(f"--log-format must be auto, json or console, not {fmt!r}")
    chosen: LogFormat = "json" if fmt == "json" else "console" if fmt == "console" else "auto"
    configure_logging(level.lower(), chosen)


def _graphs(references: list[str]) -> list[Graph]:
    return [
        compile_workflow(workflow)
        for reference in references
        for workflow in load_workflows(reference)
    ]


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
        str,
        typer.Option(
            help="sqlite:///PATH[?synchronous=FULL|NORMAL] (the journal runs are recovered "
            "from), or memory:// (gone with the process)."
        ),
    ] = DEFAULT_STORE,
    heartbeat: Annotated[
        float, typer.Option(min=0.01, help="Seconds between heartbeats; 3 missed = agent lost.")
    ] = 1.0,
    max_frame: Annotated[
        int, typer.Option(min=1024, help="Largest accepted frame, bytes.")
    ] = DEFAULT_MAX_FRAME,
    rate_limit: Annotated[
        float, typer.Option(min=1.0, help="Frames per second each principal may send per plane.")
    ] = 10_000.0,
    previous: Annotated[
        list[str] | None,
        typer.Option(
            help="MODULE:ATTR of an earlier version of a workflow, kept so that runs which "
            "started on it finish on it (new runs start on --workflow); repeatable."
        ),
    ] = None,
    recovery_budget: Annotated[
        int,
        typer.Option(
            min=0,
            help="Restarts in a row a run may see with no step finishing before it is "
            "parked as stuck (0: no limit).",
        ),
    ] = 5,
    restart_budget: Annotated[
        int,
        typer.Option(
            min=0,
            help="Instances of one role that may die within --restart-window; beyond it the "
            "role is crash-looping and its steps go to their failure policy (0: no limit).",
        ),
    ] = 5,
    restart_window: Annotated[float, typer.Option(min=0.1, help="Seconds.")] = 60.0,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            min=0,
            max=65535,
            help="Serve Prometheus metrics at http://HOST:PORT/metrics (0: a free port); "
            "needs the metrics extra.",
        ),
    ] = None,
    metrics_host: Annotated[str, typer.Option(help="Address the metrics are served on.")] = (
        "127.0.0.1"
    ),
    trace_file: Annotated[
        Path | None,
        typer.Option(
            help="Append OpenTelemetry spans of runs, step attempts and tool calls to this "
            "file as OTLP/JSON lines (needs the traces extra).",
        ),
    ] = None,
    trace_sample: Annotated[
        float,
        typer.Option(
            min=0.0,
            max=1.0,
            help="The share of runs traced, each whole or not at all; agents follow.",
        ),
    ] = 1.0,
    ready_file: Annotated[
        Path | None,
        typer.Option(help="Write the bound endpoints here as JSON once listening."),
    ] = None,
    keys: KeysOption = None,
    insecure: InsecureOption = False,
    log_level: LevelOption = "info",
    log_format: FormatOption = "auto",
) -> None:
    """Run the supervisor: bind the agent and control planes and run workflows.

    Both planes use CURVE with the key directory's runtime key, and admit only
    its principals; send SIGHUP to reload the principals without dropping
    connections.
    """
    _logging(log_level, log_format)
    directory = keys_dir(keys)
    try:
        graphs = _graphs(workflow)
        earlier = _graphs(previous or [])
        config = RuntimeConfig(
            agents=agents or agents_endpoint(),
            control=control or control_endpoint(),
            heartbeat=heartbeat,
            max_frame=max_frame,
            rate_limit=rate_limit,
            rate_burst=rate_limit,
            recovery_budget=recovery_budget,
            restart_budget=restart_budget,
            restart_window=restart_window,
        )
        if insecure:
            _require_loopback(config.agents, "--agents")
            _require_loopback(config.control, "--control")
        security = None if insecure else _server_security(directory)
        opened = open_store(store)
        tracer = None if trace_file is None else _tracer(trace_file, trace_sample)
        metrics = None if metrics_port is None else _metrics(metrics_host, metrics_port)
        supervisor = Supervisor(
            graphs,
            opened,
            config,
            security=security,
            previous=earlier,
            kill_points=_kill_points(),
            metrics=metrics,
            tracer=tracer,
        )
    except BatonError as exc:
        raise _fail(str(exc)) from None
    tune_collector()
    extra = {} if metrics is None else {"metrics": f"http://{metrics_host}:{metrics.port}/metrics"}
    try:
        status = anyio.run(
            _serve_runtime,
            supervisor,
            ready_file,
            directory,
            extra,
            backend_options=event_loop_options(),
        )
    finally:
        if metrics is not None:
            metrics.close()
        if tracer is not None:
            tracer.close()
    raise typer.Exit(status)


def _span_file(path: Path) -> SpanFile:
    """The file `--trace-file` names, open for appending spans; a clear error without the
    `traces` extra or when it cannot be opened."""
    try:
        from runtime.observe._span_file import SpanFile  # noqa: PLC0415 - optional extra
    except ImportError:
        raise _fail(
            "--trace-file needs opentelemetry-sdk: pip install 'baton-runtime[traces]'"
        ) from None
    try:
        return SpanFile(path)
    except OSError as exc:
        raise _fail(f"--trace-file {path}: {exc}") from None


def _tracer(path: Path, sample: float) -> RunTracer:
    exporter = _span_file(path)
    from runtime.observe._tracing import RunTracer  # noqa: PLC0415 - the traces extra, present

    try:
        return RunTracer(exporter, sample=sample)
    except ValueError as exc:
        exporter.shutdown()
        raise _fail(f"--trace-sample: {exc}") from None


def _metrics(host: str, port: int) -> PrometheusMetrics:
    """The metrics, served from now on; a clear error without the extra or the port."""
    try:
        from runtime.observe._prometheus import PrometheusMetrics  # noqa: PLC0415 - an optional extra
    except ImportError:
        raise _fail(
            "--metrics-port needs prometheus-client: pip install 'baton-runtime[metrics]'"
        ) from None
    metrics = PrometheusMetrics()
    try:
        metrics.serve(host, port)
    except OSError as exc:
        raise _fail(f"cannot serve metrics on {host}:{port}: {exc}") from None
    log.info("metrics.serving", url=f"http://{host}:{metrics.port}/metrics")
    return metrics


def _kill_points() -> KillPoints:
    try:
        return KillPoints.from_environment()
    except KillPointsInvalid as exc:
        raise _fail(str(exc)) from None


def _server_security(directory: Path) -> Security:
    try:
        return Security(load_server_keys(directory), load_principals(directory))
    except KeysInvalid as exc:
        raise _fail(f"{exc} (or pass --insecure to run without CURVE on loopback)") from None


async def _serve_runtime(
    supervisor: Supervisor, ready_file: Path | None, directory: Path, extra: dict[str, str]
) -> int:
    """Serve until SIGINT or SIGTERM, reloading principals on SIGHUP; the exit status."""
    try:
        # Bound inside the loop: a secure runtime's ZAP handler must run before any bind.
        supervisor.bind()
    except zmq.ZMQError as exc:
        config = supervisor.config
        err.print(
            f"[red]error:[/red] cannot bind the planes ({config.agents}, {config.control}): {exc}",
            highlight=False,
            soft_wrap=True,
        )
        await supervisor.store.close()
        return EXIT_USAGE
    died = False
    failed: list[str] = []
    try:
        async with anyio.create_task_group() as tg:

            async def serve(*, task_status: anyio.abc.TaskStatus[None]) -> None:
                try:
                    await supervisor.serve(task_status=task_status)
                finally:
                    tg.cancel_scope.cancel()

            await tg.start(serve)
            if ready_file is not None:
                _write_ready_file(ready_file, supervisor, extra)
            await _handle_signals(supervisor, directory)
    except* AuthenticatorDied:
        died = True
    except* StoreError as group:
        failed.extend(str(exc) for exc in group.exceptions)
    finally:
        await supervisor.store.close()
    for reason in failed:
        err.print(
            f"[red]error:[/red] {escape(reason)}; the runtime stopped (nothing it had not "
            "journaled was sent: start it again on the journal to carry on)",
            highlight=False,
            soft_wrap=True,
        )
    return EXIT_RUN_FAILED if died or failed else EXIT_OK


def _write_ready_file(path: Path, supervisor: Supervisor, extra: dict[str, str]) -> None:
    temporary = path.with_suffix(".tmp")
    bound = {
        "agents": supervisor.bound_agents,
        "control": supervisor.bound_control,
        "pid": os.getpid(),
        **extra,
    }
    temporary.write_text(json.dumps(bound))
    temporary.replace(path)


async def _handle_signals(supervisor: Supervisor, directory: Path) -> None:
    # Stays subscribed after the first stop so that a second signal cannot
    # interrupt the shutdown; the serving task cancels this when it ends.
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM, signal.SIGHUP) as signals:
        async for signum in signals:
            if signum != signal.SIGHUP:
                supervisor.stop()
                continue
            try:
                principals = load_principals(directory)
            except KeysInvalid as exc:
                # Not an exception trace: the file is wrong, and the message says how.
                log.error(  # noqa: TRY400
                    "principals.reload_failed", reason=str(exc), kept="the previous table"
                )
                continue
            supervisor.reload(principals)


def _require_loopback(endpoint: str, flag: str) -> None:
    """Plain-text planes stay on this machine: --insecure is refused anywhere else."""
    if endpoint.startswith(("ipc://", "inproc://")):
        return
    host = endpoint.removeprefix("tcp://").rsplit(":", 1)[0].strip("[]")
    if host not in ("127.0.0.1", "localhost", "::1") and not host.startswith("127."):
        raise _fail(
            f"{flag} {endpoint}: --insecure runs only on loopback or ipc:// endpoints "
            "(use keys to serve other hosts)"
        )


def _client_keys(
    directory: Path | None, principal: str | None, insecure: bool, endpoint: str, flag: str
) -> ClientKeys | None:
    """The keys a client or actor connects with, or None for an insecure runtime."""
    if insecure:
        _require_loopback(endpoint, flag)
        return None
    chosen = principal or os.environ.get("BATON_PRINCIPAL") or "operator"
    where = keys_dir(directory)
    try:
        return load_client_keys(where, chosen)
    except KeysInvalid as exc:
        raise _fail(
            f"{exc}\n(add the principal with `baton keys add {chosen} --role ROLE --keys "
            f"{where}`, or pass --insecure for a runtime without CURVE)"
        ) from None


@app.command()
def agent(
    spec: Annotated[str, typer.Argument(help="MODULE:CLASS of an Agent or ToolHost subclass.")],
    connect: Annotated[
        str | None,
        typer.Option(help="Agent plane endpoint [default: $BATON_AGENTS or tcp://127.0.0.1:7710]."),
    ] = None,
    concurrency: Annotated[int, typer.Option(min=1, max=4096, help="Tasks run at once.")] = 1,
    name: Annotated[
        str | None,
        typer.Option(
            help="Instance name when insecure [default: role-pid-random]; "
            "with keys the runtime names the session after its principal."
        ),
    ] = None,
    keys: KeysOption = None,
    principal: Annotated[
        str | None,
        typer.Option(
            "--principal",
            help="Whose keys to use [default: the agent's role, or the tool host's name].",
        ),
    ] = None,
    insecure: InsecureOption = False,
    ledger: Annotated[
        str | None,
        typer.Option(
            "--ledger",
            help="A tool host's ledger of side effects: a SQLite PATH or memory:// "
            "[default: $BATON_LEDGERS/NAME.db, else .baton/ledgers/NAME.db].",
        ),
    ] = None,
    trace_file: Annotated[
        Path | None,
        typer.Option(
            help="Append OpenTelemetry spans of the tasks and tool calls the runtime traces, "
            "and of spans handlers start inside them, to this file as JSON lines "
            "(needs the traces extra).",
        ),
    ] = None,
    log_level: LevelOption = "info",
    log_format: FormatOption = "auto",
) -> None:
    """Run an agent or tool host process connected to a runtime."""
    # The supervisor side never loads actors, so they are imported only here.
    from actors import ActorLoadError, declared_role, run_actor  # noqa: PLC0415

    _logging(log_level, log_format)
    tune_collector()
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    endpoint = connect or agents_endpoint()
    try:
        declared = declared_role(spec)
    except ActorLoadError as exc:
        raise _fail(str(exc)) from None
    if not insecure and principal is None:
        principal = declared
    if ledger is None:
        ledgers = Path(os.environ.get("BATON_LEDGERS") or ".baton/ledgers")
        ledger = str(ledgers / f"{declared}.db")
    credentials = _client_keys(keys, principal, insecure, endpoint, "--connect")
    spans = None if trace_file is None else _agent_spans(trace_file, declared)
    try:
        status = run_actor(
            spec,
            endpoint,
            concurrency,
            name=name,
            keys=credentials,
            ledger=ledger,
            kill_points=_kill_points(),
            spans=spans,
            backend_options=event_loop_options(),
        )
    finally:
        if spans is not None:
            spans.close()
    raise typer.Exit(status)


def _agent_spans(path: Path, role: str) -> SpanRecorder:
    exporter = _span_file(path)
    from opentelemetry import trace  # noqa: PLC0415 - the traces extra, present

    from actors import SpanRecorder  # noqa: PLC0415

    recorder = SpanRecorder(exporter, f"baton-{role}")
    # The process's provider, so that spans a handler starts through the OpenTelemetry
    # API are exported too, nested under the step's span.
    trace.set_tracer_provider(recorder.provider)
    return recorder


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


def _client_call(
    endpoint: str | None,
    call: Any,
    keys: Path | None,
    principal: str | None,
    insecure: bool,
) -> Any:
    chosen = endpoint or control_endpoint()
    credentials = _client_keys(keys, principal, insecure, chosen, "--control")

    async def main() -> Any:
        async with ControlClient(chosen, keys=credentials) as client:
            return await call(client)

    try:
        return anyio.run(main)
    except ControlRefused as exc:
        raise _fail(exc.message if exc.code != "unknown_run" else str(exc)) from None
    except RuntimeUnavailable as exc:
        raise _fail(str(exc)) from None


def _exit_for(status: RunStatus) -> int:
    return EXIT_RUN_FAILED if status in ("failed", "halted", "cancelled") else EXIT_OK


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
    keys: KeysOption = None,
    principal: PrincipalOption = None,
    insecure: InsecureOption = False,
) -> None:
    """Start a run; print its id, or with --wait its final record."""
    inputs = _inputs(input)

    async def call(client: ControlClient) -> tuple[str, Any]:
        run_id = await client.start_run(name, inputs)
        if not wait:
            return run_id, None
        if out.is_terminal and not as_json:
            return run_id, await _watch(client, run_id, timeout)
        return run_id, await client.wait_run(run_id, max_wait=timeout)

    run_id, waited = _client_call(control, call, keys, principal, insecure)
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


async def _watch(client: ControlClient, run_id: str, longest: float) -> tuple[Any, bool]:
    """Wait for the run, showing its steps live; the final record and whether time ran out."""
    began = time.monotonic()
    with Live(console=out, transient=True, refresh_per_second=8) as live:
        while True:
            left = longest - (time.monotonic() - began)
            record, timed_out = await client.wait_run(run_id, max_wait=min(0.25, max(0.0, left)))
            live.update(progress_view(record, time.monotonic() - began))
            if not timed_out or left <= 0:
                return record, timed_out and left <= 0


@app.command()
def inspect(
    run_id: Annotated[str, typer.Argument(help="The run's id.")],
    at: Annotated[
        int | None,
        typer.Option(
            "--at", min=1, help="The record as it was at this version (a `seq` of its history)."
        ),
    ] = None,
    as_json: JsonOption = False,
    control: ControlOption = None,
    keys: KeysOption = None,
    principal: PrincipalOption = None,
    insecure: InsecureOption = False,
) -> None:
    """Show the record of a run: status, data with provenance, steps, history.

    With --at, the record is rebuilt from the run's journal as it was then.
    """

    async def call(client: ControlClient) -> Any:
        return await client.get_run(run_id, at=at)

    record = _client_call(control, call, keys, principal, insecure)
    if as_json:
        _print_json(record)
    else:
        render_record(out, record)
    if record.status in TERMINAL_STATUSES and at is None:
        raise typer.Exit(_exit_for(record.status))


@app.command()
def history(
    run_id: Annotated[str, typer.Argument(help="The run's id.")],
    as_json: JsonOption = False,
    control: ControlOption = None,
    keys: KeysOption = None,
    principal: PrincipalOption = None,
    insecure: InsecureOption = False,
) -> None:
    """List a run's events, oldest first; each `seq` can be given to `inspect --at`."""

    async def call(client: ControlClient) -> Any:
        return await client.get_run(run_id)

    record = _client_call(control, call, keys, principal, insecure)
    if as_json:
        _print_json(record.history)
    else:
        out.print(history_table(record.history))


@app.command()
def runs(
    status: Annotated[
        str | None,
        typer.Option(help="running, waiting, stuck, completed, failed, halted or cancelled."),
    ] = None,
    workflow: Annotated[str | None, typer.Option(help="Only runs of this workflow.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=100_000)] = 100,
    as_json: JsonOption = False,
    control: ControlOption = None,
    keys: KeysOption = None,
    principal: PrincipalOption = None,
    insecure: InsecureOption = False,
) -> None:
    """List runs, newest first."""
    statuses: tuple[str, ...] = get_args(RunStatus)
    if status is not None and status not in statuses:
        raise _fail(f"--status must be one of {', '.join(statuses)}, not {status!r}")
    chosen: RunStatus | None = msgspec.convert(status, RunStatus | None)

    async def call(client: ControlClient) -> Any:
        return await client.list_runs(status=chosen, workflow=workflow, limit=limit)

    found = _client_call(control, call, keys, principal, insecure)
    if as_json:
        _print_json(found)
    else:
        render_runs(out, found)


@app.command()
def cancel(
    run_id: Annotated[str, typer.Argument(help="The run's id.")],
    reason: Annotated[str, typer.Option(help="Why, for the run's record.")] = "",
    as_json: JsonOption = False,
    control: ControlOption = None,
    keys: KeysOption = None,
    principal: PrincipalOption = None,
    insecure: InsecureOption = False,
) -> None:
    """Stop a run that has not ended (stuck ones included); its steps in flight are withdrawn."""

    async def call(client: ControlClient) -> Any:
        return await client.cancel_run(run_id, reason)

    _print_record(_client_call(control, call, keys, principal, insecure), as_json)


@app.command()
def resume(
    run_id: Annotated[str, typer.Argument(help="The run's id.")],
    as_json: JsonOption = False,
    control: ControlOption = None,
    keys: KeysOption = None,
    principal: PrincipalOption = None,
    insecure: InsecureOption = False,
) -> None:
    """Let a stuck run carry on from where its journal left it."""

    async def call(client: ControlClient) -> Any:
        return await client.resume_run(run_id)

    _print_record(_client_call(control, call, keys, principal, insecure), as_json)


def _print_record(record: RunRecord, as_json: bool) -> None:
    """A record an operator's action returned: JSON, or its head and last events."""
    if as_json:
        _print_json(record)
    else:
        render_record(out, record, history=5)


@app.command()
def inbox(
    run_id: Annotated[
        str | None, typer.Option("--run", help="Only the decisions this run waits for.")
    ] = None,
    as_json: JsonOption = False,
    control: ControlOption = None,
    keys: KeysOption = None,
    principal: PrincipalOption = None,
    insecure: InsecureOption = False,
) -> None:
    """List the decisions runs wait for that you may see: what, why, by whom, on what values.

    Approvers see the decisions of their groups; operators and viewers see all.
    """

    async def call(client: ControlClient) -> Any:
        return await client.pending(run_id)

    found = _client_call(control, call, keys, principal, insecure)
    if as_json:
        _print_json(found)
    elif found:
        out.print(pending_table(found))
    else:
        out.print("no decision is waiting")


EditOption = Annotated[
    list[str] | None,
    typer.Option(
        "--edit",
        "-e",
        help="KEY=JSON: a value to change before approving (or to give, for skip); repeatable.",
    ),
]
CommentOption = Annotated[str, typer.Option(help="Why; recorded in the run's history.")]


def _edits(edits: list[str] | None) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for edit in edits or []:
        key, sep, raw = edit.partition("=")
        if not sep or not key:
            raise _fail(f"--edit {edit!r}: expected KEY=JSON")
        try:
            values[key] = msgspec.json.decode(raw)
        except msgspec.DecodeError as exc:
            raise _fail(f"--edit {key}: the value is not JSON: {exc}") from None
    try:
        return dict(msgspec.convert(values, Data))
    except msgspec.ValidationError as exc:
        raise _fail(f"--edit: {exc}") from None


def _decide(
    run_id: str,
    step: str,
    decision: DecisionKind,
    comment: str,
    values: dict[str, Any],
    options: tuple[str | None, Path | None, str | None, bool],
    as_json: bool,
) -> None:
    """Fetch the open decision, show what is decided, and decide exactly that version."""

    async def call(client: ControlClient) -> Any:
        shown = [p for p in await client.pending(run_id) if p.step == step]
        if not shown:
            raise ControlRefused(
                "wrong_state", f"run {run_id!r} waits for no decision on step {step!r} you may see"
            )
        return shown[0], await client.decide(shown[0], decision, comment=comment, values=values)

    control, keys, principal, insecure = options
    shown, record = _client_call(control, call, keys, principal, insecure)
    if as_json:
        _print_json(record)
        return
    out.print(pending_table([shown]))
    out.print(f"{decision}: recorded for step {step} (digest {shown.digest})", highlight=False)
    render_record(out, record, history=5)


@app.command()
def approve(
    run_id: Annotated[str, typer.Argument(help="The run's id.")],
    step: Annotated[str, typer.Argument(help="The step whose checkpoint to approve.")],
    comment: CommentOption = "",
    edit: EditOption = None,
    as_json: JsonOption = False,
    control: ControlOption = None,
    keys: KeysOption = None,
    principal: PrincipalOption = None,
    insecure: InsecureOption = False,
) -> None:
    """Approve a checkpoint, optionally editing the values under review (needs approver:GROUP)."""
    _decide(
        run_id,
        step,
        "approve",
        comment,
        _edits(edit),
        (control, keys, principal, insecure),
        as_json,
    )


@app.command()
def reject(
    run_id: Annotated[str, typer.Argument(help="The run's id.")],
    step: Annotated[str, typer.Argument(help="The step whose checkpoint to reject.")],
    comment: CommentOption = "",
    as_json: JsonOption = False,
    control: ControlOption = None,
    keys: KeysOption = None,
    principal: PrincipalOption = None,
    insecure: InsecureOption = False,
) -> None:
    """Reject a checkpoint: the run takes the checkpoint's reject route (halt, or a step)."""
    _decide(run_id, step, "reject", comment, {}, (control, keys, principal, insecure), as_json)


@app.command()
def escalation(
    run_id: Annotated[str, typer.Argument(help="The run's id.")],
    step: Annotated[str, typer.Argument(help="The step whose failure was escalated.")],
    choice: Annotated[
        str, typer.Argument(help="retry, skip (with --edit for each output) or abort.")
    ],
    comment: CommentOption = "",
    edit: EditOption = None,
    as_json: JsonOption = False,
    control: ControlOption = None,
    keys: KeysOption = None,
    principal: PrincipalOption = None,
    insecure: InsecureOption = False,
) -> None:
    """Decide an escalated failure: try the step again, pass it with given outputs, or stop."""
    if choice not in ("retry", "skip", "abort"):
        raise _fail(f"the choice must be retry, skip or abort, not {choice!r}")
    decision: DecisionKind = (
        "retry" if choice == "retry" else "skip" if choice == "skip" else "abort"
    )
    _decide(
        run_id, step, decision, comment, _edits(edit), (control, keys, principal, insecure), as_json
    )


def _duration(text: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    number, unit = text[:-1], text[-1:]
    if unit not in units or not number.replace(".", "", 1).isdigit():
        raise _fail(f"--since {text!r}: expected a number and a unit, e.g. 30m, 12h or 7d")
    return float(number) * units[unit]


@app.command()
def report(
    name: Annotated[
        str | None, typer.Argument(help="The workflow to report on [default: each loaded].")
    ] = None,
    workflow: Annotated[
        list[str] | None,
        typer.Option("--workflow", "-w", help="MODULE:ATTR of the workflow; repeatable."),
    ] = None,
    previous: Annotated[
        list[str] | None, typer.Option(help="MODULE:ATTR of an earlier version; repeatable.")
    ] = None,
    store: Annotated[
        str, typer.Option(help="The runtime's journal: sqlite:///PATH.")
    ] = DEFAULT_STORE,
    since: Annotated[
        str | None, typer.Option(help="Only runs started this long ago or later: 30m, 12h, 7d.")
    ] = None,
    plot: Annotated[
        Path | None,
        typer.Option(help="Also draw the report into this PNG file (needs the report extra)."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """How a workflow's runs went, from its journal: outcomes, each step, where it breaks.

    Reads the journal file without writing to it, so it may run beside the runtime.
    """
    if not store.startswith("sqlite:///"):
        raise _fail(f"--store {store}: a report reads a SQLite journal")
    oldest = 0.0 if since is None else time.time() - _duration(since)
    try:
        catalog = Catalog(_graphs(workflow or []), _graphs(previous or []))
        journals = read_journals(Path(store.removeprefix("sqlite:///").partition("?")[0]))
    except BatonError as exc:
        raise _fail(str(exc)) from None
    if not catalog.current:
        raise _fail("name the workflow with --workflow MODULE:ATTR, as the runtime loads it")
    graphs = [g for g in catalog.current.values() if name is None or g.name == name]
    if not graphs:
        raise _fail(f"no workflow {name!r} among those given: {', '.join(catalog.current)}")
    runs: list[Run] = []
    unreadable = 0
    for records in journals.values():
        try:
            run = replay(catalog, records)
        except JournalUnreadable:
            unreadable += 1
            continue
        if run.created_at >= oldest:
            runs.append(run)
    reports = [build_report(graph, runs) for graph in graphs]
    if plot is not None:
        for figures in reports:
            target = (
                plot if len(reports) == 1 else plot.with_stem(f"{plot.stem}-{figures.workflow}")
            )
            try:
                plot_report(figures, target)
            except BatonError as exc:
                raise _fail(str(exc)) from None
            err.print(f"chart written to {target}", highlight=False)
    if as_json:
        _print_json(reports)
        return
    for figures in reports:
        render_report(out, figures)
    if unreadable:
        err.print(f"{unreadable} run(s) left out: their workflow version is not given")


@app.command()
def backup(
    destination: Annotated[Path, typer.Argument(help="The new file to write the copy to.")],
    store: Annotated[
        str, typer.Option(help="The runtime's store: sqlite:///PATH.")
    ] = DEFAULT_STORE,
) -> None:
    """Copy a journal safely while its runtime runs (SQLite's online backup), then check it."""
    if not store.startswith("sqlite:///"):
        raise _fail(f"--store {store}: only a SQLite journal can be backed up")
    source = Path(store.removeprefix("sqlite:///").partition("?")[0])
    try:
        count = store_backup(source, destination)
    except BatonError as exc:
        raise _fail(str(exc)) from None
    out.print(f"{destination}: {count:,} events, integrity ok", highlight=False, soft_wrap=True)


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
    from runtime.cli._demo import run_demo  # noqa: PLC0415 - the demo needs the checkout's examples

    raise typer.Exit(run_demo(out, err, runs_per_kind=runs_per_kind))


def main() -> None:
    """Entry point of the `baton` script."""
    app()
