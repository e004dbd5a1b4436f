"""Trace and span ids derived from what they name, so that any process can compute them,
and the sampling decision derived from the trace id, so that every process makes the same."""

from __future__ import annotations

import hashlib

_LOW_64 = (1 << 64) - 1


def trace_id(run_id: str) -> int:
    return int.from_bytes(hashlib.blake2b(run_id.encode(), digest_size=16).digest(), "big")


def span_id(*parts: object) -> int:
    key = "/".join(map(str, parts)).encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big") or 1


def sampling_bound(ratio: float) -> int:
    """The bound under which a trace id's low 64 bits are sampled at `ratio`, as
    OpenTelemetry's TraceIdRatioBased sampler computes it."""
    return round(ratio * (_LOW_64 + 1))


def is_sampled(trace: int, bound: int) -> bool:
    return trace & _LOW_64 < bound


def traceparent(run_id: str, step: str, attempt: int, *more: object) -> str:
    """The W3C traceparent of the span of attempt `attempt` of `step` in run `run_id`, or
    with `more` of a span under it: ("tool", CALL) names the runtime's span of a tool call."""
    return f"00-{trace_id(run_id):032x}-{span_id(run_id, step, attempt, *more):016x}-01"
