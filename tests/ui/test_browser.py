"""End to end in a real browser: Playwright driving Debian's Chromium against `baton ui`,
a runtime and its agents, each its own process on loopback.

With CI=true a missing browser fails these tests; elsewhere it skips them.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import anyio
import pytest

from runtime import ControlClient
from runtime.launch import ProcessGroup, RuntimeProcess
from tests.integration.conftest import wait_for

pytestmark = [pytest.mark.integration]

CHROMIUM = Path(os.environ.get("BATON_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
"""Root runs it in CI (no sandbox), and this machine's network is closed: Chromium is told
not to reach for Google's hosts, which would be refused many at a time."""
CHECKPOINT_ABOVE = 100
"""The spend flow asks finance to approve amounts over this."""
LIVE = 20_000
"""Milliseconds a page has to show a change pushed to it."""


@pytest.fixture
def browser() -> Iterator[object]:
    if not CHROMIUM.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"no browser at {CHROMIUM}: `make test` installs Debian's chromium")
        pytest.skip(f"no browser at {CHROMIUM} (`make test` installs Debian's chromium)")
    from playwright.sync_api import sync_playwright  # noqa: PLC0415 - the dev extra

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def shots(tmp_path: Path) -> Iterator[Path]:
    """Where each page's screenshot goes: the test's artefacts, and with BATON_SCREENSHOTS
    set, that folder too (the README's pictures are made so)."""
    folder = tmp_path / "screenshots"
    folder.mkdir()
    yield folder
    kept = os.environ.get("BATON_SCREENSHOTS")
    if kept:
        Path(kept).mkdir(parents=True, exist_ok=True)
        for picture in folder.glob("*.png"):
            shutil.copy(picture, Path(kept) / picture.name)


def start_runs(cluster: ProcessGroup, runtime: RuntimeProcess, *amounts: int) -> list[str]:
    async def start() -> list[str]:
        async with ControlClient(runtime.control, keys=cluster.keys_of("boss")) as client:
            runs = [await client.start_run("spend", {"amount": amount}) for amount in amounts]
            for run_id, amount in zip(runs, amounts, strict=True):
                if amount > CHECKPOINT_ABOVE:
                    await wait_for(client, run_id, lambda r: bool(r.pending))
                else:
                    await client.wait_run(run_id, max_wait=20)
            return runs

    # Playwright's sync API holds this thread's event loop: the client runs in another.
    with ThreadPoolExecutor(1) as thread:
        return thread.submit(anyio.run, start).result()


def test_an_approver_clicks_approve_and_an_open_run_page_sees_it_complete_unreloaded(
    cluster: ProcessGroup, checkpoints: RuntimeProcess, browser: object, shots: Path
) -> None:
    from playwright.sync_api import Browser, expect  # noqa: PLC0415 - the dev extra

    assert isinstance(browser, Browser)
    start_runs(cluster, checkpoints, 40, 60, 80)
    (run_id,) = start_runs(cluster, checkpoints, 450)
    ui = cluster.start_ui(checkpoints.control, principal="finview")
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    watching = context.new_page()
    watching.goto(ui.url)
    expect(watching.locator("h1")).to_have_text("Runs")
    watching.screenshot(path=str(shots / "runs.png"), full_page=True)
    watching.goto(ui.url.split("/?")[0] + f"/runs/{run_id}")
    expect(watching.locator("#run-status")).to_have_text("waiting")
    expect(watching.locator("#inbox-count .count")).to_have_text("1")
    # Set on this document only: a reload or a navigation would lose it.
    watching.evaluate("window.untouched = true")
    watching.screenshot(path=str(shots / "run-waiting.png"), full_page=True)

    deciding = context.new_page()
    deciding.goto(ui.url.split("/?")[0] + "/runs")
    deciding.get_by_role("link", name="Inbox").click()
    approve = deciding.get_by_role("button", name=f"Approve spend of run {run_id}")
    expect(approve).to_be_visible()
    deciding.get_by_label("Comment").fill("invoice checked")
    deciding.screenshot(path=str(shots / "inbox.png"), full_page=True)
    approve.click()
    expect(deciding).to_have_url(f"{ui.url.split('/?')[0]}/runs/{run_id}")

    expect(watching.locator("#run-status")).to_have_text("completed", timeout=LIVE)
    expect(watching.locator("#inbox-count .count")).to_have_text("0", timeout=LIVE)
    assert watching.evaluate("window.untouched") is True
    expect(watching.locator("#step-finish")).to_contain_text("completed")
    expect(watching.locator(".timeline")).to_contain_text("invoice checked")
    watching.screenshot(path=str(shots / "run.png"), full_page=True)

    watching.get_by_role("link", name="Workflows").click()
    watching.get_by_role("link", name="spend").first.click()
    expect(watching.locator("#plot-outcomes")).to_be_visible()
    watching.screenshot(path=str(shots / "workflow.png"), full_page=True)
    watching.get_by_role("link", name="Agents").click()
    expect(watching.locator("main")).to_contain_text("spender")
    watching.screenshot(path=str(shots / "agents.png"), full_page=True)
    context.close()


def test_a_viewer_sees_no_approve_button_and_its_forged_post_is_refused(
    cluster: ProcessGroup, checkpoints: RuntimeProcess, browser: object
) -> None:
    from playwright.sync_api import Browser, expect  # noqa: PLC0415 - the dev extra

    assert isinstance(browser, Browser)
    (run_id,) = start_runs(cluster, checkpoints, 600)
    ui = cluster.start_ui(checkpoints.control, principal="watcher", label="ui-watcher")
    page = browser.new_page()
    page.goto(ui.url)
    page.get_by_role("link", name="Inbox").click()
    expect(page.locator(f"#decision-{run_id}-spend")).to_be_visible()
    expect(page.get_by_role("button", name="Approve")).to_have_count(0)
    expect(page.locator(".note")).to_contain_text("watcher is not one")
    # The same POST the approve button would make, with this session's own CSRF token.
    token = page.evaluate("JSON.parse(document.body.getAttribute('hx-headers'))['X-CSRF-Token']")
    pending = page.request.post(
        ui.url.split("/?")[0] + "/inbox/decide",
        form={"csrf_token": token, "run_id": run_id, "step": "spend", "attempt": "1",
              "digest": "x", "decision": "approve"},
    )  # fmt: skip
    assert pending.status == 403
    assert "may not" in pending.text() or "watcher" in pending.text()
    without_token = page.request.post(
        ui.url.split("/?")[0] + f"/runs/{run_id}/cancel", form={"reason": "no token"}
    )
    assert without_token.status == 403
    page.goto(ui.url.split("/?")[0] + f"/runs/{run_id}")
    expect(page.locator("#run-status")).to_have_text("waiting")
    page.close()
