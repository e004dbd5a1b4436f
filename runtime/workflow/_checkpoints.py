"""Checkpoints: where a person with authority decides before a run goes on.

A checkpoint sits on a step, before it (approve the action the step will
take) or after it (review its outputs before anything uses them), when its
condition holds of the record. Steps declare their consequence; a workflow's
`review` rule gives every step of a consequence class a checkpoint, so that
review follows what an error would cost rather than habit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, TypeAlias

from runtime.workflow._conditions import Always, Condition
from runtime.workflow._policies import EscalateTo, Goto, Halt, Reject

Consequence = Literal["reversible", "costly", "irreversible"]
CONSEQUENCES: tuple[Consequence, ...] = ("reversible", "costly", "irreversible")


TimeoutPolicy: TypeAlias = Halt | Reject | EscalateTo
"""What an open checkpoint does when nobody decided in time."""
RejectRoute: TypeAlias = Halt | Goto
"""Where a rejected checkpoint sends the run."""


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A decision a member of one of `approvers` (groups: keys with role `approver:GROUP`)
    must make when `condition` holds of the record.

    `when="before"` holds the step before its first attempt: the approver sees
    what it will read, and may edit those values. `when="after"` holds its
    outputs: the approver sees them, and may edit them, before any other step
    reads them. With `separate_duties` the principal who started the run may
    not decide. `timeout` (seconds, None for never) then `on_timeout`.
    """

    approvers: tuple[str, ...]
    when: Literal["before", "after"] = "before"
    condition: Condition = field(default_factory=Always)
    separate_duties: bool = True
    timeout: float | None = None
    on_timeout: TimeoutPolicy = field(default_factory=Halt)
    on_reject: RejectRoute = field(default_factory=Halt)
    reason: str = ""
    """Why a person looks here: shown in the inbox."""

    def __init__(
        self,
        approvers: Sequence[str],
        *,
        when: Literal["before", "after"] = "before",
        condition: Condition | None = None,
        separate_duties: bool = True,
        timeout: float | None = None,
        on_timeout: TimeoutPolicy | None = None,
        on_reject: RejectRoute | None = None,
        reason: str = "",
    ) -> None:
        object.__setattr__(self, "approvers", tuple(approvers))
        object.__setattr__(self, "when", when)
        object.__setattr__(self, "condition", condition if condition is not None else Always())
        object.__setattr__(self, "separate_duties", separate_duties)
        object.__setattr__(self, "timeout", timeout)
        object.__setattr__(self, "on_timeout", on_timeout if on_timeout is not None else Halt())
        object.__setattr__(self, "on_reject", on_reject if on_reject is not None else Halt())
        object.__setattr__(self, "reason", reason)
