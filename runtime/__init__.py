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

from runtime.client._client import ControlClient as ControlClient
from runtime.client._client import ControlRefused as ControlRefused
from runtime.client._client import RuntimeUnavailable as RuntimeUnavailable
from runtime.engine import _engine as engine
from runtime.engine._record_view import record_view as record_view
from runtime.errors import BatonError as BatonError
from runtime.errors import ConfigError as ConfigError
from runtime.errors import Problem as Problem
from runtime.errors import StoreError as StoreError
from runtime.errors import WorkflowInvalid as WorkflowInvalid
from runtime.errors import WorkflowLoadError as WorkflowLoadError
from runtime.security._certificates import KeysInvalid as KeysInvalid
from runtime.security._keys import load_client_keys as load_client_keys
from runtime.security._keys import load_principals as load_principals
from runtime.security._keys import load_server_keys as load_server_keys
from runtime.security._principals import Principal as Principal
from runtime.security._principals import Principals as Principals
from runtime.store._store import MemoryStore as MemoryStore
from runtime.store._store import SqliteStore as SqliteStore
from runtime.store._store import Store as Store
from runtime.store._store import open_store as open_store
from runtime.supervisor._config import RuntimeConfig as RuntimeConfig
from runtime.supervisor._config import Security as Security
from runtime.supervisor._supervisor import Supervisor as Supervisor
from runtime.supervisor._supervisor import SupervisorStatistics as SupervisorStatistics
from runtime.workflow._catalog import Catalog as Catalog
from runtime.workflow._checkpoints import Checkpoint as Checkpoint
from runtime.workflow._checkpoints import Consequence as Consequence
from runtime.workflow._conditions import Condition as Condition
from runtime.workflow._conditions import key as key
from runtime.workflow._definition import Decision as Decision
from runtime.workflow._definition import Role as Role
from runtime.workflow._definition import Route as Route
from runtime.workflow._definition import Step as Step
from runtime.workflow._definition import Workflow as Workflow
from runtime.workflow._definition import chain as chain
from runtime.workflow._graph import Graph as Graph
from runtime.workflow._graph import compile_workflow as compile_workflow
from runtime.workflow._graph import fingerprint as fingerprint
from runtime.workflow._loader import load_workflows as load_workflows
from runtime.workflow._policies import Escalate as Escalate
from runtime.workflow._policies import EscalateTo as EscalateTo
from runtime.workflow._policies import FailurePolicy as FailurePolicy
from runtime.workflow._policies import Goto as Goto
from runtime.workflow._policies import Halt as Halt
from runtime.workflow._policies import ProceedWithFlag as ProceedWithFlag
from runtime.workflow._policies import Reject as Reject
from runtime.workflow._policies import Retry as Retry

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
