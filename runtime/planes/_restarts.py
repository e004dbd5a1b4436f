"""How often each role loses an instance: a role losing them too fast is crash-looping.

An agent that dies on every attempt it takes (a poison input, a broken
deploy) would otherwise take each retry down with it while its process
manager restarts it; once the role is over its budget, its steps go to their
failure policy at once instead of to the next instance.
"""

from __future__ import annotations

from collections import deque


class RestartBudget:
    """Losses per role over a sliding window of `window` seconds; more than `budget`
    of them (0: no budget) and the role is crash-looping."""

    def __init__(self, budget: int, window: float) -> None:
        self.budget = budget
        self.window = window
        self._losses: dict[str, deque[float]] = {}

    def lost(self, role: str, now: float) -> bool:
        """Count a lost instance of `role`; True when this loss takes it over budget."""
        if self.budget <= 0:
            return False
        losses = self._losses.setdefault(role, deque())
        self._forget_old(losses, now)
        losses.append(now)
        return len(losses) == self.budget + 1

    def looping(self, role: str, now: float) -> bool:
        """Whether `role` has lost more than its budget of instances within the window."""
        losses = self._losses.get(role)
        if not losses:
            return False
        self._forget_old(losses, now)
        if not losses:
            del self._losses[role]
            return False
        return len(losses) > self.budget

    def looping_roles(self, now: float) -> list[str]:
        """The roles crash-looping at `now`."""
        return [role for role in list(self._losses) if self.looping(role, now)]

    def _forget_old(self, losses: deque[float], now: float) -> None:
        while losses and losses[0] <= now - self.window:
            losses.popleft()
