"""The PostgreSQL journal: its schema, the lease every append is checked against, and the
leases that say which runtime owns which run.

A lease is made to lapse by moving its expiry into the past, as the database's clock
would after its time-to-live: no test waits for time to pass.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from typing import Any

import anyio
import psycopg
import pytest

from runtime.errors import LeaseLapsed, StoreError, StoreUnavailable
from runtime.store import open_store
from runtime.store._leases import Claimed, Leases
from runtime.store._postgres import Connection, PostgresStore
from runtime.store._postgres_schema import SCHEMA_VERSION
from tests.runtime.test_store_contract import dispatched, started

pytestmark = pytest.mark.anyio

AGENTS = "tcp://127.0.0.1:7710"
CONTROL = "tcp://127.0.0.1:7711"
LEASE = 600.0
"""Long enough that no lease lapses unless a test makes it."""


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def sql(url: str, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Run one statement as an operator at a psql prompt would; its rows, if any."""
    with psycopg.connect(url, autocommit=True) as conn:
        cursor = conn.execute(statement.encode(), params)
        return cursor.fetchall() if cursor.description else []


def lapse(url: str, token: int) -> None:
    """Make a lease lapse now, as its time-to-live running out would."""
    sql(
        url,
        "UPDATE baton.supervisors SET expires_at = clock_timestamp() - interval '1 second' "
        "WHERE token = %s",
        (token,),
    )


def token(store: PostgresStore) -> int:
    """The fencing token a member writes under."""
    assert store.fence is not None
    return store.fence


def owners(url: str) -> dict[str, int | None]:
    return dict(sql(url, "SELECT run_id, owner FROM baton.runs"))  # type: ignore[arg-type]


class Cluster:
    """Runtimes on one database: each a store of its own writing under its own lease."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.stores: list[PostgresStore] = []

    async def member(self) -> PostgresStore:
        store = PostgresStore(self.url)
        await store.open()
        self.stores.append(store)
        store.fence = await Leases(store).join(AGENTS, CONTROL, LEASE)
        return store

    async def members_with_runs(self, count: int, runs: int) -> list[PostgresStore]:
        """`count` members; the first starts `runs` runs, 1 s apart, named r00, r01..."""
        members = [await self.member() for _ in range(count)]
        await members[0].append([started(f"r{n:02}", float(n)) for n in range(runs)])
        return members

    async def close(self) -> None:
        for store in self.stores:
            await store.close()


@pytest.fixture
async def cluster(postgres_url: str) -> AsyncIterator[Cluster]:
    members = Cluster(postgres_url)
    try:
        yield members
    finally:
        await members.close()


class TestSchema:
    """A database is brought to this runtime's schema once, or refused."""

    def test_the_schema_version_is_recorded(self, postgres_url: str) -> None:
        assert PostgresStore(postgres_url).migrate() == 0
        assert sql(postgres_url, "SELECT version FROM baton.schema_version") == [(SCHEMA_VERSION,)]

    def test_migrating_again_changes_nothing(self, postgres_url: str) -> None:
        PostgresStore(postgres_url).migrate()
        sql(postgres_url, "INSERT INTO baton.events VALUES ('kept', 1, 1.0, '\\x00')")
        assert PostgresStore(postgres_url).migrate() == SCHEMA_VERSION
        assert sql(postgres_url, "SELECT version FROM baton.schema_version") == [(SCHEMA_VERSION,)]
        assert sql(postgres_url, "SELECT run_id FROM baton.events") == [("kept",)]

    def test_a_newer_schema_is_refused_saying_so(self, postgres_url: str) -> None:
        PostgresStore(postgres_url).migrate()
        sql(postgres_url, "UPDATE baton.schema_version SET version = %s", (SCHEMA_VERSION + 1,))
        with pytest.raises(StoreError) as refused:
            open_store(postgres_url)
        assert str(refused.value) == (
            f"store {postgres_url} failed: schema version {SCHEMA_VERSION + 1} "
            f"is newer than this runtime's {SCHEMA_VERSION}"
        )
        assert sql(postgres_url, "SELECT version FROM baton.schema_version") == [
            (SCHEMA_VERSION + 1,)
        ]

    def test_runtimes_starting_at_once_migrate_once(self, postgres_url: str) -> None:
        """Eight connections migrate together: one does it, the others find it done."""
        starting = 8
        barrier = threading.Barrier(starting)
        found: list[int] = []
        failures: list[BaseException] = []

        def start() -> None:
            store = PostgresStore(postgres_url)
            barrier.wait(timeout=30)
            try:
                found.append(store.migrate())
            except StoreError as exc:
                failures.append(exc)

        threads = [threading.Thread(target=start) for _ in range(starting)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert failures == []
        assert sorted(found) == [0] + [SCHEMA_VERSION] * (starting - 1)
        assert sql(postgres_url, "SELECT version FROM baton.schema_version") == [(SCHEMA_VERSION,)]

    @pytest.mark.parametrize(
        ("version", "says"),
        [
            (None, "no Baton journal in this database: no runtime has used it"),
            (SCHEMA_VERSION + 1, f"is newer than this runtime's {SCHEMA_VERSION}"),
            (0, "no Baton journal in this database"),
        ],
    )
    async def test_a_reader_checks_the_schema_and_changes_nothing(
        self, postgres_url: str, version: int | None, says: str
    ) -> None:
        if version is not None:
            PostgresStore(postgres_url).migrate()
            sql(postgres_url, "UPDATE baton.schema_version SET version = %s", (version,))
        with pytest.raises(StoreError, match=says):
            await PostgresStore(postgres_url).open(migrate=False)
        found = sql(postgres_url, "SELECT to_regclass('baton.schema_version')::text")
        if version is None:
            assert found == [(None,)]
        else:
            assert sql(postgres_url, "SELECT version FROM baton.schema_version") == [(version,)]

    async def test_open_migrates_a_store_made_by_hand(self, postgres_url: str) -> None:
        store = PostgresStore(postgres_url)
        await store.open()
        try:
            assert await store.run_ids() == []
            assert store.schema == 0
        finally:
            await store.close()


class TestFencing:
    """Every append is checked against its writer's lease and run ownership, in the same
    transaction: a refused batch writes nothing."""

    async def test_an_append_under_a_lapsed_lease_is_refused(self, cluster: Cluster) -> None:
        (writer,) = await cluster.members_with_runs(1, 1)
        lapse(cluster.url, token(writer))
        with pytest.raises(LeaseLapsed) as refused:
            await writer.append([dispatched("r00", 2, 2.0), started("new", 3.0)])
        assert refused.value.reason == f"the lease of fencing token {writer.fence} is not live"
        assert [r.seq for r in await writer.journal("r00")] == [1]
        assert await writer.journal("new") == []
        assert "new" not in owners(cluster.url)

    async def test_an_append_for_a_run_another_owns_is_refused(self, cluster: Cluster) -> None:
        first, second = await cluster.members_with_runs(2, 1)
        with pytest.raises(LeaseLapsed) as refused:
            await second.append([started("mine", 5.0), dispatched("r00", 2, 5.0)])
        assert refused.value.reason == (
            f"1 of the 2 runs written for are not owned under fencing token {second.fence}"
        )
        assert [r.seq for r in await first.journal("r00")] == [1]
        assert await second.journal("mine") == []
        assert owners(cluster.url) == {"r00": first.fence}

    async def test_an_append_without_a_lease_is_refused(self, postgres_url: str) -> None:
        reader = open_store(postgres_url)
        assert isinstance(reader, PostgresStore)
        await reader.open()
        try:
            with pytest.raises(StoreError, match="this runtime holds no lease to write under"):
                await reader.append([started("r", 1.0)])
        finally:
            await reader.close()

    async def test_an_event_already_journaled_is_refused_even_to_its_new_owner(
        self, cluster: Cluster
    ) -> None:
        """The key on (run, seq) is a second guard: a runtime that took a run over with a
        stale view of its journal cannot write over what the last owner wrote."""
        before, after = await cluster.members_with_runs(2, 1)
        await before.append([dispatched("r00", 2, 2.0)])
        lapse(cluster.url, token(before))
        assert list((await Leases(after).claim(token(after))).runs) == ["r00"]
        with pytest.raises(StoreError) as refused:
            await after.append([dispatched("r00", 2, 3.0)])
        assert not isinstance(refused.value, LeaseLapsed)
        assert "duplicate key" in refused.value.reason
        await after.append([dispatched("r00", 3, 3.0)])
        assert [(r.seq, r.at) for r in await after.journal("r00")] == [
            (1, 0.0),
            (2, 2.0),
            (3, 3.0),
        ]

    async def test_a_writer_lists_only_the_open_runs_it_owns(self, cluster: Cluster) -> None:
        first, second = await cluster.members_with_runs(2, 2)
        await second.append([started("theirs", 9.0)])
        first.mark_ended("r00")
        await first.append([dispatched("r00", 2, 10.0)])
        assert await first.run_ids() == ["r01"]
        assert await second.run_ids() == ["theirs"]
        assert sorted(await first.all_journals()) == ["r00", "r01", "theirs"]


class TestAppendSoon:
    """The runtime's path: a batch sent at once on the idle appending connection, its
    answer told where the reader callback takes it, with the same checks as `append`."""

    async def test_it_waits_for_the_connection_to_be_opened_by_an_append(
        self, cluster: Cluster
    ) -> None:
        store = await cluster.member()
        told: list[StoreError | None] = []
        assert not store.append_soon([started("r", 1.0)], None, told.append)
        assert told == []
        assert await store.journal("r") == []

    async def test_a_batch_sent_at_once_is_durable_when_it_is_told_so(
        self, cluster: Cluster
    ) -> None:
        (store,) = await cluster.members_with_runs(1, 1)
        answered = anyio.Event()
        told: list[StoreError | None] = []

        def tell(error: StoreError | None) -> None:
            told.append(error)
            answered.set()

        assert store.append_soon([dispatched("r00", 2, 2.0), started("r01", 3.0)], None, tell)
        # One on its way: the next goes through `append`, after it.
        assert not store.append_soon([dispatched("r01", 2, 4.0)], None, tell)
        with anyio.fail_after(10):
            await answered.wait()
        assert told == [None]
        assert [r.seq for r in await store.journal("r00")] == [1, 2]
        assert owners(cluster.url)["r01"] == store.fence

    async def test_a_refusal_is_told_and_writes_nothing(self, cluster: Cluster) -> None:
        (store,) = await cluster.members_with_runs(1, 1)
        lapse(cluster.url, token(store))
        answered = anyio.Event()
        told: list[StoreError | None] = []

        def tell(error: StoreError | None) -> None:
            told.append(error)
            answered.set()

        assert store.append_soon([dispatched("r00", 2, 2.0)], None, tell)
        with anyio.fail_after(10):
            await answered.wait()
        assert len(told) == 1
        assert isinstance(told[0], LeaseLapsed)
        assert told[0].reason == f"the lease of fencing token {store.fence} is not live"
        assert [r.seq for r in await store.journal("r00")] == [1]


class TestClaims:
    """The runs of a lapsed member are split among the live ones, each run to one."""

    async def test_a_lapsed_members_open_runs_are_shared_out_rounded_up(
        self, cluster: Cluster
    ) -> None:
        dead, alive, other = await cluster.members_with_runs(3, 6)
        dead.mark_ended("r05")
        await dead.append([dispatched("r05", 2, 6.0)])
        lapse(cluster.url, token(dead))

        claimed = await Leases(alive).claim(token(alive))
        # Five open runs, two live members: ceil(5 / 2) = 3, the oldest first.
        assert list(claimed.runs) == ["r00", "r01", "r02"]
        (takeover,) = claimed.takeovers
        assert (takeover.token, takeover.runs) == (dead.fence, 5)
        assert takeover.lapsed_for >= 0
        assert all(before == takeover.name for before in claimed.runs.values())

        # Each claim takes its share of what is left, ceil(2 / 2) = 1: the last run is
        # taken up by the next claim, a membership check later.
        second = await Leases(other).claim(token(other))
        assert list(second.runs) == ["r03"]
        assert second.takeovers == []
        last = await Leases(other).claim(token(other))
        assert list(last.runs) == ["r04"]
        assert owners(cluster.url)["r05"] == dead.fence, "an ended run is never taken up"
        assert await Leases(other).claim(token(other)) == Claimed({}, [])

    async def test_the_takeover_is_recorded(self, cluster: Cluster) -> None:
        dead, alive = await cluster.members_with_runs(2, 2)
        lapse(cluster.url, token(dead))
        await Leases(alive).claim(token(alive))
        ((at, takeover, by),) = await Leases(alive).takeovers()
        assert (takeover.token, takeover.runs, by) == (dead.fence, 2, alive.fence)
        assert at > 0
        assert [m.token for m in await Leases(alive).members()] == [alive.fence]

    async def test_concurrent_claims_never_take_the_same_run(self, cluster: Cluster) -> None:
        """Four members claim at once, round after round, until no run is left."""
        dead, *alive = await cluster.members_with_runs(5, 40)
        lapse(cluster.url, token(dead))
        taken: dict[int, list[str]] = {}
        takeovers: list[int] = []

        async def claim_all(store: PostgresStore) -> None:
            leases = Leases(store)
            while True:
                claimed = await leases.claim(token(store))
                takeovers.extend(t.token for t in claimed.takeovers)
                if not claimed.runs and not await _orphans(store):
                    return
                taken.setdefault(token(store), []).extend(claimed.runs)

        with anyio.fail_after(30):
            async with anyio.create_task_group() as tasks:
                for store in alive:
                    tasks.start_soon(claim_all, store)
        every = [run for runs in taken.values() for run in runs]
        assert sorted(every) == [f"r{n:02}" for n in range(40)]
        assert len(every) == len(set(every)), "a run was claimed twice"
        assert takeovers == [dead.fence], "a lapsed lease is taken over once"
        held = owners(cluster.url)
        assert all(held[run] == token for token, runs in taken.items() for run in runs)

    async def test_runs_a_stalled_claimer_had_locked_are_claimed_once_its_session_ends(
        self, cluster: Cluster
    ) -> None:
        """A runtime stopped in the middle of a claim holds the rows it had locked, which
        the others' claims skip; the server ends its session once it idles inside that
        transaction too long, and the runs are claimed by the next check."""
        dead = await cluster.member()
        await dead.append([started("r00", 0.0), started("r01", 1.0)])
        stalled = PostgresStore(cluster.url, idle_in_transaction=0.5)
        await stalled.open()
        cluster.stores.append(stalled)
        stalled.fence = await Leases(stalled).join(AGENTS, CONTROL, LEASE)
        alive = await cluster.member()
        lapse(cluster.url, token(dead))
        claimed: list[str] = []

        async def stall_holding_r00(conn: Connection) -> None:
            async with conn.transaction():
                await conn.execute(b"SELECT run_id FROM baton.runs WHERE run_id = 'r00' FOR UPDATE")
                # Stopped here, holding r00's row, while its peer checks on as usual.
                while "r00" not in claimed:
                    claimed.extend((await Leases(alive).claim(token(alive))).runs)
                    await anyio.sleep(0.1)

        with anyio.fail_after(20):
            async with stalled.connection() as conn:
                with pytest.raises(psycopg.errors.IdleInTransactionSessionTimeout):
                    await stall_holding_r00(conn)
        assert sorted(claimed) == ["r00", "r01"]
        assert owners(cluster.url) == {"r00": alive.fence, "r01": alive.fence}

    async def test_a_claim_under_a_lapsed_lease_is_refused(self, cluster: Cluster) -> None:
        dead, late = await cluster.members_with_runs(2, 1)
        lapse(cluster.url, token(dead))
        lapse(cluster.url, token(late))
        with pytest.raises(LeaseLapsed):
            await Leases(late).claim(token(late))
        assert owners(cluster.url) == {"r00": dead.fence}


class TestLeases:
    """Joining, renewing and leaving, as the members' table shows them."""

    async def test_members_are_listed_in_the_order_they_joined(self, cluster: Cluster) -> None:
        first = await cluster.member()
        second = await cluster.member()
        assert await Leases(first).renew(token(first), LEASE, owned=3, active=1)
        members = await Leases(second).members()
        assert [m.token for m in members] == [first.fence, second.fence]
        assert (members[0].owned, members[0].active) == (3, 1)
        assert all((m.agents, m.control) == (AGENTS, CONTROL) for m in members)
        assert all(0 < m.expires_in <= LEASE for m in members)

    async def test_renewing_never_revives_a_lapsed_lease(self, cluster: Cluster) -> None:
        store = await cluster.member()
        lapse(cluster.url, token(store))
        assert not await Leases(store).renew(token(store), LEASE, owned=0, active=0)
        (member,) = await Leases(store).members()
        assert member.expires_in < 0
        with pytest.raises(LeaseLapsed):
            await store.append([started("late", 1.0)])

    async def test_leaving_frees_the_runs_at_once(self, cluster: Cluster) -> None:
        leaving, staying = await cluster.members_with_runs(2, 3)
        await Leases(leaving).leave(token(leaving))
        claimed = await Leases(staying).claim(token(staying))
        assert list(claimed.runs) == ["r00", "r01", "r02"]
        assert claimed.takeovers == []
        with pytest.raises(LeaseLapsed):
            await leaving.append([dispatched("r00", 2, 5.0)])
        assert [m.token for m in await Leases(staying).members()] == [staying.fence]


class TestPasswords:
    """A password in the store's URL is never shown: not in its description, nor in errors."""

    @pytest.mark.parametrize(
        "credentials",
        [("baton:hunter2@", ""), ("baton@", "&password=hunter2")],
        ids=["user-part", "parameter"],
    )
    async def test_a_password_never_shows(
        self, postgres_url: str, credentials: tuple[str, str]
    ) -> None:
        user, parameter = credentials
        host = postgres_url.partition("?")[2]
        url = f"postgresql://{user}/no_such_database?{host}{parameter}"
        store = PostgresStore(url)
        assert "hunter2" not in store.description
        assert "***" in store.description
        with pytest.raises(StoreUnavailable) as refused:
            store.migrate()
        assert "hunter2" not in str(refused.value)
        assert 'database "no_such_database" does not exist' in str(refused.value)
        with pytest.raises(StoreUnavailable) as refused:
            await PostgresStore(url, timeout=1).open()
        assert "hunter2" not in str(refused.value)


async def _orphans(store: PostgresStore) -> int:
    rows = await store.fetch(
        "SELECT count(*) FROM baton.runs r WHERE NOT r.ended AND NOT EXISTS "
        "(SELECT 1 FROM baton.supervisors s WHERE s.token = r.owner "
        "AND s.expires_at > clock_timestamp())"
    )
    return int(rows[0][0])
