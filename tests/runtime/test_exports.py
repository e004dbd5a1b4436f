"""The runtime's public names are deliberate, tier by tier.

`runtime` itself is what a workflow author imports; each package beneath it
lists what an operator or an embedder may use of that part. A change to any
list here is a change of the API.
"""

from __future__ import annotations

import importlib
import inspect
import subprocess
import sys

import pytest

import runtime

TIERS: dict[str, list[str]] = {
    "runtime": [
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
    ],
    "runtime.workflow": [
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
    ],
    "runtime.engine": [
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
    ],
    "runtime.supervisor": [
        "AuthenticatorDied",
        "RuntimeConfig",
        "Security",
        "Supervisor",
        "SupervisorStatistics",
        "agents_endpoint",
        "control_endpoint",
    ],
    "runtime.planes": [
        "CONNECTION_CLOSED",
        "HANDSHAKE_FAILURES",
        "PARTS_PER_TURN",
        "AgentHost",
        "AgentPlane",
        "AgentPlaneCounters",
        "ControlPlane",
        "Gate",
        "Handler",
        "Pacer",
        "RateLimiter",
        "Readiness",
        "RefusalHost",
        "Refusals",
        "RunHost",
        "Session",
        "TaskKey",
        "WaitKey",
        "pending_decisions",
        "record_view",
        "summary",
    ],
    "runtime.store": [
        "MIGRATIONS",
        "SCHEMA_VERSION",
        "ClockReading",
        "GraphNotLoaded",
        "HeldRun",
        "JournalRecord",
        "JournalUnreadable",
        "MemoryStore",
        "SqliteStore",
        "Store",
        "backup",
        "open_store",
        "read_journals",
        "replay",
    ],
    "runtime.security": [
        "APPROVER_PREFIX",
        "DEFAULT_KEYS_DIR",
        "RUNTIME",
        "ZAP_DOMAIN",
        "Authenticator",
        "KeysInvalid",
        "Principal",
        "PrincipalBook",
        "Principals",
        "PrincipalsInvalid",
        "RoleInvalid",
        "add_principal",
        "check_role",
        "init_keys",
        "keys_dir",
        "load_client_keys",
        "load_principals",
        "load_public_key",
        "load_server_keys",
        "remove_principal",
    ],
    "runtime.observe": [
        "LEVELS",
        "Gauges",
        "LogFormat",
        "Metrics",
        "Observer",
        "Observers",
        "PlotUnavailable",
        "RunLog",
        "Tracer",
        "configure_logging",
        "ending_level",
        "plot_report",
        "render_report",
        "report",
        "span_id",
        "trace_id",
        "traceparent",
    ],
    "runtime.client": [
        "ControlClient",
        "ControlRefused",
        "RunsPage",
        "RuntimeUnavailable",
    ],
    "runtime.cluster": ["LocalPostgres", "LocalPostgresError", "server_binaries"],
    "runtime.cli": [
        "app",
        "main",
    ],
    "runtime.testing": [
        "EngineDriver",
        "FakeClock",
        "of_kind",
        "sample_outputs",
    ],
}
AUTHOR_NEEDS = {
    "Workflow",
    "Step",
    "Decision",
    "Route",
    "Role",
    "Retry",
    "Escalate",
    "Halt",
    "ProceedWithFlag",
    "Goto",
    "key",
    "Checkpoint",
    "ControlClient",
    "BatonError",
}


@pytest.mark.parametrize("package", sorted(TIERS))
def test_each_tier_is_pinned(package: str) -> None:
    """Adding or removing a public name is a visible change to this list."""
    assert importlib.import_module(package).__all__ == TIERS[package]


@pytest.mark.parametrize("package", sorted(TIERS))
def test_every_name_resolves_to_a_private_module(package: str) -> None:
    """Each name is defined in a `_module` of the runtime and re-exported, never redefined."""
    module = importlib.import_module(package)
    for name in module.__all__:
        value = getattr(module, name)
        if inspect.isclass(value) or inspect.isfunction(value):
            home = value.__module__
            assert home.startswith("runtime."), (package, name, home)
            assert "._" in home or home == "runtime.errors", (package, name, home)


def test_an_author_needs_only_the_top_tier() -> None:
    """What a workflow needs is importable from `runtime` itself; no operator internals are."""
    assert set(runtime.__all__) >= AUTHOR_NEEDS
    for internal in ("Supervisor", "SqliteStore", "Principals", "engine", "Graph"):
        assert internal not in runtime.__all__


@pytest.mark.parametrize("package", sorted(TIERS))
def test_each_package_imports_first_on_its_own(package: str) -> None:
    """No cycle between the packages: any of them can be the first one a program imports."""
    done = subprocess.run([sys.executable, "-c", f"import {package}"], check=False)
    assert done.returncode == 0


WITHOUT_PSYCOPG = """
import sys

# None in sys.modules makes `import psycopg` fail as it does where the extra is missing.
sys.modules["psycopg"] = sys.modules["psycopg_pool"] = None

import runtime.cli
import runtime.cluster
import runtime.store
from runtime.errors import ConfigError

print(type(runtime.store.open_store("memory://")).__name__)
try:
    runtime.store.open_store("postgresql://baton:hunter2@db.example/baton")
except ConfigError as exc:
    print(exc)
"""


def test_the_store_works_without_the_postgres_extra() -> None:
    """psycopg is optional: without it every package imports, the other stores open, and a
    PostgreSQL URL says which extra to install."""
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_PSYCOPG], check=False, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "MemoryStore",
        "--store='postgresql://baton:***@db.example/baton': PostgreSQL needs psycopg: "
        "pip install 'baton-runtime[postgres]'",
    ]
