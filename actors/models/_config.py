"""Where the model is and how hard to try: one frozen value, read once at setup."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from actors.models._errors import ModelNotConfigured

URL_VARIABLE = "BATON_MODEL_URL"
MODEL_VARIABLE = "BATON_MODEL"
KEY_VARIABLE = "BATON_MODEL_KEY"
FORMAT_VARIABLE = "BATON_MODEL_RESPONSE_FORMAT"
RESPONSE_FORMATS = ("", "json_object", "json_schema", "json_object_schema")
"""How a final answer's JSON is asked for, by what the server understands: nothing but
the prompt (""); JSON mode (`json_object`); OpenAI's structured outputs, as vLLM also
takes them (`json_schema`, with the answer's schema); or llama-cpp-python's server's
JSON mode held to a schema (`json_object_schema`)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelConfig:
    """An OpenAI-compatible chat-completions endpoint and the limits of calling it.

    `url` is the API's base (`https://host/v1`): requests go to `{url}/chat/completions`.
    Each request may take `timeout` seconds; a request answered 429, 5xx or not at all
    is sent again, at most `attempts` times in all, after the server's `Retry-After`
    or a backoff doubling from `backoff` to `backoff_cap` seconds. A `Retry-After`
    longer than `retry_after_cap` is not waited for: the model counts as unavailable.
    At most `concurrency` requests are in flight at once in the process.
    """

    url: str
    model: str
    key: str = field(default="", repr=False)
    timeout: float = 60.0
    attempts: int = 4
    backoff: float = 0.5
    backoff_cap: float = 8.0
    retry_after_cap: float = 60.0
    concurrency: int = 4
    temperature: float | None = None
    """Sent when set; None leaves it to the server."""
    response_format: str = ""
    """How the answer's JSON shape is asked of the server: "", "json_object", "json_schema"
    or "json_object_schema" (see `RESPONSE_FORMATS`)."""

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"attempts must be at least 1, not {self.attempts}")
        if self.concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, not {self.concurrency}")
        if self.timeout <= 0:
            raise ValueError(f"timeout must be positive, not {self.timeout}")
        if self.response_format not in RESPONSE_FORMATS:
            known = ", ".join(repr(f) for f in RESPONSE_FORMATS)
            raise ValueError(
                f"response format {self.response_format!r} is none of {known} "
                f"({FORMAT_VARIABLE}, or the agent's `model_response_format`)"
            )
        if self.backoff < 0 or self.backoff_cap < self.backoff:
            raise ValueError(f"backoff must be in [0, backoff_cap], not {self.backoff}")

    @property
    def endpoint(self) -> str:
        """Where chat completions are posted."""
        return f"{self.url.rstrip('/')}/chat/completions"

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str],
        *,
        url: str = "",
        model: str = "",
        key: str = "",
        timeout: float = 60.0,
        attempts: int = 4,
        concurrency: int = 4,
        response_format: str = "",
    ) -> ModelConfig:
        """The configuration `environ` gives, over the defaults given here.

        The environment wins: it is where a deployment points an agent at its model,
        whatever the agent's code defaults to. Raises `ModelNotConfigured` when
        neither names the URL or the model.
        """
        found_url = environ.get(URL_VARIABLE) or url
        if not found_url:
            raise ModelNotConfigured("URL", URL_VARIABLE, "model_url")
        found_model = environ.get(MODEL_VARIABLE) or model
        if not found_model:
            raise ModelNotConfigured("name", MODEL_VARIABLE, "model")
        return cls(
            url=found_url,
            model=found_model,
            key=environ.get(KEY_VARIABLE) or key,
            timeout=timeout,
            attempts=attempts,
            concurrency=concurrency,
            response_format=environ.get(FORMAT_VARIABLE) or response_format,
        )
