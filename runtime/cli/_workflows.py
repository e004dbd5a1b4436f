"""`baton validate`, `diagram` and `protocol`: the map and the wire, without a runtime."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer
from rich.text import Text

from protocols import protocol_schema
from runtime.cli._console import EXIT_OK, EXIT_USAGE, err, fail, out, print_json, usage_errors
from runtime.cli._options import JsonOption
from runtime.cli._render import version_label
from runtime.errors import WorkflowInvalid
from runtime.workflow._diagram import mermaid
from runtime.workflow._graph import Graph, compile_workflow
from runtime.workflow._loader import load_workflows


def load_graphs(references: list[str]) -> list[Graph]:
    """Each workflow the MODULE:ATTR references name, compiled."""
    return [
        compile_workflow(workflow)
        for reference in references
        for workflow in load_workflows(reference)
    ]


def validate(
    reference: Annotated[str, typer.Argument(help="MODULE:ATTR of a workflow or list of them.")],
    as_json: JsonOption = False,
) -> None:
    """Check a workflow statically; exit 2 with every problem when it is invalid."""
    with usage_errors():
        workflows = load_workflows(reference)
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
                err.print(Text.assemble(("✗", "red"), f" {exc}"), highlight=False)
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
                Text.assemble(
                    ("✓", "green"),
                    f" {graph.name} {version_label(workflow.version)}: {len(graph.nodes)} "
                    f"steps, fingerprint {graph.fingerprint}",
                ),
                highlight=False,
            )
    if as_json:
        print_json(report)
    raise typer.Exit(EXIT_USAGE if invalid else EXIT_OK)


def diagram(
    reference: Annotated[str, typer.Argument(help="MODULE:ATTR of a workflow.")],
) -> None:
    """Print the workflow as a Mermaid flowchart."""
    with usage_errors():
        graphs = [compile_workflow(w) for w in load_workflows(reference)]
    for graph in graphs:
        sys.stdout.write(mermaid(graph) + "\n")


def protocol(
    schema: Annotated[bool, typer.Option("--schema", help="Print the JSON Schema.")] = False,
) -> None:
    """Describe the wire protocol, for actors and clients in other languages."""
    if not schema:
        raise fail("say what to print: --schema")
    sys.stdout.write(json.dumps(protocol_schema(), indent=2) + "\n")
