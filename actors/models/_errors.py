"""Errors of the model client and the model agent, by what the caller can do next.

A `ModelAgent` lets them propagate: the step fails with reason `error` and the
message says which one it was and why, so that the step's failure policy (a
retry with backoff, an escalation) decides what happens next.
"""

from __future__ import annotations

from actors._errors import ActorError


class ModelError(ActorError):
    """Root of the errors a model call or a model agent raises."""


class ModelNotConfigured(ModelError):
    """No model to call: set the environment variable, or the agent's attribute, named."""

    def __init__(self, setting: str, variable: str, attribute: str) -> None:
        self.setting = setting
        self.variable = variable
        self.attribute = attribute
        super().__init__(
            f"no model {setting}: set {variable} or the agent's `{attribute}` attribute"
        )


class ModelUnavailable(ModelError):
    """The model did not answer: rate-limited, failing or too slow on every attempt.

    Transient by nature: a later attempt of the step may succeed.
    """

    def __init__(self, url: str, attempts: int, last: str) -> None:
        self.url = url
        self.attempts = attempts
        self.last = last
        noun = "attempt" if attempts == 1 else "attempts"
        super().__init__(f"model at {url} unavailable after {attempts} {noun}: {last}")


class ModelRejected(ModelError):
    """The model's server refused the request (bad key, unknown model, bad request).

    Sending it again would be refused again: fix the configuration or the request.
    """

    def __init__(self, url: str, status: int, detail: str) -> None:
        self.url = url
        self.status = status
        self.detail = detail
        super().__init__(f"model at {url} rejected the request (HTTP {status}): {detail}")


class ModelReplyInvalid(ModelError):
    """The model's server answered with something that is not a chat completion."""

    def __init__(self, url: str, detail: str) -> None:
        self.url = url
        self.detail = detail
        super().__init__(f"model at {url} sent an invalid reply: {detail}")


class ModelTurnsExhausted(ModelError):
    """The model used every turn the agent allows without giving its final answer."""

    def __init__(self, turns: int) -> None:
        self.turns = turns
        super().__init__(f"the model gave no final answer within {turns} turns")
