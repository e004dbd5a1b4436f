"""The page server as an ASGI app: its routes, its door, its templates and static files."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import jinja2
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from runtime.ui._events import changes
from runtime.ui._guard import Guard
from runtime.ui._link import RuntimeLink
from runtime.ui._pages import Pages
from runtime.ui._sessions import Sessions
from runtime.ui._settings import UiSettings

HERE = Path(__file__).parent


def create_app(settings: UiSettings) -> Starlette:
    """The app for `settings`; it connects to the runtime when it starts serving."""
    link = RuntimeLink(settings)
    sessions = Sessions(settings.token)
    pages = Pages(settings, link, sessions, _templates())

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await link.close()

    async def home(request: Request) -> Response:
        return RedirectResponse(request.scope.get("root_path", "") + "/runs", status_code=303)

    read = pages.guarded
    routes = [
        Route("/", home),
        Route("/runs", read(pages.runs)),
        Route("/runs/bulk", read(pages.bulk_confirm)),
        Route("/runs/{run_id}", read(pages.run)),
        Route("/inbox", read(pages.inbox)),
        Route("/inbox/count", read(pages.inbox_count)),
        Route("/workflows", read(pages.workflows)),
        Route("/workflows/{name}", read(pages.workflow)),
        Route("/agents", read(pages.agents)),
        Route("/events", read(partial(changes, link))),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    if not settings.read_only:
        # A read-only server has no route that acts: a forged POST finds nothing to call.
        routes += [
            Route("/runs/bulk", pages.posted(pages.bulk), methods=["POST"]),
            Route("/runs/{run_id}/cancel", pages.posted(pages.cancel), methods=["POST"]),
            Route("/runs/{run_id}/resume", pages.posted(pages.resume), methods=["POST"]),
            Route("/runs/{run_id}/fork", pages.posted(pages.fork), methods=["POST"]),
            Route("/inbox/decide", pages.posted(pages.decide), methods=["POST"]),
        ]
    app = Starlette(
        routes=routes, middleware=[Middleware(Guard, sessions=sessions)], lifespan=lifespan
    )
    app.state.pages = pages
    return app


def _templates() -> Jinja2Templates:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    environment.filters["when"] = _when
    environment.filters["ago"] = _seconds
    return Jinja2Templates(env=environment)


def _when(moment: float | None) -> str:
    if not moment:
        return ""
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < 120:
        return f"{value:.1f} s"
    return f"{value / 60:.1f} min"
