"""Loaded workflows as they travel to clients: their inputs, and their graph drawn from the
one diagram model the Mermaid export renders, so a page and `baton diagram` show the same
map."""

from __future__ import annotations

from protocols import DiagramEdge, DiagramNode, WorkflowView
from runtime.workflow._diagram import diagram, render_mermaid
from runtime.workflow._graph import Graph


def workflow_view(graph: Graph) -> WorkflowView:
    """A loaded workflow: name, version, fingerprint, inputs, nodes, edges and Mermaid text."""
    drawn = diagram(graph)
    return WorkflowView(
        name=graph.name,
        version=graph.workflow.version,
        fingerprint=graph.fingerprint,
        inputs=list(graph.workflow.inputs),
        nodes=[
            DiagramNode(
                name=node.name,
                kind=node.kind,
                role=node.role,
                tools=list(node.tools),
                notes=list(node.notes),
            )
            for node in drawn.nodes
        ],
        edges=[
            DiagramEdge(source=edge.source, target=edge.target, label=edge.label, kind=edge.kind)
            for edge in drawn.edges
        ],
        mermaid=render_mermaid(drawn),
    )
