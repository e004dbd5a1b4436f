"""A workflow's fingerprint: a stable hash of everything that shapes how its runs behave.

A run names the graph it started on by this hash, so that it is only ever
folded again on that graph.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import fields, is_dataclass
from typing import Any

from runtime.workflow._conditions import Condition
from runtime.workflow._definition import Workflow


def fingerprint(workflow: Workflow) -> str:
    """A stable hash of everything that shapes how runs of the workflow behave."""
    canonical = json.dumps(_canonical(workflow), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _canonical(value: Any) -> Any:
    if isinstance(value, Condition):
        return {"condition": value.describe()}
    if isinstance(value, type):
        return f"{value.__module__}.{value.__qualname__}"
    if is_dataclass(value) and not isinstance(value, type):
        body = {f.name: _canonical(getattr(value, f.name)) for f in fields(value)}
        return {"kind": type(value).__name__, **body}
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return repr(value)
