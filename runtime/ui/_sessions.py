"""Who may use the pages: the bearer of the printed token, then its session cookie.

The token is traded once for a session (an HttpOnly, SameSite=Strict cookie); each
session has its own CSRF token, which every POST must carry. Sessions live in the
server's memory only: restarting `baton ui` prints a new URL and ends them all.
"""

from __future__ import annotations

import hmac
import secrets
from collections import OrderedDict

COOKIE = "baton_ui"
MAX_SESSIONS = 1_000
"""Sessions kept at most; the least recently used is forgotten first, so a client that
logs in again and again cannot grow the server's memory."""


def new_token() -> str:
    return secrets.token_urlsafe(24)


class Sessions:
    """Session ids to their CSRF tokens."""

    def __init__(self, access_token: str) -> None:
        self._access = access_token
        self._csrf: OrderedDict[str, str] = OrderedDict()

    def token_matches(self, offered: str) -> bool:
        return hmac.compare_digest(offered.encode(), self._access.encode())

    def open(self) -> str:
        """A new session's id."""
        session = secrets.token_urlsafe(32)
        self._csrf[session] = secrets.token_urlsafe(32)
        while len(self._csrf) > MAX_SESSIONS:
            self._csrf.popitem(last=False)
        return session

    def csrf_of(self, session: str | None) -> str | None:
        """The CSRF token of a live session, or None for an unknown one."""
        if session is None:
            return None
        token = self._csrf.get(session)
        if token is not None:
            self._csrf.move_to_end(session)
        return token

    def csrf_matches(self, session: str | None, offered: str) -> bool:
        expected = self.csrf_of(session)
        return expected is not None and hmac.compare_digest(offered.encode(), expected.encode())
