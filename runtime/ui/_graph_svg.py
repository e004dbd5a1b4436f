"""A workflow's graph as SVG, from the nodes and edges the Mermaid export is drawn from.

Steps are laid out in layers by their longest forward path from a start, so every
forward arrow points down; arrows that close a loop run back up on the right,
dashed, as do fallbacks. Each node is a link to its step's row and carries its
status as a class, so the page's style sheet colours it and a refresh recolours it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape

from protocols import DiagramEdge, DiagramNode

WIDTH = 190
HEIGHT = 54
GAP_X = 36
GAP_Y = 46
MARGIN = 24
LOOP_LANE = 28
"""Room on the right for each arrow that runs back up."""


@dataclass(frozen=True, slots=True)
class _Placed:
    node: DiagramNode
    x: float
    y: float

    @property
    def centre(self) -> float:
        return self.x + WIDTH / 2


def layers(nodes: Sequence[DiagramNode], edges: Sequence[DiagramEdge]) -> dict[str, int]:
    """Each node's layer: one below the deepest of its forward predecessors."""
    names = [n.name for n in nodes]
    forward = [e for e in edges if e.kind != "back" and e.source in names and e.target in names]
    incoming: dict[str, list[str]] = {name: [] for name in names}
    for edge in forward:
        incoming[edge.target].append(edge.source)
    layer: dict[str, int] = {}
    pending = list(names)
    while pending:
        progressed = False
        for name in list(pending):
            if all(p in layer for p in incoming[name]):
                layer[name] = 1 + max((layer[p] for p in incoming[name]), default=-1)
                pending.remove(name)
                progressed = True
        if not progressed:
            # A cycle the export did not mark as a loop: its first node breaks it.
            name = pending.pop(0)
            layer[name] = 1 + max((layer[p] for p in incoming[name] if p in layer), default=-1)
    return layer


def graph_svg(
    nodes: Sequence[DiagramNode],
    edges: Sequence[DiagramEdge],
    statuses: Mapping[str, str] | None = None,
    *,
    link_prefix: str = "#step-",
) -> str:
    """The SVG markup; `statuses` by step name colour the nodes (a run's view)."""
    statuses = statuses or {}
    depth = layers(nodes, edges)
    rows: dict[int, list[DiagramNode]] = {}
    for node in nodes:
        rows.setdefault(depth[node.name], []).append(node)
    widest = max((len(r) for r in rows.values()), default=1)
    backs = [e for e in edges if e.kind in ("back", "fallback")]
    body_width = widest * WIDTH + (widest - 1) * GAP_X
    width = 2 * MARGIN + body_width + LOOP_LANE * len(backs)
    height = 2 * MARGIN + len(rows) * HEIGHT + max(0, len(rows) - 1) * GAP_Y
    placed: dict[str, _Placed] = {}
    for layer, row in rows.items():
        row_width = len(row) * WIDTH + (len(row) - 1) * GAP_X
        left = MARGIN + (body_width - row_width) / 2
        for index, node in enumerate(row):
            x = left + index * (WIDTH + GAP_X)
            placed[node.name] = _Placed(node, x, MARGIN + layer * (HEIGHT + GAP_Y))
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="graph" viewBox="0 0 {width:.0f} '
        f'{height:.0f}" width="{width:.0f}" height="{height:.0f}" role="img" '
        'aria-label="The workflow graph: each step with its status">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
        'class="arrowhead"/></marker></defs>',
    ]
    lane = 0
    for edge in edges:
        source, target = placed.get(edge.source), placed.get(edge.target)
        if source is None or target is None:
            continue
        if edge.kind in ("back", "fallback"):
            lane += 1
            parts.append(_around(edge, source, target, MARGIN + body_width + lane * LOOP_LANE))
        else:
            parts.append(_down(edge, source, target))
    for item in placed.values():
        parts.append(_node(item, statuses.get(item.node.name), link_prefix))
    parts.append("</svg>")
    return "".join(parts)


def _down(edge: DiagramEdge, source: _Placed, target: _Placed) -> str:
    x1, y1 = source.centre, source.y + HEIGHT
    x2, y2 = target.centre, target.y
    line = (
        f'<path d="M{x1:.1f},{y1:.1f} C{x1:.1f},{y1 + GAP_Y / 2:.1f} {x2:.1f},'
        f'{y2 - GAP_Y / 2:.1f} {x2:.1f},{y2:.1f}" class="edge edge-{edge.kind}" '
        'marker-end="url(#arrow)"/>'
    )
    return line + _label(edge.label, (x1 + x2) / 2, (y1 + y2) / 2)


def _around(edge: DiagramEdge, source: _Placed, target: _Placed, lane_x: float) -> str:
    """An arrow out of the source's right side, up (or down) the lane, into the target's."""
    y1 = source.y + HEIGHT / 2
    y2 = target.y + HEIGHT / 2
    x1 = source.x + WIDTH
    x2 = target.x + WIDTH
    line = (
        f'<path d="M{x1:.1f},{y1:.1f} H{lane_x:.1f} V{y2:.1f} H{x2:.1f}" '
        f'class="edge edge-{edge.kind}" marker-end="url(#arrow)"/>'
    )
    return line + _label(edge.label, lane_x + 4, (y1 + y2) / 2, anchor="start")


def _label(text: str, x: float, y: float, *, anchor: str = "middle") -> str:
    if not text:
        return ""
    shown = escape(text if len(text) <= 40 else text[:39] + "…")
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" class="edge-label" text-anchor="{anchor}">{shown}'
        f"<title>{escape(text)}</title></text>"
    )


def _node(item: _Placed, status: str | None, link_prefix: str) -> str:
    node = item.node
    state = status or "none"
    x, y = item.x, item.y
    if node.kind == "decision":
        cx, cy = item.centre, y + HEIGHT / 2
        shape = (
            f'<polygon points="{cx:.1f},{y:.1f} {x + WIDTH:.1f},{cy:.1f} {cx:.1f},'
            f'{y + HEIGHT:.1f} {x:.1f},{cy:.1f}" class="node-shape"/>'
        )
        lines = [node.name]
    else:
        shape = (
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{WIDTH}" height="{HEIGHT}" rx="6" '
            'class="node-shape"/>'
        )
        lines = [node.name, f"{node.role} · {state}" if status else node.role]
    first = y + HEIGHT / 2 - (len(lines) - 1) * 8 + 5
    texts = "".join(
        f'<text x="{item.centre:.1f}" y="{first + i * 16:.1f}" class="node-'
        f'{"name" if i == 0 else "role"}" text-anchor="middle">{escape(line)}</text>'
        for i, line in enumerate(lines)
    )
    detail = "; ".join([node.name, *([f"role {node.role}"] if node.role else []), *node.notes])
    label = escape(f"{detail}; status {state}" if status else detail)
    return (
        f'<a href="{escape(link_prefix + node.name)}" class="node node-{node.kind} st-{state}" '
        f'aria-label="{label}"><title>{label}</title>{shape}{texts}</a>'
    )
