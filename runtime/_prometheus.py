"""Prometheus metrics of the workflows, not of the agents: runs, step attempts, decisions.

Counters and histograms are fed from the entries each event adds to a run's
history, on the loop's thread. Labels are workflow, step, status, failure
kind and decision: all bounded by the loaded graphs and the protocol, never a
run id. Gauges (runs in progress, queued steps, agents by role, refused
frames) come from a snapshot the loop takes every heartbeat, so that a
scrape, which runs on the HTTP server's thread, never reads what the loop is
changing.
"""

from __future__ import annotations

from collections.abc import Iterator
from threading import Thread
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from runtime._metrics import Gauges
from runtime._run import Run

STEP_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
RUN_SECONDS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 86400)
WAIT_SECONDS = (1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 86400)
ENDINGS = {
    "run_completed": "completed",
    "run_failed": "failed",
    "run_halted": "halted",
    "run_cancelled": "cancelled",
}


class _GaugeCollector(Collector):
    def __init__(self, metrics: PrometheusMetrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Any]:
        seen = self._metrics.gauges
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
        r = self.registry
        self.gauges = Gauges()
        self._runs_started = Counter(
            "baton_runs_started", "Runs started.", ["workflow"], registry=r
        )
        self._runs_ended = Counter(
            "baton_runs_ended", "Runs ended, by status.", ["workflow", "status"], registry=r
        )
        self._run_seconds = Histogram(
            "baton_run_duration_seconds", "From start to end of a run.", ["workflow", "status"],
            buckets=RUN_SECONDS, registry=r,
        )  # fmt: skip
        self._attempts = Counter(
            "baton_step_attempts", "Step attempts that ended, by outcome and failure kind.",
            ["workflow", "step", "outcome", "failure"], registry=r,
        )  # fmt: skip
        self._step_seconds = Histogram(
            "baton_step_duration_seconds", "From dispatch to the attempt's outcome.",
            ["workflow", "step"], buckets=STEP_SECONDS, registry=r,
        )  # fmt: skip
        self._flagged = Counter(
            "baton_steps_flagged", "Steps that proceeded with a flag.", ["workflow", "step"],
            registry=r,
        )  # fmt: skip
        self._decisions = Counter(
            "baton_decisions", "Decisions made at checkpoints and escalations.",
            ["workflow", "step", "decision"], registry=r,
        )  # fmt: skip
        self._decision_wait = Histogram(
            "baton_decision_wait_seconds", "How long a run waited for a person's decision.",
            ["workflow", "step"], buckets=WAIT_SECONDS, registry=r,
        )  # fmt: skip
        self._children: dict[tuple[object, ...], Any] = {}
        r.register(_GaugeCollector(self))
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
        for index in range(seen, len(history)):
            entry = history[index]
            event = entry.event
            if event in ("step_succeeded", "step_failed"):
                self._attempt(run, entry.step, entry.attempt, event == "step_succeeded")
            elif event == "run_started":
                self._child(self._runs_started, run.workflow).inc()
            elif event in ENDINGS:
                status = ENDINGS[event]
                self._child(self._runs_ended, run.workflow, status).inc()
                self._child(self._run_seconds, run.workflow, status).observe(
                    entry.at - run.created_at
                )
            elif event == "step_flagged":
                self._child(self._flagged, run.workflow, entry.step).inc()
            elif event == "decision_made":
                decision = str(entry.detail.get("decision", ""))
                self._child(self._decisions, run.workflow, entry.step, decision).inc()
                opened = _opened_at(run, entry.step, entry.seq)
                if opened is not None:
                    self._child(self._decision_wait, run.workflow, entry.step).observe(
                        entry.at - opened
                    )

    def _attempt(self, run: Run, step: str, number: int, succeeded: bool) -> None:
        state = run.steps.get(step)
        if state is None or not 0 < number <= len(state.attempts):
            return
        attempt = state.attempts[number - 1]
        if succeeded:
            self._child(self._attempts, run.workflow, step, "succeeded", "").inc()
        else:
            self._child(self._attempts, run.workflow, step, "failed", attempt.failure or "").inc()
        if attempt.agent and attempt.ended_at is not None:
            self._child(self._step_seconds, run.workflow, step).observe(
                max(0.0, attempt.ended_at - attempt.started_at)
            )

    def _child(self, metric: Any, *labels: str) -> Any:
        """The labelled child of `metric`, looked up once: `labels()` validates and locks."""
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child


def _opened_at(run: Run, step: str, before: int) -> float | None:
    """When the decision decided at history version `before` was opened."""
    for entry in reversed(run.history):
        opened = entry.event in ("checkpoint_opened", "escalated")
        if opened and entry.seq < before and entry.step == step:
            return entry.at
    return None
