"""How fast the pages open on a large journal: a run of 10,000 history entries, and the
runs list with 100,000 runs in the journal.

python -m benchmarks.ui [--runs N] [--repeat K]

A real runtime on a SQLite journal, its agent, and `baton ui`, each its own process;
the timings are of whole HTTP requests to the page server, as a browser makes them
(the runtime's answer, the page's rendering and the transfer), median of K.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import anyio
import httpx
import msgspec

from runtime import ControlClient
from runtime.engine._events import JournalEvent
from runtime.launch import ProcessGroup, RuntimeProcess

FLOWS = ["benchmarks.ui_flows:tick", "benchmarks.ui_flows:note"]


def _runtime(group: ProcessGroup, journal: Path, label: str) -> RuntimeProcess:
    return group.start_runtime(
        FLOWS, label=label, store=f"sqlite:///{journal}", ready_timeout=600.0
    )


async def _seed(runtime: RuntimeProcess) -> tuple[str, str]:
    """One long run and one short one, both completed: their ids."""
    async with ControlClient(runtime.control, timeout=30) as client:
        long_run = await client.start_run("tick", {"n": 0})
        short = await client.start_run("note", {"customer": "c-0"})
        for run_id in (long_run, short):
            record, timed_out = await client.wait_run(run_id, max_wait=600)
            if timed_out or record.status != "completed":
                raise SystemExit(f"run {run_id} did not complete: {record.status}")
        return long_run, short


def _copy(journal: Path, template: str, copies: int) -> None:
    """`copies` runs whose events are those of `template`, under new ids (each event names
    its run) and a second older each."""
    decoder = msgspec.msgpack.Decoder(JournalEvent)
    encode = msgspec.msgpack.Encoder().encode
    with sqlite3.connect(journal) as db:
        rows = db.execute(
            "SELECT seq, at, body FROM events WHERE run_id = ? ORDER BY seq", (template,)
        ).fetchall()
        events = [(seq, at, decoder.decode(body)) for seq, at, body in rows]

        def copied() -> Iterator[tuple[str, int, float, bytes]]:
            for index in range(copies):
                run_id = f"copy-{index:07d}"
                for seq, at, event in events:
                    renamed = msgspec.structs.replace(event, run_id=run_id)
                    yield run_id, seq, at - index, encode(renamed)

        db.executemany("INSERT INTO events VALUES (?, ?, ?, ?)", copied())


def _median_ms(request: Callable[[], httpx.Response], repeat: int) -> tuple[float, int]:
    times = []
    size = 0
    for _ in range(repeat):
        began = time.perf_counter()
        response = request()
        times.append((time.perf_counter() - began) * 1000)
        response.raise_for_status()
        size = len(response.content)
    return statistics.median(times), size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="baton-ui-bench-") as folder:
        journal = Path(folder) / "journal.db"
        with ProcessGroup(Path(folder)) as group:
            first = _runtime(group, journal, "runtime")
            group.start_actor("benchmarks.ui_flows:Ticker", first.agents, concurrency=8)
            long_run, short = anyio.run(_seed, first)
            group.stop(first.process)
        _copy(journal, short, options.runs - 1)
        with ProcessGroup(Path(folder)) as group:
            began = time.perf_counter()
            runtime = _runtime(group, journal, "runtime-again")
            recovered = time.perf_counter() - began
            ui = group.start_ui(runtime.control, principal="operator")
            base = ui.url.split("/?")[0]
            with httpx.Client(timeout=120, follow_redirects=True) as browser:
                browser.get(ui.url).raise_for_status()
                figures = {
                    "runs list, first page": _median_ms(
                        lambda: browser.get(f"{base}/runs"), options.repeat
                    ),
                    "runs list, filtered by data key": _median_ms(
                        lambda: browser.get(f"{base}/runs?key=customer&value=c-0"), options.repeat
                    ),
                    "run of 10,000 entries, latest page": _median_ms(
                        lambda: browser.get(f"{base}/runs/{long_run}"), options.repeat
                    ),
                    "run of 10,000 entries, first page": _median_ms(
                        lambda: browser.get(f"{base}/runs/{long_run}?page=1"), options.repeat
                    ),
                    "run of 10,000 entries at version 5,000": _median_ms(
                        lambda: browser.get(f"{base}/runs/{long_run}?at=5000"), options.repeat
                    ),
                }
                listed = browser.get(f"{base}/runs").text
            rows = listed.count("<tr>") - 1
            total = listed.split('id="runs-total">', 1)[1].split("<", 1)[0]
            entries = anyio.run(_entries, runtime, long_run)
    print(f"journal: {options.runs:,} runs; the long run has {entries:,} history entries")
    print(f"runtime start on that journal (recovery): {recovered:.1f} s")
    print(f"the runs list says {total} runs match and shows {rows} of them")
    for name, (ms, size) in figures.items():
        print(f"{name}: {ms:,.0f} ms median of {options.repeat} ({size / 1024:,.0f} KiB)")


async def _entries(runtime: RuntimeProcess, run_id: str) -> int:
    async with ControlClient(runtime.control, timeout=30) as client:
        return len((await client.get_run(run_id)).history)


if __name__ == "__main__":
    main()
