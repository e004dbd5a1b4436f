"""Live pages: server-sent events fed by the runtime's long polls, one stream per open page.

The stream asks the runtime to answer when the run shown (or, on the other pages,
any run) changes, and tells the browser; the page then fetches its live part
again. Nothing polls the journal: between changes the stream only waits.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from runtime.client._client import ControlClient, ControlRefused, RuntimeUnavailable
from runtime.ui._forms import count_field, name_field
from runtime.ui._link import RuntimeLink

WAIT = 15.0
"""Seconds each long poll lasts; a comment line keeps the stream open between them."""
SETTLE = 0.2
"""Seconds between two updates sent, so that a burst of changes refreshes a page once."""
AWAY_PAUSE = 2.0
"""Seconds before asking again a runtime that did not answer."""


async def changes(link: RuntimeLink, request: Request) -> Response:
    """`GET /events[?run=ID&after=SEQ]`: an `event: changed` each time that changes."""
    run_text = request.query_params.get("run")
    run_id = name_field(run_text, "run") if run_text else None
    after_text = request.query_params.get("after") or "0"
    after = count_field(after_text, "after")

    async def stream() -> AsyncIterator[str]:
        async with link.watcher() as client:
            if client is None:
                yield "event: busy\ndata: too many pages are live; reload to see changes\n\n"
                return
            yield "retry: 3000\n\n"
            cursor = after if run_id is not None else await _now(client)
            while not await request.is_disconnected():
                try:
                    changed = await client.watch(run_id, after=cursor, max_wait=WAIT)
                except RuntimeUnavailable:
                    yield ": the runtime does not answer\n\n"
                    await anyio.sleep(AWAY_PAUSE)
                    continue
                except ControlRefused as exc:
                    yield f"event: refused\ndata: {exc.code}\n\n"
                    return
                if changed.timed_out:
                    yield ": waiting\n\n"
                    continue
                cursor = changed.cursor
                yield f"event: changed\ndata: {cursor}\n\n"
                await anyio.sleep(SETTLE)

    return StreamingResponse(
        stream(), media_type="text/event-stream", headers={"x-accel-buffering": "no"}
    )


async def _now(client: ControlClient) -> int:
    """The runtime's change cursor now, so that only later changes are announced."""
    return (await client.watch(None, after=2**53, max_wait=0)).cursor
