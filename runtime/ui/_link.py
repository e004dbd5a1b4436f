"""The page server's way to the runtime: control-plane clients, one request at a time each.

A `ControlClient` carries one request at a time, and a page server has many at once
(pages, actions, and a long poll per open page), so clients are pooled: a request
takes an idle one or opens another, and gives it back when it is done. A client
whose request went unanswered is closed rather than given back.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import anyio

from runtime.client._client import ControlClient, ControlRefused
from runtime.ui._settings import UiSettings

MAX_CLIENTS = 8
"""Requests to the runtime at once for pages and actions."""
MAX_WATCHES = 64
"""Pages kept live at once; a page past this is served, but not updated live."""


class RuntimeLink:
    """Pooled clients of one runtime's control plane, all acting as the server's principal."""

    def __init__(self, settings: UiSettings) -> None:
        self._settings = settings
        self._idle: list[tuple[ControlClient, AsyncExitStack]] = []
        self._slots = anyio.Semaphore(MAX_CLIENTS)
        self.watches = anyio.Semaphore(MAX_WATCHES)

    async def _open(self) -> tuple[ControlClient, AsyncExitStack]:
        stack = AsyncExitStack()
        client = ControlClient(
            self._settings.control, keys=self._settings.keys, timeout=self._settings.timeout
        )
        await stack.enter_async_context(client)
        return client, stack

    @asynccontextmanager
    async def client(self) -> AsyncIterator[ControlClient]:
        """A client for one request (or a few in a row)."""
        async with self._slots:
            client, stack = self._idle.pop() if self._idle else await self._open()
            try:
                yield client
            except ControlRefused:
                # A refusal is an answer: the connection is as good as before.
                self._idle.append((client, stack))
                raise
            except BaseException:
                await stack.aclose()
                raise
            self._idle.append((client, stack))

    @asynccontextmanager
    async def watcher(self) -> AsyncIterator[ControlClient | None]:
        """A client of its own for one page's long polls; None once too many pages watch."""
        if self.watches.value == 0:
            yield None
            return
        async with self.watches:
            client, stack = await self._open()
            async with stack:
                yield client

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for _, stack in idle:
            await stack.aclose()
