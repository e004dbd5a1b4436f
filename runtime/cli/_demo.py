"""`baton demo [NAME]`: an example workflow end to end, as separate processes.

customer_ops (the default) is run here; the other blueprints by `_demo_blueprints`.

Its runtime listens on fixed loopback ports, the runtime's usual ones unless
told otherwise, so that what it prints can be followed by hand; a port
another process holds is named, with the option that moves it.
"""

from __future__ import annotations

import contextlib
import importlib.util
import inspect
import os
import socket
import tempfile
import time
from pathlib import Path
from typing import Annotated, Any

import anyio
import typer
from rich.console import Console
from rich.text import Text

from examples._models import Actor, served
from protocols import TERMINAL_STATUSES, ClientKeys, RunRecord
from runtime.cli import _console
from runtime.cli._console import fail, usage_errors
from runtime.cli._demo_blueprints import BLUEPRINTS, run_blueprint_demo, start_actors
from runtime.cli._options import option, with_options
from runtime.cli._render import model_summary, pending_blocks, status_text
from runtime.cli._sheets import Sheet, show
from runtime.client._client import ControlClient
from runtime.launch import ProcessGroup
from runtime.security._keys import add_principal, init_keys, load_client_keys
from runtime.workflow._diagram import mermaid
from runtime.workflow._graph import compile_workflow

NAMES = ("customer_ops", *BLUEPRINTS)
"""What `baton demo NAME` runs: customer_ops (the default), or another blueprint."""
WORKFLOW = "examples.customer_ops:workflow"
AGENTS = "examples.customer_ops.agents"
ACTORS: tuple[Actor, ...] = (
    ("examples.customer_ops.backoffice:Backoffice", "backoffice", "tools:backoffice", 4),
    (f"{AGENTS}:Classifier", "classifier", "classifier", 1),
    (f"{AGENTS}:BillingAgent", "billing", "billing", 1),
    (f"{AGENTS}:HistoryAgent", "history", "history", 1),
    (f"{AGENTS}:PolicyAgent", "policy", "policy", 1),
    (f"{AGENTS}:Writer", "writer-1", "writer", 1),
    (f"{AGENTS}:Writer", "writer-2", "writer", 1),
    (f"{AGENTS}:Checker", "checker", "checker", 1),
    (f"{AGENTS}:Sender", "sender", "sender", 1),
)
"""Each actor process: class, principal (its own key), the role the key holds, concurrency."""
MODELS = {
    "classifier": "examples.customer_ops.model_agents:ModelClassifier",
    "writer": "examples.customer_ops.model_agents:ModelWriter",
}
"""The roles a model serves when a model endpoint is configured, and the agent of each."""
JOURNAL = Path(".baton/demo.db")
"""Where the demo's runtime journals, so that `baton report` can read the runs afterwards."""
APPROVER = "fin"
"""The demo's approver: a principal of group finance, who reviews refunds over the limit."""
PAGES = "desk"
"""Whom `baton demo --ui` serves the pages as: an operator who also approves for finance."""
HOST = "127.0.0.1"
AGENTS_PORT = 7710
CONTROL_PORT = 7711
REQUESTS: list[dict[str, Any]] = [
    {"customer_id": "c-100", "name": "Ada", "text": "I was charged twice for October"},
    {"customer_id": "c-200", "name": "Grace", "text": "Why is my invoice higher?"},
    {"customer_id": "c-300", "name": "Alan", "text": "How do I change my password?"},
    {
        "customer_id": "c-404",
        "name": "Barbara",
        "text": "Refund please, the payment went through twice",
    },
]


PLANES = {"agents": "agent", "control": "control"}
"""Each plane's option name, and the plane as the runtime calls it."""


def _port(name: str, default: int) -> inspect.Parameter:
    """`--NAME-port`, also read from `$BATON_DEMO_NAME_PORT`."""
    return option(
        f"{name}_port",
        Annotated[
            int,
            typer.Option(
                min=0,
                max=65535,
                envvar=f"BATON_DEMO_{name.upper()}_PORT",
                help=f"Loopback port of the demo runtime's {PLANES[name]} plane (0: a free one).",
            ),
        ],
        default,
    )


def _endpoints(agents_port: int, control_port: int) -> tuple[str, str]:
    """The two planes' endpoints; an exit naming the port when one is taken or both are one."""
    if agents_port == control_port != 0:
        raise fail(
            f"--agents-port and --control-port are both {agents_port}: each plane needs its own"
        )
    for port, name in ((agents_port, "agents"), (control_port, "control")):
        if port and _taken(port):
            raise fail(
                f"port {port} on {HOST} (the demo runtime's {PLANES[name]} plane) is in use by "
                f"another process; move it with `baton demo --{name}-port PORT` or "
                f"`make demo {name.upper()}_PORT=PORT`"
            )
    return f"tcp://{HOST}:{agents_port}", f"tcp://{HOST}:{control_port}"


@with_options(
    [_port("agents", AGENTS_PORT), _port("control", CONTROL_PORT)], _endpoints, into="planes"
)
def demo(
    name: Annotated[
        str,
        typer.Argument(
            metavar="NAME", help=f"The blueprint to run: {', '.join(NAMES)}.", show_default=True
        ),
    ] = NAMES[0],
    runs_per_kind: Annotated[
        int, typer.Option("--runs", min=1, max=50, help="Requests of each kind to run.")
    ] = 1,
    cluster: Annotated[
        int,
        typer.Option(
            min=0,
            max=9,
            help="Run N runtimes sharing a PostgreSQL the demo starts itself (needs the "
            "postgres-server extra), kill one with runs in flight, and show the others take "
            "its runs over; the ports are then free ones.",
            show_default="one runtime on SQLite",
        ),
    ] = 0,
    ui: Annotated[
        bool,
        typer.Option(
            "--ui",
            help="Then keep the runtime and its agents up, leave one refund waiting in the "
            "inbox, and serve the pages (`baton ui`, the ui extra) until Ctrl-C.",
        ),
    ] = False,
    *,
    planes: tuple[str, str],
) -> None:
    """Launch a runtime and a blueprint's agents as processes, run requests, show records."""
    if name not in NAMES:
        raise fail(f"no blueprint {name!r}: baton demo runs one of {', '.join(NAMES)}")
    if name != NAMES[0]:
        if cluster or ui:
            raise fail(
                f"--cluster and --ui show customer_ops; run `baton demo {name}` without them"
            )
        agents, control = planes
        raise typer.Exit(
            run_blueprint_demo(
                _console.out, name, agents=agents, control=control, runs_per_kind=runs_per_kind
            )
        )
    if cluster:
        raise typer.Exit(_cluster_demo(_console.out, cluster, runs_per_kind))
    if ui and importlib.util.find_spec("starlette") is None:
        raise fail("--ui needs the pages' extra: pip install 'baton-runtime[ui]'")
    agents, control = planes
    raise typer.Exit(
        run_demo(_console.out, agents=agents, control=control, runs_per_kind=runs_per_kind, ui=ui)
    )


def _cluster_demo(out: Console, runtimes: int, runs_per_kind: int) -> int:
    if runtimes < 2:
        raise fail("--cluster needs at least 2 runtimes, to show one taking over another's runs")
    if importlib.util.find_spec("psycopg") is None:
        raise fail("--cluster needs PostgreSQL: pip install 'baton-runtime[postgres-server]'")
    from runtime.cli._demo_cluster import run_cluster_demo  # noqa: PLC0415 - with the extra

    return run_cluster_demo(
        out,
        runtimes=runtimes,
        workflow=WORKFLOW,
        actors=served(ACTORS, MODELS, os.environ),
        requests=[r for _ in range(runs_per_kind * 3) for r in REQUESTS],
        approver=APPROVER,
        summarise=_summarise,
    )


def _taken(port: int) -> bool:
    """Whether another socket listens on the port, asked the way the runtime will bind it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # As ZeroMQ does: a port whose last connections linger in TIME_WAIT is free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
        except OSError:
            return True
    return False


def _shown(endpoint: str) -> str:
    return f"a free port of {HOST}" if endpoint.endswith(":0") else endpoint


def run_demo(
    out: Console, *, agents: str, control: str, runs_per_kind: int = 1, ui: bool = False
) -> int:
    """Launch, run, show, shut down (with `ui`, once the pages are closed). 0 when every run
    completed."""
    from examples.customer_ops import workflow  # noqa: PLC0415 - examples live in the checkout

    actors = served(ACTORS, MODELS, os.environ)

    out.print(
        f"ports: the runtime's agent plane on {_shown(agents)}, its control plane on "
        f"{_shown(control)} (move them with --agents-port and --control-port, or "
        "make demo AGENTS_PORT=... CONTROL_PORT=...)",
        highlight=False,
        soft_wrap=True,
    )
    out.rule("[bold]the map: customer_ops as Mermaid")
    out.print(mermaid(compile_workflow(workflow)), highlight=False, markup=False)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="baton-demo-") as folder:
        keys = Path(folder) / "keys"
        operator = init_keys(keys)
        for _, principal, role, _ in actors:
            add_principal(keys, principal, [role])
        add_principal(keys, APPROVER, ["approver:finance"])
        add_principal(keys, PAGES, ["operator", "approver:finance"])
        approver = load_client_keys(keys, APPROVER)
        with ProcessGroup(Path(folder), keys=keys) as group:
            JOURNAL.parent.mkdir(parents=True, exist_ok=True)
            with usage_errors():
                runtime = group.start_runtime(
                    [WORKFLOW],
                    heartbeat=0.5,
                    store=f"sqlite:///{JOURNAL.resolve()}",
                    agents=agents,
                    control=control,
                )
            out.rule("[bold]processes")
            out.print(
                f"keys: {keys} (runtime key pair, operator {operator.name!r}, "
                f"one key per actor); both planes use CURVE"
            )
            out.print(f"runtime pid {runtime.process.pid}: agents {runtime.agents}, "
                      f"control {runtime.control}")  # fmt: skip
            start_actors(out, group, runtime.agents, actors, set(MODELS.values()))
            records = anyio.run(
                _submit, out, runtime.control, runtime.operator, approver, runs_per_kind
            )
            out.rule("[bold]the records")
            for record in records:
                _summarise(out, record)
            _table(out, records)
            if ui:
                _serve_pages(out, group, runtime.control, runtime.operator)
        leftovers = [p.pid for _, p in group.children if p.poll() is None]
    elapsed = time.monotonic() - started
    out.rule("[bold]shut down")
    out.print(
        f"{len(records)} runs in {elapsed:.1f}s; {len(group.children)} processes stopped, "
        f"{len(leftovers)} left running"
    )
    out.print("README.md shows the same by hand: a runtime, agents, `baton run --wait`.")
    out.print(
        f"The runs are in {JOURNAL} (every demo adds its own); how they went, step by step:\n"
        f"  baton report --store sqlite:///{JOURNAL} --workflow {WORKFLOW}",
        highlight=False,
    )
    completed = all(r.status == "completed" for r in records)
    return 0 if completed and not leftovers else 1


async def _submit(
    out: Console,
    control: str,
    operator: ClientKeys | None,
    approver: ClientKeys,
    runs_per_kind: int,
) -> list[RunRecord]:
    """Start the runs as the operator; approve what waits in the inbox as the approver."""
    async with ControlClient(control, keys=operator) as client:
        ids = [
            await client.start_run("customer_ops", {"request": request})
            for _ in range(runs_per_kind)
            for request in REQUESTS
        ]
        waiting = await _await_decisions(client, ids)
        async with ControlClient(control, keys=approver) as reviewer:
            if waiting:
                out.rule(f"[bold]the inbox of {approver.principal!r} (role approver:finance)")
                shown = await reviewer.pending()
                out.print(pending_blocks(shown))
                for item in shown:
                    await reviewer.decide(item, "approve", comment="duplicate charge confirmed")
                    out.print(
                        f"{approver.principal} approved {item.step} of run {item.run_id} "
                        f"(digest {item.digest})",
                        highlight=False,
                    )
        records = []
        for run_id in ids:
            record, _ = await client.wait_run(run_id, max_wait=30)
            records.append(record)
        return records


def _serve_pages(
    out: Console, group: ProcessGroup, control: str, operator: ClientKeys | None
) -> None:
    """Serve the pages beside the demo's processes, one refund waiting, until Ctrl-C."""

    async def leave_one_waiting() -> str:
        async with ControlClient(control, keys=operator) as client:
            run_id = await client.start_run("customer_ops", {"request": REQUESTS[0]})
            await _await_decisions(client, [run_id])
            return run_id

    waiting = anyio.run(leave_one_waiting)
    served = group.start_ui(control, principal=PAGES)
    out.rule("[bold]the pages")
    out.print(f"open {served.url}", soft_wrap=True, highlight=False)
    out.print(
        f"acting as {PAGES!r} (operator, approver:finance): run {waiting} waits in the inbox "
        "for you. Ctrl-C stops the pages and every process of the demo.",
        highlight=False,
    )
    with contextlib.suppress(KeyboardInterrupt):
        served.process.wait()


async def _await_decisions(client: ControlClient, ids: list[str]) -> int:
    """Wait until every run has ended or waits for a decision; how many wait."""
    with anyio.fail_after(30):
        while True:
            summaries = [await client.get_run(run_id) for run_id in ids]
            held = sum(1 for r in summaries if r.pending)
            if all(r.pending or r.status in TERMINAL_STATUSES for r in summaries):
                return held
            await anyio.sleep(0.05)


def _summarise(out: Console, record: RunRecord) -> None:
    # Read as Any: narrowing the deep `Value` union with isinstance makes mypy crawl.
    request: Any = record.inputs.get("request")
    customer = request.get("customer_id", "?") if isinstance(request, dict) else "?"
    route = [h.message for h in record.history if h.event == "decision_taken"]
    retries = [h for h in record.history if h.event == "retry_scheduled"]
    title = Text.assemble(("run ", "bold"), record.run_id, "  ", status_text(record.status),
                          f"  customer {customer}")  # fmt: skip
    out.print(title)
    out.print(f"  route: {' | '.join(route)}", highlight=False)
    if retries:
        out.print(f"  retries: {len(retries)} ({retries[0].step}: {retries[0].message})")
    models = model_summary(record.history)
    if models:
        out.print(f"  {models}", highlight=False)
    for key, prov in record.provenance.items():
        flags = f"  [yellow]⚑ {'; '.join(prov.flags)}[/yellow]" if prov.flags else ""
        approved = f"  [green]✔ approved by {prov.approved_by}[/green]" if prov.approved_by else ""
        if prov.attempt == 0:  # an input: its rationale says who gave it
            out.print(f"  {key:<12} input: {prov.rationale}", highlight=False)
            continue
        out.print(
            f"  {key:<12} by {prov.step}#{prov.attempt} on {prov.agent or 'policy'} "
            f"(confidence {prov.confidence:.2f}): {prov.rationale}{approved}{flags}",
            highlight=False,
        )
    for entry in record.history:
        if entry.event == "decision_made":
            out.print(
                f"  decision on {entry.step}: {entry.message} by {entry.principal} at "
                f"{entry.at:.3f}, on version {entry.detail.get('version')} "
                f"(digest {entry.detail.get('digest')})",
                highlight=False,
            )


def _table(out: Console, records: list[RunRecord]) -> None:
    table = Sheet(
        "summary",
        ("run", "status", "decision", "message", "open flags"),
        whole=("run", "status", "decision", "message"),
    )
    for record in records:
        decision: Any = record.data.get("decision")
        action = decision.get("action", "") if isinstance(decision, dict) else ""
        table.add(
            record.run_id,
            status_text(record.status),
            str(action),
            str(_field(record, "message_id")),
            Text(", ".join(sorted({f for fs in record.flags.values() for f in fs})), "yellow"),
        )
    show(out, table, titled=True)


def _field(record: RunRecord, key: str) -> Any:
    # Typed as Any: a default on `.get` makes mypy join it with the deep `Value` union.
    found: Any = record.data.get(key)
    return "" if found is None else found
