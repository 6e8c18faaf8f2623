"""The offline deadhead search (`optimizer.deadhead_lns`): better plans at the same gap, never
infeasible, never later than a cap, and the proven minimum where it is reachable."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from optimizer.deadhead_lns import improve_deadhead
from optimizer.feasibility import is_feasible_change, schedule_all
from optimizer.generate import generate_day
from optimizer.objective import count_gap
from optimizer.policy import GreedyPolicy
from optimizer.problem import Problem
from optimizer.swap_pass import run_pass

# generated 25x4 seed 1,000,000 at gap 2: least deadhead 95.3 km (10.1 minutes late in all);
# at most 2 minutes late, 109.9 km (both proven: tests/optimizer/test_late_capped_reference.py)
_DAY = (25, 4, 1_000_000)


def _gap(plan: np.ndarray, k: int) -> int:
    return count_gap(np.bincount(plan[plan >= 0], minlength=k))


def test_the_search_reaches_the_proven_minimum_at_the_pass_gap() -> None:
    """From the greedy pass's plan (111.1 km), a few rounds find the proven 95.3 km plan:
    feasible, at the same gap, and its reported km are the ride model's."""
    problem, upstream = Problem.from_event(generate_day(*_DAY))
    start = run_pass(problem, upstream, GreedyPolicy()).assignment
    out = improve_deadhead(problem, upstream, start, rounds=12)
    assert out.deadhead_km < out.start_km - 10.0
    assert abs(out.deadhead_km - 95.3) < 0.05
    assert is_feasible_change(problem, upstream, out.assignment)[0]
    assert _gap(out.assignment, problem.n_drivers) == _gap(start, problem.n_drivers)
    km = sum(s.deadhead_km for s in schedule_all(problem, out.assignment))
    assert abs(km - out.deadhead_km) < 1e-9


def test_a_lateness_cap_holds_and_binds() -> None:
    """With a 2-minute cap the search stays within it and cannot go below the capped
    minimum (109.9 km), which the free search does."""
    problem, upstream = Problem.from_event(generate_day(*_DAY))
    start = run_pass(problem, upstream, GreedyPolicy()).assignment
    late0 = sum(s.lateness_minutes for s in schedule_all(problem, start))
    assert late0 <= 2.0
    out = improve_deadhead(problem, upstream, start, rounds=12, max_lateness_minutes=2.0)
    assert out.lateness_minutes <= 2.0 + 1e-9
    assert out.deadhead_km >= 109.9 - 0.05
    assert out.deadhead_km <= out.start_km
    assert is_feasible_change(problem, upstream, out.assignment)[0]


def test_the_same_rounds_give_the_same_plan() -> None:
    """Deterministic: one worker, a seed and deterministic time limits per solve."""
    problem, upstream = Problem.from_event(generate_day(*_DAY))
    start = run_pass(problem, upstream, GreedyPolicy()).assignment
    a = improve_deadhead(problem, upstream, start, rounds=4, seed=3)
    b = improve_deadhead(problem, upstream, start, rounds=4, seed=3)
    assert np.array_equal(a.assignment, b.assignment)


def test_the_bench_prints_and_records_each_reference(tmp_path: Path) -> None:
    """Smoke: bench/deadhead_lns.py on one tiny day writes a row per policy and reference,
    with the bound under the best plan known and that plan no worse than the pass's."""
    rows = tmp_path / "rows.jsonl"
    root = Path(__file__).resolve().parents[2]
    subprocess.run(
        [sys.executable, str(root / "bench" / "deadhead_lns.py"), "--kinds", "generated",
         "--classes", "10x3", "--per-class", "1", "--rounds", "2", "--bound-s", "5",
         "--rows", str(rows)],
        check=True, capture_output=True, cwd=root, timeout=300,
    )  # fmt: skip
    got = [json.loads(line) for line in rows.read_text().splitlines()]
    refs = sorted(r["reference"] for r in got)
    assert refs == ["dqn deadhead", "dqn same-late", "greedy deadhead", "greedy same-late"]
    for r in got:
        assert r["bound_km"] <= r["best_km"] + 1e-6 <= r["pass_km"] + 2e-6
