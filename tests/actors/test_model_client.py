"""The chat-completions client against a scripted server on loopback."""

from __future__ import annotations

import random
from typing import Any

import anyio
import pytest

from actors.models import (
    ModelClient,
    ModelConfig,
    ModelNotConfigured,
    ModelRejected,
    ModelReplyInvalid,
    ModelUnavailable,
    retry_after,
)
from runtime.testing.model_server import ModelServer
from tests.actors.conftest import WAIT

pytestmark = pytest.mark.anyio

BODY = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


def config(server: ModelServer, **options: Any) -> ModelConfig:
    defaults: dict[str, Any] = {
        "key": "secret",
        "attempts": 3,
        "backoff": 0.001,
        "backoff_cap": 0.002,
    }
    return ModelConfig(url=server.url, model="m", **{**defaults, **options})


class TestCompletion:
    async def test_a_completion_carries_the_message_and_its_cost(self) -> None:
        """The reply message, the tokens, the finish reason and the model come back."""
        script = [{"final": {"ok": True}, "usage": {"prompt_tokens": 7, "completion_tokens": 3}}]
        with ModelServer(script) as server:
            async with ModelClient(config(server)) as client:
                completion = await client.complete(BODY)
        assert completion.message == {"role": "assistant", "content": '{"ok": true}'}
        assert (completion.tokens_in, completion.tokens_out) == (7, 3)
        assert (completion.finish_reason, completion.model) == ("stop", "scripted")
        assert completion.latency_ms > 0

    async def test_the_request_is_posted_with_the_key(self) -> None:
        """The body goes to `{url}/chat/completions` as JSON, with the key as a bearer token."""
        with ModelServer([{"content": "x"}]) as server:
            async with ModelClient(config(server)) as client:
                await client.complete(BODY)
        (request,) = server.requests
        assert request.path == "/v1/chat/completions"
        assert request.body == BODY
        assert request.headers["Authorization"] == "Bearer secret"

    async def test_no_key_sends_no_authorization(self) -> None:
        """A server that needs no key (a local model) gets no Authorization header."""
        with ModelServer([{"content": "x"}]) as server:
            async with ModelClient(config(server, key="")) as client:
                await client.complete(BODY)
        assert "Authorization" not in server.requests[0].headers

    @pytest.mark.parametrize(
        ("reply", "detail"),
        [
            ({"body": "<html>"}, "the body is not JSON: "),
            ({"body": '{"choices": []}'}, "no `choices` in the body"),
            ({"body": '{"choices": [{"text": "x"}]}'}, "no `choices[0].message` in the body"),
        ],
    )
    async def test_a_body_that_is_no_completion_is_invalid(
        self, reply: dict[str, Any], detail: str
    ) -> None:
        """A 200 without a chat completion raises `ModelReplyInvalid`, and is not retried."""
        with ModelServer([reply]) as server:
            async with ModelClient(config(server)) as client:
                with pytest.raises(ModelReplyInvalid) as caught:
                    await client.complete(BODY)
        assert caught.value.detail.startswith(detail)
        assert len(server.requests) == 1

    async def test_a_reply_for_a_text_answers_only_requests_that_say_it(self) -> None:
        """The scripted server gives each request the first reply that fits what it says,
        so one script serves two roles asking in any order; none fitting is 410 Gone."""
        script = [
            {"for": ["write", "the email"], "content": "Dear Ada"},
            {"for": "classify", "content": "billing"},
        ]

        def asking(text: str) -> dict[str, Any]:
            return {"model": "m", "messages": [{"role": "user", "content": text}]}

        with ModelServer(script) as server:
            async with ModelClient(config(server, attempts=1)) as client:
                classified = await client.complete(asking("please classify this"))
                written = await client.complete(asking("now write the email"))
                with pytest.raises(ModelRejected) as caught:
                    await client.complete(asking("classify another"))
        assert (classified.message["content"], written.message["content"]) == (
            "billing",
            "Dear Ada",
        )
        assert caught.value.status == 410


class TestRetries:
    async def test_a_429_waits_as_long_as_retry_after_says(self) -> None:
        """The second request leaves no sooner than the server's `Retry-After` asked."""
        script: list[dict[str, Any]] = [{"status": 429, "retry_after": "1"}, {"content": "done"}]
        with ModelServer(script) as server:
            async with ModelClient(config(server)) as client:
                with anyio.fail_after(WAIT):
                    completion = await client.complete(BODY)
        first, second = server.requests
        assert completion.message["content"] == "done"
        assert 1.0 <= second.at - first.at < 1.0 + WAIT

    async def test_retry_after_as_an_http_date_is_read_against_the_clock(self) -> None:
        """An HTTP-date `Retry-After` is waited for until that date, by the injected clock."""
        waits: list[float] = []

        async def sleep(seconds: float) -> None:
            waits.append(seconds)

        script: list[dict[str, Any]] = [
            {"status": 503, "retry_after": "Sun, 06 Nov 1994 08:49:40 GMT"},
            {"content": "done"},
        ]
        now = 784111780.0 - 3  # three seconds before that date
        with ModelServer(script) as server:
            async with ModelClient(config(server), sleep=sleep, now=lambda: now) as client:
                await client.complete(BODY)
        assert waits == [3.0]

    async def test_a_retry_after_longer_than_allowed_is_not_waited_for(self) -> None:
        """Asked to wait past `retry_after_cap`, the client gives up at once."""
        script = [{"status": 429, "retry_after": "120", "error": "slow down"}]
        with ModelServer(script) as server:
            async with ModelClient(config(server, retry_after_cap=30)) as client:
                with pytest.raises(ModelUnavailable) as caught:
                    await client.complete(BODY)
        assert str(caught.value) == (
            f"model at {server.url} unavailable after 1 attempt: HTTP 429: "
            '{"error": {"message": "slow down"}}, asking to wait 120 s (at most 30)'
        )

    async def test_a_500_is_retried_then_given_up(self) -> None:
        """Each attempt of a failing server is a request; after the last, `ModelUnavailable`."""
        script = [{"status": 500, "error": "boom"}] * 3
        with ModelServer(script) as server:
            async with ModelClient(config(server)) as client:
                with pytest.raises(ModelUnavailable) as caught:
                    await client.complete(BODY)
        assert len(server.requests) == 3
        assert caught.value.attempts == 3
        assert str(caught.value) == (
            f"model at {server.url} unavailable after 3 attempts: "
            'HTTP 500: {"error": {"message": "boom"}}'
        )

    async def test_a_500_then_an_answer_succeeds(self) -> None:
        """A server that recovers within the attempts answers the call."""
        with ModelServer([{"status": 502}, {"content": "back"}]) as server:
            async with ModelClient(config(server)) as client:
                completion = await client.complete(BODY)
        assert completion.message["content"] == "back"
        assert len(server.requests) == 2

    async def test_backoff_doubles_with_jitter_up_to_its_cap(self) -> None:
        """Without `Retry-After`, waits are drawn in [d/2, d], d doubling to the cap."""
        waits: list[float] = []

        async def sleep(seconds: float) -> None:
            waits.append(seconds)

        options = {"attempts": 5, "backoff": 1.0, "backoff_cap": 4.0}
        with ModelServer([{"status": 500}] * 5) as server:
            client = ModelClient(config(server, **options), sleep=sleep, rng=random.Random(1))
            async with client:
                with pytest.raises(ModelUnavailable):
                    await client.complete(BODY)
        assert len(waits) == 4
        for wait, ceiling in zip(waits, [1.0, 2.0, 4.0, 4.0], strict=True):
            assert ceiling / 2 <= wait <= ceiling

    async def test_a_4xx_is_not_retried(self) -> None:
        """A refused request (bad key, bad model) raises `ModelRejected` after one request."""
        with ModelServer([{"status": 401, "error": "bad key"}]) as server:
            async with ModelClient(config(server)) as client:
                with pytest.raises(ModelRejected) as caught:
                    await client.complete(BODY)
        assert caught.value.status == 401
        assert len(server.requests) == 1

    async def test_a_request_past_the_timeout_is_abandoned(self) -> None:
        """A reply slower than `timeout` counts as a failed attempt, and the client moves on."""
        with ModelServer([{"delay": 2.0, "content": "late"}]) as server:
            async with ModelClient(config(server, attempts=1, timeout=0.2)) as client:
                started = anyio.current_time()
                with pytest.raises(ModelUnavailable) as caught:
                    await client.complete(BODY)
                elapsed = anyio.current_time() - started
        assert str(caught.value) == (
            f"model at {server.url} unavailable after 1 attempt: timed out after 0.2 s"
        )
        assert 0.2 <= elapsed < 1.5

    async def test_an_unreachable_server_is_unavailable(self) -> None:
        """A refused connection is retried like a 5xx, then reported."""
        with ModelServer([]) as server:
            url = server.url
        client = ModelClient(ModelConfig(url=url, model="m", attempts=2, backoff=0.001))
        async with client:
            with pytest.raises(ModelUnavailable) as caught:
                await client.complete(BODY)
        assert caught.value.last.startswith("ConnectError: ")


class TestConcurrency:
    async def test_no_more_requests_in_flight_than_the_limit(self) -> None:
        """With `concurrency=2`, six calls at once reach the server two at a time."""
        with ModelServer([{"delay": 0.1, "content": "x"}] * 6) as server:
            async with ModelClient(config(server, concurrency=2)) as client:
                with anyio.fail_after(WAIT):
                    async with anyio.create_task_group() as tg:
                        for _ in range(6):
                            tg.start_soon(client.complete, BODY)
        assert len(server.requests) == 6
        assert server.max_in_flight == 2


class TestRetryAfter:
    @pytest.mark.parametrize(
        ("header", "seconds"),
        [
            ("3", 3.0),
            (" 0 ", 0.0),
            ("1.5", 1.5),
            ("Sun, 06 Nov 1994 08:49:40 GMT", 10.0),
            ("Sun, 06 Nov 1994 08:49:20 GMT", 0.0),
            ("-1", None),
            ("soon", None),
            ("", None),
            (None, None),
        ],
    )
    def test_retry_after_reads_seconds_or_a_date(
        self, header: str | None, seconds: float | None
    ) -> None:
        """Seconds as given, a date relative to now (never negative), else None."""
        assert retry_after(header, now=784111770.0) == seconds


class TestConfig:
    def test_the_environment_wins_over_the_defaults(self) -> None:
        """`BATON_MODEL_URL`, `BATON_MODEL` and `BATON_MODEL_KEY` override the class's."""
        environ = {"BATON_MODEL_URL": "http://e/v1", "BATON_MODEL": "e", "BATON_MODEL_KEY": "sk-1"}
        found = ModelConfig.from_env(environ, url="http://c/v1", model="c")
        assert (found.url, found.model, found.key) == ("http://e/v1", "e", "sk-1")
        assert found.endpoint == "http://e/v1/chat/completions"
        assert "sk-1" not in repr(found)

    def test_the_response_format_comes_from_the_environment_and_is_checked(self) -> None:
        """`BATON_MODEL_RESPONSE_FORMAT` sets how the answer's JSON is asked for; a value
        the client does not know is refused, naming those it knows and where it was set."""
        base = {"BATON_MODEL_URL": "http://e/v1", "BATON_MODEL": "e"}
        found = ModelConfig.from_env(
            {**base, "BATON_MODEL_RESPONSE_FORMAT": "json_schema"}, response_format="json_object"
        )
        assert found.response_format == "json_schema"
        assert ModelConfig.from_env(base, response_format="json_object").response_format == (
            "json_object"
        )
        with pytest.raises(ValueError, match="BATON_MODEL_RESPONSE_FORMAT") as caught:
            ModelConfig.from_env({**base, "BATON_MODEL_RESPONSE_FORMAT": "yaml"})
        assert "'yaml' is none of '', 'json_object', 'json_schema'" in str(caught.value)

    def test_the_defaults_serve_when_the_environment_is_silent(self) -> None:
        found = ModelConfig.from_env({}, url="http://c/v1/", model="c")
        assert (found.url, found.model, found.key) == ("http://c/v1/", "c", "")
        assert found.endpoint == "http://c/v1/chat/completions"

    @pytest.mark.parametrize(
        ("environ", "message"),
        [
            ({}, "no model URL: set BATON_MODEL_URL or the agent's `model_url` attribute"),
            (
                {"BATON_MODEL_URL": "http://e"},
                "no model name: set BATON_MODEL or the agent's `model` attribute",
            ),
        ],
    )
    def test_a_missing_setting_is_named(self, environ: dict[str, str], message: str) -> None:
        """Without a URL or a model, `ModelNotConfigured` says where to set it."""
        with pytest.raises(ModelNotConfigured) as caught:
            ModelConfig.from_env(environ)
        assert str(caught.value) == message
