"""The swap pass: a policy proposes, the validator decides, every check is audited.

Each step, the policy scores every structurally legal candidate; the validator checks them in
score order against the hard constraints and the objective (the gain must reach
`min_improvement`) and applies the first that passes. Every checked candidate becomes a
`CheckedMove` (the audit record). When no plain move or swap passes, short ejection chains are
tried before stopping. The pass stops at the move budget, at a local optimum, or when the ride
counts are as even as they can be.

Invariant: each accepted move adds no hard-constraint violation, moves no locked booking, and
strictly improves the objective, so the result is feasible and never worse than the input.
"""

from __future__ import annotations

import math
import time
from bisect import insort
from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np

from optimizer.feasibility import (
    Reason,
    RouteSchedule,
    Violation,
    check_capability,
    check_locked,
    routes_of,
    schedule_route,
)
from optimizer.moves import CHAIN, Candidates, Move, generate, solo_feasible
from optimizer.objective import Evaluation, Objective, Value, evaluate, gap_floor, value_of
from optimizer.problem import FloatArray, IntArray, Problem
from optimizer.routes import RouteArrays

AuditReason = Reason | Literal["improves", "no_improvement", "below_min_improvement"]
StopReason = Literal["target_reached", "local_optimum", "budget", "no_candidates", "time_limit"]
# Which violation names a rejection when a move adds several (most specific first).
_REASON_ORDER: tuple[Reason, ...] = (
    "locked",
    "capability",
    "driver_limit",
    "priority",
    "time_window",
    "shift",
)


@dataclass(frozen=True, slots=True)
class PassConfig:
    """Parameters of the swap pass."""

    max_swaps: int = 10
    """Least number of steps (each step accepts at most one move)."""
    swaps_per_booking: float = 0.5
    """The budget grows with the day: max(max_swaps, ceil(swaps_per_booking * bookings))."""
    min_improvement: float = 0.5
    """Least objective gain (see `Objective.gain`) for a move to be accepted."""
    max_checks: int = 40
    """Most candidates the validator checks per step and phase (each one is audited)."""
    chains: bool = True
    """Try two-step ejection chains when no plain move or swap passes."""
    stop_at_target: bool = True
    """Stop once the ride-count gap is at its floor (0 or 1): fairness cannot improve."""
    polish_steps: int = 0
    """Once at the floor, up to this many more steps of count-neutral moves and swaps that
    improve the later objective terms (workload spread, then deadhead, then lateness)."""
    objective: Objective = field(default_factory=Objective)
    time_limit_s: float = 0.0
    """Stop taking steps after this many seconds (0: no limit). A safety net for huge days:
    the plan so far is as valid as any (each accepted move keeps the invariant), but where the
    limit bites the result depends on the machine's speed, so it is off in tests."""

    def budget(self, n_bookings: int) -> int:
        return max(self.max_swaps, math.ceil(self.swaps_per_booking * n_bookings))


class MovePolicy(Protocol):
    """Scores candidates; higher is tried first. The validator has the last word."""

    @property
    def version(self) -> str: ...

    def score(self, state: SearchState, candidates: Candidates) -> FloatArray: ...


@dataclass(frozen=True, slots=True)
class CheckedMove:
    """One validated candidate: the audit record of the pass."""

    sequence: int
    move: Move
    score: float
    decision: Literal["accepted", "rejected"]
    reason: AuditReason
    detail: str
    value_before: Value
    value_after: Value | None
    gain: float | None


@dataclass(frozen=True, slots=True)
class PassResult:
    assignment: IntArray
    before: Evaluation
    after: Evaluation
    checked: tuple[CheckedMove, ...]
    stop_reason: StopReason
    steps: int
    budget: int
    policy_version: str
    elapsed_s: float

    @property
    def accepted(self) -> tuple[CheckedMove, ...]:
        return tuple(c for c in self.checked if c.decision == "accepted")


class SearchState:
    """The one mutable thing: the assignment being improved, with its per-driver schedules."""

    def __init__(self, problem: Problem, assignment: IntArray) -> None:
        self.problem = problem
        self.assignment = assignment.copy()
        self.routes = [list(r) for r in routes_of(problem, assignment)]
        self.schedules = [schedule_route(problem, k, r) for k, r in enumerate(self.routes)]
        self.counts = np.array([s.rides for s in self.schedules], dtype=np.int64)
        self.workload = np.array([s.workload_minutes for s in self.schedules], dtype=float)
        self.deadhead = np.array([s.deadhead_km for s in self.schedules], dtype=float)
        self.lateness = np.array([s.lateness_minutes for s in self.schedules], dtype=float)
        self.solo = solo_feasible(problem)
        self.value: Value = value_of(self.counts, self.workload, self.deadhead, self.lateness)
        self._routes_index: RouteArrays | None = None

    @property
    def gap(self) -> int:
        return int(self.value[0])

    def candidates(self, *, chains: bool = False, balancing_only: bool = False) -> Candidates:
        return generate(
            self.problem,
            self.assignment,
            self.counts,
            self.solo,
            self.routes,
            index=self.route_arrays(),
            balancing_only=balancing_only,
            chains=chains,
        )

    def route_arrays(self) -> RouteArrays:
        """The current plan as flat route arrays (cached until the next applied move)."""
        if self._routes_index is None:
            self._routes_index = RouteArrays(self.problem, self.schedules)
        return self._routes_index

    def evaluation(self) -> Evaluation:
        return evaluate(self.schedules, unassigned=int((self.assignment < 0).sum()))

    def trial(self, move: Move) -> Trial:
        """Validate `move` against the hard constraints and compute its objective value."""
        p = self.problem
        for s in move.steps:
            reason = check_locked(p, s.booking, s.from_driver, s.to_driver) or check_capability(
                p, s.booking, s.to_driver
            )
            if reason is not None:
                return Trial(move, reason, f"booking {p.booking_ids[s.booking]}", None, {})
        routes = {d: list(self.routes[d]) for s in move.steps for d in (s.from_driver, s.to_driver)}
        key = p.order.__getitem__
        for s in move.steps:
            routes[s.from_driver].remove(s.booking)
            insort(routes[s.to_driver], s.booking, key=key)
        new = {d: schedule_route(p, d, r) for d, r in routes.items()}
        old_v: set[Violation] = set()
        new_v: set[Violation] = set()
        for d, sched in new.items():
            old_v |= self.schedules[d].violations
            new_v |= sched.violations
        added = new_v - old_v
        if added:
            reason = min((r for r, _ in added), key=_REASON_ORDER.index)
            subjects = sorted(
                (p.driver_ids[i] if r in ("shift", "driver_limit") else p.booking_ids[i])
                for r, i in added
                if r == reason
            )
            return Trial(move, reason, ", ".join(subjects), None, new)
        counts, workload = self.counts.copy(), self.workload.copy()
        deadhead, lateness = self.deadhead.copy(), self.lateness.copy()
        for d, sched in new.items():
            counts[d], workload[d] = sched.rides, sched.workload_minutes
            deadhead[d], lateness[d] = sched.deadhead_km, sched.lateness_minutes
        return Trial(move, None, "", value_of(counts, workload, deadhead, lateness), new)

    def apply(self, trial: Trial) -> None:
        assert trial.value is not None
        for s in trial.move.steps:
            self.assignment[s.booking] = s.to_driver
        for d, sched in trial.schedules.items():
            self.routes[d] = list(sched.bookings)
            self.schedules[d] = sched
            self.counts[d] = sched.rides
            self.workload[d] = sched.workload_minutes
            self.deadhead[d] = sched.deadhead_km
            self.lateness[d] = sched.lateness_minutes
        self.value = trial.value
        self._routes_index = None


@dataclass(frozen=True, slots=True)
class Trial:
    move: Move
    violation: Reason | None
    detail: str
    value: Value | None
    schedules: dict[int, RouteSchedule]


def run_pass(
    problem: Problem,
    assignment: IntArray,
    policy: MovePolicy,
    config: PassConfig | None = None,
) -> PassResult:
    """Improve `assignment` (not modified) with `policy`; see the module docstring."""
    config = config or PassConfig()
    started = time.perf_counter()
    state = SearchState(problem, assignment)
    before = state.evaluation()
    floor = gap_floor(int(state.counts.sum()), problem.n_drivers)
    budget = config.budget(int((assignment >= 0).sum()))
    checked: list[CheckedMove] = []
    stop: StopReason = "budget"
    steps = polished = 0
    while steps < budget:
        if config.stop_at_target and state.gap <= floor:
            stop = "target_reached"
            if polished >= config.polish_steps:
                break
            # Fairness is done; spend a little more on the secondary terms. Only count-neutral
            # candidates are offered now (the lexicographic filter), so the gap stays.
            polished += 1
            steps += 1
            if not _step(state, policy, config, checked, chains=False):
                break
            continue
        if config.time_limit_s > 0 and time.perf_counter() - started > config.time_limit_s:
            stop = "time_limit"
            break
        steps += 1
        accepted = _step(state, policy, config, checked, chains=False)
        if not accepted and config.chains:
            accepted = _step(state, policy, config, checked, chains=True)
        if not accepted:
            stop = "local_optimum"
            break
    else:
        if config.stop_at_target and state.gap <= floor:
            stop = "target_reached"
    return PassResult(
        assignment=state.assignment,
        before=before,
        after=state.evaluation(),
        checked=tuple(checked),
        stop_reason=stop,
        steps=steps,
        budget=budget,
        policy_version=policy.version,
        elapsed_s=time.perf_counter() - started,
    )


def pass_candidates(state: SearchState, config: PassConfig, *, chains: bool) -> Candidates:
    """The candidates the pass hands its policy in this plan and phase (the DQN's action set).

    Under the lexicographic objective a candidate that worsens the ride-count terms can never
    be accepted, so it is not offered; the chain phase offers chains only.
    """
    lexicographic = config.objective.mode == "lexicographic"
    cands = state.candidates(chains=chains, balancing_only=lexicographic)
    if lexicographic and len(cands):
        gap, sq = state.value[0], state.value[1]
        keep = (cands.gap_after < gap) | ((cands.gap_after == gap) & (cands.sq_after <= sq + 1e-9))
        if chains:
            keep &= cands.kind == CHAIN
        cands = cands.take(np.nonzero(keep)[0])
    return cands


def _step(
    state: SearchState,
    policy: MovePolicy,
    config: PassConfig,
    checked: list[CheckedMove],
    *,
    chains: bool,
) -> bool:
    cands = pass_candidates(state, config, chains=chains)
    if not len(cands):
        return False
    scores = np.asarray(policy.score(state, cands), dtype=float)
    if len(scores) > config.max_checks:  # only the best few are checked: no full sort
        top = np.argpartition(-scores, config.max_checks - 1)[: config.max_checks]
        order = top[np.argsort(-scores[top], kind="stable")]
    else:
        order = np.argsort(-scores, kind="stable")
    for i in order:
        move = cands.move(int(i))
        trial = state.trial(move)
        seq = len(checked)
        if trial.violation is not None:
            checked.append(
                CheckedMove(
                    seq,
                    move,
                    float(scores[i]),
                    "rejected",
                    trial.violation,
                    trial.detail,
                    state.value,
                    None,
                    None,
                )
            )
            continue
        assert trial.value is not None
        gain = config.objective.gain(state.value, trial.value)
        if gain <= 0 or gain < config.min_improvement:
            reason: AuditReason = "no_improvement" if gain <= 0 else "below_min_improvement"
            checked.append(
                CheckedMove(
                    seq,
                    move,
                    float(scores[i]),
                    "rejected",
                    reason,
                    "",
                    state.value,
                    trial.value,
                    gain,
                )
            )
            continue
        checked.append(
            CheckedMove(
                seq,
                move,
                float(scores[i]),
                "accepted",
                "improves",
                "",
                state.value,
                trial.value,
                gain,
            )
        )
        state.apply(trial)
        return True
    return False


def replay(assignment: IntArray, moves: list[Move]) -> IntArray:
    """Apply accepted moves, in order, to an assignment (for audits: must reproduce the output)."""
    out = assignment.copy()
    for move in moves:
        for s in move.steps:
            if out[s.booking] != s.from_driver:
                raise ValueError(f"booking {s.booking} is not with driver {s.from_driver}")
            out[s.booking] = s.to_driver
    return out
