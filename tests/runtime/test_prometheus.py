"""The metrics a scrape sees after a known workload, in the exposition format."""

from __future__ import annotations

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from runtime.observe._observers import Observers
from runtime.observe._prometheus import PrometheusMetrics
from tests.runtime.test_report import GRAPH, RUNS, drive, fails


def scraped(metrics: PrometheusMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(metrics.registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_counts_and_histograms_of_a_known_workload() -> None:
    metrics = PrometheusMetrics()
    observers = Observers([metrics])
    for index in range(RUNS):
        observers.observe(drive(GRAPH, index), 0)
    seen = scraped(metrics)
    wf = ("workflow", "chain")
    halted = sum(1 for i in range(RUNS) if fails("c", i))
    assert seen[("baton_runs_started_total", (wf,))] == RUNS
    assert seen[("baton_runs_ended_total", (("status", "halted"), wf))] == halted
    b_failed = (("failure", "error"), ("outcome", "failed"), ("step", "b"), wf)
    assert seen[("baton_step_attempts_total", b_failed)] == RUNS // 5
    # b's first tries take 0.5 s and its retries 0.25 s: the buckets say so, cumulatively.
    b = (("step", "b"), wf)
    assert seen[("baton_step_duration_seconds_count", b)] == RUNS + RUNS // 5
    assert seen[("baton_step_duration_seconds_sum", b)] == RUNS * 0.5 + RUNS // 5 * 0.25
    le = {
        bound: seen[("baton_step_duration_seconds_bucket", (("le", bound), ("step", "b"), wf))]
        for bound in ("0.1", "0.25", "0.5", "+Inf")
    }
    assert le == {"0.1": 0, "0.25": RUNS // 5, "0.5": RUNS + RUNS // 5, "+Inf": RUNS + RUNS // 5}
    assert seen[("baton_decisions_total", (("decision", "approve"), ("step", "e"), wf))] == (
        RUNS - halted
    )
    assert seen[("baton_decision_wait_seconds_sum", (("step", "e"), wf))] == 30 * (RUNS - halted)
