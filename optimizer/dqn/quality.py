"""The quality check a model must pass before it serves: a few small built-in days.

The sha256 checks catch a damaged file; this catches a network that loads fine and ranks
badly (hand-edited weights whose metadata was edited to match, a sign flipped, a model trained
on something else). Each built-in day runs the real swap pass twice, with the model and with
the greedy policy: the model passes when no output is infeasible or worse than its input, its
summed final gap is at most greedy's plus `gap_slack`, and it needs at most `check_factor`
times greedy's validator checks (a ranking that puts good moves last burns checks even when a
persistent search still gets there). Since the search reaches the same gap with almost any
ranking (segment exchanges, lookahead), it also compares the ranking itself: on each day's
first candidate set, the rank correlation of the model's scores with greedy's must average at
least `min_rank_agreement` (a learned ranking may differ from greedy's, but a backwards or
random one shows as about -0.9 or 0). About 50 ms on one core.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from optimizer.dqn.days import Day, generated_days, seed_days
from optimizer.feasibility import is_feasible_change
from optimizer.policy import GreedyPolicy
from optimizer.swap_pass import MovePolicy, PassConfig, SearchState, pass_candidates, run_pass

QUALITY_SIZES: tuple[tuple[int, int], ...] = ((12, 3), (16, 4), (20, 4), (24, 5), (30, 5))
QUALITY_SEEDS = range(7_000_000, 7_000_005)
"""Seeds of the built-in days: neither training (SeedSequence streams) nor evaluation
(1,000,000 up to 1,600,000) nor the benchmarks (2,000,000 up) use them."""


@dataclass(frozen=True, slots=True)
class QualityVerdict:
    passed: bool
    reason: str
    days: int
    model_gap: int
    greedy_gap: int
    model_checks: int
    greedy_checks: int


@functools.lru_cache(maxsize=1)
def quality_days() -> tuple[Day, ...]:
    """The built-in days (cached: the worker checks every model it loads)."""
    days = seed_days() + generated_days(QUALITY_SIZES, QUALITY_SEEDS)
    try:
        from optimizer.patient_transport import patient_days

        days += patient_days([(14, 3), (24, 4)], range(7_000_100, 7_000_102))
    except ImportError:  # the second generator is optional at this layer
        pass
    return tuple(days)


def check_quality(
    policy: MovePolicy,
    *,
    config: PassConfig | None = None,
    gap_slack: int = 1,
    check_factor: float = 4.0,
    min_rank_agreement: float = 0.3,
) -> QualityVerdict:
    """Run `policy` and greedy on the built-in days; see the module docstring for the rule."""
    # The exact subset repair ranks nothing, so it says nothing about the policy; off here, it
    # keeps CP-SAT (and the pandas it imports, ~1 s and ~100 MB) out of every model load.
    cfg = replace(config or PassConfig(), repair_tries=())
    greedy = GreedyPolicy()
    m_gap = g_gap = m_checks = g_checks = 0
    for day in quality_days():
        mine = run_pass(day.problem, day.assignment, policy, cfg)
        ok, added = is_feasible_change(day.problem, day.assignment, mine.assignment)
        if not ok or cfg.objective.gain(mine.before.value, mine.after.value) < 0:
            return QualityVerdict(
                False, f"{day.name}: infeasible or worse output ({added})", 0, 0, 0, 0, 0
            )
        if not all(np.isfinite(c.score) for c in mine.checked):
            return QualityVerdict(False, f"{day.name}: non-finite scores", 0, 0, 0, 0, 0)
        ref = run_pass(day.problem, day.assignment, greedy, cfg)
        m_gap += mine.after.gap
        g_gap += ref.after.gap
        m_checks += len(mine.checked)
        g_checks += len(ref.checked)
    n = len(quality_days())
    agreement = _rank_agreement(policy, greedy, cfg)
    if agreement < min_rank_agreement:
        why = (
            f"its ranking agrees with greedy's at {agreement:.2f} (rank correlation) on the "
            f"built-in days, at least {min_rank_agreement} required (backwards or random?)"
        )
        return QualityVerdict(False, why, n, m_gap, g_gap, m_checks, g_checks)
    if m_gap > g_gap + gap_slack:
        why = f"summed final gap {m_gap} on {n} built-in days, greedy reaches {g_gap}"
        return QualityVerdict(False, why, n, m_gap, g_gap, m_checks, g_checks)
    if m_checks > check_factor * g_checks + 20:
        why = (
            f"{m_checks} validator checks on {n} built-in days, greedy needs {g_checks} "
            f"(the ranking puts good moves last)"
        )
        return QualityVerdict(False, why, n, m_gap, g_gap, m_checks, g_checks)
    why = f"gap {m_gap} vs greedy {g_gap}, checks {m_checks} vs {g_checks} on {n} days"
    return QualityVerdict(True, why, n, m_gap, g_gap, m_checks, g_checks)


def _rank_agreement(policy: MovePolicy, greedy: GreedyPolicy, cfg: PassConfig) -> float:
    """Mean rank correlation of `policy`'s and greedy's scores on each day's first candidates."""
    values = []
    for day in quality_days():
        state = SearchState(day.problem, day.assignment)
        cands = pass_candidates(state, cfg, chains=False, improving_only=True)
        if len(cands) < 5:
            continue
        mine, ref = _ranks(policy.score(state, cands)), _ranks(greedy.score(state, cands))
        if mine.std() == 0 or ref.std() == 0:
            continue
        values.append(float(np.corrcoef(mine, ref)[0, 1]))
    return float(np.mean(values)) if values else 1.0


def _ranks(scores: npt.ArrayLike) -> npt.NDArray[np.float64]:
    order = np.argsort(np.argsort(np.asarray(scores, dtype=float), kind="stable"), kind="stable")
    return order.astype(np.float64)
