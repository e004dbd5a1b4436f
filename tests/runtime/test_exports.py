"""The runtime package's public names are deliberate."""

from __future__ import annotations

import runtime

PUBLIC = [
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


class TestExports:
    """`runtime.__all__` is pinned, and every name in it resolves."""

    def test_all_is_pinned(self) -> None:
        """Adding or removing a public name is a visible change to this list."""
        assert runtime.__all__ == PUBLIC

    def test_every_name_resolves(self) -> None:
        """Each exported name is an attribute of the package."""
        for name in PUBLIC:
            assert getattr(runtime, name) is not None, name
