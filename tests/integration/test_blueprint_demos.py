"""`baton demo NAME` for the blueprints beside customer_ops, end to end as a user runs it,
and the maps README shows of them."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.conftest import REPO

pytestmark = [pytest.mark.integration]

README = REPO / "README.md"
DEMO_TIMEOUT = 90.0
"""Seconds a blueprint's demo may take; it ends in well under a minute."""


def run_demo(name: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "runtime", "demo", name, "--agents-port", "0",
         "--control-port", "0"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=DEMO_TIMEOUT,
        check=False,
        env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip


class TestBlueprintDemos:
    def test_month_end_close_runs_to_the_end(self, tmp_path: Path) -> None:
        """Every close completes: the preparer is refused, the checker approves, the
        controller decides the stop above materiality and signs off; exit status 0."""
        done = run_demo("month_end_close", tmp_path)
        assert done.returncode == 0, done.stdout + done.stderr
        out = done.stdout
        assert "preparer may not: refused (unauthorized)" in out
        assert "(separation of duties)" in out
        assert "checker approved" in out
        assert "waits at triage_uk for controller" in out
        assert "The demo's controller approved it, so that the demo ends" in out
        assert "3 runs in " in out
        assert "0 left running" in out
        assert (tmp_path / ".baton" / "demo-month_end_close.db").exists()

    def test_lead_pipeline_runs_to_the_end(self, tmp_path: Path) -> None:
        """Every lead completes: three emails approved by the sales manager; exit status 0."""
        done = run_demo("lead_pipeline", tmp_path)
        assert done.returncode == 0, done.stdout + done.stderr
        out = done.stdout
        assert out.count("sales-manager approved") == 3
        assert "5 runs in " in out
        assert "0 left running" in out
        assert (tmp_path / ".baton" / "demo-lead_pipeline.db").exists()

    def test_an_unknown_name_is_refused(self, tmp_path: Path) -> None:
        """A name that is no blueprint stops before anything starts, naming those there are."""
        done = run_demo("payroll", tmp_path)
        assert done.returncode != 0
        assert "no blueprint 'payroll': baton demo runs one of customer_ops, " in done.stderr

    def test_pages_and_clusters_are_refused_for_the_new_blueprints(self, tmp_path: Path) -> None:
        """`--ui` and `--cluster` show customer_ops; with another name they stop at once."""
        done = subprocess.run(
            [sys.executable, "-m", "runtime", "demo", "lead_pipeline", "--ui"],
            cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert done.returncode != 0
        assert (
            "--cluster and --ui show customer_ops; run `baton demo lead_pipeline` without them"
            in done.stderr
        )


@pytest.mark.parametrize("name", ["month_end_close", "lead_pipeline"])
def test_the_readme_map_is_the_workflows(name: str) -> None:
    """The Mermaid block under `baton diagram examples.NAME:workflow` in README is what the
    command prints."""
    command = f"$ baton diagram examples.{name}:workflow\n```\n\n```mermaid\n"
    text = README.read_text()
    start = text.index(command) + len(command) - len("```mermaid\n")
    shown = re.match(r"```mermaid\n(.*?)^```$", text[start:], re.M | re.S)
    assert shown is not None
    done = subprocess.run(
        [sys.executable, "-m", "runtime", "diagram", f"examples.{name}:workflow"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout.strip() == shown[1].strip()
