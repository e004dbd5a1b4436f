"""A run's inputs name the principal whose key started it, through the real control plane."""

from __future__ import annotations

import pytest

from runtime import ControlClient
from runtime.launch import ProcessGroup
from tests.integration.test_runtime_end_to_end import start_flows

pytestmark = [pytest.mark.integration, pytest.mark.anyio]


class TestInputsNameTheirPrincipal:
    """The runtime records who gave each input, from the key the request came under."""

    async def test_operator_is_recorded_on_the_inputs(self, cluster: ProcessGroup) -> None:
        """The operator starts a run; its input is given by `operator` at the run's start."""
        runtime = start_flows(cluster)
        async with ControlClient(runtime.control, keys=runtime.operator) as client:
            run_id = await client.start_run("guarded", {"account": "acc-1"})
            record = await client.get_run(run_id)
            await client.cancel_run(run_id)
        given = record.provenance["account"]
        assert (given.step, given.attempt, given.edited_by) == ("input", 0, "operator")
        assert given.rationale == "given by operator when the run started"
        assert record.history[0].principal == "operator"
