"""`baton keys`: what a user sees and what lands on disk."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
import zmq
from typer.testing import CliRunner, Result

from runtime.cli import app
from runtime.cli._keys import keys_app
from runtime.security._keys import load_principals, load_server_keys

runner = CliRunner()
REMINDER = "a running runtime applies this on SIGHUP (kill -HUP <pid>)"


def keys(*args: str | Path) -> Result:
    return runner.invoke(keys_app, [str(a) for a in args])


def error(result: Result) -> str:
    """What the user read on stderr, without the final newline."""
    return result.stderr.rstrip("\n")


@pytest.fixture
def directory(tmp_path: Path) -> Path:
    path = tmp_path / "keys"
    assert keys("init", path).exit_code == 0
    return path


class TestInit:
    """`baton keys init`."""

    def test_creates_and_reports(self, tmp_path: Path) -> None:
        """It creates a private directory and prints the runtime key and the operator."""
        path = tmp_path / "keys"
        result = keys("init", path)
        assert result.exit_code == 0, result.output
        assert stat.S_IMODE(path.stat().st_mode) == 0o700
        assert stat.S_IMODE((path / "runtime.key_secret").stat().st_mode) == 0o600
        assert f"created keys in {path}" in result.stdout
        assert f"runtime public key: {load_server_keys(path).public.decode()}" in result.stdout
        operator = load_principals(path).by_name("operator")
        assert operator is not None
        assert "principal operator" in result.stdout
        assert f"public key: {operator.public_key.decode()}" in result.stdout

    def test_default_directory_from_environment(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Without DIR, `$BATON_KEYS` names the directory."""
        monkeypatch.setenv("BATON_KEYS", str(tmp_path / "env-keys"))
        assert keys("init").exit_code == 0
        assert (tmp_path / "env-keys" / "runtime.key_secret").exists()

    def test_second_init_refused(self, directory: Path) -> None:
        """Exit 2 with a red error on stderr; the keys stay as they were."""
        before = (directory / "runtime.key_secret").read_bytes()
        result = keys("init", directory)
        assert result.exit_code == 2
        assert result.stdout == ""
        assert error(result) == (
            f"error: {directory / 'runtime.key_secret'}: already exists; keys are never overwritten"
        )
        assert (directory / "runtime.key_secret").read_bytes() == before


class TestAdd:
    """`baton keys add`."""

    def test_generates_a_pair(self, directory: Path) -> None:
        """It writes NAME.key_secret 0600, records the roles, and reminds about SIGHUP."""
        result = keys(
            "add", "alice", "--role", "researcher", "--role", "tools:search", "--keys", directory
        )
        assert result.exit_code == 0, result.output
        assert stat.S_IMODE((directory / "alice.key_secret").stat().st_mode) == 0o600
        alice = load_principals(directory).by_name("alice")
        assert alice is not None
        assert alice.roles == frozenset({"researcher", "tools:search"})
        assert "roles:      researcher, tools:search" in result.stdout
        assert f"secret:     {directory / 'alice.key_secret'}" in result.stdout
        assert REMINDER in result.stdout

    def test_public_key_records_only(self, directory: Path) -> None:
        """`--public-key Z85` records the key and writes no certificate."""
        public = zmq.curve_keypair()[0]
        result = keys(
            "add",
            "remote",
            "--role",
            "viewer",
            "--public-key",
            public.decode(),
            "--keys",
            directory,
        )
        assert result.exit_code == 0, result.output
        remote = load_principals(directory).by_name("remote")
        assert remote is not None
        assert remote.public_key == public
        assert not (directory / "remote.key_secret").exists()
        assert not (directory / "remote.key").exists()
        assert "secret:" not in result.stdout
        assert REMINDER in result.stdout

    def test_public_key_from_certificate(self, directory: Path, tmp_path: Path) -> None:
        """`--public-key @FILE` reads a ZPL public certificate from another directory."""
        elsewhere = tmp_path / "elsewhere"
        assert keys("init", elsewhere).exit_code == 0
        result = keys(
            "add",
            "peer",
            "--role",
            "viewer",
            "--public-key",
            f"@{elsewhere / 'operator.key'}",
            "--keys",
            directory,
        )
        assert result.exit_code == 0, result.output
        peer = load_principals(directory).by_name("peer")
        expected = load_principals(elsewhere).by_name("operator")
        assert peer is not None
        assert expected is not None
        assert peer.public_key == expected.public_key

    def test_public_key_from_bare_line(self, directory: Path, tmp_path: Path) -> None:
        """`--public-key @FILE` also reads a file holding one Z85 line."""
        public = zmq.curve_keypair()[0]
        (tmp_path / "bare.pub").write_bytes(public + b"\n")
        result = keys(
            "add",
            "bare",
            "--role",
            "viewer",
            "--public-key",
            f"@{tmp_path / 'bare.pub'}",
            "--keys",
            directory,
        )
        assert result.exit_code == 0, result.output
        bare = load_principals(directory).by_name("bare")
        assert bare is not None
        assert bare.public_key == public

    def test_public_key_beginning_with_at(self, directory: Path) -> None:
        """A Z85 key may begin with "@": with no such file, it is the key, not @FILE."""
        public = "@" + "0" * 39
        result = keys("add", "at", "--role", "viewer", "--public-key", public, "--keys", directory)
        assert result.exit_code == 0, result.output
        at = load_principals(directory).by_name("at")
        assert at is not None
        assert at.public_key == public.encode()

    def test_public_key_file_missing(self, directory: Path, tmp_path: Path) -> None:
        """`@FILE` naming no file, and not a key, says the file is missing."""
        missing = tmp_path / "nope.key"
        result = keys(
            "add", "x", "--role", "viewer", "--public-key", f"@{missing}", "--keys", directory
        )
        assert result.exit_code == 2
        assert error(result) == f"error: {missing}: no such file"

    @pytest.mark.parametrize(
        ("args", "message"),
        [
            (
                ["alice", "--role", "tools:"],
                "error: role 'tools:' is invalid: "
                "tools:HOST needs a HOST of 1-128 letters, digits, '_', '.' or '-'",
            ),
            (
                ["operator", "--role", "viewer"],
                "error: principal 'operator': already exists; remove it first to replace it",
            ),
            (
                [
                    "tester",
                    "--role",
                    "viewer",
                    "--public-key",
                    "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7",
                ],
                "error: principal 'tester': "
                "public key is a well-known test key from the zmq_curve manual page",
            ),
            (
                ["x", "--role", "viewer", "--public-key", "not-a-key"],
                "error: principal 'x': public key is not a 40-character Z85 key",
            ),
            (
                ["runtime", "--role", "viewer"],
                "error: principal 'runtime': 'runtime' names the runtime's own key",
            ),
        ],
    )
    def test_refusals(self, directory: Path, args: list[str], message: str) -> None:
        """Each refusal exits 2 with the exact message; the table is unchanged."""
        before = (directory / "principals.json").read_bytes()
        result = keys("add", *args, "--keys", directory)
        assert result.exit_code == 2
        assert error(result) == message
        assert (directory / "principals.json").read_bytes() == before

    def test_duplicate_key(self, directory: Path) -> None:
        """Recording a key that another principal holds names the holder."""
        operator = load_principals(directory).by_name("operator")
        assert operator is not None
        result = keys(
            "add",
            "twin",
            "--role",
            "viewer",
            "--public-key",
            operator.public_key.decode(),
            "--keys",
            directory,
        )
        assert result.exit_code == 2
        assert error(result) == (
            "error: principal 'twin': public key is already held by 'operator'"
        )

    def test_role_required(self, directory: Path) -> None:
        """`--role` is required: a usage error, exit 2."""
        result = keys("add", "alice", "--keys", directory)
        assert result.exit_code == 2
        assert "--role" in result.stderr


class TestRemove:
    """`baton keys remove`."""

    def test_removes_entry_and_files(self, directory: Path) -> None:
        """The principal leaves the table and its files are deleted."""
        assert keys("add", "alice", "--role", "viewer", "--keys", directory).exit_code == 0
        result = keys("remove", "alice", "--keys", directory)
        assert result.exit_code == 0, result.output
        assert "removed principal alice" in result.stdout
        assert REMINDER in result.stdout
        assert "alice" not in load_principals(directory)
        assert not (directory / "alice.key").exists()
        assert not (directory / "alice.key_secret").exists()

    def test_unknown(self, directory: Path) -> None:
        """An unknown name exits 2 and names the table."""
        result = keys("remove", "ghost", "--keys", directory)
        assert result.exit_code == 2
        assert error(result) == (
            f"error: {directory / 'principals.json'}: no principal named 'ghost'"
        )


class TestList:
    """`baton keys list`."""

    def test_json(self, directory: Path) -> None:
        """`--json` prints every principal, sorted by name, with sorted roles."""
        public = zmq.curve_keypair()[0]
        keys(
            "add",
            "zed",
            "--role",
            "viewer",
            "--role",
            "approver:ops",
            "--public-key",
            public.decode(),
            "--keys",
            directory,
        )
        operator = load_principals(directory).by_name("operator")
        assert operator is not None
        result = keys("list", "--keys", directory, "--json")
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout) == [
            {
                "name": "operator",
                "roles": ["operator"],
                "public_key": operator.public_key.decode(),
            },
            {"name": "zed", "roles": ["approver:ops", "viewer"], "public_key": public.decode()},
        ]

    def test_table(self, directory: Path) -> None:
        """The table shows each name, its roles and its whole key, brackets included."""
        operator = load_principals(directory).by_name("operator")
        assert operator is not None
        result = runner.invoke(keys_app, ["list", "--keys", str(directory)])
        assert result.exit_code == 0, result.output
        assert "operator" in result.stdout
        assert operator.public_key.decode() in result.stdout

    def test_piped_at_eighty_columns(self, directory: Path) -> None:
        """Into a pipe: a header, then one tab-separated line per principal, nothing cut."""
        roles = ["approver:finance", "tools:backoffice", "researcher", "viewer"]
        name = "a-principal-whose-name-is-long"
        keys("add", name, *(f"--role={r}" for r in roles), "--keys", directory)
        result = runner.invoke(keys_app, ["list", "--keys", str(directory)], env={"COLUMNS": "80"})
        assert result.exit_code == 0, result.output
        assert result.stdout.splitlines() == [
            "name\troles\tpublic key",
            *(
                f"{p.name}\t{', '.join(sorted(p.roles))}\t{p.public_key.decode()}"
                for p in load_principals(directory)
            ),
        ]
        assert max(len(line) for line in result.stdout.splitlines()) > 80

    def test_corrupt_table(self, directory: Path) -> None:
        """A corrupt `principals.json` exits 2 with an error naming the file."""
        (directory / "principals.json").write_text("{oops")
        result = keys("list", "--keys", directory)
        assert result.exit_code == 2
        assert error(result).startswith(f"error: {directory / 'principals.json'}: not JSON: ")

    def test_missing_directory(self, tmp_path: Path) -> None:
        """Listing a directory never initialised says to run init."""
        result = keys("list", "--keys", tmp_path)
        assert result.exit_code == 2
        assert error(result) == (
            f"error: {tmp_path / 'principals.json'}: no principals.json: "
            f"run `baton keys init {tmp_path}`"
        )


class TestRegistered:
    """The main `baton` command carries the `keys` group."""

    def test_baton_keys(self, tmp_path: Path) -> None:
        """`baton keys init` works through the main app."""
        result = runner.invoke(app, ["keys", "init", str(tmp_path / "keys")])
        assert result.exit_code == 0, result.output
        assert (tmp_path / "keys" / "principals.json").exists()
