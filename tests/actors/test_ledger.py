"""A tool host's ledger: each side effect at most once per idempotency key."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from actors import ToolHost, tool
from actors._ledger import Ledger, LedgerError, call_digest
from actors._toolhost import run_tool
from protocols import ToolCall, ToolReply

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Till(ToolHost):
    """Counts what it really did."""

    name = "till"

    def __init__(self) -> None:
        self.charged: list[int] = []
        self.fail_next = False

    @tool
    def charge(self, amount: int) -> str:
        """Take money."""
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("card reader offline")
        self.charged.append(amount)
        return f"charged {amount}"

    @tool(read_only=True)
    def balance(self) -> int:
        """Look, don't touch."""
        return sum(self.charged)


def call(call_id: int, tool_name: str = "charge", key: str = "run:step:0", **args: int) -> ToolCall:
    return ToolCall(
        call_id=call_id, run_id="run", step="step", attempt=call_id, tool=tool_name,
        args=dict(args), idempotency_key=key,
    )  # fmt: skip


class TestLedger:
    """The ledger file itself."""

    def test_a_settled_key_gives_its_reply_even_after_reopening(self, tmp_path: Path) -> None:
        path = tmp_path / "till.db"
        ledger = Ledger(path)
        assert ledger.claim("k", "charge").fresh
        ledger.settle("k", ToolReply(call_id=1, ok=True, result="charged 5"))
        ledger.close()
        again = Ledger(path)
        claim = again.claim("k", "charge")
        assert not claim.fresh
        assert claim.reply == ToolReply(call_id=1, ok=True, result="charged 5")
        assert again.keys() == {"k": True}

    def test_a_key_started_and_never_settled_is_not_run_again(self, tmp_path: Path) -> None:
        """The host died between claiming and settling: the outcome is unknown, and says so."""
        path = tmp_path / "till.db"
        Ledger(path).claim("k", "charge")
        claim = Ledger(path).claim("k", "charge")
        assert not claim.fresh
        assert claim.reply is None
        assert "outcome unknown" in claim.problem

    def test_a_key_is_bound_to_its_tool(self) -> None:
        ledger = Ledger(None)
        ledger.claim("k", "charge")
        claim = ledger.claim("k", "refund")
        assert "was used for tool 'charge'" in claim.problem

    def test_a_key_is_bound_to_its_arguments(self) -> None:
        """A known key claimed for other arguments is a conflict, never a replay."""
        ledger = Ledger(None)
        ledger.claim("k", "charge", call_digest("charge", {"amount": 5}))
        ledger.settle("k", ToolReply(call_id=1, ok=True, result="charged 5"))
        same = ledger.claim("k", "charge", call_digest("charge", {"amount": 5}))
        other = ledger.claim("k", "charge", call_digest("charge", {"amount": 7}))
        assert not same.conflict
        assert same.reply == ToolReply(call_id=1, ok=True, result="charged 5")
        assert (other.conflict, other.reply) == (True, None)
        assert "with other arguments" in other.problem

    def test_the_digest_ignores_the_order_of_arguments(self) -> None:
        assert call_digest("t", {"a": 1, "b": [1, {"x": 2, "y": 3}]}) == call_digest(
            "t", {"b": [1, {"y": 3, "x": 2}], "a": 1}
        )
        assert call_digest("t", {"a": 1}) != call_digest("u", {"a": 1})

    def test_a_ledger_written_before_digests_is_migrated_and_kept(self, tmp_path: Path) -> None:
        """Keys recorded by an older host keep replaying; new claims record their digest."""
        path = tmp_path / "till.db"
        with sqlite3.connect(path) as db:
            db.execute(
                "CREATE TABLE effects (key TEXT PRIMARY KEY, tool TEXT NOT NULL, "
                "started_at REAL NOT NULL, reply BLOB, settled_at REAL)"
            )
            db.execute("INSERT INTO effects VALUES ('old', 'charge', 0, NULL, NULL)")
        ledger = Ledger(path)
        assert "outcome unknown" in ledger.claim("old", "charge", "d1").problem
        assert ledger.claim("new", "charge", "d1").fresh
        assert ledger.claim("new", "charge", "d2").conflict
        ledger.close()
        with sqlite3.connect(path) as db:
            assert db.execute("PRAGMA user_version").fetchone() == (2,)

    def test_a_released_key_is_free_again(self) -> None:
        ledger = Ledger(None)
        ledger.claim("k", "charge")
        ledger.release("k")
        assert ledger.claim("k", "charge").fresh

    def test_an_unusable_file_is_a_clear_error(self, tmp_path: Path) -> None:
        (tmp_path / "not-a-db").write_bytes(b"this is no sqlite file" * 100)
        with pytest.raises(LedgerError, match="not-a-db"):
            Ledger(tmp_path / "not-a-db")

    def test_commits_are_durable_in_wal_with_full_sync(self, tmp_path: Path) -> None:
        path = tmp_path / "till.db"
        Ledger(path).claim("k", "charge")
        with sqlite3.connect(path) as db:
            assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
            assert db.execute("SELECT key FROM effects").fetchall() == [("k",)]


class TestRunToolWithLedger:
    """What the tool host does with a call whose key it has seen."""

    async def test_a_repeated_call_gets_the_recorded_result_without_running(self) -> None:
        till, ledger = Till(), Ledger(None)
        first = await run_tool(till, call(1, amount=5), ledger)
        second = await run_tool(till, call(2, amount=5), ledger)
        assert till.charged == [5]
        assert (first.ok, first.result) == (second.ok, second.result) == (True, "charged 5")
        assert second.call_id == 2

    async def test_a_failed_call_leaves_the_key_free_for_the_next_attempt(self) -> None:
        till, ledger = Till(), Ledger(None)
        till.fail_next = True
        failed = await run_tool(till, call(1, amount=5), ledger)
        retried = await run_tool(till, call(2, amount=5), ledger)
        assert (failed.ok, failed.error) == (False, "tool_failed")
        assert retried.ok
        assert till.charged == [5]

    async def test_a_call_with_other_arguments_under_a_known_key_is_refused(self) -> None:
        """The recorded reply answers only the call it was recorded for; the other is refused
        as a conflict and does not run."""
        till, ledger = Till(), Ledger(None)
        await run_tool(till, call(1, amount=5), ledger)
        reply = await run_tool(till, call(2, amount=7), ledger)
        assert (reply.ok, reply.error, reply.call_id) == (False, "idempotency_conflict", 2)
        assert "other arguments" in reply.message
        assert till.charged == [5]

    async def test_unknown_outcome_is_refused_not_rerun(self) -> None:
        till, ledger = Till(), Ledger(None)
        ledger.claim("run:step:0", "charge")
        reply = await run_tool(till, call(1, amount=5), ledger)
        assert (reply.ok, reply.error) == (False, "tool_failed")
        assert "outcome unknown" in reply.message
        assert till.charged == []

    async def test_read_only_tools_and_keyless_calls_bypass_the_ledger(self) -> None:
        till, ledger = Till(), Ledger(None)
        await run_tool(till, call(1, "balance"), ledger)
        await run_tool(till, call(2, "balance"), ledger)
        await run_tool(till, call(3, key="", amount=1), ledger)
        await run_tool(till, call(4, key="", amount=1), ledger)
        assert till.charged == [1, 1]
        assert ledger.keys() == {}


CLAIMER = """
import sys
from pathlib import Path
from actors._ledger import Ledger
ledger = Ledger(Path(sys.argv[1]))
fresh = sum(ledger.claim(f"key-{n}", "post").fresh for n in range(50))
print(fresh)
"""


class TestSharedLedgerFile:
    """Hosts of one cluster may share a ledger file: each key is claimed by exactly one."""

    def test_hosts_starting_at_once_claim_each_key_once(self, tmp_path: Path) -> None:
        path = tmp_path / "shared.db"
        hosts = [
            subprocess.Popen(
                [sys.executable, "-c", CLAIMER, str(path)], stdout=subprocess.PIPE, text=True
            )
            for _ in range(4)
        ]
        claimed = []
        for host in hosts:
            out, _ = host.communicate(timeout=60)
            assert host.returncode == 0
            claimed.append(int(out))
        assert sum(claimed) == 50
