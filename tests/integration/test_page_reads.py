"""What a web page reads through a client, from a real runtime: watches that answer when a
run changes, pages of runs filtered by time and data, and the loaded workflows' graphs."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
import pytest
import zmq

from protocols import Changed, ClientKeys
from runtime import ControlClient, ControlRefused
from runtime.launch import ProcessGroup, RuntimeProcess
from runtime.workflow._diagram import mermaid
from runtime.workflow._graph import compile_workflow
from tests.integration import flows
from tests.integration.conftest import HEARTBEAT, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

FLOWS = "tests.integration.flows"
LONG = 30.0
"""The wait given to a watch that must be answered by a change, long before it ends."""


def flows_runtime(cluster: ProcessGroup, *roles: str) -> RuntimeProcess:
    for role in roles:
        cluster.enroll(role, role)
    cluster.enroll("page", "viewer")
    return cluster.start_runtime([f"{FLOWS}:ALL"], heartbeat=HEARTBEAT)


class TestWatch:
    async def test_a_watch_on_a_run_answers_when_its_step_completes(
        self, cluster: ProcessGroup, tmp_path: Path
    ) -> None:
        """A viewer watching a run whose step is held hears of it once the step's result is
        journaled, not at the end of its wait; the version it is given shows the step done."""
        gate = tmp_path / "gate"
        runtime = flows_runtime(cluster, "gated", "finisher")
        cluster.start_actor(f"{FLOWS}:Gated", runtime.agents, env={"BATON_TEST_GATE": str(gate)})
        async with ControlClient(runtime.control, keys=runtime.operator) as operator:
            run_id = await operator.start_run("gated", {"n": 7})
            held = await wait_for(operator, run_id, lambda r: r.steps["hold"].status == "running")
        changes: list[Changed] = []
        async with ControlClient(runtime.control, keys=cluster.keys_of("page")) as page:

            async def watch() -> None:
                changes.append(await page.watch(run_id, after=held.seq, max_wait=LONG))

            began = time.monotonic()
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(watch)
                gate.touch()
            (changed,) = changes
            assert not changed.timed_out
            assert changed.cursor > held.seq
            assert time.monotonic() - began < LONG / 2
            then = await page.get_run(run_id, at=changed.cursor)
        assert then.steps["hold"].status == "completed"
        assert then.data["w"] == 7

    async def test_a_watch_on_the_runtime_answers_when_a_run_starts_elsewhere(
        self, cluster: ProcessGroup
    ) -> None:
        """A viewer holding the change cursor hears of a run another client starts; with
        nothing changing, its wait ends timed out with the cursor it had."""
        runtime = flows_runtime(cluster)
        async with ControlClient(runtime.control, keys=cluster.keys_of("page")) as page:
            now = await page.watch(max_wait=0)
            quiet = await page.watch(after=now.cursor, max_wait=0.3)
            assert (quiet.cursor, quiet.timed_out) == (now.cursor, True)
            changes: list[Changed] = []

            async def watch() -> None:
                changes.append(await page.watch(after=now.cursor, max_wait=LONG))

            async with anyio.create_task_group() as tasks:
                tasks.start_soon(watch)
                async with ControlClient(runtime.control, keys=runtime.operator) as operator:
                    run_id = await operator.start_run("flaky", {"n": 1})
            (changed,) = changes
            assert not changed.timed_out
            assert changed.cursor > now.cursor
            assert [r.run_id for r in await page.list_runs()] == [run_id]

    async def test_a_watch_on_a_run_it_does_not_hold_is_refused(
        self, cluster: ProcessGroup
    ) -> None:
        """As a read of an unknown run is."""
        runtime = flows_runtime(cluster)
        async with ControlClient(runtime.control, keys=cluster.keys_of("page")) as page:
            with pytest.raises(ControlRefused) as refused:
                await page.watch("no-such-run", max_wait=1)
        assert (refused.value.code, refused.value.message) == (
            "unknown_run",
            "no run 'no-such-run'",
        )


class TestPagesOfRuns:
    async def test_filters_by_time_and_data_with_the_total(self, cluster: ProcessGroup) -> None:
        """A viewer pages through the runs matching a key, a value, and when they started;
        `total` counts every match whatever the page."""
        runtime = flows_runtime(cluster)
        before = time.time()
        async with ControlClient(runtime.control, keys=runtime.operator) as operator:
            started = [await operator.start_run("flaky", {"n": n}) for n in range(5)]
            other = await operator.start_run("quick", {"n": 3})
        newest_first = list(reversed(started))
        async with ControlClient(runtime.control, keys=cluster.keys_of("page")) as page:
            everything = await page.runs_page(workflow="flaky", since=before)
            assert [r.run_id for r in everything.runs] == newest_first
            assert everything.total == 5
            middle = await page.runs_page(workflow="flaky", limit=2, offset=1)
            assert [r.run_id for r in middle.runs] == newest_first[1:3]
            assert middle.total == 5
            threes = await page.list_runs(key="n", value="3")
            assert {r.run_id for r in threes} == {started[3], other}
            assert await page.list_runs(key="w") == []
            later = await page.runs_page(since=time.time() + 60)
            assert (later.runs, later.total) == ([], 0)
            earlier = await page.runs_page(until=before - 60)
            assert earlier.total == 0


class TestWorkflows:
    async def test_each_loaded_workflow_comes_with_its_graph(self, cluster: ProcessGroup) -> None:
        """The graph a viewer is given is the one `baton diagram` draws."""
        runtime = flows_runtime(cluster)
        async with ControlClient(runtime.control, keys=cluster.keys_of("page")) as page:
            views = {view.name: view for view in await page.workflows()}
        assert set(views) == {workflow.name for workflow in flows.ALL}
        flaky = views["flaky"]
        graph = compile_workflow(flows.flaky)
        assert flaky.mermaid == mermaid(graph)
        assert (flaky.version, flaky.fingerprint, flaky.inputs) == ("1", graph.fingerprint, ["n"])
        assert [(n.name, n.role) for n in flaky.nodes] == [
            ("wobble", "flaky"),
            ("finish", "finisher"),
        ]
        assert [(e.source, e.target, e.kind) for e in flaky.edges] == [("wobble", "finish", "next")]


class TestAuthority:
    async def test_only_viewers_and_operators_may_read(self, cluster: ProcessGroup) -> None:
        """An agent's key may not watch, page through runs or list workflows."""
        runtime = flows_runtime(cluster, "flaky")
        async with ControlClient(runtime.control, keys=cluster.keys_of("flaky")) as agent_key:
            reads: list[tuple[Callable[[], Awaitable[object]], str]] = [
                (lambda: agent_key.watch(max_wait=1), "watch"),
                (lambda: agent_key.runs_page(key="n"), "list runs"),
                (agent_key.workflows, "list workflows"),
            ]
            for read, action in reads:
                with pytest.raises(ControlRefused) as refused:
                    await read()
                assert refused.value.code == "unauthorized"
                assert refused.value.message == (
                    f"principal 'flaky' may not {action}: it needs role 'operator' or 'viewer'"
                )

    async def test_a_key_not_enrolled_may_not_watch(self, cluster: ProcessGroup) -> None:
        """Its handshake is refused before any request is read."""
        runtime = flows_runtime(cluster)
        assert runtime.operator is not None
        public, secret = zmq.curve_keypair()
        stranger = ClientKeys("stranger", public, secret, runtime.operator.server)
        async with ControlClient(runtime.control, keys=stranger, timeout=5) as client:
            with pytest.raises(ControlRefused) as refused:
                await client.watch(max_wait=1)
        assert refused.value.code == "unauthorized"
