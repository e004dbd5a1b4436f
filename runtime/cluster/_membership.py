"""This runtime's place in a cluster: its lease kept alive, the runs it takes over, its peers.

The lease is renewed a third of its length before it would lapse, and the
runtime counts it as held only until a margin before the database would let it
lapse, measured on its own monotonic clock from when the renewal was sent: a
runtime that was paused, cut off or slow knows it may no longer send before the
others may take over. Runs without a live owner are claimed at every check, and
at once when another runtime says it left (LISTEN/NOTIFY, a token as payload);
a dead runtime says nothing, so the checks are what find it.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import anyio
import psycopg
import structlog

from runtime.cluster._config import ClusterConfig
from runtime.errors import LeaseLapsed, StoreError, StoreUnavailable
from runtime.observe._observers import ClusterSeen
from runtime.store._leases import CHANNEL, Leases, Member
from runtime.store._postgres import CONNECT_SECONDS, PostgresStore

log = structlog.get_logger("baton.cluster")


@dataclass(slots=True)
class ClusterCounters:
    """What the membership did since this runtime started."""

    leases_lost: int = 0
    takeovers: int = 0
    """Lapsed leases of others that this runtime ended."""
    runs_taken_over: int = 0
    fenced_writes: int = 0
    """Batches the database refused because the lease had lapsed."""
    fenced_sends: int = 0
    """Frames dropped unsent because the lease was no longer held."""


class Membership:
    """Joins, keeps the lease, claims runs and watches the members, until `leave`."""

    def __init__(
        self,
        store: PostgresStore,
        config: ClusterConfig,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        counters: ClusterCounters | None = None,
    ) -> None:
        """`counters` carries the counts of the process's earlier memberships, if any."""
        self.store = store
        self.leases = Leases(store)
        self.config = config
        self._monotonic = monotonic
        self.token = 0
        self.valid_until = 0.0
        """On the monotonic clock: when this runtime stops counting its lease held."""
        self.counters = ClusterCounters() if counters is None else counters
        self.peers: tuple[tuple[str, str], ...] = ()
        """The agent and control planes of the other live members."""
        self.lost: str | None = None
        self._wake = anyio.Event()

    def seen(self, runs_owned: int) -> ClusterSeen:
        """What the metrics show of this membership now."""
        c = self.counters
        return ClusterSeen(
            runs_owned=runs_owned,
            members=1 + len(self.peers),
            lease_left=max(0.0, self.valid_until - self._monotonic()) if self.holds() else 0.0,
            leases_lost=c.leases_lost,
            takeovers=c.takeovers,
            runs_taken_over=c.runs_taken_over,
            fenced_writes=c.fenced_writes,
            fenced_sends=c.fenced_sends,
        )

    def holds(self) -> bool:
        """Whether the lease is held now, as far as this runtime can know."""
        return self.lost is None and self._monotonic() < self.valid_until

    async def join(self, agents: str, control: str) -> int:
        """Open the store, join the cluster and write under the new lease's token."""
        await self.store.open()
        sent = self._monotonic()
        self.token = await self.leases.join(agents, control, self.config.lease)
        self.valid_until = sent + self.config.lease - self.config.margin
        self.store.fence = self.token
        log.info("lease.taken", token=self.token, lease=self.config.lease, agents=agents)
        return self.token

    def lose(self, reason: str) -> None:
        """The lease is gone: from now on nothing is sent for the runs it held."""
        if self.lost is None:
            self.lost = reason
            self.counters.leases_lost += 1
            log.error("lease.lost", token=self.token, reason=reason)

    async def keep(
        self,
        take_over: Callable[[dict[str, str]], Awaitable[int]],
        load: Callable[[], tuple[int, int]],
        on_peers: Callable[[Sequence[Member]], None],
        on_lost: Callable[[str], None],
    ) -> None:
        """Renew, claim and watch until cancelled or the lease is lost.

        `take_over` takes up claimed runs; `load` gives (runs owned, runs active) for the
        members' table; `on_peers` is told the other live members when their planes change;
        `on_lost` is told why the lease was lost, once.
        """
        config = self.config
        renew_at = self._monotonic() + config.renew_every
        check_at = self._monotonic()
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(self._listen)
            while self.lost is None:
                now = self._monotonic()
                if now >= self.valid_until:
                    self.lose("the lease could not be renewed before it lapsed")
                    break
                if now >= renew_at:
                    # Bounded by what the lease has left: a database that does not answer
                    # must not keep this runtime from seeing its lease lapse.
                    renew_at = now + min(0.5, config.renew_every)
                    with anyio.move_on_after(self.valid_until - now):
                        renew_at = await self._renew(load) + config.renew_every
                if self.lost is None and self._monotonic() >= check_at:
                    check_at = self._monotonic() + config.check
                    with anyio.move_on_after(max(0.0, self.valid_until - self._monotonic())):
                        await self._check(take_over, on_peers)
                wait = min(renew_at, check_at, self.valid_until) - self._monotonic()
                with anyio.move_on_after(max(0.0, wait)):
                    await self._wake.wait()
                if self._wake.is_set():
                    self._wake = anyio.Event()
                    check_at = self._monotonic()
            tasks.cancel_scope.cancel()
        if self.lost is not None:
            on_lost(self.lost)

    async def _renew(self, load: Callable[[], tuple[int, int]]) -> float:
        """Renew the lease; when the attempt was sent (the next is due a third later)."""
        sent = self._monotonic()
        owned, active = load()
        try:
            renewed = await self.leases.renew(self.token, self.config.lease, owned, active)
        except StoreUnavailable as exc:
            # Not lost yet: it may come back before the lease lapses. Try again soon.
            log.warning("lease.renewal_failed", token=self.token, reason=exc.reason)
            return sent - self.config.renew_every + min(0.5, self.config.renew_every)
        if not renewed:
            self.lose("the database says the lease lapsed; another runtime may own its runs")
        else:
            self.valid_until = sent + self.config.lease - self.config.margin
        return sent

    async def _check(
        self,
        take_over: Callable[[dict[str, str]], Awaitable[int]],
        on_peers: Callable[[Sequence[Member]], None],
    ) -> None:
        try:
            claimed = await self.leases.claim(self.token)
            members = await self.leases.members()
        except LeaseLapsed as exc:
            self.lose(exc.reason)
            return
        except StoreError as exc:
            # Unavailable, or a deadlock between two claims that the server broke: the
            # next check tries again, and the lease is kept meanwhile.
            log.warning("cluster.check_failed", token=self.token, reason=exc.reason)
            return
        counters = self.counters
        for takeover in claimed.takeovers:
            counters.takeovers += 1
            log.warning(
                "lease.taken_over",
                token=takeover.token,
                runtime=takeover.name,
                runs=takeover.runs,
                lapsed_for=round(takeover.lapsed_for, 3),
            )
        if claimed.runs:
            if not self.holds():
                # Claimed under a lease that lapsed meanwhile: the next owner takes them.
                self.lose("the lease lapsed while runs were being claimed")
                return
            counters.runs_taken_over += len(claimed.runs)
            await take_over(claimed.runs)
        live = [m for m in members if m.token != self.token and m.expires_in > 0]
        planes = tuple((m.agents, m.control) for m in live)
        if planes != self.peers:
            self.peers = planes
            on_peers(live)

    async def _listen(self) -> None:
        """Wake the checks when another runtime joins, leaves or takes over; polling goes on
        regardless, so a lost connection here only slows a takeover down to the checks."""
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(
                    self.store.url, autocommit=True, connect_timeout=int(CONNECT_SECONDS)
                )
            except psycopg.Error:
                await anyio.sleep(self.config.check * 5)
                continue
            try:
                async with conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    async for note in conn.notifies():
                        if note.payload.rpartition(" ")[2] != str(self.token):
                            self._wake.set()
            except psycopg.Error:
                await anyio.sleep(self.config.check)

    async def leave(self) -> None:
        """Give the lease up, so that the others take its runs over at once."""
        if self.token and self.lost is None:
            with contextlib.suppress(StoreError), anyio.move_on_after(CONNECT_SECONDS):
                await self.leases.leave(self.token)
            log.info("lease.left", token=self.token)
        self.lost = self.lost or "left the cluster"
