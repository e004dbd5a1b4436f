"""Errors of the runtime, by what the caller can do next, under one root."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class BatonError(Exception):
    """Root of every error the runtime raises on purpose."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One reason a workflow was refused, naming the step and key where they apply."""

    code: str
    message: str
    step: str | None = None
    key: str | None = None


class WorkflowInvalid(BatonError):
    """A workflow failed static validation; `problems` lists every reason."""

    def __init__(self, workflow: str, problems: Sequence[Problem]) -> None:
        self.workflow = workflow
        self.problems = tuple(problems)
        lines = "\n".join(f"  - {p.message}" for p in self.problems)
        super().__init__(f"workflow {workflow!r} is invalid:\n{lines}")


class WorkflowLoadError(BatonError):
    """A `MODULE:ATTR` reference could not be imported or is not a workflow."""

    def __init__(self, reference: str, reason: str) -> None:
        self.reference = reference
        self.reason = reason
        super().__init__(f"cannot load workflow {reference!r}: {reason}")


class StoreError(BatonError):
    """The store could not durably record events; nothing of the batch was acted on."""

    def __init__(self, store: str, reason: str) -> None:
        self.store = store
        self.reason = reason
        super().__init__(f"store {store} failed: {reason}")


class ConfigError(BatonError):
    """A flag, URL or setting is unusable."""

    def __init__(self, setting: str, value: object, reason: str) -> None:
        self.setting = setting
        self.value = value
        self.reason = reason
        super().__init__(f"{setting}={value!r}: {reason}")


class StoreUnavailable(StoreError):
    """The store cannot be reached; what was not committed was not acted on, and a runtime
    started again once it is back carries on from what was."""


class LeaseLapsed(StoreError):
    """This supervisor's lease on its runs lapsed, or a run it wrote for is another's now:
    the write was refused, and the runs it held are someone else's to carry on."""
