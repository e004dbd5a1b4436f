"""A refused tool call, end to end: one entry in the run's history, nothing more.

The clerk's step allows `read_balance` only, and the clerk calls `wire_money`
after it: the runtime refuses the call and fails the step.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime import ControlClient
from runtime.launch import ProcessGroup
from tests.integration.test_runtime_end_to_end import FLOWS, start_flows

pytestmark = [pytest.mark.integration, pytest.mark.anyio]


class TestOneEntryPerRefusal:
    """The agent of a refused call does not report the attempt the runtime already failed."""

    async def test_history_holds_the_refusal_once(
        self, cluster: ProcessGroup, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """After the refusal the run halts, and no stale report of the attempt follows."""
        monkeypatch.setenv("BATON_TEST_LEDGER", str(tmp_path / "ledger.txt"))
        cluster.enroll("bank", "tools:bank")
        runtime = start_flows(cluster, "clerk")
        cluster.start_actor(f"{FLOWS}:Bank", runtime.agents)
        cluster.start_actor(f"{FLOWS}:Clerk", runtime.agents)
        async with ControlClient(runtime.control, keys=runtime.operator) as client:
            first = await client.start_run("guarded", {"account": "acc-1"})
            record, _ = await client.wait_run(first, max_wait=30)
            assert record.status == "halted"
            # The one clerk reports in order: whatever it had to say of the first run
            # reached the runtime before its calls for the second one.
            second = await client.start_run("guarded", {"account": "acc-2"})
            ended, _ = await client.wait_run(second, max_wait=30)
            assert ended.status == "halted"
            record = await client.get_run(first)
        assert [h.event for h in record.history] == [
            "run_started",
            "step_dispatched",
            "tool_called",
            "tool_completed",
            "tool_refused",
            "run_halted",
        ]
