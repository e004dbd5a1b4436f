"""The supervisor side of Baton.

Layers, from the inside out: the workflow definition (`Workflow`, `Step`,
`Decision`, policies, conditions) and its static validation
(`compile_workflow`); the pure engine (`engine.start`, `engine.apply`: no I/O,
no clock); and the shell around it (`Supervisor`: the two ZeroMQ planes, the
store, timers), with `ControlClient` and the `baton` CLI on top. Depends on
`protocols`; never on `actors`, except the CLI's `agent` command. Security:
`Security` (the runtime's keys and its `Principals`) and the key directory's
loaders.
"""

from runtime import _engine as engine
from runtime._catalog import Catalog as Catalog
from runtime._certificates import KeysInvalid as KeysInvalid
from runtime._checkpoints import Checkpoint as Checkpoint
from runtime._checkpoints import Consequence as Consequence
from runtime._client import ControlClient as ControlClient
from runtime._client import ControlRefused as ControlRefused
from runtime._client import RuntimeUnavailable as RuntimeUnavailable
from runtime._conditions import Condition as Condition
from runtime._conditions import key as key
from runtime._config import RuntimeConfig as RuntimeConfig
from runtime._config import Security as Security
from runtime._errors import BatonError as BatonError
from runtime._errors import ConfigError as ConfigError
from runtime._errors import Problem as Problem
from runtime._errors import StoreError as StoreError
from runtime._errors import WorkflowInvalid as WorkflowInvalid
from runtime._errors import WorkflowLoadError as WorkflowLoadError
from runtime._graph import Graph as Graph
from runtime._graph import compile_workflow as compile_workflow
from runtime._graph import fingerprint as fingerprint
from runtime._keys import load_client_keys as load_client_keys
from runtime._keys import load_principals as load_principals
from runtime._keys import load_server_keys as load_server_keys
from runtime._loader import load_workflows as load_workflows
from runtime._policies import Escalate as Escalate
from runtime._policies import EscalateTo as EscalateTo
from runtime._policies import FailurePolicy as FailurePolicy
from runtime._policies import Goto as Goto
from runtime._policies import Halt as Halt
from runtime._policies import ProceedWithFlag as ProceedWithFlag
from runtime._policies import Reject as Reject
from runtime._policies import Retry as Retry
from runtime._principals import Principal as Principal
from runtime._principals import Principals as Principals
from runtime._record import record_view as record_view
from runtime._store import MemoryStore as MemoryStore
from runtime._store import SqliteStore as SqliteStore
from runtime._store import Store as Store
from runtime._store import open_store as open_store
from runtime._supervisor import Supervisor as Supervisor
from runtime._supervisor import SupervisorStatistics as SupervisorStatistics
from runtime._workflow import Decision as Decision
from runtime._workflow import Role as Role
from runtime._workflow import Route as Route
from runtime._workflow import Step as Step
from runtime._workflow import Workflow as Workflow
from runtime._workflow import chain as chain

__all__ = [
    "BatonError",
    "Catalog",
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
    "Graph",
    "Halt",
    "KeysInvalid",
    "MemoryStore",
    "Principal",
    "Principals",
    "Problem",
    "ProceedWithFlag",
    "Reject",
    "Retry",
    "Role",
    "Route",
    "RuntimeConfig",
    "RuntimeUnavailable",
    "Security",
    "SqliteStore",
    "Step",
    "Store",
    "StoreError",
    "Supervisor",
    "SupervisorStatistics",
    "Workflow",
    "WorkflowInvalid",
    "WorkflowLoadError",
    "chain",
    "compile_workflow",
    "engine",
    "fingerprint",
    "key",
    "load_client_keys",
    "load_principals",
    "load_server_keys",
    "load_workflows",
    "open_store",
    "record_view",
]
