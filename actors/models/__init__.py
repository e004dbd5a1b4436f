"""Agents backed by a model: an OpenAI-compatible chat-completions client and `ModelAgent`.

Needs the `models` extra (httpx). The model is reached from the agent's process;
its tool calls go through `ctx.tools`, so the runtime's allowlist and history
apply to them, and each model call is reported to the runtime with its tokens.
This package depends on `actors` and `protocols`, never on `runtime`.
"""

from actors.models._agent import ModelAgent as ModelAgent
from actors.models._agent import request_digest as request_digest
from actors.models._agent import response_format as response_format
from actors.models._agent import tool_schema as tool_schema
from actors.models._answers import answer_schema as answer_schema
from actors.models._answers import fits as fits
from actors.models._client import Completion as Completion
from actors.models._client import ModelClient as ModelClient
from actors.models._client import retry_after as retry_after
from actors.models._config import ModelConfig as ModelConfig
from actors.models._errors import ModelError as ModelError
from actors.models._errors import ModelNotConfigured as ModelNotConfigured
from actors.models._errors import ModelRejected as ModelRejected
from actors.models._errors import ModelReplyInvalid as ModelReplyInvalid
from actors.models._errors import ModelTurnsExhausted as ModelTurnsExhausted
from actors.models._errors import ModelUnavailable as ModelUnavailable

__all__ = [
    "Completion",
    "ModelAgent",
    "ModelClient",
    "ModelConfig",
    "ModelError",
    "ModelNotConfigured",
    "ModelRejected",
    "ModelReplyInvalid",
    "ModelTurnsExhausted",
    "ModelUnavailable",
    "answer_schema",
    "fits",
    "request_digest",
    "response_format",
    "retry_after",
    "tool_schema",
]
