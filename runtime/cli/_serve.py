"""`baton runtime`: the supervisor process, wired to its store, keys, metrics and traces."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import anyio
import anyio.abc
import structlog
import typer
import zmq
from rich.markup import escape

from protocols import DEFAULT_MAX_FRAME
from runtime.cli._connection import endpoint_list, require_loopback
from runtime.cli._console import EXIT_OK, EXIT_RUN_FAILED, EXIT_USAGE, err, fail, usage_errors
from runtime.cli._options import (
    DEFAULT_AGENTS,
    DEFAULT_CONTROL,
    DEFAULT_KEYS,
    DEFAULT_STORE,
    AgentsOption,
    ControlOption,
    InsecureOption,
    KeysOption,
    logged,
)
from runtime.cli._process import event_loop_options, kill_points, span_file, tune_collector
from runtime.cli._workflows import load_graphs
from runtime.errors import StoreError
from runtime.security._certificates import KeysInvalid
from runtime.security._keys import load_principals, load_server_keys
from runtime.store import open_store
from runtime.supervisor._config import RuntimeConfig, Security
from runtime.supervisor._supervisor import AuthenticatorDied, Supervisor

if TYPE_CHECKING:
    from runtime.observe._prometheus import PrometheusMetrics
    from runtime.observe._tracing import RunTracer

log = structlog.get_logger("baton.runtime")


@logged
def runtime(
    workflow: Annotated[
        list[str], typer.Option("--workflow", "-w", help="MODULE:ATTR of a workflow; repeatable.")
    ],
    agents: AgentsOption = DEFAULT_AGENTS,
    control: ControlOption = DEFAULT_CONTROL,
    store: Annotated[
        str,
        typer.Option(
            help="The journal runs are recovered from: sqlite:///PATH, optionally ending in "
            "?synchronous=FULL or ?synchronous=NORMAL; or memory://, gone with the process."
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
            "started on it finish on it (new runs start on --workflow); repeatable.",
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
    restart_window: Annotated[
        float, typer.Option(min=0.1, help="Seconds the restart budget counts over.")
    ] = 60.0,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            min=0,
            max=65535,
            help="Serve Prometheus metrics at http://HOST:PORT/metrics (0: a free port); "
            "needs the metrics extra.",
            show_default="no metrics",
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
            show_default="no traces",
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
    peer: Annotated[
        list[str] | None,
        typer.Option(
            "--peer",
            envvar="BATON_PEERS",
            help="The agent-plane endpoint of another supervisor of the cluster, as actors "
            "reach it; repeatable or comma-separated. Every actor welcomed here is told of "
            "them and serves them too (with CURVE, every supervisor of a cluster uses the "
            "same runtime key).",
            show_default="none",
        ),
    ] = None,
    keys: KeysOption = DEFAULT_KEYS,
    insecure: InsecureOption = False,
) -> None:
    """Run the supervisor: bind the agent and control planes and run workflows.

    Both planes use CURVE with the key directory's runtime key, and admit only
    its principals; send SIGHUP to reload the principals without dropping
    connections.
    """
    with usage_errors():
        graphs = load_graphs(workflow)
        earlier = load_graphs(previous or [])
        config = RuntimeConfig(
            agents=agents,
            control=control,
            heartbeat=heartbeat,
            max_frame=max_frame,
            rate_limit=rate_limit,
            rate_burst=rate_limit,
            recovery_budget=recovery_budget,
            restart_budget=restart_budget,
            restart_window=restart_window,
            peers=endpoint_list(peer or [], "--peer", insecure=insecure),
        )
        if insecure:
            require_loopback(config.agents, "--agents")
            require_loopback(config.control, "--control")
        security = None if insecure else _server_security(keys)
        opened = open_store(store)
        tracer = None if trace_file is None else _tracer(trace_file, trace_sample)
        metrics = None if metrics_port is None else _metrics(metrics_host, metrics_port)
        supervisor = Supervisor(
            graphs,
            opened,
            config,
            security=security,
            previous=earlier,
            kill_points=kill_points(),
            metrics=metrics,
            tracer=tracer,
        )
    tune_collector()
    extra = {} if metrics is None else {"metrics": f"http://{metrics_host}:{metrics.port}/metrics"}
    try:
        status = anyio.run(
            _serve, supervisor, ready_file, keys, extra, backend_options=event_loop_options()
        )
    finally:
        if metrics is not None:
            metrics.close()
        if tracer is not None:
            tracer.close()
    raise typer.Exit(status)


def _tracer(path: Path, sample: float) -> RunTracer:
    exporter = span_file(path)
    from runtime.observe._tracing import RunTracer  # noqa: PLC0415 - the traces extra, present

    try:
        return RunTracer(exporter, sample=sample)
    except ValueError as exc:
        exporter.shutdown()
        raise fail(f"--trace-sample: {exc}") from None


def _metrics(host: str, port: int) -> PrometheusMetrics:
    """The metrics, served from now on; a clear error without the extra or the port."""
    try:
        from runtime.observe._prometheus import PrometheusMetrics  # noqa: PLC0415 - an optional extra
    except ImportError:
        raise fail(
            "--metrics-port needs prometheus-client: pip install 'baton-runtime[metrics]'"
        ) from None
    metrics = PrometheusMetrics()
    try:
        metrics.serve(host, port)
    except OSError as exc:
        raise fail(f"cannot serve metrics on {host}:{port}: {exc}") from None
    log.info("metrics.serving", url=f"http://{host}:{metrics.port}/metrics")
    return metrics


def _server_security(directory: Path) -> Security:
    try:
        return Security(load_server_keys(directory), load_principals(directory))
    except KeysInvalid as exc:
        raise fail(f"{exc} (or pass --insecure to run without CURVE on loopback)") from None


async def _serve(
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
