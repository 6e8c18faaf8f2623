"""Kilometre re-plans (`optimizer.km_repair`) and the cost phase that runs them: fewer empty
km and lateness minutes at ride counts no worse, never an infeasible or later ride."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from optimizer.feasibility import deadlines, is_feasible_change, schedule_all
from optimizer.generate import generate_day
from optimizer.km_repair import km_bound, km_replan, km_subsets
from optimizer.objective import Objective
from optimizer.patient_transport import PATIENT_RULES, patient_day
from optimizer.policy import GreedyPolicy
from optimizer.problem import IntArray, Problem
from optimizer.search_state import SearchState
from optimizer.swap_pass import PassConfig, PassResult, replay, run_pass

NO_KM = PassConfig(km_replan_sizes=())


def _days(kind: str, n: int, k: int, seeds: range) -> list[tuple[Problem, IntArray]]:
    if kind == "patient":
        return [Problem.from_event(patient_day(n, k, s), rules=PATIENT_RULES) for s in seeds]
    return [Problem.from_event(generate_day(n, k, s)) for s in seeds]


def _terms_not_worse(after: tuple[float, ...], before: tuple[float, ...]) -> bool:
    """Gap and squared deviation no worse (to float noise, as `Objective.gain` compares)."""
    return after[0] <= before[0] and after[1] <= before[1] + 1e-9 * max(1.0, before[1])


def _audit(r: PassResult) -> list[tuple[object, ...]]:
    return [(c.move, c.decision, c.reason, c.value_after) for c in r.checked]


@pytest.mark.parametrize(("kind", "n", "k"), [("patient", 25, 4), ("generated", 40, 6)])
def test_a_re_plan_passes_the_validator_and_saves_at_most_its_bound(
    kind: str, n: int, k: int
) -> None:
    """The beam's times are the ride model's: every re-plan it offers breaks no hard
    constraint and no booking's deadline, keeps the count terms, lowers the operating cost,
    and saves no more than `km_bound` promised."""
    objective = Objective()
    found = 0
    for problem, upstream in _days(kind, n, k, range(1000, 1004)):
        local = run_pass(problem, upstream, GreedyPolicy(), NO_KM)
        state = SearchState(problem, local.assignment, SearchState(problem, upstream).deadline)
        subsets = km_subsets(state, 2)[:4] + km_subsets(state, 3)[:2] + km_subsets(state, k)
        for drivers in subsets:
            move, _ = km_replan(state, drivers, objective)
            if move is None:
                continue
            found += 1
            assert {s.from_driver for s in move.steps} | {s.to_driver for s in move.steps} <= set(
                drivers
            )
            trial = state.trial(move)
            assert trial.violation is None, (trial.violation, trial.detail)
            assert trial.value is not None
            assert _terms_not_worse(trial.value, state.value)
            saving = objective.cost(state.value) - objective.cost(trial.value)
            assert saving > 0
            assert saving <= km_bound(state, drivers, objective) + 1e-6
    assert found > 0  # the local optimum of the moves is not one of the re-plans


@pytest.mark.parametrize(("kind", "n", "k"), [("patient", 25, 4), ("patient", 40, 6),
                                              ("generated", 40, 6)])  # fmt: skip
def test_km_re_plans_only_improve_the_cost_phase(kind: str, n: int, k: int) -> None:
    """With the re-plans the pass ends feasible, no booking later than allowed, the same
    ride-count terms or better and an operating cost no higher than without them (the
    re-plans run where the moves stop, and each accepted one lowers the cost); every
    accepted cost-phase step lowers the cost; the audit replays to the output."""
    objective = Objective()
    saved = 0.0
    for problem, upstream in _days(kind, n, k, range(1000, 1005)):
        off = run_pass(problem, upstream, GreedyPolicy(), NO_KM)
        on = run_pass(problem, upstream, GreedyPolicy())
        assert on.steps == off.steps  # the fairness phase is the same
        assert objective.gain(off.after.value, on.after.value) >= 0
        assert _terms_not_worse(on.after.value, off.after.value)
        assert objective.gain(on.before.value, on.after.value) >= 0
        assert is_feasible_change(problem, upstream, on.assignment)[0]
        limit = deadlines(problem, schedule_all(problem, upstream))
        for sched in schedule_all(problem, on.assignment):
            for b, pickup in zip(sched.bookings, sched.pickup_at, strict=True):
                assert pickup <= limit[b] + 1e-6
        assert np.array_equal(replay(upstream, [c.move for c in on.accepted]), on.assignment)
        for c in on.accepted[on.steps :]:  # the cost phase's steps
            assert c.value_after is not None
            assert _terms_not_worse(c.value_after, c.value_before)
            assert objective.cost(c.value_after) < objective.cost(c.value_before)
        saved += objective.cost(off.after.value) - objective.cost(on.after.value)
    assert saved > 0


def test_the_pass_with_km_re_plans_is_deterministic() -> None:
    """Same day, same config: the same plan and the same audit (no wall-clock budget)."""
    for problem, upstream in _days("patient", 40, 6, range(1000, 1003)):
        a = run_pass(problem, upstream, GreedyPolicy())
        b = run_pass(problem, upstream, GreedyPolicy())
        assert np.array_equal(a.assignment, b.assignment)
        assert _audit(a) == _audit(b)


def test_small_days_and_an_empty_budget_skip_the_re_plans() -> None:
    """Below `km_replan_min_bookings` (and above the max) the pass is exactly the one
    without re-plans."""
    cfg = PassConfig()
    assert cfg.km_work(cfg.km_replan_min_bookings - 1) == 0.0
    assert cfg.km_work(cfg.km_replan_max_bookings + 1) == 0.0
    assert replace(cfg, km_replan_sizes=()).km_work(100) == 0.0
    assert replace(cfg, km_replan_work=0.0).km_work(100) == 0.0  # DISPATCH_RL_KM_REPLAN_WORK=0
    assert 0 < cfg.km_work(40) <= cfg.km_replan_work_cap
    for problem, upstream in _days("generated", 10, 3, range(1000, 1010)):
        on = run_pass(problem, upstream, GreedyPolicy())
        off = run_pass(problem, upstream, GreedyPolicy(), NO_KM)
        assert _audit(on) == _audit(off)
