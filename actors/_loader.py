"""Finding an actor class by name, and running it as a process's whole life."""

from __future__ import annotations

import functools
import importlib
import signal
from collections.abc import Mapping, Sequence
from pathlib import Path

import anyio
import anyio.abc
import structlog
import zmq

from actors._agent import Agent
from actors._cluster import MAX_CONCURRENCY, MAX_SUPERVISORS, serve
from actors._errors import ActorLoadError, RegistrationRefused, describe
from actors._identity import identify
from actors._kill_points import KillPoints
from actors._ledger import Ledger, LedgerError
from actors._spans import Spans
from actors._toolhost import ToolHost
from protocols import ClientKeys

EXIT_OK = 0
EXIT_REFUSED = 2
"""Exit status when retrying cannot help: the actor cannot load, or the runtime refused it."""

_log = structlog.get_logger("baton.actors")


def actor_class(spec: str) -> type[Agent] | type[ToolHost]:
    """Import `"package.module:ClassName"` and return that Agent or ToolHost subclass."""
    module_name, colon, attribute = spec.partition(":")
    if not colon or not module_name or not attribute:
        raise ActorLoadError(spec, "expected 'package.module:ClassName'")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (module_name + ".").startswith(exc.name + "."):
            raise ActorLoadError(spec, f"no module named {exc.name!r}") from None
        raise ActorLoadError(spec, f"importing {module_name!r} failed: {describe(exc)}") from exc
    except Exception as exc:
        raise ActorLoadError(spec, f"importing {module_name!r} failed: {describe(exc)}") from exc
    target: object = module
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            reason = f"module {module_name!r} has no attribute {attribute!r}"
            raise ActorLoadError(spec, reason) from None
    if isinstance(target, type) and issubclass(target, Agent):
        return target
    if isinstance(target, type) and issubclass(target, ToolHost):
        return target
    raise ActorLoadError(spec, f"{attribute} is not an Agent or ToolHost subclass")


def declared_role(spec: str) -> str:
    """The role an agent class declares, or the name a tool host class declares.

    It names the principal an actor runs as when none is given.
    """
    cls = actor_class(spec)
    value = getattr(cls, "role" if issubclass(cls, Agent) else "name", None)
    if not isinstance(value, str) or not value:
        raise ActorLoadError(
            spec, "declares no role" if issubclass(cls, Agent) else "declares no name"
        )
    return value


def load_actor(spec: str) -> Agent | ToolHost:
    """Import `"package.module:ClassName"` and instantiate that class with no arguments."""
    target = actor_class(spec)
    attribute = spec.partition(":")[2]
    try:
        actor = target()
    except Exception as exc:
        raise ActorLoadError(spec, f"{attribute}() failed: {describe(exc)}") from exc
    try:
        identify(actor)
    except ActorLoadError as exc:
        raise ActorLoadError(spec, exc.reason) from None
    return actor


def run_actor(
    spec: str,
    endpoint: str | Sequence[str],
    concurrency: int,
    name: str | None = None,
    *,
    keys: ClientKeys | None = None,
    ledger: str | None = None,
    kill_points: KillPoints | None = None,
    spans: Spans | None = None,
    backend_options: Mapping[str, object] | None = None,
) -> int:
    """Load `spec` and serve it until SIGINT or SIGTERM; return the process exit status.

    `endpoint` is the agent plane of one supervisor or of several, of one cluster:
    the actor serves each, and those they name as their peers (see `serve`).
    0 after a clean stop; 2 when the actor cannot load, its ledger cannot open,
    ZeroMQ cannot use an endpoint, or a supervisor refused it (including its key).
    `keys` make the connections CURVE-encrypted (every supervisor of a cluster
    uses the same server key); without them the runtime must be insecure. A tool host
    keeps its effects in the `ledger` (a SQLite path, or `memory://`); agents
    ignore it. `kill_points` are places to die at, rehearsing a crash there
    (see `actors.KillPoints`). `spans` traces the tasks and tool calls that the
    runtime traces (see `actors.SpanRecorder`). `backend_options` go to `anyio.run`
    (the process owner picks the event loop).
    """
    if not 1 <= concurrency <= MAX_CONCURRENCY:
        _log.error("actor.bad_concurrency", concurrency=concurrency, limit=MAX_CONCURRENCY)
        return EXIT_REFUSED
    endpoints = [endpoint] if isinstance(endpoint, str) else list(endpoint)
    if not 1 <= len(endpoints) <= MAX_SUPERVISORS:
        _log.error("actor.bad_endpoints", endpoints=len(endpoints), limit=MAX_SUPERVISORS)
        return EXIT_REFUSED
    try:
        actor = load_actor(spec)
    except ActorLoadError as exc:
        _log.error("actor.load_failed", spec=spec, reason=exc.reason)
        return EXIT_REFUSED
    effects: Ledger | None = None
    if isinstance(actor, ToolHost) and ledger is not None:
        try:
            effects = Ledger(None if ledger == "memory://" else Path(ledger))
        except LedgerError as exc:
            _log.error("actor.ledger_failed", ledger=exc.path, reason=exc.reason)
            return EXIT_REFUSED
        _log.info("actor.ledger", ledger=effects.description)
    serving = functools.partial(
        _serve_until_signalled,
        actor,
        endpoints,
        concurrency=concurrency,
        name=name,
        keys=keys,
        ledger=effects,
        kill_points=kill_points,
        spans=spans,
    )
    return anyio.run(serving, backend_options=dict(backend_options or {}))


async def _serve_until_signalled(
    actor: Agent | ToolHost,
    endpoints: Sequence[str],
    *,
    concurrency: int,
    name: str | None,
    keys: ClientKeys | None,
    ledger: Ledger | None,
    kill_points: KillPoints | None,
    spans: Spans | None,
) -> int:
    stop = anyio.Event()
    status = EXIT_OK
    async with anyio.create_task_group() as tg:
        # Subscribed before serving, so that a signal sent once registered is never missed.
        await tg.start(_set_on_signal, stop)
        try:
            await serve(
                actor,
                endpoint=endpoints,
                name=name,
                concurrency=concurrency,
                stop=stop,
                keys=keys,
                ledger=ledger,
                kill_points=kill_points,
                spans=spans,
            )
        except ActorLoadError as exc:
            _log.error("actor.load_failed", spec=exc.target, reason=exc.reason)
            status = EXIT_REFUSED
        except RegistrationRefused:
            status = EXIT_REFUSED
        except zmq.ZMQError:
            # Logged with the endpoint where it failed: a command line to fix.
            status = EXIT_REFUSED
        finally:
            if ledger is not None:
                ledger.close()
        tg.cancel_scope.cancel()
    return status


async def _set_on_signal(
    stop: anyio.Event, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
) -> None:
    # Stays subscribed after the first signal so that a second one cannot
    # interrupt the teardown with KeyboardInterrupt.
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        task_status.started()
        async for signum in signals:
            _log.info("actor.signal", signal=signal.Signals(signum).name)
            stop.set()
