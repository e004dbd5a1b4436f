"""`baton runtime`: the supervisor process, wired to its store, keys, metrics and traces."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
from collections.abc import Callable
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
from runtime.cluster._config import DEFAULT_CHECK, DEFAULT_LEASE, ClusterConfig
from runtime.errors import LeaseLapsed, StoreError, StoreUnavailable
from runtime.security._certificates import KeysInvalid
from runtime.security._keys import load_principals, load_server_keys
from runtime.store import Store, open_store
from runtime.store._open import POSTGRES_SCHEMES
from runtime.supervisor._config import RuntimeConfig, Security
from runtime.supervisor._supervisor import AuthenticatorDied, Supervisor

if TYPE_CHECKING:
    from runtime.cluster._membership import ClusterCounters, Membership
    from runtime.observe._prometheus import PrometheusMetrics
    from runtime.observe._tracing import RunTracer

log = structlog.get_logger("baton.runtime")

REJOIN_FIRST = 0.5
"""Seconds before a cluster's runtime that lost its lease first tries to join again."""
REJOIN_MOST = 2.0


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
            "?synchronous=FULL or ?synchronous=NORMAL; memory://, gone with the process; or "
            "postgresql://USER@HOST/DB (the postgres extra), which several runtimes may share "
            "as a cluster."
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
    lease: Annotated[
        float,
        typer.Option(
            min=0.3,
            max=600.0,
            help="With a postgresql:// store: seconds a runtime's lease on its runs lasts "
            "unless renewed; another runtime takes the runs of one that died after it.",
        ),
    ] = DEFAULT_LEASE,
    cluster_check: Annotated[
        float,
        typer.Option(
            min=0.05,
            max=60.0,
            help="With a postgresql:// store: seconds between looks for runs whose owner's "
            "lease lapsed.",
        ),
    ] = DEFAULT_CHECK,
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
        cluster = ClusterConfig(lease=lease, check=min(cluster_check, lease / 3))
        opened = open_store(store)
        tracer = None if trace_file is None else _tracer(trace_file, trace_sample)
        metrics = None if metrics_port is None else _metrics(metrics_host, metrics_port)
        points = kill_points()

    def incarnation() -> Supervisor:
        """A supervisor on the store; in a cluster, a new one each time it rejoins (its
        runs were taken over meanwhile, so nothing of the last one's state is kept)."""
        journal = opened if not supervisors else _reopen(opened)
        # A member joining again binds where the first one did (a port 0 was made a real
        # port then): agents and clients reconnect to the same endpoints.
        bound = (
            config
            if not supervisors
            else dataclasses.replace(
                config, agents=supervisors[0].bound_agents, control=supervisors[0].bound_control
            )
        )
        supervisor = Supervisor(
            graphs,
            journal,
            bound,
            security=security,
            previous=earlier,
            kill_points=points,
            metrics=metrics,
            tracer=tracer,
            membership=_membership(journal, cluster, counters),
        )
        supervisors.append(supervisor)
        return supervisor

    supervisors: list[Supervisor] = []
    counters = _cluster_counters(store)
    tune_collector()
    extra = {} if metrics is None else {"metrics": f"http://{metrics_host}:{metrics.port}/metrics"}
    try:
        status = anyio.run(
            _serve, incarnation, ready_file, keys, extra, backend_options=event_loop_options()
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


def _cluster_counters(url: str) -> ClusterCounters | None:
    """Counts kept across the memberships of this process, for a PostgreSQL store."""
    if not url.startswith(POSTGRES_SCHEMES):
        return None
    from runtime.cluster._membership import ClusterCounters  # noqa: PLC0415 - the postgres extra

    return ClusterCounters()


def _membership(
    store: Store, config: ClusterConfig, counters: ClusterCounters | None
) -> Membership | None:
    """A cluster membership over a PostgreSQL store; none over any other."""
    if counters is None:
        return None
    from runtime.cluster._membership import Membership  # noqa: PLC0415 - the postgres extra
    from runtime.store._postgres import PostgresStore  # noqa: PLC0415 - the postgres extra

    assert isinstance(store, PostgresStore)
    return Membership(store, config, counters=counters)


def _reopen(store: Store) -> Store:
    """A new store on the same database, for a runtime joining its cluster again (its schema
    was checked at start, so this connects only once the new member opens it)."""
    from runtime.store._postgres import PostgresStore  # noqa: PLC0415 - the postgres extra

    assert isinstance(store, PostgresStore)
    return PostgresStore(store.url)


class _Listening:
    """Told by a supervisor that it listens (its planes bound, its store taken up)."""

    def __init__(self) -> None:
        self.event = anyio.Event()

    def started(self, value: None = None) -> None:
        self.event.set()


class _Serving:
    """The supervisor serving now, for the signal handler, and whether a stop was asked."""

    def __init__(self) -> None:
        self.supervisor: Supervisor | None = None
        self.stopping = anyio.Event()

    def stop(self) -> None:
        self.stopping.set()
        if self.supervisor is not None:
            self.supervisor.stop()


async def _serve(
    incarnation: Callable[[], Supervisor],
    ready_file: Path | None,
    directory: Path,
    extra: dict[str, str],
) -> int:
    """Serve until SIGINT or SIGTERM, reloading principals on SIGHUP; the exit status.

    A cluster's runtime whose lease was lost, or whose database went away, starts
    again as a new member once it can, on the same endpoints: agents reconnect to it
    as to a restarted runtime.
    """
    serving = _Serving()
    async with anyio.create_task_group() as signals:
        signals.start_soon(_handle_signals, serving, directory)
        status = None
        backoff = REJOIN_FIRST
        while status is None and not serving.stopping.is_set():
            status = await _serve_once(incarnation(), serving, ready_file, extra)
            if status is None:
                log.warning("runtime.rejoining", retry_in=backoff)
                with anyio.move_on_after(backoff):
                    await serving.stopping.wait()
                backoff = min(backoff * 2, REJOIN_MOST)
        signals.cancel_scope.cancel()
    return EXIT_OK if status is None else status


async def _serve_once(
    supervisor: Supervisor, serving: _Serving, ready_file: Path | None, extra: dict[str, str]
) -> int | None:
    """Serve one supervisor until it stops; its exit status, or None to rejoin the cluster."""
    if supervisor.membership is not None:
        away = await _database_away(supervisor.membership)
        if away is not False:
            return away
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
    rejoin = False
    serving.supervisor = supervisor
    try:
        async with anyio.create_task_group() as tg:
            listening = _Listening()

            async def serve() -> None:
                # A child task, not `tg.start`: what stops it before it listens (a database
                # that is away) must reach the handlers below, not vanish in the cancel.
                try:
                    await supervisor.serve(task_status=listening)
                finally:
                    tg.cancel_scope.cancel()

            tg.start_soon(serve)
            await listening.event.wait()
            if ready_file is not None:
                _write_ready_file(ready_file, supervisor, extra)
            await serving.stopping.wait()
            supervisor.stop()
    except* AuthenticatorDied:
        died = True
    except* (LeaseLapsed, StoreUnavailable) as group:
        if supervisor.membership is None:
            failed.extend(str(exc) for exc in group.exceptions)
        else:
            rejoin = True
            reasons = [str(error) for error in group.exceptions]
            log.warning("runtime.left_cluster", reasons=reasons)
    except* StoreError as group:
        failed.extend(str(exc) for exc in group.exceptions)
    finally:
        serving.supervisor = None
        await supervisor.store.close()
    if rejoin and not serving.stopping.is_set():
        return None
    for reason in failed:
        err.print(
            f"[red]error:[/red] {escape(reason)}; the runtime stopped (nothing it had not "
            "journaled was sent: start it again on the journal to carry on)",
            highlight=False,
            soft_wrap=True,
        )
    return EXIT_RUN_FAILED if died or failed else EXIT_OK


async def _database_away(membership: Membership) -> int | bool | None:
    """False once a cluster member's database answers; else None to try again later, or
    the exit status for a database that refuses this runtime.

    A member binds only once its database answers: a request taken in by a runtime
    that then failed to join would be lost with it, its client left waiting.
    """
    try:
        await membership.store.open()
    except StoreUnavailable as exc:
        log.warning("runtime.database_away", reason=str(exc))
        await membership.store.close()
        return None
    except StoreError as exc:
        await membership.store.close()
        err.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
        return EXIT_RUN_FAILED
    return False


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


async def _handle_signals(serving: _Serving, directory: Path) -> None:
    # Stays subscribed after the first stop so that a second signal cannot
    # interrupt the shutdown; the serving task cancels this when it ends.
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM, signal.SIGHUP) as signals:
        async for signum in signals:
            if signum != signal.SIGHUP:
                serving.stop()
                continue
            supervisor = serving.supervisor
            if supervisor is None:
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
