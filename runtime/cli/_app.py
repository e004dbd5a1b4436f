"""The `baton` command: every subcommand, in the order `baton --help` lists them."""

from __future__ import annotations

from runtime.cli._agent import agent
from runtime.cli._cluster import cluster
from runtime.cli._decisions import approve, escalation, inbox, reject
from runtime.cli._demo import demo
from runtime.cli._fork import fork
from runtime.cli._journal import backup, report
from runtime.cli._keys import keys_app
from runtime.cli._options import command_group
from runtime.cli._roster import agents
from runtime.cli._runs import cancel, history, inspect, resume, run, runs
from runtime.cli._serve import runtime
from runtime.cli._ui import ui
from runtime.cli._workflows import diagram, protocol, validate

app = command_group(
    "baton", "Baton: run explicit multi-agent workflows with one authoritative record per run."
)
for command in (
    runtime,
    agent,
    run,
    inspect,
    history,
    runs,
    cancel,
    resume,
    fork,
    inbox,
    approve,
    reject,
    escalation,
    agents,
    cluster,
    report,
    ui,
    backup,
    validate,
    diagram,
    protocol,
    demo,
):
    app.command()(command)
app.add_typer(keys_app, name="keys")


def main() -> None:
    """Entry point of the `baton` script."""
    app()
