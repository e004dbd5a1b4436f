"""The key directory: files, modes, round trips, and every refusal with its message."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
import zmq
import zmq.auth

from protocols import WELL_KNOWN_TEST_KEYS
from runtime.security._certificates import KeysInvalid
from runtime.security._keys import (
    DEFAULT_KEYS_DIR,
    add_principal,
    init_keys,
    keys_dir,
    load_client_keys,
    load_principals,
    load_public_key,
    load_server_keys,
    remove_principal,
)
from runtime.security._principals import PrincipalsInvalid, RoleInvalid

TEST_PUBLIC, TEST_SECRET = (
    b"Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID",
    b"D:)Q[IlAW!ahhC2ac:9*A}h:p?([4%wOTJ%JR%cs",
)
"""The server key pair of the zmq_curve manual page."""


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def write_secret(path: Path, public: bytes, secret: bytes) -> None:
    """A hand-written secret certificate, 0600, for cases `init_keys` would never produce."""
    path.write_text(
        f'curve\n    public-key = "{public.decode()}"\n    secret-key = "{secret.decode()}"\n'
    )
    path.chmod(0o600)


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    directory = tmp_path / "keys"
    init_keys(directory)
    return directory


class TestKeysDir:
    """Which directory the commands use."""

    def test_explicit_wins(self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
        """An explicit directory beats `$BATON_KEYS`."""
        monkeypatch.setenv("BATON_KEYS", "/elsewhere")
        assert keys_dir(tmp_path) == tmp_path

    def test_environment(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """`$BATON_KEYS` is used when set."""
        monkeypatch.setenv("BATON_KEYS", "/srv/baton/keys")
        assert keys_dir(None) == Path("/srv/baton/keys")

    @pytest.mark.parametrize("value", [None, ""])
    def test_default(self, monkeypatch: pytest.MonkeyPatch, value: str | None) -> None:
        """Unset or empty `$BATON_KEYS` means `.baton/keys`."""
        if value is None:
            monkeypatch.delenv("BATON_KEYS", raising=False)
        else:
            monkeypatch.setenv("BATON_KEYS", value)
        assert keys_dir(None) == DEFAULT_KEYS_DIR == Path(".baton/keys")


class TestInit:
    """`init_keys` creates a complete, private directory and never overwrites one."""

    def test_layout_and_modes(self, tmp_path: Path) -> None:
        """Directory 0700, secrets 0600, public files and the table 0644."""
        directory = tmp_path / "deep" / "keys"
        init_keys(directory)
        assert mode(directory) == 0o700
        assert sorted(p.name for p in directory.iterdir()) == [
            "operator.key",
            "operator.key_secret",
            "principals.json",
            "runtime.key",
            "runtime.key_secret",
        ]
        for secret in ("operator.key_secret", "runtime.key_secret"):
            assert mode(directory / secret) == 0o600
        for public in ("operator.key", "runtime.key", "principals.json"):
            assert mode(directory / public) == 0o644

    def test_operator_principal(self, tmp_path: Path) -> None:
        """The returned operator is the one recorded, with its generated key."""
        operator = init_keys(tmp_path / "keys")
        assert operator.name == "operator"
        assert operator.roles == frozenset({"operator"})
        assert load_principals(tmp_path / "keys").by_name("operator") == operator
        public, secret = zmq.auth.load_certificate(tmp_path / "keys" / "operator.key_secret")
        assert public == operator.public_key
        assert secret is not None
        assert zmq.curve_public(secret) == public

    def test_certificates_are_zpl(self, keys: Path) -> None:
        """pyzmq's own loader reads the certificates: public ones carry no secret."""
        public, secret = zmq.auth.load_certificate(keys / "runtime.key")
        assert secret is None
        assert public == load_server_keys(keys).public
        operator = load_principals(keys).by_name("operator")
        assert operator is not None
        assert zmq.auth.load_certificates(keys) == {public: True, operator.public_key: True}

    def test_table_format(self, keys: Path) -> None:
        """`principals.json` is format 1 with sorted roles and Z85 keys as text."""
        document = json.loads((keys / "principals.json").read_text())
        operator = load_principals(keys).by_name("operator")
        assert operator is not None
        assert document == {
            "format": 1,
            "principals": [
                {
                    "name": "operator",
                    "public_key": operator.public_key.decode(),
                    "roles": ["operator"],
                }
            ],
        }

    def test_second_init_refused(self, keys: Path) -> None:
        """A second init refuses and leaves every key as it was."""
        before = {p.name: p.read_bytes() for p in keys.iterdir()}
        with pytest.raises(KeysInvalid) as raised:
            init_keys(keys)
        assert str(raised.value) == (
            f"{keys / 'runtime.key_secret'}: already exists; keys are never overwritten"
        )
        assert {p.name: p.read_bytes() for p in keys.iterdir()} == before

    def test_refused_over_a_lone_table(self, tmp_path: Path) -> None:
        """An existing `principals.json` alone is enough to refuse."""
        (tmp_path / "principals.json").write_text("{}")
        with pytest.raises(KeysInvalid) as raised:
            init_keys(tmp_path)
        assert raised.value.path == tmp_path / "principals.json"

    def test_stale_operator_secret_is_kept(self, tmp_path: Path) -> None:
        """A stray `operator.key_secret` is not overwritten, and nothing is left half-made."""
        (tmp_path / "operator.key_secret").write_text("mine")
        with pytest.raises(KeysInvalid) as raised:
            init_keys(tmp_path)
        assert raised.value.reason == "already exists; keys are never overwritten"
        assert (tmp_path / "operator.key_secret").read_text() == "mine"
        assert sorted(p.name for p in tmp_path.iterdir()) == ["operator.key_secret"]


class TestServerKeys:
    """`load_server_keys` returns a checked pair, or says what to fix."""

    def test_round_trip(self, keys: Path) -> None:
        """The loaded pair is the one written, and the public key derives from the secret."""
        loaded = load_server_keys(keys)
        assert zmq.curve_public(loaded.secret) == loaded.public
        assert zmq.auth.load_certificate(keys / "runtime.key") == (loaded.public, None)

    def test_missing(self, tmp_path: Path) -> None:
        """No runtime key: the message says how to create one."""
        with pytest.raises(KeysInvalid) as raised:
            load_server_keys(tmp_path)
        assert raised.value.reason == (
            f"no runtime key in {tmp_path}: run `baton keys init {tmp_path}`"
        )

    @pytest.mark.parametrize("loose", [0o644, 0o640, 0o604, 0o660, 0o755, 0o601])
    def test_too_open(self, keys: Path, loose: int) -> None:
        """Any group or other bit on the secret is refused, with the fix."""
        secret = keys / "runtime.key_secret"
        secret.chmod(loose)
        with pytest.raises(KeysInvalid) as raised:
            load_server_keys(keys)
        assert str(raised.value) == (
            f"{secret}: permissions {loose:04o} are too open; run chmod 600 {secret}"
        )

    def test_owner_only_modes_load(self, keys: Path) -> None:
        """0400 and 0700 give others nothing, so they are accepted."""
        for private in (0o400, 0o700):
            (keys / "runtime.key_secret").chmod(private)
            assert load_server_keys(keys).public

    @pytest.mark.parametrize(
        ("content", "reason"),
        [
            ("", "not a ZeroMQ certificate: no valid public-key line"),
            ("curve\n    public-key\n", "not a ZeroMQ certificate: no valid public-key line"),
            ('curve\n    public-key = "{public}"\n', "holds no secret key"),
            (
                'curve\n    public-key = "short"\n    secret-key = "{secret}"\n',
                "public key is not a 40-character Z85 key",
            ),
            (
                'curve\n    public-key = "{public}"\n    secret-key = "{other}"\n',
                "public key does not match the secret key",
            ),
            (
                'curve\n    public-key = "{public}"\n    secret-key = "{hashes}"\n',
                "secret key is not a valid CURVE key",
            ),
        ],
    )
    def test_bad_content(self, keys: Path, content: str, reason: str) -> None:
        """Each malformed certificate is refused with its own reason, naming the file."""
        path = keys / "runtime.key_secret"
        public, secret = load_server_keys(keys).public, load_server_keys(keys).secret
        path.write_text(
            content.format(
                public=public.decode(),
                secret=secret.decode(),
                other=zmq.curve_keypair()[1].decode(),
                hashes="#" * 40,
            )
        )
        with pytest.raises(KeysInvalid) as raised:
            load_server_keys(keys)
        assert raised.value.path == path
        assert raised.value.reason == reason

    def test_not_a_file(self, tmp_path: Path) -> None:
        """A directory where the secret should be is refused, not read."""
        (tmp_path / "runtime.key_secret").mkdir(mode=0o700)
        with pytest.raises(KeysInvalid, match=r"not a regular file$"):
            load_server_keys(tmp_path)

    def test_well_known_test_key(self, tmp_path: Path) -> None:
        """The manual page's key pair is consistent, yet refused: everyone has its secret."""
        write_secret(tmp_path / "runtime.key_secret", TEST_PUBLIC, TEST_SECRET)
        with pytest.raises(KeysInvalid) as raised:
            load_server_keys(tmp_path)
        assert raised.value.reason == (
            "public key is a well-known test key from the zmq_curve manual page; "
            "generate real keys with `baton keys init`"
        )


class TestClientKeys:
    """`load_client_keys` gives a principal its pair and the runtime key to trust."""

    def test_round_trip(self, keys: Path) -> None:
        """A generated principal's keys load back, with the runtime's public key."""
        added = add_principal(keys, "alice", ["researcher"])
        loaded = load_client_keys(keys, "alice")
        assert loaded.principal == "alice"
        assert loaded.public == added.public_key
        assert zmq.curve_public(loaded.secret) == loaded.public
        assert loaded.server == load_server_keys(keys).public

    def test_missing_principal(self, keys: Path) -> None:
        """No secret for the principal: the message says how to create it."""
        with pytest.raises(KeysInvalid) as raised:
            load_client_keys(keys, "bob")
        assert raised.value.reason == (
            f"no secret key for principal 'bob': create it with "
            f"`baton keys add bob --role ROLE --keys {keys}`"
        )

    def test_missing_runtime_key(self, keys: Path) -> None:
        """An actor's directory without `runtime.key` says where to get it."""
        (keys / "runtime.key").unlink()
        with pytest.raises(KeysInvalid) as raised:
            load_client_keys(keys, "operator")
        assert raised.value.path == keys / "runtime.key"
        assert raised.value.reason.startswith("no runtime public key: copy runtime.key")

    def test_too_open(self, keys: Path) -> None:
        """A principal's secret is held to the same mode rule as the runtime's."""
        (keys / "operator.key_secret").chmod(0o644)
        with pytest.raises(KeysInvalid, match=r"permissions 0644 are too open"):
            load_client_keys(keys, "operator")

    def test_name_cannot_escape_the_directory(self, keys: Path) -> None:
        """A principal name is checked before it becomes a path."""
        with pytest.raises(KeysInvalid, match=r"a name is 1-64"):
            load_client_keys(keys, "../keys/runtime")


class TestAdd:
    """`add_principal` generates or records keys, and refuses clashes."""

    def test_generated(self, keys: Path) -> None:
        """Without a public key, a pair is generated: secret 0600, public 0644, recorded."""
        added = add_principal(keys, "alice", ["tools:search", "researcher"])
        assert mode(keys / "alice.key_secret") == 0o600
        assert mode(keys / "alice.key") == 0o644
        assert mode(keys / "principals.json") == 0o644
        assert load_principals(keys).by_name("alice") == added
        assert added.roles == frozenset({"tools:search", "researcher"})
        document = json.loads((keys / "principals.json").read_text())
        assert [e["roles"] for e in document["principals"]] == [
            ["researcher", "tools:search"],
            ["operator"],
        ]

    def test_recorded_public_key(self, keys: Path) -> None:
        """With a public key, only the key is recorded: no certificate is written."""
        public = zmq.curve_keypair()[0]
        added = add_principal(keys, "remote", ["viewer"], public_key=public)
        assert added.public_key == public
        assert load_principals(keys).by_key(public) == added
        assert not (keys / "remote.key_secret").exists()
        assert not (keys / "remote.key").exists()

    def test_duplicate_name(self, keys: Path) -> None:
        """An existing name is refused; its keys are untouched."""
        before = (keys / "operator.key_secret").read_bytes()
        with pytest.raises(PrincipalsInvalid) as raised:
            add_principal(keys, "operator", ["viewer"])
        assert str(raised.value) == (
            "principal 'operator': already exists; remove it first to replace it"
        )
        assert (keys / "operator.key_secret").read_bytes() == before

    def test_duplicate_key(self, keys: Path) -> None:
        """A key already held is refused, naming its holder."""
        held = load_principals(keys).by_name("operator")
        assert held is not None
        with pytest.raises(PrincipalsInvalid) as raised:
            add_principal(keys, "twin", ["viewer"], public_key=held.public_key)
        assert str(raised.value) == "principal 'twin': public key is already held by 'operator'"
        assert "twin" not in load_principals(keys)

    @pytest.mark.parametrize("test_key", sorted(WELL_KNOWN_TEST_KEYS))
    def test_well_known_test_key(self, keys: Path, test_key: bytes) -> None:
        """A manual-page key is refused before anything is written."""
        with pytest.raises(PrincipalsInvalid, match=r"well-known test key"):
            add_principal(keys, "tester", ["viewer"], public_key=test_key)
        assert "tester" not in load_principals(keys)

    def test_not_z85(self, keys: Path) -> None:
        """A key that is not Z85 is refused."""
        with pytest.raises(PrincipalsInvalid, match=r"not a 40-character Z85 key"):
            add_principal(keys, "x", ["viewer"], public_key=b"not a key")

    def test_bad_role(self, keys: Path) -> None:
        """A bad role is refused with the grammar's message, and nothing is written."""
        with pytest.raises(RoleInvalid) as raised:
            add_principal(keys, "alice", ["viewer", "tools:"])
        assert str(raised.value) == (
            "role 'tools:' is invalid: "
            "tools:HOST needs a HOST of 1-128 letters, digits, '_', '.' or '-'"
        )
        assert not (keys / "alice.key_secret").exists()

    def test_no_role(self, keys: Path) -> None:
        """A principal needs at least one role."""
        with pytest.raises(PrincipalsInvalid, match=r"^principal 'alice': give at least one role$"):
            add_principal(keys, "alice", [])

    @pytest.mark.parametrize("name", ["runtime", "../evil", ".hidden"])
    def test_bad_name(self, keys: Path, name: str) -> None:
        """Names that would clash with or escape the key files are refused."""
        with pytest.raises(PrincipalsInvalid):
            add_principal(keys, name, ["viewer"])
        assert sorted(p.name for p in keys.iterdir()) == [
            "operator.key",
            "operator.key_secret",
            "principals.json",
            "runtime.key",
            "runtime.key_secret",
        ]

    def test_stale_secret_is_kept(self, keys: Path) -> None:
        """A leftover `NAME.key_secret` is never overwritten, and the name is not recorded."""
        (keys / "alice.key_secret").write_text("old")
        with pytest.raises(KeysInvalid, match=r"already exists; keys are never overwritten$"):
            add_principal(keys, "alice", ["viewer"])
        assert (keys / "alice.key_secret").read_text() == "old"
        assert "alice" not in load_principals(keys)

    def test_without_init(self, tmp_path: Path) -> None:
        """Adding to a directory never initialised says to run init."""
        with pytest.raises(KeysInvalid, match=r"no principals.json: run `baton keys init "):
            add_principal(tmp_path / "none", "alice", ["viewer"])


class TestRemove:
    """`remove_principal` revokes the key and deletes its files."""

    def test_removes_files_and_entry(self, keys: Path) -> None:
        """The entry and both certificates go; the others stay."""
        added = add_principal(keys, "alice", ["viewer"])
        assert remove_principal(keys, "alice") == added
        assert "alice" not in load_principals(keys)
        assert not (keys / "alice.key").exists()
        assert not (keys / "alice.key_secret").exists()
        assert "operator" in load_principals(keys)

    def test_recorded_only(self, keys: Path) -> None:
        """A principal with no files here is removed from the table alone."""
        add_principal(keys, "remote", ["viewer"], public_key=zmq.curve_keypair()[0])
        remove_principal(keys, "remote")
        assert "remote" not in load_principals(keys)

    def test_unknown(self, keys: Path) -> None:
        """Removing an unknown name says so, naming the table."""
        with pytest.raises(KeysInvalid) as raised:
            remove_principal(keys, "ghost")
        assert str(raised.value) == f"{keys / 'principals.json'}: no principal named 'ghost'"


class TestLoadPrincipals:
    """A bad `principals.json` is refused with the file and the problem named."""

    def test_missing(self, tmp_path: Path) -> None:
        """No table: the message says how to create one."""
        with pytest.raises(KeysInvalid) as raised:
            load_principals(tmp_path)
        assert str(raised.value) == (
            f"{tmp_path / 'principals.json'}: no principals.json: run `baton keys init {tmp_path}`"
        )

    @pytest.mark.parametrize(
        ("content", "reason"),
        [
            ("{not json", "not JSON: "),
            ("[]", "not a principals table: Expected `object`, got `array`"),
            ('{"format": 2, "principals": []}', "not a principals table: Invalid enum value 2"),
            ('{"format": 1}', "not a principals table: Object missing required field `principals`"),
            (
                '{"format": 1, "principals": [], "extra": 1}',
                "not a principals table: Object contains unknown field `extra`",
            ),
            (
                '{"format": 1, "principals": [{"name": "a", "public_key": "k", "roles": [1]}]}',
                "not a principals table: Expected `str`, got `int` - at `$.principals[0].roles[0]`",
            ),
            (
                '{"format": 1, "principals": [{"name": "a", "public_key": "k", "roles": ["v"]}]}',
                "principal 'a': public key is not a 40-character Z85 key",
            ),
            (
                '{"format": 1, "principals": [{"name": "a", "public_key": "'
                + TEST_PUBLIC.decode()
                + '", "roles": ["viewer"]}]}',
                "principal 'a': public key is a well-known test key from the zmq_curve manual page",
            ),
            (
                '{"format": 1, "principals": [{"name": "a", "public_key": "'
                + "é" * 40
                + '", "roles": ["viewer"]}]}',
                "principal 'a': public key is not a 40-character Z85 key",
            ),
        ],
    )
    def test_corrupt(self, tmp_path: Path, content: str, reason: str) -> None:
        """Each problem is named, prefixed by the file's path."""
        path = tmp_path / "principals.json"
        path.write_text(content)
        with pytest.raises(KeysInvalid) as raised:
            load_principals(tmp_path)
        assert raised.value.path == path
        assert raised.value.reason.startswith(reason)
        assert str(raised.value).startswith(f"{path}: ")

    def test_duplicates_in_file(self, keys: Path) -> None:
        """Two entries with one name, edited in by hand, are refused."""
        path = keys / "principals.json"
        document = json.loads(path.read_text())
        document["principals"].append(dict(document["principals"][0]))
        document["principals"][1]["public_key"] = zmq.curve_keypair()[0].decode()
        path.write_text(json.dumps(document))
        with pytest.raises(KeysInvalid) as raised:
            load_principals(keys)
        assert raised.value.reason == "principal 'operator': the name is used twice"

    def test_too_many_roles(self, keys: Path) -> None:
        """The bounds are enforced: at most 64 roles per principal."""
        path = keys / "principals.json"
        document = json.loads(path.read_text())
        document["principals"][0]["roles"] = [f"r{n}" for n in range(65)]
        path.write_text(json.dumps(document))
        with pytest.raises(KeysInvalid, match=r"length <= 64"):
            load_principals(keys)


class TestPublicKeyFiles:
    """`load_public_key` reads what `--public-key @FILE` names."""

    def test_certificate(self, keys: Path) -> None:
        """A public certificate gives its key."""
        assert load_public_key(keys / "runtime.key") == load_server_keys(keys).public

    def test_bare_line(self, tmp_path: Path) -> None:
        """A file holding one Z85 line (and a newline) gives that key."""
        public = zmq.curve_keypair()[0]
        (tmp_path / "alice.pub").write_bytes(public + b"\n")
        assert load_public_key(tmp_path / "alice.pub") == public

    def test_secret_certificate_refused(self, keys: Path) -> None:
        """Passing a secret certificate around is a mistake worth stopping."""
        with pytest.raises(KeysInvalid, match=r"holds a secret key"):
            load_public_key(keys / "operator.key_secret")

    def test_garbage(self, tmp_path: Path) -> None:
        """Anything else is refused as not a key."""
        (tmp_path / "x").write_text("hello\nworld\n")
        with pytest.raises(KeysInvalid, match=r"public key is not a 40-character Z85 key$"):
            load_public_key(tmp_path / "x")

    def test_oversized(self, tmp_path: Path) -> None:
        """A file far larger than any certificate is refused before it is parsed."""
        (tmp_path / "big").write_bytes(b"#" * (64 * 1024 + 1))
        with pytest.raises(KeysInvalid) as raised:
            load_public_key(tmp_path / "big")
        assert raised.value.reason == "larger than 65536 bytes"

    def test_missing(self, tmp_path: Path) -> None:
        """A missing file is named."""
        with pytest.raises(KeysInvalid) as raised:
            load_public_key(tmp_path / "nope")
        assert str(raised.value) == f"{tmp_path / 'nope'}: no such file"


def test_secrets_never_world_readable_under_a_loose_umask(tmp_path: Path) -> None:
    """Even with umask 000, secrets are born 0600 and the table 0644."""
    previous = os.umask(0)
    try:
        init_keys(tmp_path / "keys")
        add_principal(tmp_path / "keys", "alice", ["viewer"])
    finally:
        os.umask(previous)
    assert mode(tmp_path / "keys") == 0o700
    assert mode(tmp_path / "keys" / "alice.key_secret") == 0o600
    assert mode(tmp_path / "keys" / "principals.json") == 0o644
