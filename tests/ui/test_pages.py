"""Pages and actions through Starlette's test client, against a real runtime and agents.

The app acts as one principal through the runtime's control plane: these tests
check what a person sees and what each action does to the runs, and that the door
(token, session cookie, CSRF token) and the runtime's authority hold.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import anyio
import pytest
from starlette.testclient import TestClient

from protocols import RunRecord
from runtime import ControlClient
from runtime.launch import ProcessGroup, RuntimeProcess
from runtime.ui import UiSettings, create_app
from tests.integration.conftest import wait_for

pytestmark = [pytest.mark.integration]

T = TypeVar("T")
TOKEN = "test-access-token-0123456789"


def ask(
    cluster: ProcessGroup,
    runtime: RuntimeProcess,
    principal: str,
    request: Callable[[ControlClient], Awaitable[T]],
) -> T:
    async def run() -> T:
        async with ControlClient(runtime.control, keys=cluster.keys_of(principal)) as client:
            return await request(client)

    return anyio.run(run)


def settle(cluster: ProcessGroup, runtime: RuntimeProcess, run_id: str) -> RunRecord:
    """The run's record once it ended."""

    async def wait(client: ControlClient) -> RunRecord:
        record, timed_out = await client.wait_run(run_id, max_wait=20)
        assert not timed_out, record.status
        return record

    return ask(cluster, runtime, "boss", wait)


def held(cluster: ProcessGroup, runtime: RuntimeProcess, run_id: str) -> RunRecord:
    """The run's record once it waits for a decision."""

    async def wait(client: ControlClient) -> RunRecord:
        return await wait_for(client, run_id, lambda r: bool(r.pending))

    return ask(cluster, runtime, "boss", wait)


def connected(cluster: ProcessGroup, runtime: RuntimeProcess, roles: set[str]) -> None:
    """Once an agent of each of `roles` is connected, as the runtime lists them: runs that
    settle say only that their own roles' agents have registered."""

    async def wait(client: ControlClient) -> None:
        with anyio.fail_after(20):
            while True:
                if roles <= {agent.role for agent in (await client.agents()).agents}:
                    return
                await anyio.sleep(0.05)

    ask(cluster, runtime, "boss", wait)


def start_runs(cluster: ProcessGroup, runtime: RuntimeProcess, *amounts: int) -> list[str]:
    async def start(client: ControlClient) -> list[str]:
        return [await client.start_run("spend", {"amount": amount}) for amount in amounts]

    return ask(cluster, runtime, "boss", start)


@pytest.fixture
def browser_as(
    cluster: ProcessGroup, checkpoints: RuntimeProcess
) -> Iterator[Callable[..., TestClient]]:
    """A logged-in test client of a page server acting as the principal named."""
    opened: list[TestClient] = []

    def open_as(principal: str, **options: Any) -> TestClient:
        keys = cluster.keys_of(principal)
        assert cluster.keys is not None
        from runtime.security._keys import load_principals  # noqa: PLC0415

        found = load_principals(cluster.keys).by_name(principal)
        assert found is not None
        settings = UiSettings(
            control=checkpoints.control,
            principal=principal,
            token=TOKEN,
            keys=keys,
            roles=found.roles,
            **options,
        )
        client = TestClient(create_app(settings), base_url="http://127.0.0.1")
        client.__enter__()
        opened.append(client)
        landed = client.get(f"/runs?token={TOKEN}", follow_redirects=False)
        assert landed.status_code == 303
        return client

    yield open_as
    for client in opened:
        client.__exit__(None, None, None)


def csrf_of(page: str) -> str:
    found = re.search(r'(?:name="csrf_token" value="|"X-CSRF-Token": ")([^"]+)"', page)
    assert found, "the page carries no CSRF token"
    return found.group(1)


class TestDoor:
    def test_the_token_is_traded_for_an_httponly_strict_cookie_and_nothing_opens_without(
        self, cluster: ProcessGroup, checkpoints: RuntimeProcess
    ) -> None:
        settings = UiSettings(
            control=checkpoints.control, principal="boss", token=TOKEN,
            keys=cluster.keys_of("boss"), roles=frozenset({"operator"}),
        )  # fmt: skip
        with TestClient(create_app(settings), base_url="http://127.0.0.1") as client:
            assert client.get("/runs").status_code == 401
            assert client.get("/runs?token=wrong").status_code == 401
            landed = client.get(f"/runs?token={TOKEN}&status=running", follow_redirects=False)
            assert landed.status_code == 303
            # The token leaves the address bar; the filters stay.
            assert landed.headers["location"] == "/runs?status=running"
            cookie = landed.headers["set-cookie"].lower()
            assert "httponly" in cookie
            assert "samesite=strict" in cookie
            page = client.get("/runs")
            assert page.status_code == 200
            assert "frame-ancestors 'none'" in page.headers["content-security-policy"]

    def test_under_a_sub_path_every_link_and_the_cookie_carry_it(
        self, cluster: ProcessGroup, checkpoints: RuntimeProcess
    ) -> None:
        settings = UiSettings(
            control=checkpoints.control, principal="boss", token=TOKEN,
            keys=cluster.keys_of("boss"), roles=frozenset({"operator"}),
        )  # fmt: skip
        app = create_app(settings)
        with TestClient(app, base_url="http://127.0.0.1", root_path="/baton") as client:
            landed = client.get(f"/baton/runs?token={TOKEN}", follow_redirects=False)
            assert landed.headers["location"] == "/baton/runs"
            assert "path=/baton" in landed.headers["set-cookie"].lower()
            page = client.get("/baton/runs").text
            assert 'href="/baton/inbox"' in page
            assert 'src="/baton/static/htmx.min.js"' in page
            assert 'data-events="/baton/events"' in page
            assert client.get("/baton/static/baton.css").status_code == 200

    def test_a_post_without_the_csrf_token_is_refused_and_changes_nothing(
        self, cluster: ProcessGroup, checkpoints: RuntimeProcess, browser_as: Any
    ) -> None:
        (run_id,) = start_runs(cluster, checkpoints, 500)
        held(cluster, checkpoints, run_id)
        client = browser_as("boss")
        refused = client.post(f"/runs/{run_id}/cancel", data={"reason": "forged"})
        assert refused.status_code == 403
        forged = client.post(
            f"/runs/{run_id}/cancel", data={"reason": "forged", "csrf_token": "guess"}
        )
        assert forged.status_code == 403
        record = ask(cluster, checkpoints, "boss", lambda c: c.get_run(run_id))
        assert record.status == "waiting"

    def test_read_only_offers_no_action_and_serves_none(
        self, cluster: ProcessGroup, checkpoints: RuntimeProcess, browser_as: Any
    ) -> None:
        (run_id,) = start_runs(cluster, checkpoints, 500)
        held(cluster, checkpoints, run_id)
        client = browser_as("boss", read_only=True)
        page = client.get(f"/runs/{run_id}").text
        assert "Cancel run" not in page
        assert "read-only" in page
        inbox = client.get("/inbox").text
        assert "Approve" not in inbox
        token = csrf_of(inbox)
        assert client.post(f"/runs/{run_id}/cancel", data={"csrf_token": token}).status_code == 404
        assert ask(cluster, checkpoints, "boss", lambda c: c.get_run(run_id)).status == "waiting"


class TestRuns:
    def test_filters_by_data_key_and_status_are_kept_in_the_address_and_counted(
        self, cluster: ProcessGroup, checkpoints: RuntimeProcess, browser_as: Any
    ) -> None:
        small, large = start_runs(cluster, checkpoints, 50, 700)
        settle(cluster, checkpoints, small)
        held(cluster, checkpoints, large)
        client = browser_as("boss")
        page = client.get("/runs?key=amount&value=700").text
        assert large in page
        assert small not in page
        assert re.search(r'id="runs-total">1<', page)
        waiting = client.get("/runs?status=waiting").text
        assert large in waiting
        assert small not in waiting
        # The pager and the bulk links carry the filters.
        assert "status=waiting" in client.get("/runs?status=waiting").text
        bad = client.get("/runs?since=yesterday-ish")
        assert bad.status_code == 400
        assert "expected an age" in bad.text

    def test_bulk_cancel_shows_the_count_first_then_cancels_that_set(
        self, cluster: ProcessGroup, checkpoints: RuntimeProcess, browser_as: Any
    ) -> None:
        waiting = start_runs(cluster, checkpoints, 300, 400, 500)
        done = start_runs(cluster, checkpoints, 20)
        for run_id in waiting:
            held(cluster, checkpoints, run_id)
        settle(cluster, checkpoints, done[0])
        client = browser_as("boss")
        confirm = client.get("/runs/bulk?workflow=spend&action=cancel")
        assert confirm.status_code == 200
        assert "Cancel 3 runs?" in confirm.text
        acted = client.post(
            "/runs/bulk",
            data={"workflow": "spend", "action": "cancel", "count": "3",
                  "csrf_token": csrf_of(confirm.text)},
        )  # fmt: skip
        assert acted.status_code == 200
        assert "3 done" in acted.text
        for run_id in waiting:
            record = ask(cluster, checkpoints, "boss", lambda c, r=run_id: c.get_run(r))
            assert record.status == "cancelled"
            assert "bulk cancel" in record.reason or record.history[-1].message
        untouched = ask(cluster, checkpoints, "boss", lambda c: c.get_run(done[0]))
        assert untouched.status == "completed"


class TestRun:
    def test_the_run_page_shows_graph_data_provenance_and_any_earlier_version(
        self, cluster: ProcessGroup, checkpoints: RuntimeProcess, browser_as: Any
    ) -> None:
        (run_id,) = start_runs(cluster, checkpoints, 60)
        record = settle(cluster, checkpoints, run_id)
        client = browser_as("watcher")
        page = client.get(f"/runs/{run_id}").text
        assert 'class="node node-step st-completed"' in page
        assert 'href="#step-spend"' in page
        assert "spent 60" in page
        assert "input" in page  # the amount's provenance
        first = client.get(f"/runs/{run_id}?at=1").text
        assert f"version 1 of {record.seq}" in first
        assert "spent 60" not in first
        assert "Cancel run" not in page  # a viewer is offered no action
        assert 'id="fork-title"' not in page

    def test_a_forged_approval_from_a_viewer_is_refused_by_the_runtime(
        self, cluster: ProcessGroup, checkpoints: RuntimeProcess, browser_as: Any
    ) -> None:
        (run_id,) = start_runs(cluster, checkpoints, 900)
        decision = held(cluster, checkpoints, run_id).pending[0]
        client = browser_as("watcher")
        inbox = client.get("/inbox").text
        assert run_id in inbox
        assert "Approve" not in inbox  # no button for a principal that is no approver
        forged = client.post(
            "/inbox/decide",
            data={
                "csrf_token": csrf_of(inbox),
                "run_id": run_id, "step": decision.step, "attempt": str(decision.attempt),
                "digest": decision.digest, "decision": "approve",
            },
        )  # fmt: skip
        assert forged.status_code == 403
        assert "watcher" in forged.text
        record = ask(cluster, checkpoints, "boss", lambda c: c.get_run(run_id))
        assert record.status == "waiting"

    def test_an_approval_with_an_edit_and_a_fork_with_an_edit(
        self, cluster: ProcessGroup, checkpoints: RuntimeProcess, browser_as: Any
    ) -> None:
        (run_id,) = start_runs(cluster, checkpoints, 800)
        decision = held(cluster, checkpoints, run_id).pending[0]
        approver = browser_as("finview")
        inbox = approver.get("/inbox").text
        assert f'aria-label="Approve spend of run {run_id}"' in inbox
        approved = approver.post(
            "/inbox/decide",
            data={
                "csrf_token": csrf_of(inbox), "run_id": run_id, "step": decision.step,
                "attempt": str(decision.attempt), "digest": decision.digest,
                "decision": "approve", "comment": "checked the invoice", "value:amount": "750",
            },
            follow_redirects=False,
        )  # fmt: skip
        assert approved.status_code == 303
        assert approved.headers["location"] == f"/runs/{run_id}"
        record = settle(cluster, checkpoints, run_id)
        assert record.status == "completed"
        assert record.data["amount"] == 750
        assert record.provenance["amount"].edited_by == "finview"
        operator = browser_as("boss")
        page = operator.get(f"/runs/{run_id}").text
        # From the version at which the approval was made: the spend is about to go out.
        approval = next(e.seq for e in record.history if e.event == "decision_made")
        forked = operator.post(
            f"/runs/{run_id}/fork",
            data={"csrf_token": csrf_of(page), "at": str(approval), "values": "amount=40",
                  "reason": "try a small one"},
            follow_redirects=False,
        )  # fmt: skip
        assert forked.status_code == 303
        child = forked.headers["location"].rsplit("/", 1)[1]
        assert child != run_id
        done = settle(cluster, checkpoints, child)
        assert done.status == "completed"
        assert done.forked_from == run_id
        assert done.data["receipt"] == "spent 40"
        assert "Forked from" in operator.get(f"/runs/{child}").text
        bad = operator.post(
            f"/runs/{run_id}/fork",
            data={"csrf_token": csrf_of(page), "at": "1", "values": "amount=not json"},
        )
        assert bad.status_code == 400
        assert "not JSON" in bad.text

    def test_an_escalation_is_skipped_with_the_outputs_given(
        self, cluster: ProcessGroup, checkpoints: RuntimeProcess, browser_as: Any
    ) -> None:
        async def start(client: ControlClient) -> str:
            return await client.start_run("fragile", {})

        run_id = ask(cluster, checkpoints, "boss", start)
        decision = held(cluster, checkpoints, run_id).pending[0]
        assert decision.kind == "escalation"
        client = browser_as("opsview")
        inbox = client.get("/inbox").text
        for choice in ("Retry", "Skip", "Abort"):
            assert f'aria-label="{choice} try of run {run_id}"' in inbox
        skipped = client.post(
            "/inbox/decide",
            data={
                "csrf_token": csrf_of(inbox), "run_id": run_id, "step": "try",
                "attempt": str(decision.attempt), "digest": decision.digest,
                "decision": "skip", "extra": "x=42", "comment": "good enough",
            },
            follow_redirects=False,
        )  # fmt: skip
        assert skipped.status_code == 303
        record = settle(cluster, checkpoints, run_id)
        assert record.status == "completed"
        assert record.data["x"] == 42
        assert record.provenance["x"].edited_by == "opsview"


class TestOtherPages:
    def test_workflow_report_and_agents(
        self, cluster: ProcessGroup, checkpoints: RuntimeProcess, browser_as: Any
    ) -> None:
        for run_id in start_runs(cluster, checkpoints, 10, 20):
            settle(cluster, checkpoints, run_id)
        connected(cluster, checkpoints, {"spender", "finisher", "fragile"})
        client = browser_as("watcher")
        listing = client.get("/workflows").text
        assert 'href="/workflows/spend"' in listing
        report = client.get("/workflows/spend").text
        assert "Runs by outcome (2 runs)" in report
        assert "compounded" in report
        assert "flowchart TD" in report
        agents = client.get("/agents").text
        for role in ("spender", "finisher", "fragile"):
            assert f'<th scope="row">{role}</th>' in agents
        assert client.get("/workflows/nope").status_code == 404
        assert client.get("/runs/no-such-run").status_code == 404
