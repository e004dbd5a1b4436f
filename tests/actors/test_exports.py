"""The public names of `actors`."""

from __future__ import annotations

import subprocess
import sys

import actors


class TestExports:
    def test_the_public_names_are_pinned(self) -> None:
        """`actors.__all__` is exactly the documented API."""
        assert sorted(actors.__all__) == [
            "ActorError",
            "ActorLoadError",
            "Agent",
            "Context",
            "InvalidOutput",
            "KILL_POINTS",
            "KillPoints",
            "KillPointsInvalid",
            "Models",
            "Receipt",
            "Receipts",
            "RegistrationRefused",
            "Result",
            "SpanMark",
            "SpanRecorder",
            "Spans",
            "Task",
            "ToolFailed",
            "ToolHost",
            "ToolRefused",
            "Tools",
            "declared_role",
            "load_actor",
            "read_receipts",
            "run_actor",
            "serve",
            "tool",
            "tool_specs",
        ]

    def test_every_public_name_lives_in_a_private_module(self) -> None:
        """Each public name is defined in an `actors._x` module and re-exported."""
        for name in actors.__all__:
            if name.isupper():
                continue  # a constant has no module of its own
            assert getattr(actors, name).__module__.startswith("actors._"), name

    def test_errors_share_one_root(self) -> None:
        """Every error `actors` raises is an `ActorError`."""
        for name in ("ActorLoadError", "InvalidOutput", "RegistrationRefused", "ToolFailed"):
            assert issubclass(getattr(actors, name), actors.ActorError)
        assert issubclass(actors.ToolRefused, actors.ActorError)

    def test_tracing_is_imported_only_when_asked_for(self) -> None:
        """`import actors` works without the traces extra; SpanRecorder loads it on demand."""
        code = (
            "import sys, actors; loaded = 'opentelemetry.sdk' in sys.modules; "
            "actors.SpanRecorder; sys.exit(loaded or 'opentelemetry.sdk' not in sys.modules)"
        )
        assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0

    def test_actors_never_imports_the_runtime(self) -> None:
        """`actors` depends on `protocols` only, never on `runtime`."""
        code = "import sys, actors; sys.exit('runtime' in sys.modules)"
        assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
