"""Who may connect: the ZAP handler that admits CURVE clients by key, and the table it reads.

ZAP only guards the handshake, and it fails open: a CURVE server whose
handler is absent or stopped admits any key. So it is not the last word: the
gate checks the `User-Id` of every frame against the same `PrincipalBook`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import structlog
import zmq
import zmq.auth.asyncio

from protocols import WELL_KNOWN_TEST_KEYS
from runtime.security._principals import Principal, Principals

log = structlog.get_logger("baton.runtime")

ZAP_DOMAIN = "baton"


class PrincipalBook:
    """The principals the runtime knows now, by the `User-Id` ZAP gives their connections.

    The `User-Id` is the Z85 public key itself (pyzmq's default), so that a
    key removed on reload stops matching at once, even on a live connection.
    """

    __slots__ = ("_by_user_id", "principals")

    def __init__(self, principals: Principals) -> None:
        self.principals = principals
        self._by_user_id: dict[str, Principal] = {}
        self.replace(principals)

    def replace(self, principals: Principals) -> None:
        self.principals = principals
        self._by_user_id = {p.public_key.decode("ascii"): p for p in principals}

    def by_user_id(self, user_id: str) -> Principal | None:
        return self._by_user_id.get(user_id)

    def __len__(self) -> int:
        return len(self._by_user_id)


class Authenticator(zmq.auth.asyncio.AsyncioAuthenticator):
    """Admits a CURVE client whose public key belongs to a principal; refuses the rest.

    Start it before binding any CURVE socket of its context: a client that
    completes its handshake before the handler runs is admitted unchecked.
    """

    def __init__(
        self,
        context: zmq.Context[zmq.Socket[bytes]],
        book: PrincipalBook,
        on_refused: Callable[[str], None],
    ) -> None:
        super().__init__(context)
        self._book = book
        self._on_refused = on_refused

    def start(self) -> None:
        super().start()
        self.configure_curve_callback(domain=ZAP_DOMAIN, credentials_provider=self)

    def callback(self, domain: str, key: bytes) -> bool:
        """The credentials provider's test: is `key` (Z85) a principal's key?"""
        if self._book.by_user_id(key.decode("ascii", "replace")) is not None:
            return True
        why = "a well-known test key" if key in WELL_KNOWN_TEST_KEYS else "an unknown key"
        log.warning("handshake.refused", reason=why, key=key.decode("ascii", "replace"))
        self._on_refused("unknown_key")
        return False

    def alive(self) -> bool:
        """Whether the handler's task still runs; the runtime must not serve without it."""
        task: asyncio.Future[None] | None = getattr(self, "_AsyncioAuthenticator__task", None)
        return task is not None and not task.done()
