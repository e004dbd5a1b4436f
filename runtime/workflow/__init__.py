"""A workflow as data, its static checks, and its map.

Authors define a `Workflow` of `Step`s and `Decision`s with failure policies,
conditions on the record (`key`) and `Checkpoint`s; `compile_workflow` checks
it and compiles the `Graph` the engine runs; `mermaid` draws it; a `Catalog`
holds the versions a runtime has loaded.

Inside, `_definition`, `_conditions`, `_policies` and `_checkpoints` are what an
author writes; `_graph` compiles it, running the checks of `_structure`,
`_topology` (reachability and loop bounds) and `_dataflow` (reads before writes).
"""

from runtime.workflow._catalog import Catalog as Catalog
from runtime.workflow._catalog import CatalogError as CatalogError
from runtime.workflow._checkpoints import Checkpoint as Checkpoint
from runtime.workflow._checkpoints import Consequence as Consequence
from runtime.workflow._conditions import Condition as Condition
from runtime.workflow._conditions import key as key
from runtime.workflow._definition import Decision as Decision
from runtime.workflow._definition import Node as Node
from runtime.workflow._definition import Role as Role
from runtime.workflow._definition import Route as Route
from runtime.workflow._definition import Step as Step
from runtime.workflow._definition import Workflow as Workflow
from runtime.workflow._definition import chain as chain
from runtime.workflow._diagram import mermaid as mermaid
from runtime.workflow._fingerprint import fingerprint as fingerprint
from runtime.workflow._graph import Graph as Graph
from runtime.workflow._graph import compile_workflow as compile_workflow
from runtime.workflow._loader import load_workflows as load_workflows
from runtime.workflow._policies import FAILURE_KINDS as FAILURE_KINDS
from runtime.workflow._policies import Escalate as Escalate
from runtime.workflow._policies import EscalateTo as EscalateTo
from runtime.workflow._policies import FailurePolicy as FailurePolicy
from runtime.workflow._policies import Goto as Goto
from runtime.workflow._policies import Halt as Halt
from runtime.workflow._policies import PolicyTable as PolicyTable
from runtime.workflow._policies import ProceedWithFlag as ProceedWithFlag
from runtime.workflow._policies import Reject as Reject
from runtime.workflow._policies import Retry as Retry

__all__ = [
    "FAILURE_KINDS",
    "Catalog",
    "CatalogError",
    "Checkpoint",
    "Condition",
    "Consequence",
    "Decision",
    "Escalate",
    "EscalateTo",
    "FailurePolicy",
    "Goto",
    "Graph",
    "Halt",
    "Node",
    "PolicyTable",
    "ProceedWithFlag",
    "Reject",
    "Retry",
    "Role",
    "Route",
    "Step",
    "Workflow",
    "chain",
    "compile_workflow",
    "fingerprint",
    "key",
    "load_workflows",
    "mermaid",
]
