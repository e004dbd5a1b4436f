"""The workflows a runtime has loaded: the version new runs start on, and earlier ones.

A run lives and dies on the graph it started on. New runs of a workflow
start on its current version; an earlier version is loaded only so that runs
which started on it can finish on it, and is found by its fingerprint.
"""

from __future__ import annotations

from collections.abc import Iterable

from runtime.errors import BatonError
from runtime.workflow._graph import Graph


class CatalogError(BatonError):
    """The loaded workflows contradict each other."""


class Catalog:
    """Current graphs by workflow name; every loaded graph by fingerprint."""

    def __init__(self, current: Iterable[Graph], previous: Iterable[Graph] = ()) -> None:
        self.current: dict[str, Graph] = {}
        self._versions: dict[str, Graph] = {}
        for graph in current:
            if graph.name in self.current:
                raise CatalogError(f"workflow {graph.name!r} is loaded twice")
            self.current[graph.name] = graph
            self._add(graph)
        for graph in previous:
            self._add(graph)

    def _add(self, graph: Graph) -> None:
        known = self._versions.get(graph.fingerprint)
        if known is not None:
            raise CatalogError(
                f"workflow {graph.name!r} version {graph.workflow.version!r} is loaded twice "
                f"(fingerprint {graph.fingerprint})"
            )
        self._versions[graph.fingerprint] = graph

    def __len__(self) -> int:
        return len(self._versions)

    def graphs(self) -> list[Graph]:
        """Every loaded graph, current ones first."""
        return list(self._versions.values())

    def find(self, workflow: str, version: str, fingerprint: str) -> Graph | str:
        """The graph a run of `workflow` started on, or why it is not loaded."""
        graph = self._versions.get(fingerprint)
        if graph is not None and graph.name == workflow:
            return graph
        loaded = [g for g in self._versions.values() if g.name == workflow]
        started = f"it started on {workflow!r} version {version!r} (fingerprint {fingerprint})"
        if not loaded:
            return f"{started}, and no version of {workflow!r} is loaded"
        others = ", ".join(f"version {g.workflow.version!r} ({g.fingerprint})" for g in loaded)
        return (
            f"{started}, and this runtime has only {others}; restart it with the run's "
            "version loaded (`--previous MODULE:ATTR`) to let the run finish, or cancel it"
        )
