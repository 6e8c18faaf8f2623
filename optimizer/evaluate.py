"""Held-out evaluation: each policy's swap pass against the exact optimum, day by day.

Every policy runs the real pass (`run_pass`) with the same `PassConfig` (the operator's,
passed whole); its output is re-checked with `is_feasible_change` (an infeasible output is
counted, and must stay 0). The exact reference (`exact_reference`) is CP-SAT's proven minimum
gap (`solve_min_gap`, hinted with the best pass result) and, where `optimizer.exact` offers it,
the minimum deadhead among the plans at that gap (lexicographic: gap, then deadhead).

`summarize` turns the rows into the metrics the promotion gate compares and the report shows,
per method and per group (`optimizer.heldout.group_of`):

* `optimum_rate`: share of the days with a proven optimum on which the pass reached it;
* `mean_gap_excess`: mean (final gap - proven optimum) over those days;
* `deadhead_excess_pct`: mean of 100 x (final deadhead - exact minimum deadhead at the
  optimal gap) / that minimum, over the days where the pass reached the optimal gap and the
  reference is known (elsewhere the plans are not at the same gap, so not comparable);
* `deadhead_excess_bound_pct`: the same against CP-SAT's lower bound on that minimum, over
  the days where a plan at the optimal gap was found even if not proven minimal: an upper
  bound on the true excess (equal to it where every minimum is proven);
* `deadhead_excess_low_pct`: the same against the best plan known at that gap (CP-SAT's or
  the pass's): a lower bound on the true excess (0 where the policy's plan is that plan);
* `lateness_minutes`: mean total lateness of the final plans (minutes);
* `infeasible`: outputs that add a violation or are worse than the input on the objective
  (`Objective.gain` < 0) (must be 0);
* `latency_ms_p50` / `latency_ms_p99` (wall), `cpu_ms_p99` (the pass's CPU time),
  `mean_checks`, `mean_steps`, `budget_stops`.
"""

from __future__ import annotations

import contextlib
import gc
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from optimizer.dqn.days import Day
from optimizer.exact_reference import ExactReference, exact_reference
from optimizer.feasibility import is_feasible_change
from optimizer.heldout import group_of, group_order
from optimizer.objective import gap_floor
from optimizer.swap_pass import MovePolicy, PassConfig, run_pass

LATENCY_SIZES: tuple[tuple[int, int], ...] = ((10, 3), (100, 13), (300, 40))
LATENCY_SEED_BASE = 1_500_000


@dataclass(frozen=True, slots=True)
class PolicyOutcome:
    gap: int
    deadhead_km: float
    lateness_minutes: float
    feasible: bool
    latency_ms: float
    steps: int
    checked: int
    stop: str
    cpu_ms: float | None = None
    """CPU time of the pass (this process): what the gate compares, far less sensitive to
    the machine's load than the wall-clock `latency_ms`."""


@dataclass(frozen=True, slots=True)
class DayResult:
    name: str
    source: str
    group: str
    bookings: int
    drivers: int
    budget: int
    floor: int
    heuristic_gap: int
    heuristic_deadhead_km: float
    heuristic_lateness_minutes: float
    exact: ExactReference
    policies: dict[str, PolicyOutcome] = field(default_factory=dict)

    def at_optimum(self, label: str) -> bool | None:
        """Did `label` reach the proven optimal gap (None: no proven optimum)?"""
        if not self.exact.proven or self.exact.gap is None:
            return None
        return self.policies[label].gap == self.exact.gap


def evaluate_days(
    days: Sequence[Day],
    policies: Mapping[str, MovePolicy],
    config: PassConfig,
    *,
    exact: bool = True,
    exact_time_limit_s: float = 10.0,
    on_day: Callable[[DayResult], None] | None = None,
    exact_workers: int = 2,
    late_capped: bool = False,
) -> list[DayResult]:
    """Run every policy's pass on every day (same order each day), then the exact reference."""
    _preload()
    if days:  # warm-up: the first call of a policy pays imports and allocations
        d = days[0]
        for policy in policies.values():
            run_pass(d.problem, d.assignment, policy, config)
    with _frozen_heap():
        limits = (exact_time_limit_s, exact_workers, late_capped)
        return _evaluate(days, policies, config, exact, limits, on_day)


@contextlib.contextmanager
def _frozen_heap() -> Iterator[None]:
    """Objects alive before the evaluation (a test suite's heap, a long CLI's) leave the
    collector's generations while it runs: a full collection inside one pass then scans only
    that pass's objects, instead of charging the whole heap to whichever model it hit."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _evaluate(
    days: Sequence[Day],
    policies: Mapping[str, MovePolicy],
    config: PassConfig,
    exact: bool,
    exact_limits: tuple[float, int, bool],
    on_day: Callable[[DayResult], None] | None,
) -> list[DayResult]:
    # CP-SAT's seconds and workers per solve; the same-punctuality reference too?
    exact_time_limit_s, exact_workers, late_capped = exact_limits
    out = []
    for d in days:
        p, upstream = d.problem, d.assignment
        outcomes: dict[str, PolicyOutcome] = {}
        results = {}
        for label, policy in policies.items():
            # this thread's CPU only: the pass runs on it (CP-SAT too, with one worker), and a
            # process-wide clock also counted whatever other threads of the caller were doing
            # (a test suite's leftovers once made one pass look 7x dearer and failed the gate)
            cpu = time.thread_time()
            r = run_pass(p, upstream, policy, config)
            cpu = time.thread_time() - cpu
            ok, _ = is_feasible_change(p, upstream, r.assignment)
            results[label] = r
            outcomes[label] = PolicyOutcome(
                gap=r.after.gap,
                deadhead_km=r.after.deadhead_km,
                lateness_minutes=r.after.lateness_minutes,
                # never worse on the objective's own terms (counts, then operating cost;
                # a raw tuple compare would call a spread bought within its band worse)
                feasible=ok and config.objective.gain(r.before.value, r.after.value) >= 0,
                latency_ms=r.elapsed_s * 1000.0,
                steps=r.steps,
                checked=len(r.checked),
                stop=str(r.stop_reason),
                cpu_ms=cpu * 1000.0,
            )
        floor = gap_floor(int((upstream >= 0).sum()), p.n_drivers)
        before = next(iter(results.values())).before if results else None
        if exact:
            # the best plan: least gap, then least deadhead (the lexicographic solve's hint)
            best = min(
                results.values(),
                key=lambda r: (r.after.gap, r.after.deadhead_km),
                default=None,
            )
            ref = exact_reference(
                p,
                upstream,
                hint=best.assignment if best is not None else None,
                time_limit_s=exact_time_limit_s,
                workers=exact_workers,
                plans={label: r.assignment for label, r in results.items()},
                late_capped=late_capped,
            )
        else:
            ref = ExactReference(None, floor, False, "SKIPPED", 0.0)
        row = DayResult(
            d.name,
            d.source,
            group_of(d),
            p.n_bookings,
            p.n_drivers,
            config.budget(int((upstream >= 0).sum())),
            floor,
            before.gap if before is not None else d.gap,
            before.deadhead_km if before is not None else math.nan,
            before.lateness_minutes if before is not None else math.nan,
            ref,
            policies=outcomes,
        )
        out.append(row)
        if on_day is not None:
            on_day(row)
    return out


def _preload() -> None:
    """Import what a pass loads on first need (CP-SAT for the subset repair, about 0.8 s) so
    that one-off cost lands in no policy's measured latency."""
    import contextlib

    with contextlib.suppress(ImportError):
        import ortools.sat.python.cp_model  # noqa: F401


def latency_sweep(
    policies: Mapping[str, MovePolicy],
    config: PassConfig,
    *,
    sizes: Sequence[tuple[int, int]] = LATENCY_SIZES,
    days_per_size: int = 5,
    repeats: int = 3,
) -> list[dict[str, Any]]:
    """Pass latency per policy on generated days of each size, the policies interleaved (so
    machine load hits them alike), after one warm-up round."""
    from optimizer.dqn.days import generated_days

    _preload()
    rows = []
    for j, (n, k) in enumerate(sizes):
        start = LATENCY_SEED_BASE + 1000 * j
        for d in generated_days([(n, k)], range(start, start + days_per_size)):
            for rep in range(repeats + 1):
                for label, policy in policies.items():
                    r = run_pass(d.problem, d.assignment, policy, config)
                    if rep:
                        rows.append(
                            {"policy": label, "size": f"{n}x{k}", "ms": r.elapsed_s * 1000.0}
                        )
    return rows


def latency_table(
    latency: Sequence[Mapping[str, Any]], labels: Sequence[str]
) -> dict[str, dict[str, dict[str, float | None]]]:
    """{size: {label: {p50, p99}}}."""
    out: dict[str, dict[str, dict[str, float | None]]] = {}
    for size in dict.fromkeys(str(r["size"]) for r in latency):
        out[size] = {}
        for lb in labels:
            ms = [float(r["ms"]) for r in latency if r["policy"] == lb and r["size"] == size]
            out[size][lb] = {"p50": _pct(ms, 50), "p99": _pct(ms, 99)}
    return out


# ------------------------------------------------------------------ summary


def method_metrics(rows: Sequence[DayResult], label: str) -> dict[str, Any]:
    """The metrics of one policy over `rows` (see the module docstring)."""
    outs = [(r, r.policies[label]) for r in rows if label in r.policies]
    proven = [(r, o) for r, o in outs if r.exact.proven and r.exact.gap is not None]
    excess = [o.gap - int(r.exact.gap) for r, o in proven if r.exact.gap is not None]
    dead = [
        100.0 * (o.deadhead_km - r.exact.min_deadhead_km) / r.exact.min_deadhead_km
        for r, o in proven
        if o.gap == r.exact.gap and r.exact.min_deadhead_km and r.exact.min_deadhead_km > 0
    ]
    # Where CP-SAT found plans at the gap but proved no minimum, its bound still bounds the
    # excess from above: (final - bound) / bound >= (final - minimum) / minimum.
    dead_bound = [
        100.0 * (o.deadhead_km - r.exact.min_deadhead_bound_km) / r.exact.min_deadhead_bound_km
        for r, o in proven
        if o.gap == r.exact.gap
        and r.exact.min_deadhead_bound_km
        and r.exact.min_deadhead_bound_km > 0
    ]
    # A plan known at the gap bounds the minimum from above, so the excess from below.
    dead_low = [
        max(0.0, 100.0 * (o.deadhead_km - r.exact.best_deadhead_km) / r.exact.best_deadhead_km)
        for r, o in proven
        if o.gap == r.exact.gap and r.exact.best_deadhead_km and r.exact.best_deadhead_km > 0
    ]
    at_gap = [(r, o) for r, o in proven if o.gap == r.exact.gap]
    capped = _excess(at_gap, label, "min_deadhead_km")
    capped_bound = _excess(at_gap, label, "bound_km")
    capped_low = _excess(at_gap, label, "best_km", floor=0.0)
    lat = [o.latency_ms for _, o in outs]
    return {
        "days": len(outs),
        "proven_days": len(proven),
        "mean_gap": _mean([o.gap for _, o in outs]),
        "optimum_rate": _mean([float(x == 0) for x in excess]),
        "mean_gap_excess": _mean(excess),
        "max_gap_excess": max(excess) if excess else None,
        "deadhead_excess_pct": _mean(dead),
        "deadhead_compared_days": len(dead),
        "deadhead_excess_bound_pct": _mean(dead_bound),
        "deadhead_bounded_days": len(dead_bound),
        "deadhead_excess_low_pct": _mean(dead_low),
        "capped_excess_pct": _mean(capped),
        "capped_compared_days": len(capped),
        "capped_excess_bound_pct": _mean(capped_bound),
        "capped_bounded_days": len(capped_bound),
        "capped_excess_low_pct": _mean(capped_low),
        "late_cap_minutes": _mean(
            [r.exact.capped[label].late_cap_minutes for r, _ in at_gap if label in r.exact.capped]
        ),
        "deadhead_km_added": _mean([o.deadhead_km - r.heuristic_deadhead_km for r, o in outs]),
        "lateness_minutes": _mean([o.lateness_minutes for _, o in outs]),
        "infeasible": sum(not o.feasible for _, o in outs),
        "latency_ms_p50": _pct(lat, 50),
        "latency_ms_p99": _pct(lat, 99),
        "cpu_ms_p99": _pct([o.cpu_ms for _, o in outs if o.cpu_ms is not None], 99),
        "mean_checks": _mean([o.checked for _, o in outs]),
        "mean_steps": _mean([o.steps for _, o in outs]),
        "budget_stops": sum(o.stop == "budget" for _, o in outs),
    }


def summarize(rows: Sequence[DayResult], labels: Sequence[str]) -> dict[str, Any]:
    """Per method and per group: `method_metrics`; plus the heuristic input and the exact."""
    groups = group_order([r.group for r in rows])

    def heuristic(rs: Sequence[DayResult]) -> dict[str, Any]:
        proven = [r for r in rs if r.exact.proven and r.exact.gap is not None]
        return {
            "days": len(rs),
            "mean_gap": _mean([r.heuristic_gap for r in rs]),
            "optimum_rate": _mean([float(r.heuristic_gap == r.exact.gap) for r in proven]),
            "mean_gap_excess": _mean([r.heuristic_gap - int(r.exact.gap or 0) for r in proven]),
            "lateness_minutes": _mean([r.heuristic_lateness_minutes for r in rs]),
        }

    def exact(rs: Sequence[DayResult]) -> dict[str, Any]:
        solved = [r for r in rs if r.exact.status != "SKIPPED"]
        return {
            "days": len(rs),
            "mean_gap": _mean([r.exact.gap for r in rs if r.exact.gap is not None]),
            "proven": sum(r.exact.proven for r in rs),
            "min_deadhead_known": sum(r.exact.min_deadhead_km is not None for r in rs),
            "min_deadhead_bounded": sum(bool(r.exact.min_deadhead_bound_km) for r in rs),
            "latency_ms_p50": _pct([r.exact.wall_s * 1000 for r in solved], 50),
            "latency_ms_p99": _pct([r.exact.wall_s * 1000 for r in solved], 99),
        }

    methods = {"heuristic": heuristic(rows), "exact": exact(rows)}
    methods.update({lb: method_metrics(rows, lb) for lb in labels})
    by_group: dict[str, Any] = {}
    for g in groups:
        members = [r for r in rows if r.group == g]
        by_group[g] = {"heuristic": heuristic(members), "exact": exact(members)}
        by_group[g].update({lb: method_metrics(members, lb) for lb in labels})
    return {
        "days": len(rows),
        "days_proven": sum(r.exact.proven for r in rows),
        "sources": _count(r.source for r in rows),
        "labels": list(labels),
        "methods": methods,
        "groups": by_group,
    }


def rows_as_dicts(rows: Sequence[DayResult]) -> list[dict[str, Any]]:
    return [asdict(r) for r in rows]


def _excess(
    pairs: Sequence[tuple[DayResult, PolicyOutcome]],
    label: str,
    ref: str,
    floor: float | None = None,
) -> list[float]:
    """100 x (deadhead - reference) / reference per day where `ref` (a field of `label`'s
    same-punctuality reference) is known and positive; at least `floor` when given."""
    out = []
    for r, o in pairs:
        capped = r.exact.capped.get(label)
        km = getattr(capped, ref) if capped is not None else None
        if km is not None and km > 0:
            x = 100.0 * (o.deadhead_km - km) / km
            out.append(x if floor is None else max(floor, x))
    return out


def _mean(values: Sequence[float] | Sequence[int]) -> float | None:
    return float(np.mean(values)) if len(values) else None


def _pct(values: Sequence[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if len(values) else None


def _count(items: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for x in items:
        out[x] = out.get(x, 0) + 1
    return out
