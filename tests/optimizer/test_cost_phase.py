"""The cost phase: fewer empty km at the same ride counts, never a worse plan."""

from __future__ import annotations

import numpy as np
import pytest

from optimizer.feasibility import is_feasible_change
from optimizer.generate import generate_day
from optimizer.objective import Objective
from optimizer.policy import GreedyPolicy
from optimizer.problem import Problem
from optimizer.swap_pass import PassConfig, replay, run_pass


@pytest.mark.parametrize("size", [(10, 3), (25, 4), (40, 6)])
def test_cost_phase_cuts_deadhead_at_the_same_counts(size: tuple[int, int]) -> None:
    """Same gap, squared deviation no worse, feasible, replayable; total deadhead lower over
    the days."""
    without, with_ = [], []
    for seed in range(1000, 1008):
        problem, upstream = Problem.from_event(generate_day(size[0], size[1], seed))
        off = run_pass(problem, upstream, GreedyPolicy(), PassConfig(cost_phase=False))
        on = run_pass(problem, upstream, GreedyPolicy())
        assert on.after.gap == off.after.gap
        assert on.after.value[1] <= off.after.value[1] + 1e-9
        assert Objective().gain(off.after.value, on.after.value) >= 0
        assert is_feasible_change(problem, upstream, on.assignment)[0]
        assert np.array_equal(replay(upstream, [c.move for c in on.accepted]), on.assignment)
        assert on.steps == off.steps  # the fairness phase is the same; the cost phase follows
        without.append(off.after.deadhead_km)
        with_.append(on.after.deadhead_km)
    assert sum(with_) < sum(without)


def test_operating_cost_trades_terms_explicitly() -> None:
    """Spread within the band is free; beyond it a minute costs `spread_weight` km."""
    o = Objective()
    base = (1.0, 2.0, 50.0, 100.0, 3.0)
    assert o.cost(base) == pytest.approx(100.0 + 2.0 * 3.0)
    wide = (1.0, 2.0, 70.0, 100.0, 3.0)
    assert o.cost(wide) == pytest.approx(106.0 + 0.2 * 10.0)
    # Lexicographic: gap, then squared deviation, then the cost.
    assert o.gain((2.0, 9.0, 0.0, 0.0, 0.0), (1.0, 50.0, 500.0, 500.0, 50.0)) == 1.0
    assert o.gain(base, (1.0, 2.0, 50.0, 97.0, 3.0)) == pytest.approx(3.0)


def test_big_days_rank_a_long_list_in_fewer_rounds() -> None:
    """Above `km_replan_max_bookings` a round ranks `cost_list_big` moves and the rounds
    follow `cost_work_big`; at and below it nothing changes."""
    cfg = PassConfig()
    edge = cfg.km_replan_max_bookings
    assert cfg.cost_list(edge) == cfg.max_checks
    assert cfg.cost_list(edge + 1) == cfg.cost_list_big
    assert cfg.cost_rounds(100) == 30  # cost_work / bookings
    assert cfg.cost_rounds(300) == 8  # cost_work_big / bookings


def test_a_big_day_checks_few_swaps_that_break_a_window_or_the_shift() -> None:
    """A patient 300x40 day: swaps are ranked only when both halves pass the forward-slack
    test, so few of the cost phase's checks are swaps the validator rejects for a window or
    the shift (before: ~85 % of its checks); it still cuts km, feasible and never worse."""
    from dataclasses import replace

    from optimizer.patient_transport import PATIENT_RULES, patient_day

    problem, upstream = Problem.from_event(patient_day(300, 40, 1000), rules=PATIENT_RULES)
    off = run_pass(problem, upstream, GreedyPolicy(), replace(PassConfig(), cost_phase=False))
    on = run_pass(problem, upstream, GreedyPolicy())
    cost_checks = on.checked[len(off.checked) :]
    blocked = [
        c
        for c in cost_checks
        if c.move.kind == "swap" and c.reason in ("shift", "time_window", "priority")
    ]
    assert on.cost_steps > 0 and len(blocked) <= 0.25 * len(cost_checks)
    assert on.after.deadhead_km < 0.8 * off.after.deadhead_km
    assert on.after.gap == off.after.gap
    assert is_feasible_change(problem, upstream, on.assignment)[0]
    assert Objective().gain(on.before.value, on.after.value) >= 0
