"""The swap pass: a policy ranks, the validator decides, every check is audited.

Fairness phase. The policy (`MovePolicy.score`) ranks the structurally legal candidates of the
current plan; the validator (`SearchState.trial`) checks the best-ranked in order and accepts
the first that breaks no hard constraint and gains at least `min_improvement`. With
`batch_moves`, further candidates of the same ranking whose drivers no accepted move touched
are checked and accepted too before ranking again (what they change is independent, so their
validation is as exact; only the ranking is one step old). When no plain move or swap passes,
two-step ejection chains are tried (ranked by the policy), then ejection chains of any ends and
up to `ejection_depth` rides (`optimizer.ejection`), segment exchanges (`optimizer.exchange`),
a lookahead (`optimizer.lookahead`): count-neutral "plateau" steps ranked by the same policy,
up to `lookahead_depth` deep, each followed by an improving step, and last an exact re-plan
of a few drivers together, on small days of every driver (`optimizer.repair`; its effort is
bounded by `PassConfig.repair_work`). A multi-step success is accepted as one compound move
listing all its steps. The pass never returns to a plan it has visited (a set of
plan digests, checked before accepting).

It stops when the ride-count gap reaches its floor (`target_reached`), when nothing improves
(`no_improving_move`; `repair.can_take_more` proves it early when no driver that is two rides
below the fullest could take one more in any plan), at the move budget (`budget`) or at the
time limit (`time_limit`). Then the cost phase
(`optimizer.cost_phase`) may lower empty driving and lateness at the reached ride counts.

Invariant: each accepted move adds no hard-constraint violation, makes no booking later than
its deadline (see `optimizer.search_state`), moves no locked booking, and strictly improves the
objective, so the result is feasible and never worse than the input.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np

from optimizer.feasibility import Reason, RouteSchedule
from optimizer.moves import Candidates, Move
from optimizer.objective import Evaluation, Value, gap_floor
from optimizer.pass_candidates import pass_candidates, top_order
from optimizer.pass_config import PassConfig
from optimizer.problem import FloatArray, IntArray, Problem
from optimizer.repair import WorkBudget
from optimizer.search_state import SearchState, Trial

__all__ = [
    "AuditReason",
    "CheckedMove",
    "MovePolicy",
    "PassConfig",
    "PassResult",
    "SearchState",
    "StopReason",
    "Trial",
    "pass_candidates",
    "replay",
    "run_pass",
]

AuditReason = Reason | Literal["improves", "no_improvement", "below_min_improvement", "revisit"]
StopReason = Literal["target_reached", "no_improving_move", "budget", "time_limit"]


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
    cost_steps: int = 0
    """Moves accepted by the cost phase (`steps` counts the fairness phase's)."""
    schedules: tuple[RouteSchedule, ...] = ()
    """Every driver's schedule under `assignment` (so callers need not schedule it again)."""

    @property
    def accepted(self) -> tuple[CheckedMove, ...]:
        return tuple(c for c in self.checked if c.decision == "accepted")

    @property
    def validator_checks(self) -> int:
        """How many candidates the validator checked (= audit records)."""
        return len(self.checked)


class Search:
    """One pass in progress: the state, the audit trail, the visited plans, the counters."""

    def __init__(
        self, problem: Problem, assignment: IntArray, policy: MovePolicy, config: PassConfig
    ) -> None:
        self.started = time.perf_counter()
        self.problem = problem
        self.policy = policy
        self.config = config
        self.state = SearchState(problem, assignment)
        self.before = self.state.evaluation()
        self.floor = gap_floor(int(self.state.counts.sum()), problem.n_drivers)
        self.budget = config.budget(int((assignment >= 0).sum()))
        self.repair_budget = WorkBudget(
            config.repair_budget(problem.n_bookings), config.repair_deterministic_budget
        )
        self.lookahead_left = config.lookahead_budget(problem.n_bookings)
        self.checked: list[CheckedMove] = []
        self.visited: set[bytes] = {self.state.key()}
        self.steps = 0

    # ------------------------------------------------------------ audit and acceptance

    def record(
        self,
        move: Move,
        score: float,
        trial: Trial | None,
        before: Value,
        *,
        reason: AuditReason | None = None,
        detail: str = "",
    ) -> float | None:
        """Audit one checked candidate; return its gain when it is acceptable, else None."""
        seq = len(self.checked)
        if trial is None or trial.violation is not None:
            why: AuditReason = "revisit"
            if trial is not None and trial.violation is not None:
                why, detail = trial.violation, trial.detail
            elif reason is not None:
                why = reason
            self.checked.append(
                CheckedMove(seq, move, score, "rejected", why, detail, before, None, None)
            )
            return None
        assert trial.value is not None
        gain = self.config.objective.gain(before, trial.value)
        if reason is None and gain > 0 and gain >= self.config.min_improvement:
            self.checked.append(
                CheckedMove(seq, move, score, "accepted", "improves", "", before, trial.value, gain)
            )
            return gain
        if reason is None:
            reason = "no_improvement" if gain <= 0 else "below_min_improvement"
        self.checked.append(
            CheckedMove(seq, move, score, "rejected", reason, detail, before, trial.value, gain)
        )
        return None

    def check(self, state: SearchState, move: Move, score: float) -> Trial | None:
        """Validate `move` in `state` and audit it; the trial when it is accepted."""
        if state.key_after(move) in self.visited:
            self.record(move, score, None, state.value, reason="revisit", detail="plan visited")
            return None
        trial = state.trial(move)
        if self.record(move, score, trial, state.value) is None:
            return None
        return trial

    def accept(self, trial: Trial) -> None:
        self.state.apply(trial)
        self.visited.add(self.state.key())
        self.steps += 1

    # ------------------------------------------------------------ phases

    def at_target(self) -> bool:
        return self.config.stop_at_target and self.state.gap <= self.floor

    def out_of_time(self) -> bool:
        limit = self.config.time_limit_s
        return limit > 0 and time.perf_counter() - self.started > limit

    def ranked_round(self, cands: Candidates, *, stop_at_target: bool = True) -> int:
        """Check `cands` in policy order; accept the first that passes (more with batching)."""
        if not len(cands):
            return 0
        scores = np.asarray(self.policy.score(self.state, cands), dtype=float)
        order = top_order(scores, self.config.max_checks)
        touched: set[int] = set()
        accepted = 0
        for i in order:
            move = cands.move(int(i))
            drivers = {d for s in move.steps for d in (s.from_driver, s.to_driver)}
            if touched & drivers:
                continue  # its ranking is stale: left for the next round, not checked
            trial = self.check(self.state, move, float(scores[i]))
            if trial is None:
                continue
            self.accept(trial)
            accepted += 1
            touched |= drivers
            if (
                not self.config.batch_moves
                or self.steps >= self.budget
                or (stop_at_target and self.at_target())
            ):
                break
        return accepted

    def exchange_round(self) -> int:
        """Check segment exchanges in order of their count terms; accept the first that passes."""
        from optimizer.exchange import segment_exchanges

        gap, sq = self.state.value[0], self.state.value[1]
        cfg = self.config
        found = segment_exchanges(self.state, max_rides=cfg.exchange_rides, limit=cfg.max_checks)
        for ex in found:
            score = (gap - ex.gap_after) * 1e4 + (sq - ex.sq_after) * 10.0
            trial = self.check(self.state, ex.move, float(score))
            if trial is not None:
                self.accept(trial)
                return 1
        return 0

    def ejection_round(self) -> int:
        """Check ejection chains in order of their count terms; accept the first that passes."""
        from optimizer.ejection import ejection_chains

        gap, sq = self.state.value[0], self.state.value[1]
        cfg = self.config
        found = ejection_chains(self.state, max_depth=cfg.ejection_depth, limit=cfg.max_checks)
        for ch in found:
            score = (gap - ch.gap_after) * 1e4 + (sq - ch.sq_after) * 10.0
            trial = self.check(self.state, ch.move, float(score))
            if trial is not None:
                self.accept(trial)
                return 1
        return 0

    def repair_round(self) -> int:
        """Check the subset repair's re-plan, if it finds one (`optimizer.repair`)."""
        from optimizer.repair import repair_moves

        cfg = self.config
        for move in repair_moves(
            self.state,
            tries=cfg.repair_tries,
            conflicts=cfg.repair_conflicts,
            whole_day_bookings=cfg.whole_day_bookings,
            whole_day_conflicts=cfg.whole_day_conflicts,
            deterministic_time=cfg.repair_deterministic_time,
            budget=self.repair_budget,
        ):
            trial = self.check(self.state, move, 0.0)
            if trial is not None:
                self.accept(trial)
                return 1
        return 0

    def fairness(self) -> StopReason:
        from optimizer.lookahead import lookahead  # a sibling phase; imports this module
        from optimizer.repair import can_take_more

        while True:
            if self.at_target():
                return "target_reached"
            if self.steps >= self.budget:
                return "budget"
            if self.out_of_time():
                return "time_limit"
            cfg = self.config
            plain = pass_candidates(self.state, cfg, chains=False, improving_only=True)
            accepted = self.ranked_round(plain)
            if not accepted and cfg.chains:
                chains = pass_candidates(self.state, cfg, chains=True, improving_only=True)
                accepted = self.ranked_round(chains)
            if not accepted and not can_take_more(self.state).any():
                return "no_improving_move"  # proven: no plan has better ride-count terms
            if not accepted and cfg.ejection_depth > 0:
                accepted = self.ejection_round()
            if not accepted and self.config.exchanges:
                accepted = self.exchange_round()
            repair = bool(cfg.repair_tries)
            if not accepted and repair and cfg.repair_first:
                accepted = self.repair_round()
            if not accepted and self.config.lookahead_depth > 0:
                accepted = lookahead(self)
            if not accepted and repair and not cfg.repair_first:
                accepted = self.repair_round()
            if not accepted:
                return "no_improving_move"

    def polish(self) -> None:
        """Count-neutral steps for the later objective terms, ranked by the policy."""
        for _ in range(self.config.polish_steps):
            if self.out_of_time():
                return
            cands = pass_candidates(self.state, self.config, chains=False)
            if not self.ranked_round(cands, stop_at_target=False):
                return


def run_pass(
    problem: Problem,
    assignment: IntArray,
    policy: MovePolicy,
    config: PassConfig | None = None,
) -> PassResult:
    """Improve `assignment` (not modified) with `policy`; see the module docstring."""
    config = config or PassConfig()
    search = Search(problem, assignment, policy, config)
    stop = search.fairness()
    if stop == "target_reached":
        search.polish()
    steps, cost_steps = search.steps, 0
    if config.cost_phase:
        from optimizer.cost_phase import cost_phase  # it imports this module

        cost_steps = cost_phase(search)
    return PassResult(
        assignment=search.state.assignment,
        before=search.before,
        after=search.state.evaluation(),
        checked=tuple(search.checked),
        stop_reason=stop,
        steps=steps,
        budget=search.budget,
        policy_version=policy.version,
        elapsed_s=time.perf_counter() - search.started,
        cost_steps=cost_steps,
        schedules=tuple(search.state.schedules),
    )


def replay(assignment: IntArray, moves: list[Move]) -> IntArray:
    """Apply accepted moves, in order, to an assignment (for audits: must reproduce the output)."""
    out = assignment.copy()
    for move in moves:
        for s in move.steps:
            if out[s.booking] != s.from_driver:
                raise ValueError(f"booking {s.booking} is not with driver {s.from_driver}")
            out[s.booking] = s.to_driver
    return out
