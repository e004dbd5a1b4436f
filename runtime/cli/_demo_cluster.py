"""`baton demo --cluster N`: the example on N runtimes sharing a PostgreSQL of the demo's own.

The runs are spread over the runtimes; one runtime is killed while runs are in
flight, and the others take its runs over once its lease lapses. Every record
is then read through one runtime, whichever runtime owns it.
"""

from __future__ import annotations

import contextlib
import signal
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import anyio
from rich.console import Console

from protocols import ClientKeys, MembersReply, RunRecord
from runtime.cli._cluster import members_sheet, takeovers_sheet
from runtime.cli._console import fail, usage_errors
from runtime.cli._sheets import show
from runtime.client._client import ControlClient
from runtime.cluster._local_postgres import LocalPostgres, LocalPostgresError
from runtime.launch import ProcessGroup, RuntimeProcess
from runtime.security._keys import add_principal, init_keys, load_client_keys

LEASE = 2.0
"""The demo's lease, short so that the takeover shows within seconds."""


def run_cluster_demo(
    out: Console,
    *,
    runtimes: int,
    workflow: str,
    actors: Sequence[tuple[str, str, str, int]],
    requests: list[dict[str, object]],
    approver: str,
    summarise: Callable[[Console, RunRecord], None],
) -> int:
    """Start a PostgreSQL, `runtimes` runtimes on it and the actors serving them all; run
    the requests spread over the runtimes, kill one, and show how the others carried on."""
    try:
        server = LocalPostgres()
    except LocalPostgresError as exc:
        raise fail(f"{exc}; `baton demo --cluster` needs it") from None
    started = time.monotonic()
    with server, tempfile.TemporaryDirectory(prefix="baton-demo-") as folder:
        out.print(f"PostgreSQL {server.url} (the demo's own, on a unix socket; removed after)")
        keys = Path(folder) / "keys"
        init_keys(keys)
        for _, principal, role, _ in actors:
            add_principal(keys, principal, [role])
        add_principal(keys, approver, ["approver:finance"])
        with ProcessGroup(Path(folder), keys=keys) as group:
            with usage_errors():
                members = [
                    group.start_runtime(
                        [workflow], label=f"runtime-{i}", heartbeat=0.5, store=server.url,
                        extra=["--lease", str(LEASE), "--cluster-check", "0.5"],
                    )
                    for i in range(runtimes)
                ]  # fmt: skip
            connect = ",".join(m.agents for m in members)
            for m in members:
                out.print(f"runtime pid {m.process.pid}: agents {m.agents}, control {m.control}")
            for spec, principal, _, concurrency in actors:
                group.start_actor(spec, connect, concurrency=concurrency, principal=principal)
            out.print(f"{len(actors)} actor processes, each serving all {runtimes} runtimes")
            fin = load_client_keys(keys, approver)
            records, cluster = anyio.run(_run, out, members, fin, requests)
        leftovers = [p.pid for _, p in group.children if p.poll() is None]
    for record in records:
        summarise(out, record)
    show(out, members_sheet(cluster))
    show(out, takeovers_sheet(cluster))
    elapsed = time.monotonic() - started
    out.print(
        f"{len(records)} runs on {runtimes} runtimes in {elapsed:.1f}s; one runtime killed, "
        f"its runs taken over; {len(group.children)} processes stopped, "
        f"{len(leftovers)} left running"
    )
    completed = all(r.status == "completed" for r in records)
    return 0 if completed and not leftovers else 1


async def _run(
    out: Console,
    members: list[RuntimeProcess],
    approver: ClientKeys,
    requests: list[dict[str, object]],
) -> tuple[list[RunRecord], MembersReply]:
    """Spread the runs, kill the first runtime, approve through the last, read through it."""
    victim, last = members[0], members[-1]
    ids: list[str] = []
    async with contextlib.AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(ControlClient(m.control, keys=m.operator))
            for m in members
        ]
        for n, request in enumerate(requests):
            client = clients[n % len(clients)]
            ids.append(await client.start_run("customer_ops", {"request": dict(request)}))
    out.print(f"{len(ids)} runs started, spread over {len(members)} runtimes")
    victim.process.send_signal(signal.SIGKILL)
    victim.process.wait()
    out.print(f"runtime pid {victim.process.pid} killed with SIGKILL; runs in flight on it "
              f"are taken over once its {LEASE:g}s lease lapses")  # fmt: skip
    async with (
        ControlClient(last.control, keys=last.operator, timeout=30) as client,
        ControlClient(last.control, keys=approver, timeout=30) as reviewer,
    ):
        records: list[RunRecord] = []
        deadline = anyio.current_time() + 60
        while ids and anyio.current_time() < deadline:
            for item in await reviewer.pending():
                await reviewer.decide(item, "approve", comment="duplicate charge confirmed")
                out.print(f"approved {item.step} of run {item.run_id} through {last.control}")
            waiting = []
            for run_id in ids:
                record, timed_out = await client.wait_run(run_id, max_wait=0.2)
                if timed_out:
                    waiting.append(run_id)
                else:
                    records.append(record)
            ids = waiting
        cluster = await client.members()
    return records, cluster
