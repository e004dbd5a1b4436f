"""The page server against a real runtime and real agents on loopback."""

from __future__ import annotations

import pytest

from runtime.launch import ProcessGroup, RuntimeProcess
from tests.integration.conftest import anyio_backend, cluster
from tests.integration.test_checkpoints import start

__all__ = ["anyio_backend", "checkpoints", "cluster"]


@pytest.fixture
def checkpoints(cluster: ProcessGroup) -> RuntimeProcess:
    """A runtime with the checkpoint flows and their agents. `finview` reads runs and
    approves for finance, `watcher` only reads, `opsview` reads and decides escalations to
    ops, `boss` operates and approves for finance."""
    cluster.enroll("finview", "viewer", "approver:finance")
    cluster.enroll("watcher", "viewer")
    cluster.enroll("opsview", "viewer", "approver:ops")
    return start(cluster)
