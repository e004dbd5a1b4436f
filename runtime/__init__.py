"""The supervisor side of Baton: what a workflow author imports.

A workflow is data: `Workflow`, `Step`, `Decision` and `Route`, a failure
policy per failure kind (`Retry`, `Escalate`, `Halt`, `ProceedWithFlag`,
`Goto`), conditions on the record (`key`) and `Checkpoint`s where a person
decides. `compile_workflow` checks one as the runtime will; `ControlClient`
starts runs, reads their records and decides checkpoints from a program.

What an operator or an embedder needs lives in the packages that draw the
architecture: `runtime.workflow` (definitions, checks, diagram, catalog),
`runtime.engine` (the pure fold), `runtime.supervisor` (the process around it),
`runtime.planes` (both ZeroMQ planes), `runtime.store` (the journal),
`runtime.security` (keys, principals), `runtime.observe` (logs, metrics,
traces, reports), `runtime.cli` (the `baton` command) and `runtime.testing`
(an engine driver and a fake clock for tests). `runtime` depends on
`protocols`, and on `actors` for what every connecting process shares (the
handshake's meaning, kill points) and for `baton agent`.
"""

from runtime.client import ControlClient as ControlClient
from runtime.client import ControlRefused as ControlRefused
from runtime.client import RunsPage as RunsPage
from runtime.client import RuntimeUnavailable as RuntimeUnavailable
from runtime.errors import BatonError as BatonError
from runtime.errors import ConfigError as ConfigError
from runtime.errors import Problem as Problem
from runtime.errors import StoreError as StoreError
from runtime.errors import WorkflowInvalid as WorkflowInvalid
from runtime.errors import WorkflowLoadError as WorkflowLoadError
from runtime.workflow import Checkpoint as Checkpoint
from runtime.workflow import Condition as Condition
from runtime.workflow import Consequence as Consequence
from runtime.workflow import Decision as Decision
from runtime.workflow import Escalate as Escalate
from runtime.workflow import EscalateTo as EscalateTo
from runtime.workflow import FailurePolicy as FailurePolicy
from runtime.workflow import Goto as Goto
from runtime.workflow import Halt as Halt
from runtime.workflow import ProceedWithFlag as ProceedWithFlag
from runtime.workflow import Reject as Reject
from runtime.workflow import Retry as Retry
from runtime.workflow import Role as Role
from runtime.workflow import Route as Route
from runtime.workflow import Step as Step
from runtime.workflow import Workflow as Workflow
from runtime.workflow import chain as chain
from runtime.workflow import compile_workflow as compile_workflow
from runtime.workflow import key as key

__all__ = [
    "BatonError",
    "Checkpoint",
    "Condition",
    "ConfigError",
    "Consequence",
    "ControlClient",
    "ControlRefused",
    "Decision",
    "Escalate",
    "EscalateTo",
    "FailurePolicy",
    "Goto",
    "Halt",
    "Problem",
    "ProceedWithFlag",
    "Reject",
    "Retry",
    "Role",
    "Route",
    "RunsPage",
    "RuntimeUnavailable",
    "Step",
    "StoreError",
    "Workflow",
    "WorkflowInvalid",
    "WorkflowLoadError",
    "chain",
    "compile_workflow",
    "key",
]
