"""What lets frames into the planes: a gate per plane, each with its own rate limiter, and
the answer a peer sending over its rate gets."""

from __future__ import annotations

from collections.abc import Callable

import structlog

from protocols import ControlError, Error
from runtime.planes._gate import Gate
from runtime.planes._rate import RateLimiter
from runtime.security._authenticator import PrincipalBook
from runtime.supervisor._config import RuntimeConfig
from runtime.supervisor._core import SupervisorCore

log = structlog.get_logger("baton.runtime")


class Gates:
    """The agent plane's gate and the control plane's, in front of the core's handlers."""

    __slots__ = ("_core", "_limiters", "_rate", "agents", "control")

    def __init__(
        self,
        core: SupervisorCore,
        book: PrincipalBook | None,
        config: RuntimeConfig,
        monotonic: Callable[[], float],
    ) -> None:
        self._core = core
        self._rate = config.rate_limit
        self._limiters = [
            RateLimiter(config.rate_limit, config.rate_burst, monotonic) for _ in range(2)
        ]
        count = core.refusals.count
        self.agents = Gate(
            "agents",
            book,
            self._limiters[0],
            refuse=core.reject,
            count=count,
            limited=self._agents_limited,
        )
        self.control = Gate(
            "control",
            book,
            self._limiters[1],
            refuse=core.reject,
            count=count,
            limited=self._control_limited,
        )

    @property
    def reading(self) -> bool:
        """Whether either gate is part way through a message of many parts."""
        return self.agents.reading or self.control.reading

    def prune(self) -> None:
        """Forget the rates of principals that have been quiet."""
        for limiter in self._limiters:
            limiter.prune()

    def _agents_limited(self, identity: bytes, principal: str, dropped: int) -> None:
        _log_limited(identity, principal, dropped)
        core = self._core
        if not core.refusals.may_answer():
            return
        message = Error(
            code="rate_limited", message=f"over {self._rate:g} frames/s: {dropped} dropped"
        )
        core.queue_agent_frame(identity, core.agent_codec.encode(message))

    def _control_limited(self, identity: bytes, principal: str, dropped: int) -> None:
        _log_limited(identity, principal, dropped)
        if not self._core.refusals.may_answer():
            return
        message = ControlError(
            id=0,
            code="rate_limited",
            message=f"over {self._rate:g} requests/s: {dropped} dropped",
        )
        self._core.send_control(identity, message)


def _log_limited(identity: bytes, principal: str, dropped: int) -> None:
    log.warning("frames.rate_limited", principal=principal, peer=identity.hex(), dropped=dropped)
