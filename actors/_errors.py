"""Errors an actor's code may see, grouped by what the caller can do next."""

from __future__ import annotations

from protocols import clip


class ActorError(Exception):
    """Root of every error raised by `actors`."""


class ActorLoadError(ActorError):
    """The target cannot be run as an actor: fix the code or the command line."""

    def __init__(self, target: str, reason: str) -> None:
        self.target = target
        self.reason = reason
        super().__init__(f"cannot load actor {target!r}: {reason}")


class RegistrationRefused(ActorError):
    """The runtime refused this actor for good; retrying would be refused again."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        self.message = message
        super().__init__(f"registration refused ({code}): {message}")


class ToolRefused(ActorError):
    """The call never reached a tool: not allowed in this step, unknown, or no host serves it.

    With `code` "tool_refused" (outside the step's tools or the agent's allowlist) the
    runtime has failed the attempt already; a handler that lets it propagate ends the task
    with one line in the log and nothing sent.
    """

    def __init__(self, tool: str, code: str, message: str) -> None:
        self.tool = tool
        self.code = code
        self.message = message
        super().__init__(f"tool {tool!r} refused ({code}): {message}")


class ToolFailed(ActorError):
    """The call reached the tool host and failed there, or its arguments were invalid."""

    def __init__(self, tool: str, code: str, message: str) -> None:
        self.tool = tool
        self.code = code
        self.message = message
        super().__init__(f"tool {tool!r} failed ({code}): {message}")


class InvalidOutput(ActorError):
    """A handler's outputs cannot be recorded; the step fails with reason `invalid_output`."""

    def __init__(self, detail: str) -> None:
        self.detail = detail
        super().__init__(f"invalid output: {detail}")


def describe(exc: BaseException) -> str:
    """`TypeName: text` (or `TypeName` when there is no text), clipped to fit the wire."""
    text = str(exc)
    return clip(f"{type(exc).__name__}: {text}" if text else type(exc).__name__)
