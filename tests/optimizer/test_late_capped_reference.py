"""The same-punctuality deadhead reference: the least deadhead of the plans at the gap that are
no later in total than a cap (CP-SAT and the Lagrangian bound), and its held-out columns."""

from __future__ import annotations

import pytest

from optimizer.deadhead_bound import deadhead_lower_bound
from optimizer.exact import solve_lexicographic
from optimizer.exact_reference import exact_reference
from optimizer.generate import generate_day
from optimizer.policy import GreedyPolicy
from optimizer.problem import Problem
from optimizer.swap_pass import run_pass
from tests.optimizer.conftest import proven_minimum

# generated 25x4 seed 1,000,000, gap 2: the least-deadhead plan (95.3 km) is 10.1 minutes
# late in all; no plan at most 2 minutes late has less than 109.9 km (both proven by CP-SAT).
_DAY = (25, 4, 1_000_000)
_GAP = 2


def test_the_capped_minimum_keeps_the_cap_and_costs_more_than_the_free_one() -> None:
    """The capped solve's plan is at most 2 minutes late; the free one is later and cheaper,
    so the cap binds (a cap the model ignored would return the free plan)."""
    problem, upstream = Problem.from_event(generate_day(*_DAY))
    free = solve_lexicographic(problem, upstream, gap=_GAP, time_limit_s=30, workers=1)
    capped = solve_lexicographic(
        problem, upstream, gap=_GAP, time_limit_s=30, workers=1, max_lateness_minutes=2.0
    )
    assert free.proven_optimal and capped.proven_optimal
    assert free.deadhead_km is not None and capped.deadhead_km is not None
    assert free.lateness_minutes is not None and free.lateness_minutes > 2.0
    assert capped.lateness_minutes is not None and capped.lateness_minutes <= 2.0 + 1e-6
    assert capped.deadhead_km > free.deadhead_km + 5.0
    assert capped.verified


@pytest.mark.parametrize(
    ("size", "seed", "share"),
    [
        ((25, 4), 1_000_000, 0.2),
        ((25, 4), 1_000_000, 0.5),
        ((10, 3), 1003, 0.5),
        ((24, 4), 1001, 0.2),
        ((10, 3), 1000, 0.5),
    ],
)
def test_the_capped_bound_never_exceeds_the_capped_minimum(
    size: tuple[int, int], seed: int, share: float
) -> None:
    """Valid: the capped Lagrangian bound is at most CP-SAT's proven capped minimum (solved
    without the bound), the cap being a share of the free minimum plan's lateness."""
    problem, upstream = Problem.from_event(generate_day(size[0], size[1], seed))
    free, exact, cap = proven_minimum(problem, upstream, share, free_time_limit_s=30)
    assert cap is not None and exact.deadhead_km is not None
    bound = deadhead_lower_bound(
        problem, upstream, free.gap, upper_km=exact.deadhead_km, max_lateness_minutes=cap
    )
    assert bound.bound_km <= exact.deadhead_km + 1e-6
    assert bound.bound_km >= 0.85 * exact.deadhead_km  # not a trivial bound


def test_the_capped_bound_is_above_the_free_minimum_where_the_cap_binds() -> None:
    """On the day above, every plan at most 2 minutes late has more deadhead than the free
    minimum (95.3 km): the capped bound must show it (the free bound cannot)."""
    problem, upstream = Problem.from_event(generate_day(*_DAY))
    free = deadhead_lower_bound(problem, upstream, _GAP)
    capped = deadhead_lower_bound(problem, upstream, _GAP, max_lateness_minutes=2.0)
    assert free.bound_km < 95.4
    assert capped.bound_km > 96.0


def test_the_held_out_reference_gives_each_plan_its_own_cap() -> None:
    """`exact_reference(late_capped=True)`: each judged plan's cap is its own lateness, and
    bound <= minimum <= best known plan <= that plan's deadhead; a capped minimum is never
    below the free one, and a tighter cap's never below a looser one's."""
    problem, upstream = Problem.from_event(generate_day(*_DAY))
    plan = run_pass(problem, upstream, GreedyPolicy())
    free = solve_lexicographic(problem, upstream, gap=_GAP, time_limit_s=30, workers=1)
    assert free.assignment is not None and plan.after.gap == _GAP
    plans = {"pass": plan.assignment, "free": free.assignment}
    ref = exact_reference(
        problem,
        upstream,
        hint=plan.assignment,
        time_limit_s=30,
        workers=1,
        plans=plans,
        late_capped=True,
    )
    assert ref.proven and ref.gap == _GAP and set(ref.capped) == {"pass", "free"}
    assert ref.min_deadhead_km is not None
    mine, loose = ref.capped["pass"], ref.capped["free"]
    assert mine.late_cap_minutes == pytest.approx(plan.after.lateness_minutes)
    assert loose.late_cap_minutes == pytest.approx(free.lateness_minutes)
    assert mine.late_cap_minutes < loose.late_cap_minutes  # the pass plan is more punctual
    for c, km in ((mine, plan.after.deadhead_km), (loose, free.deadhead_km)):
        assert c.min_deadhead_km is not None and c.bound_km is not None and c.best_km is not None
        assert c.bound_km <= c.min_deadhead_km + 1e-6 <= c.best_km + 2e-6
        assert km is not None and c.best_km <= km + 1e-6
        assert c.min_deadhead_km >= ref.min_deadhead_km - 1e-6
    # the free minimum keeps its own lateness: it is its own same-punctuality minimum
    assert loose.min_deadhead_km == pytest.approx(ref.min_deadhead_km)
    assert mine.min_deadhead_km > loose.min_deadhead_km + 1.0


def test_without_late_capped_the_capped_columns_stay_empty() -> None:
    problem, upstream = Problem.from_event(generate_day(10, 3, 1003))
    plan = run_pass(problem, upstream, GreedyPolicy())
    ref = exact_reference(
        problem,
        upstream,
        hint=plan.assignment,
        time_limit_s=10,
        workers=1,
        plans={"greedy": plan.assignment},
    )
    assert ref.capped == {}


def test_the_summary_measures_each_policy_against_the_capped_reference() -> None:
    """`method_metrics`: the capped excess is against the capped minimum / bound / best plan,
    only on days at the proven gap, and the known-plan side never goes below 0."""
    from optimizer.evaluate import DayResult, ExactReference, PolicyOutcome, method_metrics
    from optimizer.exact_reference import CappedReference

    def row(name: str, gap: int, km: float) -> DayResult:
        mine = CappedReference(3.0, None, 95.0, 101.0)
        other = CappedReference(9.0, 50.0, 50.0, 50.0)  # another policy's: not this one's
        capped = {"greedy": mine, "dqn": other}
        ref = ExactReference(1, 1, True, "OPTIMAL", 0.1, 80.0, 80.0, 80.0, capped)
        out = PolicyOutcome(gap, km, 3.0, True, 1.0, 1, 1, "no_improving_move")
        return DayResult(name, "generated", "generated 25x4", 25, 4, 9, 0, 5, 150.0, 9.0, ref,
                         {"greedy": out})  # fmt: skip

    m = method_metrics([row("a", 1, 100.0), row("b", 2, 500.0)], "greedy")
    assert m["capped_bounded_days"] == 1 and m["capped_compared_days"] == 0
    assert m["capped_excess_bound_pct"] == pytest.approx(100.0 * 5.0 / 95.0)
    assert m["capped_excess_low_pct"] == 0.0  # 100 km is below the best known 101 km
    assert m["deadhead_excess_bound_pct"] == pytest.approx(25.0)
    assert m["late_cap_minutes"] == pytest.approx(3.0)
