"""callway.core.logbudget.LogBudget: lines per second, the rest counted."""

from __future__ import annotations

from callway.core.logbudget import LogBudget


def test_budget_per_whole_second_and_suppressed_count() -> None:
    budget = LogBudget(3)
    assert [budget.allow(10.0 + i * 0.1) for i in range(5)] == [True, True, True, False, False]
    assert budget.allow(11.0)  # a new second, a new budget
    assert budget.take_suppressed() == 2
    assert budget.take_suppressed() == 0


def test_zero_budget_logs_nothing() -> None:
    budget = LogBudget(0)
    assert not budget.allow(1.0)
    assert budget.take_suppressed() == 1
