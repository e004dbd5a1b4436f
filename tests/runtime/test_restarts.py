"""The restart budget: how many instances of a role may be lost before it is crash-looping."""

from __future__ import annotations

from runtime.planes._restarts import RestartBudget


class TestRestartBudget:
    def test_the_loss_over_budget_is_reported_once(self) -> None:
        budget = RestartBudget(2, 60.0)
        assert [budget.lost("clerk", t) for t in (1.0, 2.0, 3.0, 4.0)] == [
            False,
            False,
            True,
            False,
        ]
        assert budget.looping("clerk", 4.0)
        assert not budget.looping("billing", 4.0)

    def test_losses_older_than_the_window_are_forgotten(self) -> None:
        budget = RestartBudget(2, 10.0)
        for t in (1.0, 2.0, 3.0):
            budget.lost("clerk", t)
        assert budget.looping("clerk", 10.5)
        assert not budget.looping("clerk", 12.5)
        assert not budget.looping("clerk", 20.0)
        assert budget.lost("clerk", 21.0) is False

    def test_no_budget_means_never_looping(self) -> None:
        budget = RestartBudget(0, 60.0)
        assert not any(budget.lost("clerk", float(t)) for t in range(100))
        assert not budget.looping("clerk", 100.0)
