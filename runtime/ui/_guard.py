"""The door of every page: the printed token or a session cookie, and headers that keep a
page from being framed or from running a script it did not serve itself."""

from __future__ import annotations

from urllib.parse import urlencode

from starlette.datastructures import URL
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from runtime.ui._sessions import COOKIE, Sessions

HEADERS = {
    "content-security-policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
}
NO_SESSION = (
    "Open the address `baton ui` printed: it carries the access token, which this browser "
    "trades for a session."
)
OPEN_PREFIXES = ("/static/",)
"""Paths served without a session: the vendored script and the style sheet, nothing else."""


class Guard:
    """ASGI middleware: trade `?token=` for a session, refuse requests without one."""

    def __init__(self, app: ASGIApp, sessions: Sessions) -> None:
        self.app = app
        self.sessions = sessions

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        send = _with_headers(send)
        request = Request(scope)
        path = request.url.path.removeprefix(scope.get("root_path", ""))
        if path.startswith(OPEN_PREFIXES):
            await self.app(scope, receive, send)
            return
        offered = request.query_params.get("token")
        if offered is not None:
            await self._log_in(request, offered)(scope, receive, send)
            return
        if self.sessions.csrf_of(request.cookies.get(COOKIE)) is None:
            refusal = _refused(401, NO_SESSION)
            await refusal(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _log_in(self, request: Request, offered: str) -> Response:
        if not self.sessions.token_matches(offered):
            return _refused(401, "This access token is not the one `baton ui` printed.")
        kept = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
        target = URL(str(request.url)).replace(query=urlencode(kept))
        response = RedirectResponse(target.path + (f"?{target.query}" if target.query else ""), 303)
        response.set_cookie(
            COOKIE,
            self.sessions.open(),
            httponly=True,
            samesite="strict",
            path=request.scope.get("root_path") or "/",
        )
        return response


def _refused(status: int, text: str) -> Response:
    body = f"<!doctype html><title>Baton</title><h1>{status}</h1><p>{_escape(text)}</p>"
    return HTMLResponse(body, status_code=status)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _with_headers(send: Send) -> Send:
    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", []))
            present = {name.lower() for name, _ in headers}
            headers += [
                (name.encode(), value.encode())
                for name, value in HEADERS.items()
                if name.encode() not in present
            ]
            message = {**message, "headers": headers}
        await send(message)

    return sending
