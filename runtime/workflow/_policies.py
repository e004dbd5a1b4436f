"""Failure policies: where a failed step goes, chosen per failure kind.

Policies are data. `Retry` wraps another policy that applies once its
attempts are spent, so "retry three times, then proceed with a flag" is
`Retry(attempts=3, then=ProceedWithFlag(...))`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, TypeAlias, get_args

from protocols import FailureKind

FAILURE_KINDS: tuple[FailureKind, ...] = get_args(FailureKind)


@dataclass(frozen=True, slots=True)
class Halt:
    """Stop the run: its status becomes `halted` with this reason."""

    reason: str = ""

    def describe(self) -> str:
        return "halt"


@dataclass(frozen=True, slots=True)
class ProceedWithFlag:
    """Write `defaults` for the step's outputs, flag them, and carry on.

    The flag travels: every value written by a step that read a flagged key
    carries the flag too, and the final record lists it as open.
    """

    defaults: Mapping[str, object] = field(default_factory=dict)
    flag: str = ""

    def describe(self) -> str:
        return "proceed with flag"


@dataclass(frozen=True, slots=True)
class Goto:
    """Run the fallback `step` in place of the failed one, standing in for its outputs."""

    step: str

    def describe(self) -> str:
        return f"goto {self.step}"


@dataclass(frozen=True, slots=True)
class Reject:
    """Take the checkpoint's reject route, as if an approver had rejected."""

    def describe(self) -> str:
        return "reject"


@dataclass(frozen=True, slots=True)
class EscalateTo:
    """Hand an open decision to other approver groups, with a new time limit (None: none)."""

    approvers: tuple[str, ...]
    timeout: float | None = None

    def __init__(self, approvers: Sequence[str], timeout: float | None = None) -> None:
        object.__setattr__(self, "approvers", tuple(approvers))
        object.__setattr__(self, "timeout", timeout)

    def describe(self) -> str:
        return f"escalate to {', '.join(self.approvers)}"


@dataclass(frozen=True, slots=True)
class Escalate:
    """Ask a person: a member of one of `approvers` (role `approver:GROUP`) decides whether
    the failed step is tried again (`retry`), passed with outputs they give (`skip`), or
    the run stops (`abort`). Unanswered after `timeout` seconds, `on_timeout` applies."""

    approvers: tuple[str, ...]
    timeout: float | None = None
    on_timeout: Halt | EscalateTo = field(default_factory=Halt)
    reason: str = ""

    def __init__(
        self,
        approvers: Sequence[str],
        *,
        timeout: float | None = None,
        on_timeout: Halt | EscalateTo | None = None,
        reason: str = "",
    ) -> None:
        object.__setattr__(self, "approvers", tuple(approvers))
        object.__setattr__(self, "timeout", timeout)
        object.__setattr__(self, "on_timeout", on_timeout if on_timeout is not None else Halt())
        object.__setattr__(self, "reason", reason)

    def describe(self) -> str:
        return f"escalate to {', '.join(self.approvers)}"


@dataclass(frozen=True, slots=True)
class Retry:
    """Try again up to `attempts` attempts in all, with exponential backoff and jitter.

    The delay before attempt n+1 is `backoff * factor**(n-1)`, capped at
    `max_backoff`, then spread by up to `jitter` of itself. When the attempts
    are spent, `then` applies.
    """

    attempts: int = 3
    backoff: float = 0.5
    factor: float = 2.0
    max_backoff: float = 30.0
    jitter: float = 0.1
    then: Halt | ProceedWithFlag | Goto | Escalate = field(default_factory=Halt)

    def describe(self) -> str:
        return f"retry x{self.attempts} then {self.then.describe()}"

    def delay(self, attempt: int, spread: float) -> float:
        """Backoff before the attempt after `attempt`; `spread` in [0, 1) picks the jitter."""
        base = min(self.max_backoff, self.backoff * self.factor ** max(0, attempt - 1))
        return base * (1.0 + self.jitter * (2.0 * spread - 1.0))


FailurePolicy: TypeAlias = Retry | Halt | ProceedWithFlag | Goto | Escalate
"""Any policy a step may name for a failure kind."""

PolicyTable = Mapping[FailureKind | Literal["*"], FailurePolicy]
"""Policies by failure kind; `"*"` covers the kinds not named."""

DEFAULT_POLICY: Retry = Retry(attempts=3, then=Halt())
"""What a step does on a failure kind it names no policy for, unless another attempt cannot
mend that kind (see `DEFAULTS`)."""

DEFAULTS: Mapping[FailureKind, FailurePolicy] = {
    kind: DEFAULT_POLICY.then if kind == "tool_refused" else DEFAULT_POLICY
    for kind in FAILURE_KINDS
}
"""The policy of each failure kind a step names none for. A refused tool call would be
refused again on every attempt, so it is not retried: the default's `then` applies at once."""


def policy_table(
    on_failure: FailurePolicy | PolicyTable | None,
) -> dict[FailureKind, FailurePolicy]:
    """Every failure kind mapped to its policy."""
    if on_failure is None:
        return dict(DEFAULTS)
    if isinstance(on_failure, Retry | Halt | ProceedWithFlag | Goto | Escalate):
        return dict.fromkeys(FAILURE_KINDS, on_failure)
    fallback = on_failure.get("*")
    return {
        kind: on_failure.get(kind, DEFAULTS[kind] if fallback is None else fallback)
        for kind in FAILURE_KINDS
    }
