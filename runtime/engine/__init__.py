"""The engine: a pure state machine over runs.

`start(graph, event, now)` makes a run from its first event and `apply(run,
event, now)` folds one more into it; each returns the commands the shell must
carry out. No I/O, no clock, no sockets: the same fold serves the live loop,
recovery and `inspect --at`.

Inside, each module imports only those before it: `_fold` (one event's fold and
the history it writes), `_values` (data with provenance), `_waiting` (a step
starts to wait for a person), `_traversal` (the walk of the graph), `_failures`,
`_decisions` (a person decides), `_tools`, `_models` (model calls an agent reports),
`_steps` (reports about attempts),
and `_engine`, the front door.
"""

from runtime.engine._engine import apply as apply
from runtime.engine._engine import has_deadlines as has_deadlines
from runtime.engine._engine import start as start
from runtime.engine._events import CancelTask as CancelTask
from runtime.engine._events import CancelTimer as CancelTimer
from runtime.engine._events import ClockJumped as ClockJumped
from runtime.engine._events import Command as Command
from runtime.engine._events import DecisionMade as DecisionMade
from runtime.engine._events import Dispatch as Dispatch
from runtime.engine._events import Event as Event
from runtime.engine._events import ForwardToolCall as ForwardToolCall
from runtime.engine._events import JournalEvent as JournalEvent
from runtime.engine._events import ModelCalled as ModelCalled
from runtime.engine._events import RefuseToolCall as RefuseToolCall
from runtime.engine._events import RequestRefused as RequestRefused
from runtime.engine._events import RunCancelled as RunCancelled
from runtime.engine._events import RunEnded as RunEnded
from runtime.engine._events import RunForked as RunForked
from runtime.engine._events import RunRecovered as RunRecovered
from runtime.engine._events import RunResumed as RunResumed
from runtime.engine._events import RunStarted as RunStarted
from runtime.engine._events import StartTimer as StartTimer
from runtime.engine._events import StepDeferred as StepDeferred
from runtime.engine._events import StepDispatched as StepDispatched
from runtime.engine._events import StepFailed as StepFailed
from runtime.engine._events import StepSucceeded as StepSucceeded
from runtime.engine._events import TimerFired as TimerFired
from runtime.engine._events import ToolCallCompleted as ToolCallCompleted
from runtime.engine._events import ToolCallRequested as ToolCallRequested
from runtime.engine._run import Attempt as Attempt
from runtime.engine._run import OpenDecision as OpenDecision
from runtime.engine._run import Run as Run
from runtime.engine._run import StepState as StepState

__all__ = [
    "Attempt",
    "CancelTask",
    "CancelTimer",
    "ClockJumped",
    "Command",
    "DecisionMade",
    "Dispatch",
    "Event",
    "ForwardToolCall",
    "JournalEvent",
    "ModelCalled",
    "OpenDecision",
    "RefuseToolCall",
    "RequestRefused",
    "Run",
    "RunCancelled",
    "RunEnded",
    "RunForked",
    "RunRecovered",
    "RunResumed",
    "RunStarted",
    "StartTimer",
    "StepDeferred",
    "StepDispatched",
    "StepFailed",
    "StepState",
    "StepSucceeded",
    "TimerFired",
    "ToolCallCompleted",
    "ToolCallRequested",
    "apply",
    "has_deadlines",
    "start",
]
