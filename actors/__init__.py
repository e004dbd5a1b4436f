"""The agent side of Baton: agents, tool hosts, and the worker loop that serves them.

An agent is a process with a role, a tool allowlist and one async handler; a
tool host is a process that serves typed tools and never runs steps. Both
connect to the agent plane of every supervisor of their cluster, one
connection each, and speak only `protocols`. This package depends on
`protocols` and never on `runtime`.
"""

from typing import TYPE_CHECKING, Any

from actors._agent import Agent as Agent
from actors._cluster import serve as serve
from actors._context import Context as Context
from actors._context import Models as Models
from actors._context import Tools as Tools
from actors._errors import ActorError as ActorError
from actors._errors import ActorLoadError as ActorLoadError
from actors._errors import InvalidOutput as InvalidOutput
from actors._errors import RegistrationRefused as RegistrationRefused
from actors._errors import ToolFailed as ToolFailed
from actors._errors import ToolRefused as ToolRefused
from actors._kill_points import KILL_POINTS as KILL_POINTS
from actors._kill_points import KillPoints as KillPoints
from actors._kill_points import KillPointsInvalid as KillPointsInvalid
from actors._loader import declared_role as declared_role
from actors._loader import load_actor as load_actor
from actors._loader import run_actor as run_actor
from actors._receipts import Receipt as Receipt
from actors._receipts import Receipts as Receipts
from actors._receipts import read_receipts as read_receipts
from actors._spans import SpanMark as SpanMark
from actors._spans import Spans as Spans
from actors._task import Result as Result
from actors._task import Task as Task
from actors._toolhost import ToolHost as ToolHost
from actors._toolhost import tool_specs as tool_specs
from actors._tools import tool as tool

__all__ = [
    "KILL_POINTS",
    "ActorError",
    "ActorLoadError",
    "Agent",
    "Context",
    "InvalidOutput",
    "KillPoints",
    "KillPointsInvalid",
    "Models",
    "Receipt",
    "Receipts",
    "RegistrationRefused",
    "Result",
    "SpanMark",
    "SpanRecorder",
    "Spans",
    "Task",
    "ToolFailed",
    "ToolHost",
    "ToolRefused",
    "Tools",
    "declared_role",
    "load_actor",
    "read_receipts",
    "run_actor",
    "serve",
    "tool",
    "tool_specs",
]

if TYPE_CHECKING:
    from actors._tracing import SpanRecorder as SpanRecorder


def __getattr__(name: str) -> Any:
    # SpanRecorder needs the `traces` extra: imported only when asked for.
    if name == "SpanRecorder":
        from actors._tracing import SpanRecorder  # noqa: PLC0415

        return SpanRecorder
    raise AttributeError(f"module 'actors' has no attribute {name!r}")
