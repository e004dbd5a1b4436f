"""`baton demo NAME` for the blueprints beside customer_ops: month_end_close, lead_pipeline.

Each blueprint's `demo` module says what to run: its actor processes, its
people and their roles, batches of requests, and who decides what waits. This
module runs that as `baton demo` runs customer_ops: its own keys, the runtime
and every actor a process of its own, the people as control-plane clients,
each decision taken by the verified key of the person named. A person the
runtime refuses (a preparer approving its own journals) is shown refused, and
the next one named decides.
"""

from __future__ import annotations

import importlib
import os
import tempfile
import time
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import anyio
from rich.console import Console
from rich.text import Text

from protocols import TERMINAL_STATUSES, ClientKeys, PendingDecision, RunRecord
from runtime.cli._console import usage_errors
from runtime.cli._render import model_summary, status_text
from runtime.cli._sheets import Sheet, show
from runtime.client._client import ControlClient, ControlRefused
from runtime.launch import ProcessGroup
from runtime.security._keys import add_principal, init_keys, load_client_keys
from runtime.workflow._diagram import mermaid
from runtime.workflow._graph import compile_workflow

BLUEPRINTS = ("month_end_close", "lead_pipeline")
"""The blueprints this module runs; each is `examples.NAME` with a `demo` module."""
SETTLE_LIMIT = 60.0
"""Seconds a batch may take to end, its decisions included."""


@dataclass(frozen=True, slots=True)
class Scenario:
    """A blueprint's demo module, read once and typed."""

    name: str
    actors: tuple[tuple[str, str, str, int], ...]
    people: dict[str, tuple[str, ...]]
    starter: str
    batches: tuple[tuple[str, tuple[dict[str, Any], ...]], ...]
    reviewers: dict[str, tuple[str, ...]]
    comments: dict[str, str]
    columns: tuple[tuple[str, str], ...]
    note: str
    models: frozenset[str]
    """The actor classes that are model agents, served when a model endpoint is set."""

    @classmethod
    def load(cls, name: str) -> Scenario:
        module: ModuleType = importlib.import_module(f"examples.{name}.demo")
        return cls(
            name=name,
            # A blueprint may serve a role by a model when an endpoint is configured.
            actors=tuple(module.actors(os.environ) if hasattr(module, "actors") else module.ACTORS),
            people=dict(module.PEOPLE),
            starter=str(module.STARTER),
            batches=tuple(module.BATCHES),
            reviewers=dict(module.REVIEWERS),
            comments=dict(module.COMMENTS),
            columns=tuple(module.COLUMNS),
            note=str(module.NOTE),
            models=frozenset(getattr(module, "MODELS", {}).values()),
        )

    @property
    def spec(self) -> str:
        return f"examples.{self.name}:workflow"

    @property
    def journal(self) -> Path:
        """Each blueprint journals apart, so that no demo's runtime meets another's runs."""
        return Path(f".baton/demo-{self.name}.db")

    def comment(self, step: str) -> str:
        return self.comments.get(step, self.comments.get(step.split("_", 1)[0], "approved"))


def run_blueprint_demo(
    out: Console, name: str, *, agents: str, control: str, runs_per_kind: int = 1
) -> int:
    """Launch, run every batch, decide what waits, show, shut down. 0 when every run
    completed and no process was left running."""
    scenario = Scenario.load(name)
    workflow = importlib.import_module(f"examples.{name}").workflow
    out.print(
        f"ports: the runtime's agent plane on {_shown(agents)}, its control plane on "
        f"{_shown(control)} (move them with --agents-port and --control-port)",
        highlight=False,
        soft_wrap=True,
    )
    out.rule(f"[bold]the map: {name} as Mermaid")
    out.print(mermaid(compile_workflow(workflow)), highlight=False, markup=False)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="baton-demo-") as folder:
        keys = Path(folder) / "keys"
        init_keys(keys)
        for _, principal, role, _ in scenario.actors:
            add_principal(keys, principal, [role])
        for person, roles in scenario.people.items():
            add_principal(keys, person, roles)
        people = {p: load_client_keys(keys, p) for p in [*scenario.people, "operator"]}
        with ProcessGroup(Path(folder), keys=keys) as group:
            scenario.journal.parent.mkdir(parents=True, exist_ok=True)
            with usage_errors():
                runtime = group.start_runtime(
                    [scenario.spec],
                    heartbeat=0.5,
                    store=f"sqlite:///{scenario.journal.resolve()}",
                    agents=agents,
                    control=control,
                )
            out.rule("[bold]processes")
            out.print(f"keys: {keys}; both planes use CURVE; people: " + ", ".join(
                f"{p} ({', '.join(r)})" for p, r in scenario.people.items()))  # fmt: skip
            out.print(f"runtime pid {runtime.process.pid}: agents {runtime.agents}, "
                      f"control {runtime.control}")  # fmt: skip
            start_actors(out, group, runtime.agents, scenario.actors, scenario.models)
            records = anyio.run(_drive, out, scenario, workflow.name, runtime.control, people,
                                runs_per_kind)  # fmt: skip
            out.rule("[bold]the records")
            for record in records:
                summarise(out, record)
            _table(out, scenario, records)
        leftovers = [p.pid for _, p in group.children if p.poll() is None]
    elapsed = time.monotonic() - started
    out.rule("[bold]shut down")
    out.print(scenario.note, highlight=False)
    out.print(
        f"{len(records)} runs in {elapsed:.1f}s; {len(group.children)} processes stopped, "
        f"{len(leftovers)} left running"
    )
    out.print(
        f"The runs are in {scenario.journal}; how they went, step by step:\n"
        f"  baton report --store sqlite:///{scenario.journal} --workflow {scenario.spec}",
        highlight=False,
    )
    completed = all(r.status == "completed" for r in records)
    return 0 if completed and not leftovers else 1


def start_actors(
    out: Console,
    group: ProcessGroup,
    agents: str,
    actors: tuple[tuple[str, str, str, int], ...],
    models: Collection[str],
) -> None:
    """Start each actor process, saying which it is and, for a model agent (its class among
    `models`), which model serves it."""
    for spec, principal, role, concurrency in actors:
        process = group.start_actor(spec, agents, concurrency=concurrency, principal=principal)
        served = ""
        if spec in models:
            model = os.environ.get("BATON_MODEL") or "the agent's own model"
            served = f", served by {model} at {os.environ.get('BATON_MODEL_URL', '')}"
        out.print(
            f"actor pid {process.pid}: {spec.rsplit(':', 1)[-1]} as principal "
            f"{principal!r} (role {role}){served}",
            highlight=False,
        )


def _shown(endpoint: str) -> str:
    return "a free port of 127.0.0.1" if endpoint.endswith(":0") else endpoint


async def _drive(
    out: Console,
    scenario: Scenario,
    workflow: str,
    control: str,
    people: dict[str, ClientKeys],
    runs_per_kind: int,
) -> list[RunRecord]:
    """Start each batch as the starter, decide what waits as the people named, and return
    every record once its run has ended."""
    records: list[RunRecord] = []
    async with ControlClient(control, keys=people[scenario.starter]) as starter:
        for why, requests in scenario.batches:
            out.rule(f"[bold]{why}")
            ids = [
                await starter.start_run(workflow, dict(inputs))
                for inputs in requests
                for _ in range(runs_per_kind)
            ]
            out.print(f"{scenario.starter} started {len(ids)} run(s): {', '.join(ids)}")
            with anyio.fail_after(SETTLE_LIMIT):
                while True:
                    if await _settle(out, scenario, starter, control, people, ids):
                        break
                    await anyio.sleep(0.05)
            for run_id in ids:
                record, _ = await starter.wait_run(run_id, max_wait=SETTLE_LIMIT)
                records.append(record)
    return records


async def _settle(
    out: Console,
    scenario: Scenario,
    starter: ControlClient,
    control: str,
    people: dict[str, ClientKeys],
    ids: list[str],
) -> bool:
    """Decide every decision the runs wait for; whether every run has ended."""
    ended = True
    for run_id in ids:
        summary = await starter.get_run(run_id)
        if summary.status in TERMINAL_STATUSES:
            continue
        ended = False
        for item in await starter.pending(run_id):
            await _decide(out, scenario, control, people, item)
    return ended


async def _decide(
    out: Console,
    scenario: Scenario,
    control: str,
    people: dict[str, ClientKeys],
    item: PendingDecision,
) -> None:
    """Ask each person named for the decision's groups, in turn, until one may decide."""
    names = [p for group in item.approvers for p in scenario.reviewers.get(group, ())]
    why = f" ({item.reason})" if item.reason else ""
    out.print(f"run {item.run_id} waits at {item.step} for {', '.join(item.approvers)}{why}",
              highlight=False)  # fmt: skip
    for name in names:
        async with ControlClient(control, keys=people[name]) as person:
            try:
                await person.decide(item, "approve", comment=scenario.comment(item.step))
            except ControlRefused as refused:
                out.print(f"  {name} may not: refused ({refused.code}): {refused.message}",
                          highlight=False)  # fmt: skip
                continue
        out.print(f"  {name} approved: {scenario.comment(item.step)!r}", highlight=False)
        return


def summarise(out: Console, record: RunRecord) -> None:
    """A run's record in a few lines: route, retries, each value's provenance, decisions."""
    title = Text.assemble(("run ", "bold"), record.run_id, "  ", status_text(record.status))
    out.print(title)
    route = [h.message for h in record.history if h.event == "decision_taken"]
    if route:
        out.print(f"  route: {' | '.join(route)}", highlight=False)
    retries: dict[str, int] = {}
    for entry in record.history:
        if entry.event == "retry_scheduled":
            retries[entry.step] = retries.get(entry.step, 0) + 1
    if retries:
        counts = ", ".join(f"{step} {n}" for step, n in retries.items())
        out.print(f"  retries: {counts}", highlight=False)
    models = model_summary(record.history)
    if models:
        out.print(f"  {models}", highlight=False)
    for key, prov in record.provenance.items():
        flags = f"  [yellow]⚑ {'; '.join(prov.flags)}[/yellow]" if prov.flags else ""
        approved = f"  [green]✔ approved by {prov.approved_by}[/green]" if prov.approved_by else ""
        if prov.attempt == 0:
            out.print(f"  {key:<16} input: {prov.rationale}", highlight=False)
            continue
        out.print(
            f"  {key:<16} by {prov.step}#{prov.attempt} on {prov.agent or 'policy'} "
            f"(confidence {prov.confidence:.2f}): {prov.rationale}{approved}{flags}",
            highlight=False,
        )
    for entry in record.history:
        if entry.event in ("decision_made", "refused"):
            out.print(f"  {entry.event} on {entry.step} by {entry.principal}: {entry.message}",
                      highlight=False)  # fmt: skip


def _table(out: Console, scenario: Scenario, records: list[RunRecord]) -> None:
    titles = tuple(title for title, _ in scenario.columns)
    table = Sheet("summary", ("run", "status", *titles, "open flags"), whole=("run", "status"))
    for record in records:
        cells = [str(_dig(record, path)) for _, path in scenario.columns]
        flags = sorted({f for fs in record.flags.values() for f in fs})
        table.add(record.run_id, status_text(record.status), *cells,
                  Text("; ".join(flags), "yellow"))  # fmt: skip
    show(out, table, titled=True)


def _dig(record: RunRecord, path: str) -> Any:
    """The value at a dotted key of the record's data or inputs, or "" when there is none."""
    head, *rest = path.split(".")
    # Read as Any: a default on `.get` makes mypy join it with the deep `Value` union.
    found: Any = record.data.get(head)
    if found is None:
        found = record.inputs.get(head)
    for part in rest:
        found = found.get(part) if isinstance(found, dict) else None
    return "" if found is None else found
