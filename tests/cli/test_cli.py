"""The `baton` command's offline subcommands: validate, diagram, protocol."""

from __future__ import annotations

import io
import json
from pathlib import Path

import msgspec
import pytest
import zmq
from rich.console import Console
from typer.testing import CliRunner

from runtime.cli import app
from runtime.cli._render import progress_view, render_record
from runtime.engine._events import JournalEvent
from runtime.planes._views import record_view
from runtime.security._keys import init_keys
from runtime.store import JournalRecord, SqliteStore
from tests.runtime.test_report import GRAPH as REPORTED
from tests.runtime.test_report import drive

REPORTED_MODULE = "tests.runtime.test_report"

MODULE = "tests.cli.invalid_workflows"
runner = CliRunner()


class TestValidate:
    """`baton validate` accepts valid workflows and explains each refusal."""

    @pytest.mark.parametrize(
        ("attribute", "message", "step", "key"),
        [
            ("unreachable", "step 'island' is unreachable from 'a'", "island", None),
            (
                "dangling_edge",
                "edge a -> nowhere points to 'nowhere', which is not a step",
                "a",
                None,
            ),
            ("duplicate_name", "step name 'a' is used twice", "a", None),
            (
                "read_not_written",
                "step 'report' reads key 'size', which is not written on every path "
                "reaching it (when route -> report)",
                "report",
                "size",
            ),
            (
                "tool_not_allowed",
                "step 'a' uses tool 'delete_everything', which role 'worker' may not use",
                "a",
                None,
            ),
            (
                "unbounded_cycle",
                "cycle a -> b -> a has no bound: close it with a decision route that has a limit",
                "b",
                None,
            ),
        ],
    )
    def test_refusal_names_step_and_key(
        self, attribute: str, message: str, step: str, key: str | None
    ) -> None:
        """Exit status 2, and a problem naming the step (and key) with an exact message."""
        result = runner.invoke(app, ["validate", f"{MODULE}:{attribute}", "--json"])
        assert result.exit_code == 2
        (report,) = json.loads(result.stdout)
        assert report["valid"] is False
        assert [p["message"] for p in report["problems"]] == [message]
        assert report["problems"][0]["step"] == step
        assert report["problems"][0]["key"] == key

    def test_refusal_in_plain_text(self) -> None:
        """Without --json the problem is printed for people, still with exit status 2."""
        result = runner.invoke(app, ["validate", f"{MODULE}:unreachable"])
        assert result.exit_code == 2
        assert "step 'island' is unreachable from 'a'" in result.output

    def test_valid_workflow(self) -> None:
        """A valid workflow passes with its fingerprint."""
        result = runner.invoke(app, ["validate", f"{MODULE}:valid", "--json"])
        assert result.exit_code == 0
        (report,) = json.loads(result.stdout)
        assert report["valid"] is True
        assert len(report["fingerprint"]) == 16

    @pytest.mark.parametrize(
        ("attribute", "shown"),
        [("versioned", "✓ versioned a2.1: 1 steps"), ("valid", "✓ valid v1: 2 steps")],
    )
    def test_version_as_given(self, attribute: str, shown: str) -> None:
        """A version is printed as written (a2.1, not va2.1); a bare number reads v1."""
        result = runner.invoke(app, ["validate", f"{MODULE}:{attribute}"])
        assert result.exit_code == 0, result.output
        assert result.stdout.startswith(f"{shown}, fingerprint ")

    def test_unknown_module(self) -> None:
        """A reference that does not import is a usage error, not a traceback."""
        result = runner.invoke(app, ["validate", "no_such_module:workflow"])
        assert result.exit_code == 2
        assert "cannot load workflow 'no_such_module:workflow'" in result.output


class TestDiagramAndProtocol:
    """The map and the wire are printable without a runtime."""

    def test_diagram_is_mermaid(self) -> None:
        """The example workflow draws as a Mermaid flowchart with its loop bound."""
        result = runner.invoke(app, ["diagram", "examples.customer_ops:workflow"])
        assert result.exit_code == 0
        assert result.stdout.startswith("flowchart TD")
        assert "(max 2)" in result.stdout

    def test_protocol_schema(self) -> None:
        """The JSON Schema has the four planes and the recursive value type."""
        result = runner.invoke(app, ["protocol", "--schema"])
        assert result.exit_code == 0
        schema = json.loads(result.stdout)
        assert set(schema["planes"]) == {
            "actor_to_runtime",
            "runtime_to_actor",
            "control_request",
            "control_reply",
        }
        assert "Value" in schema["$defs"]

    def test_bad_input_json_is_a_usage_error(self) -> None:
        """`baton run` refuses input that is not a JSON object before contacting anyone."""
        result = runner.invoke(app, ["run", "anything", "--input", "[1, 2"])
        assert result.exit_code == 2
        assert "--input is not JSON" in result.output


class TestRuntimeStartup:
    """`baton runtime` refuses to start with a clear message instead of a traceback."""

    def test_taken_port(self) -> None:
        """A port another socket holds is reported, with exit status 2."""
        ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        holder = ctx.socket(zmq.ROUTER)
        try:
            port = holder.bind_to_random_port("tcp://127.0.0.1")
            result = runner.invoke(
                app,
                [
                    "runtime",
                    "--workflow",
                    "examples.customer_ops:workflow",
                    "--agents",
                    f"tcp://127.0.0.1:{port}",
                    "--control",
                    "tcp://127.0.0.1:0",
                    "--log-format",
                    "json",
                    "--insecure",
                    "--store",
                    "memory://",
                ],
            )
        finally:
            holder.close(linger=0)
            ctx.term()
        assert result.exit_code == 2
        assert "cannot bind the planes" in result.output
        assert "Address already in use" in result.output

    def test_insecure_on_a_non_loopback_endpoint(self) -> None:
        """Plain-text planes stay on this machine."""
        result = runner.invoke(
            app,
            [
                "runtime",
                "--workflow",
                "examples.customer_ops:workflow",
                "--agents",
                "tcp://10.1.2.3:7710",
                "--insecure",
            ],
        )
        assert result.exit_code == 2
        assert "--insecure runs only on loopback or ipc:// endpoints" in result.output

    @pytest.mark.parametrize(
        ("peers", "message"),
        [
            pytest.param(
                ["--peer", "tcp://127.0.0.1:7720,tcp://10.1.2.3:7710"],
                "--peer tcp://10.1.2.3:7710: --insecure runs only on loopback or ipc:// "
                "endpoints (use keys to serve other hosts)",
                id="not-loopback",
            ),
            pytest.param(
                ["--peer", "127.0.0.1:7720"],
                "--peer 127.0.0.1:7720: not an endpoint: expected TRANSPORT://ADDRESS "
                "(tcp://127.0.0.1:7710), at most 256 characters",
                id="no-transport",
            ),
            pytest.param(
                [f"--peer=tcp://127.0.0.1:{8000 + n}" for n in range(65)],
                "--peer: 65 endpoints; at most 64",
                id="too-many",
            ),
        ],
    )
    def test_peers_that_cannot_be_advertised(self, peers: list[str], message: str) -> None:
        """Each `--peer` is an endpoint an actor can reach, on loopback when insecure."""
        result = runner.invoke(
            app,
            ["runtime", "--workflow", "examples.customer_ops:workflow", "--insecure", *peers],
        )
        assert result.exit_code == 2
        assert " ".join(result.output.split()) == f"error: {message}"

    def test_no_keys_and_not_insecure(self, tmp_path: Path) -> None:
        """Secure is the default: without keys the runtime says how to make them."""
        missing = tmp_path / "nowhere"
        result = runner.invoke(
            app,
            ["runtime", "--workflow", "examples.customer_ops:workflow", "--keys", str(missing)],
        )
        assert result.exit_code == 2
        assert f"run `baton keys init {missing}`" in result.output
        assert "or pass --insecure" in result.output

    def test_the_manual_pages_test_key_is_refused(self, tmp_path: Path) -> None:
        """A runtime secret copied from the ZeroMQ manual would be no secret at all."""
        keys = tmp_path / "keys"
        init_keys(keys)
        secret = keys / "runtime.key_secret"
        secret.chmod(0o600)
        secret.write_text(
            "curve\n"
            '    public-key = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7"\n'
            '    secret-key = "JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6"\n'
        )
        result = runner.invoke(
            app, ["runtime", "--workflow", "examples.customer_ops:workflow", "--keys", str(keys)]
        )
        assert result.exit_code == 2
        assert "test key" in result.output


class TestAgentStartup:
    """`baton agent` checks the endpoints it is to serve before it starts."""

    @pytest.mark.parametrize(
        ("connect", "message"),
        [
            pytest.param(
                [
                    *("--connect", "tcp://127.0.0.1:7710"),
                    *("--connect", "tcp://127.0.0.1:7720,"),
                    *("--connect", "tcp://10.1.2.3:7710"),
                ],
                "--connect tcp://10.1.2.3:7710: --insecure runs only on loopback or ipc:// "
                "endpoints (use keys to serve other hosts)",
                id="not-loopback",
            ),
            pytest.param(
                ["--connect", "tcp://127.0.0.1:7710,localhost:7720"],
                "--connect localhost:7720: not an endpoint: expected TRANSPORT://ADDRESS "
                "(tcp://127.0.0.1:7710), at most 256 characters",
                id="no-transport",
            ),
            pytest.param(["--connect", " , "], "--connect: no endpoint given", id="none"),
        ],
    )
    def test_endpoints_that_cannot_be_served(self, connect: list[str], message: str) -> None:
        """Each `--connect` is an endpoint, on loopback when insecure; commas separate several."""
        result = runner.invoke(
            app, ["agent", "tests.actors.sample:EchoAgent", "--insecure", *connect]
        )
        assert result.exit_code == 2
        assert " ".join(result.output.split()) == f"error: {message}"


class TestReport:
    """`baton report` reads a journal file a runtime wrote, and says how the runs went."""

    @pytest.fixture
    def journal(self, tmp_path: Path) -> Path:
        database = tmp_path / "journal.db"
        store = SqliteStore(database)
        records: list[JournalRecord] = []
        for index in range(40):
            events: list[tuple[float, JournalEvent]] = []
            drive(REPORTED, index, events)
            records += [
                JournalRecord(f"r{index}", seq, at, event)
                for seq, (at, event) in enumerate(events, start=1)
            ]
        assert store.append_nowait(records)
        return database

    def test_figures_as_json(self, journal: Path) -> None:
        result = runner.invoke(
            app,
            ["report", "--store", f"sqlite:///{journal}", "-w", f"{REPORTED_MODULE}:WORKFLOW",
             "--json"],
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        (figures,) = json.loads(result.output)
        assert figures["runs"] == 40
        steps = {s["step"]: s for s in figures["steps"]}
        assert steps["b"]["first_try_success"] == pytest.approx(0.8)
        assert figures["clusters"][0]["step"] == "d"

    def test_tables_fit_eighty_columns(self, journal: Path) -> None:
        """What a pipe or a CI log gets: each step on one line under one header line."""
        result = runner.invoke(
            app,
            ["report", "--store", f"sqlite:///{journal}", "-w", f"{REPORTED_MODULE}:WORKFLOW"],
            env={"COLUMNS": "80"},
        )
        assert result.exit_code == 0, result.output
        lines = result.output.splitlines()
        assert max(len(line) for line in lines) <= 80
        header = ["step", "runs", "first", "try", "retries", "failures", "flagged", "p50", "p95"]
        assert header in [line.split() for line in lines]
        rows = {line.split()[0]: line.split() for line in lines if line.strip()}
        assert rows["b"][:3] == ["b", "40", "80.0%"], result.output
        people = [line.rstrip() for line in lines].index("decisions people made")
        assert lines[people + 1].split() == ["step", "decisions", "rejected", "or", "edited",
                                             "wait", "p50"]  # fmt: skip

    def test_since_leaves_out_older_runs(self, journal: Path) -> None:
        result = runner.invoke(
            app,
            ["report", "--store", f"sqlite:///{journal}", "-w", f"{REPORTED_MODULE}:WORKFLOW",
             "--since", "1h", "--json"],
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        assert json.loads(result.output)[0]["runs"] == 0

    @pytest.mark.parametrize(
        ("args", "says"),
        [
            (["--since", "soon"], "expected a number and a unit"),
            (["--store", "memory://"], "a report reads a SQLite or PostgreSQL journal"),
            (["--store", "sqlite:////nonexistent/j.db"], "no such journal file"),
            ([], "name the workflow with --workflow"),
        ],
    )
    def test_bad_input_is_refused_saying_why(
        self, journal: Path, args: list[str], says: str
    ) -> None:
        base = ["report", "--store", f"sqlite:///{journal}"]
        if args and args[0] == "--since":
            base += ["-w", f"{REPORTED_MODULE}:WORKFLOW"]
        result = runner.invoke(app, [*base, *args])
        assert result.exit_code == 2
        assert says in result.output

    def test_plot_writes_a_png(self, journal: Path, tmp_path: Path) -> None:
        chart = tmp_path / "report.png"
        result = runner.invoke(
            app,
            ["report", "--store", f"sqlite:///{journal}", "-w", f"{REPORTED_MODULE}:WORKFLOW",
             "--plot", str(chart)],
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert "compound to" in result.output


class TestRecordView:
    @pytest.mark.parametrize("terminal", [True, False])
    @pytest.mark.parametrize(("version", "shown"), [("a2.1", "a2.1"), ("1", "v1"), ("v2", "v2")])
    def test_the_version_reads_as_written(self, version: str, shown: str, terminal: bool) -> None:
        """`baton inspect` names the workflow's version as given, `v` only before a number."""
        record = msgspec.structs.replace(record_view(drive(REPORTED, 5)), version=version)
        written = io.StringIO()
        render_record(
            Console(file=written, width=100, force_terminal=terminal, color_system=None), record
        )
        assert f"workflow {record.workflow} {shown}  fingerprint" in written.getvalue()


class TestProgressView:
    def test_shows_the_steps_reached_with_their_attempts(self) -> None:
        run = drive(REPORTED, 5)
        console = Console(record=True, width=100)
        console.print(progress_view(record_view(run), 1.5))
        text = console.export_text()
        assert "completed" in text
        assert "attempt 2 on agent" in text  # b's first try failed in this run
        assert "1.5s" in text
