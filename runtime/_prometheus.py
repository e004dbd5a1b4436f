"""Prometheus metrics of the workflows, not of the agents: runs, step attempts, decisions.

The loop's thread counts what the entries each event adds to a run's history
say happened, into plain integers and bucket counts: a client library metric
takes a lock and validates its labels on every update, which cost the loop
about a tenth of its throughput. A scrape, on the HTTP server's thread, turns
the counts into metric families; copying a dict is a single step under the
GIL, so the scrape never sees one half-changed. Labels are workflow, step,
status, failure kind and decision: all bounded by the loaded graphs and the
protocol, never a run id. Gauges come from a snapshot the loop takes every
heartbeat.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from dataclasses import dataclass
from threading import Thread
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.registry import Collector

from runtime._metrics import RUN_ENDINGS, Gauges
from runtime._run import Run

STEP_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
RUN_SECONDS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 86400)
WAIT_SECONDS = (1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 86400)


@dataclass(frozen=True, slots=True)
class _Family:
    name: str
    help: str
    labels: tuple[str, ...]
    buckets: tuple[float, ...] = ()
    """Upper bounds, for a histogram; empty for a counter."""


RUNS_STARTED = _Family("baton_runs_started", "Runs started.", ("workflow",))
RUNS_ENDED = _Family("baton_runs_ended", "Runs ended, by status.", ("workflow", "status"))
RUN_DURATION = _Family(
    "baton_run_duration_seconds", "From start to end of a run.", ("workflow", "status"),
    RUN_SECONDS,
)  # fmt: skip
ATTEMPTS = _Family(
    "baton_step_attempts", "Step attempts that ended, by outcome and failure kind.",
    ("workflow", "step", "outcome", "failure"),
)  # fmt: skip
STEP_DURATION = _Family(
    "baton_step_duration_seconds", "From dispatch to the attempt's outcome.",
    ("workflow", "step"), STEP_SECONDS,
)  # fmt: skip
FLAGGED = _Family("baton_steps_flagged", "Steps that proceeded with a flag.", ("workflow", "step"))
DECISIONS = _Family(
    "baton_decisions", "Decisions made at checkpoints and escalations.",
    ("workflow", "step", "decision"),
)  # fmt: skip
DECISION_WAIT = _Family(
    "baton_decision_wait_seconds", "How long a run waited for a person's decision.",
    ("workflow", "step"), WAIT_SECONDS,
)  # fmt: skip
FAMILIES = (
    RUNS_STARTED,
    RUNS_ENDED,
    RUN_DURATION,
    ATTEMPTS,
    STEP_DURATION,
    FLAGGED,
    DECISIONS,
    DECISION_WAIT,
)


class _Collector(Collector):
    def __init__(self, metrics: PrometheusMetrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Any]:
        metrics = self._metrics
        counts = dict(metrics.counts)
        spreads = {
            key: (list(spread[0]), spread[1]) for key, spread in dict(metrics.spreads).items()
        }
        for family in FAMILIES:
            if family.buckets:
                histogram = HistogramMetricFamily(family.name, family.help, labels=family.labels)
                chosen = [
                    (key[1:], spread) for key, spread in spreads.items() if key[0] == family.name
                ]
                for labels, (bins, total) in sorted(chosen):
                    cumulative, running = [], 0
                    for bound, n in zip((*family.buckets, float("inf")), bins, strict=True):
                        running += n
                        cumulative.append((_bound(bound), running))
                    histogram.add_metric(list(labels), cumulative, total)
                yield histogram
            else:
                counter = CounterMetricFamily(family.name, family.help, labels=family.labels)
                totals = sorted((key[1:], n) for key, n in counts.items() if key[0] == family.name)
                for labels, n in totals:
                    counter.add_metric(list(labels), n)
                yield counter
        yield from _gauges(metrics.gauges)


def _bound(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(float(bound))


def _gauges(seen: Gauges) -> Iterator[Any]:
    yield GaugeMetricFamily(
        "baton_active_runs", "Runs not yet ended (stuck ones included).", seen.active_runs
    )
    yield GaugeMetricFamily(
        "baton_stuck_runs", "Runs waiting for an operator to resume or cancel them.",
        seen.stuck_runs,
    )  # fmt: skip
    yield GaugeMetricFamily(
        "baton_queued_steps", "Attempts waiting for an agent of their role.", seen.queued_steps
    )
    agents = GaugeMetricFamily("baton_agents", "Connected agents, by role.", labels=["role"])
    for role, n in sorted(seen.agents.items()):
        agents.add_metric([role], n)
    yield agents
    refused = CounterMetricFamily(
        "baton_refused_frames", "Frames refused, by reason.", labels=["reason"]
    )
    for reason, n in sorted(seen.refused.items()):
        refused.add_metric([reason], n)
    yield refused


class PrometheusMetrics:
    """The runtime's metrics, in a registry of their own (never the process-wide default)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.gauges = Gauges()
        self.counts: dict[tuple[Any, ...], int] = {}
        """(family name, *labels) -> count, for the counters."""
        self.spreads: dict[tuple[Any, ...], tuple[list[int], float]] = {}
        """(family name, *labels) -> (count per bucket, sum), for the histograms."""
        self.registry.register(_Collector(self))
        self._server: Any = None
        self._thread: Thread | None = None
        self.port = 0

    def serve(self, host: str, port: int) -> int:
        """Serve `/metrics` over HTTP on `host:port` (0: any free port); the port bound."""
        self._server, self._thread = start_http_server(port, addr=host, registry=self.registry)
        self.port = int(self._server.server_port)
        return self.port

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def observe(self, run: Run, seen: int) -> None:
        """Count what the entries of `run`'s history from index `seen` on say happened."""
        history = run.history
        workflow = run.workflow
        for index in range(seen, len(history)):
            entry = history[index]
            event = entry.event
            if event in ("step_succeeded", "step_failed"):
                self._attempt(run, entry.step, entry.attempt, event == "step_succeeded")
            elif event == "run_started":
                self._count((RUNS_STARTED.name, workflow))
            elif event in RUN_ENDINGS:
                status = RUN_ENDINGS[event]
                self._count((RUNS_ENDED.name, workflow, status))
                self._spread(RUN_DURATION, (workflow, status), entry.at - run.created_at)
            elif event == "step_flagged":
                self._count((FLAGGED.name, workflow, entry.step))
            elif event == "decision_made":
                decision = str(entry.detail.get("decision", ""))
                self._count((DECISIONS.name, workflow, entry.step, decision))
                opened = _opened_at(run, entry.step, entry.seq)
                if opened is not None:
                    self._spread(DECISION_WAIT, (workflow, entry.step), entry.at - opened)

    def _attempt(self, run: Run, step: str, number: int, succeeded: bool) -> None:
        state = run.steps.get(step)
        if state is None or not 0 < number <= len(state.attempts):
            return
        attempt = state.attempts[number - 1]
        if succeeded:
            self._count((ATTEMPTS.name, run.workflow, step, "succeeded", ""))
        else:
            self._count(
                ("baton_step_attempts", run.workflow, step, "failed", attempt.failure or "")
            )
        if attempt.agent and attempt.ended_at is not None:
            self._spread(
                STEP_DURATION, (run.workflow, step), max(0.0, attempt.ended_at - attempt.started_at)
            )

    def _count(self, key: tuple[Any, ...]) -> None:
        counts = self.counts
        counts[key] = counts.get(key, 0) + 1

    def _spread(self, family: _Family, labels: tuple[str, ...], value: float) -> None:
        key = (family.name, *labels)
        spread = self.spreads.get(key)
        if spread is None:
            spread = self.spreads[key] = ([0] * (len(family.buckets) + 1), 0.0)
        spread[0][bisect.bisect_left(family.buckets, value)] += 1
        self.spreads[key] = (spread[0], spread[1] + value)


def _opened_at(run: Run, step: str, before: int) -> float | None:
    """When the decision decided at history version `before` was opened."""
    for entry in reversed(run.history):
        opened = entry.event in ("checkpoint_opened", "escalated")
        if opened and entry.seq < before and entry.step == step:
            return entry.at
    return None
