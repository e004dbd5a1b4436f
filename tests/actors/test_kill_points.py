"""`BATON_KILL_AT`: where a process is told to die, read strictly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from actors import KILL_POINTS, KillPoints, KillPointsInvalid


class TestFromEnvironment:
    def test_unset_is_disarmed(self) -> None:
        points = KillPoints.from_environment({})
        assert not points.armed
        points.passing("dispatch-persisted")

    def test_a_point_with_and_without_a_count(self) -> None:
        points = KillPoints.from_environment(
            {"BATON_KILL_AT": "tool-settled, dispatch-persisted@3"}
        )
        assert points.armed

    @pytest.mark.parametrize(
        ("spec", "problem"),
        [
            ("dispatch-persist", "no kill point 'dispatch-persist'"),
            ("tool-settled@0", "above 0"),
            ("tool-settled@x", "above 0"),
            ("tool-settled@-1", "above 0"),
        ],
    )
    def test_a_wrong_spec_is_refused_saying_why(self, spec: str, problem: str) -> None:
        with pytest.raises(KillPointsInvalid, match=problem):
            KillPoints.from_environment({"BATON_KILL_AT": spec})

    def test_every_point_says_what_has_happened_there(self) -> None:
        assert set(KILL_POINTS) == {
            "result-received",
            "dispatch-persisted",
            "tool-executed",
            "tool-settled",
        }


class TestPassing:
    def test_the_process_dies_by_sigkill_on_the_pass_it_was_told(self) -> None:
        """Passes before the Nth go by; the Nth kills the process with no clean-up."""
        script = (
            "from actors import KillPoints\n"
            "points = KillPoints({'tool-settled': 3})\n"
            "for n in range(1, 6):\n"
            "    print(n, flush=True)\n"
            "    points.passing('tool-settled')\n"
        )
        done = subprocess.run(
            [sys.executable, "-c", script],
            capture_output=True,
            text=True,
            timeout=30,
            env={**os.environ, "PYTHONPATH": os.getcwd()},
            check=False,
        )
        assert done.returncode == -signal.SIGKILL
        # Unconfigured, structlog writes to standard output: the numbers, then its line.
        lines = done.stdout.splitlines()
        assert lines[:3] == ["1", "2", "3"]
        assert len(lines) == 4
        assert "process.killed" in lines[3]
        assert "tool-settled" in lines[3]
