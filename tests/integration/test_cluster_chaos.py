"""Chaos in a cluster: three runtimes on one PostgreSQL, killed and stalled at random.

300 runs of a workflow whose first step posts through a ledger tool host; the
runtimes are SIGKILLed three times (each started again on its endpoints) and one
is SIGSTOPped past its lease, then SIGCONTed. Afterwards every run the cluster
journaled has ended, no post was made twice, and what the actors received shows
that no runtime sent anything between the lapse of its lease and its return.
"""

from __future__ import annotations

import os
import random
import signal
import statistics
import time
from collections import Counter, defaultdict
from pathlib import Path

import anyio
import psycopg
import pytest

from actors import Receipt, read_receipts
from protocols import TERMINAL_STATUSES
from runtime import ControlClient, ControlRefused, RuntimeUnavailable
from runtime.engine._events import RunStarted
from runtime.launch import ProcessGroup, RuntimeProcess
from runtime.store._postgres import PostgresStore
from tests.integration.conftest import HEARTBEAT

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

FLOWS = "tests.integration.cluster_flows"
RUNTIMES = 3
RUNS = 300
KILLS = 3
LEASE = 3.0
TIME_LIMIT = 300.0
"""The whole test stops by itself after this many seconds, whatever happens."""
OUTCOMES_BY = 240.0
"""Seconds from the start by which every run must have ended; past it the test fails,
naming the runs still open and what the cluster says of them."""
FLUSH = 0.25
"""Seconds after SIGCONT in which frames a stalled runtime had handed to ZeroMQ before it
stopped may still arrive: its I/O thread was stopped with it and writes them out first."""
ACTORS = {
    "clerk-1": ("Clerk", "clerk"),
    "clerk-2": ("Clerk", "clerk"),
    "books": ("Books", "tools:books"),
}


class Cluster:
    """Three runtimes, the actors serving them all, and what was done to them."""

    def __init__(self, group: ProcessGroup, url: str, seed: int) -> None:
        self.group = group
        self.url = url
        self.rng = random.Random(seed)
        self.generation = [0] * RUNTIMES
        self.runtimes = [self.start(i, None) for i in range(RUNTIMES)]
        self.down: set[int] = set()
        self.kills: list[tuple[int, float]] = []
        """(runtime, wall time) of each SIGKILL."""
        self.stall: tuple[int, float, float] | None = None
        """(runtime, SIGSTOP wall time, SIGCONT wall time)."""
        self.accepted: list[str] = []
        self.seen: dict[str, str] = {}
        """The last status each run was seen in."""
        connect = ",".join(r.agents for r in self.runtimes)
        for name, (cls, _) in ACTORS.items():
            extra = ["--receipt-file", str(self.receipts(name))]
            if name == "books":
                extra += ["--ledger", str(group.workdir / "books.db")]
            group.start_actor(f"{FLOWS}:{cls}", connect, principal=name, label=name,
                              concurrency=16, extra=extra)  # fmt: skip

    def receipts(self, name: str) -> Path:
        return self.group.workdir / f"receipts-{name}.jsonl"

    def start(self, index: int, previous: RuntimeProcess | None) -> RuntimeProcess:
        free = "tcp://127.0.0.1:0"
        agents, control = (free, free) if previous is None else (previous.agents, previous.control)
        label = f"runtime-{index}-{self.generation[index]}"
        self.generation[index] += 1
        return self.group.start_runtime(
            [f"{FLOWS}:job"], label=label, store=self.url, heartbeat=HEARTBEAT,
            extra=["--lease", str(LEASE), "--cluster-check", "0.3", "--recovery-budget", "0"],
            agents=agents, control=control,
        )  # fmt: skip

    async def faults(self) -> None:
        """Three kills, each followed by a restart on the same endpoints, then a stall."""
        for _ in range(KILLS):
            await anyio.sleep(self.rng.uniform(1.5, 3.0))
            victim = self.rng.randrange(RUNTIMES)
            self.down.add(victim)
            self.kills.append((victim, time.time()))
            self.runtimes[victim].process.kill()
            self.runtimes[victim].process.wait()
            self.runtimes[victim] = self.start(victim, self.runtimes[victim])
            self.down.discard(victim)
        await anyio.sleep(self.rng.uniform(1.0, 2.0))
        victim = self.rng.randrange(RUNTIMES)
        self.down.add(victim)
        stopped = time.time()
        self.runtimes[victim].process.send_signal(signal.SIGSTOP)
        await anyio.sleep(LEASE * 3)
        resumed = time.time()
        self.runtimes[victim].process.send_signal(signal.SIGCONT)
        self.stall = (victim, stopped, resumed)
        self.down.discard(victim)

    async def submit(self, n: int) -> None:
        """Start run `n` on a runtime that is up, the next one if it does not answer."""
        for attempt in range(RUNTIMES * 4):
            choice = (n + attempt) % RUNTIMES
            if choice in self.down:
                continue
            runtime = self.runtimes[choice]
            try:
                async with ControlClient(runtime.control, keys=runtime.operator, timeout=2) as c:
                    self.accepted.append(await c.start_run("job", {"n": n}))
                    return
            except (RuntimeUnavailable, ControlRefused):
                await anyio.sleep(0.1)

    async def outcome(self, run_id: str) -> str:
        """The run's status once it ended, asked of any runtime that answers."""
        while True:
            runtime = self.runtimes[self.rng.randrange(RUNTIMES)]
            try:
                async with ControlClient(runtime.control, keys=runtime.operator, timeout=5) as c:
                    summary = await c.wait_outcome(run_id, max_wait=20)
            except (RuntimeUnavailable, ControlRefused):
                continue
            self.seen[run_id] = summary.status
            if summary.status in TERMINAL_STATUSES:
                return summary.status


def leases(url: str) -> dict[str, list[tuple[int, float, float]]]:
    """Per agent endpoint, the (token, joined, lapsed) of every lease that was on it; a live
    lease lapses never."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT agents, token, extract(epoch FROM started_at)::float8, "
            "extract(epoch FROM expired_at)::float8 FROM baton.takeovers "
            "UNION ALL SELECT agents, token, extract(epoch FROM started_at)::float8, "
            "'infinity'::float8 FROM baton.supervisors"
        ).fetchall()
    held: dict[str, list[tuple[int, float, float]]] = defaultdict(list)
    for agents, token, joined, lapsed in rows:
        held[agents].append((token, joined, lapsed))
    return {agents: sorted(spans, key=lambda s: s[1]) for agents, spans in held.items()}


async def entries(url: str, runs: list[str]) -> Counter[str]:
    """How many of `runs` were started for each entry `n`, read from their journals."""
    store = PostgresStore(url)
    await store.open(migrate=False)
    try:
        journals = await store.journals(runs)
    finally:
        await store.close()
    firsts = [journals[run][0].event for run in runs]
    return Counter(str(e.inputs["n"]) for e in firsts if isinstance(e, RunStarted))


def still_open(chaos: Cluster, group: ProcessGroup, url: str, runs: list[str], seed: int) -> str:
    """What the cluster says of runs that never ended: to tell a lost run from a slow one."""
    with psycopg.connect(url) as conn:
        owners: dict[str, str] = dict(conn.execute(
            "SELECT r.run_id, r.owner || CASE WHEN s.token IS NULL THEN ' (lapsed)' "
            "ELSE ' (live)' END || CASE WHEN r.ended THEN ', ended in the journal' "
            "ELSE ', open in the journal' END FROM baton.runs r LEFT JOIN baton.supervisors s "
            "ON s.token = r.owner WHERE r.run_id = ANY(%s)", (runs,),
        ).fetchall())  # fmt: skip
    # Outcomes are asked one run after another: those after a run that never answered
    # were never asked, so the journal says which are open.
    runs = sorted(runs, key=lambda run: "ended in" in owners.get(run, ""))
    still = sum(1 for run in runs if "open in" in owners.get(run, ""))
    lines = [f"seed {seed}: {len(runs)} runs not seen to end, {still} open in the journal"]
    logs = [(label, group.log_of(label)) for label, _ in group.children]
    for run_id in runs[:5]:
        lines.append(
            f"{run_id}: last seen {chaos.seen.get(run_id, 'never')}, owner {owners.get(run_id)}"
        )
        for label, text in logs:
            lines += [f"  {label}: {line}" for line in text.splitlines() if run_id in line][-8:]
    return "\n".join(lines)


def unleased(
    receipt: Receipt, spans: list[tuple[int, float, float]], flush: tuple[float, float] | None
) -> bool:
    """Whether a frame arrived from an endpoint while no lease was live on it."""
    if any(joined - 0.05 <= receipt.at <= lapsed + 0.05 for _, joined, lapsed in spans):
        return False
    return not (flush is not None and flush[0] <= receipt.at <= flush[1])


async def test_a_cluster_under_kills_and_a_stall_loses_nothing_and_repeats_no_effect(
    cluster: ProcessGroup, postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    effects = tmp_path / "effects.txt"
    monkeypatch.setenv("BATON_TEST_LEDGER", str(effects))
    monkeypatch.setenv("BATON_TEST_PAUSE", "0.5")
    for name, (_, role) in ACTORS.items():
        cluster.enroll(name, role)
    # A failure names its seed; BATON_CHAOS_SEED replays that schedule of faults.
    seed = int(os.environ.get("BATON_CHAOS_SEED") or random.randrange(2**32))
    chaos = Cluster(cluster, postgres_url, seed)
    began = time.monotonic()
    with anyio.fail_after(TIME_LIMIT):
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(chaos.faults)
            for n in range(RUNS):
                await chaos.submit(n)
                # Paced so that the faults fall among runs in flight, not after them.
                await anyio.sleep(0.05)
        with psycopg.connect(postgres_url) as conn:
            journaled = [r for (r,) in conn.execute("SELECT run_id FROM baton.runs").fetchall()]
        outcomes: dict[str, str] = {}
        with anyio.move_on_after(OUTCOMES_BY - (time.monotonic() - began)):
            for run_id in journaled:
                outcomes[run_id] = await chaos.outcome(run_id)
        open_runs = [r for r in journaled if r not in outcomes]
        assert not open_runs, still_open(chaos, cluster, postgres_url, open_runs, seed)
        statuses = Counter(outcomes.values())
    elapsed = time.monotonic() - began

    # Every run accepted is journaled, and every run journaled ended: none lost.
    assert set(chaos.accepted) <= set(journaled)
    assert statuses == {"completed": len(journaled)}, statuses
    # Each run posted exactly once, however often its step ran. An entry is started twice
    # when the reply to its first start was lost and the start was asked again elsewhere:
    # then each of its two runs posts it once.
    posted = Counter(effects.read_text().split())
    started = await entries(postgres_url, journaled)
    assert posted == started, {n: (posted[n], started[n]) for n in posted | started
                               if posted[n] != started[n]}  # fmt: skip

    # Nothing arrived from a runtime's endpoint while no lease was live on it.
    assert chaos.stall is not None
    stalled, stopped, resumed = chaos.stall
    held = leases(postgres_url)
    late: list[Receipt] = []
    flushed = 0
    for name in ACTORS:
        for receipt in read_receipts(chaos.receipts(name)):
            spans = held.get(receipt.endpoint, [])
            window = (resumed, resumed + FLUSH) if receipt.endpoint == chaos.runtimes[
                stalled].agents else None  # fmt: skip
            if unleased(receipt, spans, window):
                late.append(receipt)
            elif window is not None and window[0] <= receipt.at <= window[1]:
                flushed += 1
    assert not late, late[:10]
    stalled_spans = held[chaos.runtimes[stalled].agents]
    assert any(stopped < lapsed < resumed for _, _, lapsed in stalled_spans), (
        "the stalled runtime's lease lapsed while it was stopped"
    )
    logs = "".join(cluster.log_of(label) for label, _ in cluster.children)
    assert '"event":"lease.lost"' in logs

    with psycopg.connect(postgres_url) as conn:
        taken = conn.execute(
            "SELECT agents, extract(epoch FROM at)::float8, runs FROM baton.takeovers"
        ).fetchall()
    faults = [(chaos.runtimes[i].agents, at) for i, at in chaos.kills] + [
        (chaos.runtimes[stalled].agents, stopped)
    ]
    takeover_times = []
    runs_taken = []
    for agents, at in faults:
        after = sorted((t, runs) for e, t, runs in taken if e == agents and t > at)
        assert after, f"the lease on {agents} was taken over after its fault at {at}"
        takeover_times.append(after[0][0] - at)
        runs_taken.append(after[0][1])
    fenced = logs.count('"event":"batch.fenced"')
    print(
        f"\ncluster chaos (seed {seed}): {len(journaled)} runs ({len(chaos.accepted)} accepted "
        f"by a reply, {sum(started.values()) - len(started)} started again after a lost reply), "
        f"{len(chaos.kills)} kills, 1 stall of {resumed - stopped:.1f}s, "
        f"{elapsed:.0f}s; runs in flight taken over per fault {runs_taken}; "
        f"lost 0, duplicate effects 0, frames after a lapsed lease 0 "
        f"({flushed} flushed by ZeroMQ within {FLUSH}s of SIGCONT), fenced batches {fenced}; "
        f"takeover after fault p50 {statistics.median(takeover_times):.2f}s, "
        f"max {max(takeover_times):.2f}s ({[round(t, 2) for t in takeover_times]})"
    )
