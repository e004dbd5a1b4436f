"""The public names of `protocols`: pinned, resolvable, and defined in private modules."""

from __future__ import annotations

import inspect
import pkgutil
import subprocess
import sys

import protocols

PUBLIC_NAMES = [
    "DEFAULT_MAX_FRAME",
    "MAX_ENDPOINT",
    "MAX_ITEMS",
    "MAX_NAME",
    "MAX_PEERS",
    "MAX_TEXT",
    "PROTOCOL_VERSION",
    "TERMINAL_STATUSES",
    "VALUE_DEPTH",
    "WELL_KNOWN_TEST_KEYS",
    "ActorKind",
    "ActorMessage",
    "AgentView",
    "AgentsReply",
    "Arguments",
    "Assign",
    "AttemptOutcome",
    "AttemptView",
    "Bye",
    "Cancel",
    "CancelRun",
    "Changed",
    "ClientKeys",
    "Cluster",
    "ClusterMember",
    "Codec",
    "ControlError",
    "ControlReply",
    "ControlRequest",
    "Data",
    "Decide",
    "DecisionKind",
    "DiagramEdge",
    "DiagramNode",
    "Endpoint",
    "Error",
    "ErrorCode",
    "FailureKind",
    "FailureReason",
    "ForkRun",
    "GetReport",
    "GetRun",
    "Heartbeat",
    "HistoryEntry",
    "ListAgents",
    "ListMembers",
    "ListPending",
    "ListRuns",
    "ListWorkflows",
    "MembersReply",
    "Message",
    "ModelCall",
    "ModelReply",
    "Name",
    "OutputType",
    "Peers",
    "PendingDecision",
    "PendingReply",
    "ProtocolError",
    "Provenance",
    "Register",
    "Report",
    "ReportReply",
    "ResumeRun",
    "RoleView",
    "RunAccepted",
    "RunRecord",
    "RunReply",
    "RunStatus",
    "RunSummary",
    "RunsReply",
    "RuntimeMessage",
    "ServerKeys",
    "StartRun",
    "StepFailure",
    "StepFigures",
    "StepResult",
    "StepStatus",
    "StepView",
    "TakeoverSeen",
    "TaskRef",
    "Text",
    "ToolCall",
    "ToolReply",
    "ToolSpec",
    "Value",
    "WaitRun",
    "Watch",
    "Welcome",
    "WorkflowView",
    "WorkflowsReply",
    "actor_side_codec",
    "client_side_control_codec",
    "clip",
    "is_loopback",
    "is_z85_key",
    "protocol_schema",
    "runtime_side_agent_codec",
    "runtime_side_control_codec",
]


def isort_key(name: str) -> tuple[int, str]:
    """Constants first, then classes and aliases, then functions, each alphabetical."""
    kind = 0 if name.isupper() else 1 if name[0].isupper() else 2
    return (kind, name)


class TestExports:
    """`protocols` has one front door, and it is pinned."""

    def test_public_names_are_pinned(self) -> None:
        """`__all__` is exactly the reviewed list; a change here is a change of the API."""
        assert protocols.__all__ == PUBLIC_NAMES

    def test_public_names_are_sorted_and_unique(self) -> None:
        """`__all__` is sorted as ruff sorts it (constants, classes, functions); no duplicates."""
        assert protocols.__all__ == sorted(set(protocols.__all__), key=isort_key)

    def test_every_name_resolves(self) -> None:
        """Each name in `__all__` is an attribute of the package."""
        missing = [name for name in protocols.__all__ if not hasattr(protocols, name)]
        assert missing == []

    def test_star_import_gives_the_public_names(self) -> None:
        """`from protocols import *` binds exactly the names of `__all__`."""
        namespace: dict[str, object] = {}
        exec("from protocols import *", namespace)
        assert sorted(set(namespace) - {"__builtins__"}) == sorted(PUBLIC_NAMES)

    def test_modules_are_private(self) -> None:
        """Every module inside the package is private: `__all__` is the only way in."""
        public = [m.name for m in pkgutil.iter_modules(protocols.__path__) if m.name[0] != "_"]
        assert public == []

    def test_classes_and_functions_live_in_private_modules(self) -> None:
        """Each exported class or function is defined in a private `protocols._` module."""
        defined = {
            name: obj.__module__
            for name in protocols.__all__
            if inspect.isclass(obj := getattr(protocols, name)) or inspect.isfunction(obj)
        }
        assert defined
        assert {
            name: module for name, module in defined.items() if not module.startswith("protocols._")
        } == {}

    def test_the_wire_needs_nothing_but_msgspec(self) -> None:
        """`protocols` is the wire alone: no sockets, no logging, no runtime or actor code."""
        code = (
            "import sys, protocols; "
            "loaded = {'zmq', 'structlog', 'runtime', 'actors', 'anyio'} & set(sys.modules); "
            "sys.exit(', '.join(sorted(loaded)) or None)"
        )
        done = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True)
        assert done.returncode == 0, done.stderr.decode()
