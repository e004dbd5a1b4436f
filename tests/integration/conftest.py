"""Real runtimes and actors on loopback, always reaped."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from protocols import RunRecord
from runtime import ControlClient
from runtime.launch import ProcessGroup, RuntimeProcess
from runtime.security._keys import init_keys

REPO = Path(__file__).resolve().parents[2]
HEARTBEAT = 0.2
"""Short heartbeats so that a killed agent is noticed within a second."""


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[ProcessGroup]:
    """A process group whose children are stopped when the test ends, passed or not.

    It runs secure, as users do by default: a fresh key directory with the
    runtime's keys and an operator; tests enroll the principals they start.
    """
    keys = tmp_path / "keys"
    init_keys(keys)
    group = ProcessGroup(tmp_path, cwd=REPO, keys=keys)
    try:
        yield group
    finally:
        group.close()
        alive = [label for label, p in group.children if p.poll() is None]
        assert not alive, f"processes left running: {alive}"


async def wait_for(
    client: ControlClient,
    run_id: str,
    condition: Callable[[RunRecord], bool],
    *,
    limit: float = 20.0,
) -> RunRecord:
    """The run's record once `condition` holds of it (polled), failing after `limit` seconds."""
    with anyio.fail_after(limit):
        while True:
            record = await client.get_run(run_id)
            if condition(record):
                return record
            await anyio.sleep(0.02)


async def completed_runs(
    runtime: RuntimeProcess, workflow: str, *inputs: dict[str, Any]
) -> list[str]:
    """Start a run of `workflow` on each of `inputs`, then wait for each to end and check it
    completed; their ids."""
    async with ControlClient(runtime.control, keys=runtime.operator) as client:
        runs = [await client.start_run(workflow, values) for values in inputs]
        for run_id in runs:
            record, _ = await client.wait_run(run_id, max_wait=20)
            assert record.status == "completed", record.reason
    return runs
