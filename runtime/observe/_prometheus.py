"""Prometheus metrics of the workflows, not of the agents: runs, step attempts, decisions,
model calls and their tokens.

The loop's thread counts what the entries written to a run's history say
happened, into plain integers and bucket counts: a client library metric
takes a lock and validates its labels on every update, which cost the loop
about a tenth of its throughput. Each step's series are found with one lookup
per attempt. A scrape, on the HTTP server's thread, turns the counts into
metric families; copying a dict or a list is a single step under the GIL.
Labels are workflow, step, status, failure kind, decision and a token's direction
(in or out): all bounded by the loaded graphs and the protocol, never a run id (nor a
model name, which an agent chooses). Gauges come from a snapshot the loop takes every
heartbeat.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator, Mapping
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

from protocols import HistoryEntry
from runtime.engine._run import Run
from runtime.observe._observers import RUN_ENDINGS, ClusterSeen, Gauges, Handler

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
MODEL_CALLS = _Family(
    "baton_model_calls", "Model calls agents made for steps, as journaled.", ("workflow", "step")
)
MODEL_TOKENS = _Family(
    "baton_model_tokens", "Tokens of the model calls agents made for steps, in and out.",
    ("workflow", "step", "direction"),
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
    MODEL_CALLS,
    MODEL_TOKENS,
)


class _Series:
    """One labelled series: a counter's count, or a histogram's count per bucket and sum."""

    __slots__ = ("bins", "bounds", "count", "total")

    def __init__(self, bounds: tuple[float, ...] = ()) -> None:
        self.count = 0
        self.bounds = bounds
        self.bins = [0] * (len(bounds) + 1) if bounds else []
        self.total = 0.0

    def add(self, value: float) -> None:
        """Count `value` into its bucket of the histogram."""
        self.bins[bisect_left(self.bounds, value)] += 1
        self.total += value


class _Collector(Collector):
    def __init__(self, metrics: PrometheusMetrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Any]:
        series = sorted(dict(self._metrics.series).items())
        for family in FAMILIES:
            chosen = [(key[1:], one) for key, one in series if key[0] == family.name]
            if family.buckets:
                histogram = HistogramMetricFamily(family.name, family.help, labels=family.labels)
                for labels, one in chosen:
                    total, cumulative, running = one.total, [], 0
                    bins = list(one.bins)
                    for bound, n in zip((*family.buckets, float("inf")), bins, strict=True):
                        running += n
                        cumulative.append((_bound(bound), running))
                    histogram.add_metric(list(labels), cumulative, total)
                yield histogram
            else:
                counter = CounterMetricFamily(family.name, family.help, labels=family.labels)
                for labels, one in chosen:
                    counter.add_metric(list(labels), one.count)
                yield counter
        yield from _gauges(self._metrics.gauges)


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
    if seen.cluster is not None:
        yield from _cluster(seen.cluster)


def _cluster(seen: ClusterSeen) -> Iterator[Any]:
    """A cluster's runtime: what it owns, its lease, and what it did with leases."""
    yield GaugeMetricFamily(
        "baton_cluster_runs_owned", "Runs this runtime holds by its lease.", seen.runs_owned
    )
    yield GaugeMetricFamily(
        "baton_cluster_members", "Live runtimes of the cluster, this one included.", seen.members
    )
    yield GaugeMetricFamily(
        "baton_cluster_lease_seconds_left",
        "Seconds this runtime counts its lease held for; 0 once lost.",
        seen.lease_left,
    )
    for name, text, value in (
        ("baton_cluster_leases_lost", "Leases this process lost (it rejoined each time).",
         seen.leases_lost),
        ("baton_cluster_takeovers", "Lapsed leases of others this runtime ended.",
         seen.takeovers),
        ("baton_cluster_runs_taken_over", "Runs taken over from runtimes whose lease lapsed.",
         seen.runs_taken_over),
        ("baton_cluster_fenced_writes", "Batches the database refused: the lease had lapsed.",
         seen.fenced_writes),
        ("baton_cluster_fenced_sends", "Frames dropped unsent: the lease was no longer held.",
         seen.fenced_sends),
    ):  # fmt: skip
        yield CounterMetricFamily(name, text, value)


class PrometheusMetrics:
    """The runtime's metrics, in a registry of their own (never the process-wide default)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.gauges = Gauges()
        self.series: dict[tuple[str, ...], _Series] = {}
        """(family name, *labels) -> its series."""
        self._steps: dict[tuple[str, str], tuple[_Series, _Series]] = {}
        """(workflow, step) -> the series of its succeeded attempts and of its durations."""
        self._models: dict[tuple[str, str], tuple[_Series, _Series, _Series]] = {}
        """(workflow, step) -> the series of its model calls, tokens in and tokens out."""
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

    def handlers(self) -> Mapping[str, Handler | None]:
        return {
            "run_started": self._run_started,
            **dict.fromkeys(RUN_ENDINGS, self._run_ended),
            "step_succeeded": self._attempt_ended,
            "step_failed": self._attempt_ended,
            "step_flagged": self._flagged,
            "decision_made": self._decided,
            "model_called": self._model_called,
        }

    def _run_started(self, run: Run, entry: HistoryEntry) -> None:
        self._one(RUNS_STARTED, run.workflow).count += 1

    def _run_ended(self, run: Run, entry: HistoryEntry) -> None:
        status = RUN_ENDINGS[entry.event]
        self._one(RUNS_ENDED, run.workflow, status).count += 1
        self._one(RUN_DURATION, run.workflow, status).add(entry.at - run.created_at)

    def _attempt_ended(self, run: Run, entry: HistoryEntry) -> None:
        attempt = run.attempt(entry.step, entry.attempt)
        if attempt is None:
            return
        workflow = run.workflow
        found = self._steps.get((workflow, entry.step))
        if found is None:
            found = self._steps[workflow, entry.step] = (
                self._one(ATTEMPTS, workflow, entry.step, "succeeded", ""),
                self._one(STEP_DURATION, workflow, entry.step),
            )
        succeeded, duration = found
        if entry.event == "step_succeeded":
            succeeded.count += 1
        else:
            self._one(ATTEMPTS, workflow, entry.step, "failed", attempt.failure or "").count += 1
        if attempt.agent and attempt.ended_at is not None:
            # Inline, not `add`: this runs for every step the runtime completes. Not below
            # zero, should the wall clock step back.
            seconds = max(0.0, attempt.ended_at - attempt.started_at)
            duration.bins[bisect_left(STEP_SECONDS, seconds)] += 1
            duration.total += seconds

    def _flagged(self, run: Run, entry: HistoryEntry) -> None:
        self._one(FLAGGED, run.workflow, entry.step).count += 1

    def _decided(self, run: Run, entry: HistoryEntry) -> None:
        # Read as Any: inferring `get` over the deep `Value` union takes mypy minutes.
        detail: dict[str, Any] = dict(entry.detail)
        decision = str(detail.get("decision", ""))
        self._one(DECISIONS, run.workflow, entry.step, decision).count += 1
        opened = _opened_at(run, entry.step, entry.seq)
        if opened is not None:
            self._one(DECISION_WAIT, run.workflow, entry.step).add(entry.at - opened)

    def _model_called(self, run: Run, entry: HistoryEntry) -> None:
        workflow = run.workflow
        found = self._models.get((workflow, entry.step))
        if found is None:
            found = self._models[workflow, entry.step] = (
                self._one(MODEL_CALLS, workflow, entry.step),
                self._one(MODEL_TOKENS, workflow, entry.step, "in"),
                self._one(MODEL_TOKENS, workflow, entry.step, "out"),
            )
        calls, tokens_in, tokens_out = found
        # Read as Any: inferring `get` over the deep `Value` union takes mypy minutes.
        detail: dict[str, Any] = dict(entry.detail)
        calls.count += 1
        tokens_in.count += int(detail.get("tokens_in", 0))
        tokens_out.count += int(detail.get("tokens_out", 0))

    def _one(self, family: _Family, *labels: str) -> _Series:
        key = (family.name, *labels)
        one = self.series.get(key)
        if one is None:
            one = self.series[key] = _Series(family.buckets)
        return one


def _opened_at(run: Run, step: str, before: int) -> float | None:
    """When the decision decided at history version `before` was opened."""
    for entry in reversed(run.history):
        opened = entry.event in ("checkpoint_opened", "escalated")
        if opened and entry.seq < before and entry.step == step:
            return entry.at
    return None
