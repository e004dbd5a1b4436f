"""An OpenAI-compatible chat-completions client over httpx: retries, timeouts, a limit.

No vendor SDK: the wire is one POST of JSON, and every server that speaks it
(OpenAI, vLLM, llama.cpp, Ollama, LiteLLM) is reached the same way.
"""

from __future__ import annotations

import email.utils
import math
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import anyio
import httpx
import msgspec
from structlog.typing import FilteringBoundLogger

from actors.models._config import ModelConfig
from actors.models._errors import ModelRejected, ModelReplyInvalid, ModelUnavailable
from protocols import clip

DETAIL_LIMIT = 500
"""Characters of a server's error body quoted in an error message."""


@dataclass(frozen=True, slots=True)
class Completion:
    """One answered chat completion: the reply message and what the call cost."""

    message: dict[str, Any]
    """`choices[0].message` as the server sent it."""
    model: str
    """The model that answered, as the server named it (else the one asked for)."""
    finish_reason: str
    tokens_in: int
    tokens_out: int
    latency_ms: float
    """How long the request that answered took, without waits for a slot or a retry."""


class ModelClient:
    """Posts chat completions to one endpoint, at most `config.concurrency` at once.

    Owns its HTTP connection pool: use it as an async context manager, or call
    `aclose`. One client serves every task of an agent process, so its limiter
    bounds the calls of the whole role in that process.
    """

    __slots__ = ("_config", "_http", "_limiter", "_now", "_rng", "_sleep")

    def __init__(
        self,
        config: ModelConfig,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
        now: Callable[[], float] = time.time,
    ) -> None:
        """`sleep` waits between attempts and `now` (wall-clock seconds) reads an HTTP-date
        `Retry-After`; both are parameters so that tests can control time."""
        self._config = config
        headers = {"Content-Type": "application/json"}
        if config.key:
            headers["Authorization"] = f"Bearer {config.key}"
        # The overall deadline is enforced around each request; httpx's own timeout
        # is a backstop for each phase of it.
        self._http = httpx.AsyncClient(
            headers=headers, timeout=httpx.Timeout(config.timeout), transport=transport
        )
        self._limiter = anyio.CapacityLimiter(config.concurrency)
        self._rng = random.Random() if rng is None else rng
        self._sleep = sleep
        self._now = now

    @property
    def config(self) -> ModelConfig:
        return self._config

    def statistics(self) -> anyio.CapacityLimiterStatistics:
        """How many requests hold a slot and how many wait for one."""
        return self._limiter.statistics()

    async def __aenter__(self) -> ModelClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def complete(
        self, body: Mapping[str, Any], *, log: FilteringBoundLogger | None = None
    ) -> Completion:
        """Post `body` and return the completion, trying again on 429, 5xx and timeouts.

        Raises `ModelUnavailable` once the attempts are spent (or a `Retry-After` asks
        for longer than allowed), `ModelRejected` on any other error status, and
        `ModelReplyInvalid` when a 200 carries no chat completion.
        """
        config = self._config
        content = msgspec.json.encode(body)
        for attempt in range(1, config.attempts + 1):
            outcome = await self._attempt(content)
            if isinstance(outcome, Completion):
                return outcome
            problem, wait = outcome
            if wait is not None and wait > config.retry_after_cap:
                text = f"{problem}, asking to wait {wait:g} s (at most {config.retry_after_cap:g})"
                raise ModelUnavailable(config.url, attempt, text)
            if attempt == config.attempts:
                raise ModelUnavailable(config.url, attempt, problem)
            delay = self._backoff(attempt) if wait is None else wait
            if log is not None:
                log.warning(
                    "model.retrying",
                    url=config.url,
                    attempt=attempt,
                    problem=problem,
                    retry_in=round(delay, 3),
                )
            await self._sleep(delay)
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def _attempt(self, content: bytes) -> Completion | tuple[str, float | None]:
        """One request: the completion, or what went wrong and how long the server asked
        us to wait (None if it did not say) when it is worth trying again."""
        config = self._config
        async with self._limiter:
            started = anyio.current_time()
            with anyio.move_on_after(config.timeout):
                try:
                    response = await self._http.post(config.endpoint, content=content)
                except httpx.TimeoutException:
                    return f"timed out after {config.timeout:g} s", None
                except httpx.TransportError as exc:
                    return f"{type(exc).__name__}: {exc}", None
                latency_ms = (anyio.current_time() - started) * 1000
                return self._answer(response, latency_ms)
        return f"timed out after {config.timeout:g} s", None

    def _answer(
        self, response: httpx.Response, latency_ms: float
    ) -> Completion | tuple[str, float | None]:
        status = response.status_code
        if status in {408, 429} or status >= 500:
            problem = f"HTTP {status}: {clip(response.text, DETAIL_LIMIT)}"
            return problem, retry_after(response.headers.get("Retry-After"), self._now())
        if status != 200:
            raise ModelRejected(self._config.url, status, clip(response.text, DETAIL_LIMIT))
        return parse_completion(response.content, self._config, latency_ms)

    def _backoff(self, attempt: int) -> float:
        """Doubling from `backoff` to `backoff_cap`, drawn in [d/2, d] so that the agents
        that met the same outage do not all come back at once."""
        config = self._config
        delay = min(config.backoff_cap, config.backoff * 2 ** min(attempt - 1, 32))
        return self._rng.uniform(delay / 2, delay)


def parse_completion(content: bytes, config: ModelConfig, latency_ms: float) -> Completion:
    """The completion in a 200's body, or `ModelReplyInvalid` saying what is missing."""
    try:
        data = msgspec.json.decode(content)
    except msgspec.DecodeError as exc:
        raise ModelReplyInvalid(config.url, f"the body is not JSON: {exc}") from None
    choices = data.get("choices") if isinstance(data, dict) else None
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise ModelReplyInvalid(config.url, "no `choices` in the body")
    message = choices[0].get("message")
    if not isinstance(message, dict):
        raise ModelReplyInvalid(config.url, "no `choices[0].message` in the body")
    usage = data.get("usage")
    usage = usage if isinstance(usage, dict) else {}
    model = data.get("model")
    reason = choices[0].get("finish_reason")
    return Completion(
        message=message,
        model=model if isinstance(model, str) and model else config.model,
        finish_reason=reason if isinstance(reason, str) else "",
        tokens_in=_count(usage.get("prompt_tokens")),
        tokens_out=_count(usage.get("completion_tokens")),
        latency_ms=latency_ms,
    )


def retry_after(value: str | None, now: float) -> float | None:
    """The seconds a `Retry-After` header asks for, in seconds or as an HTTP date (then
    relative to `now`, wall-clock seconds); None when absent or unreadable."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
        return max(0.0, when.timestamp() - now)
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0
