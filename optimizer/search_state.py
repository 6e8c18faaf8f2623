"""The one mutable thing of a search: the plan being improved, and the validator of moves.

`SearchState` holds the assignment with every driver's schedule and aggregates; `trial`
checks a move against the hard constraints and the lateness rule and computes the objective
value it would give, `apply` makes it so. The swap pass, its lookahead and cost phase, and the
DQN environment all validate through `trial`, so there is one validator.

The lateness rule: no booking may be picked up later than `deadline` = window close + the
larger of its tolerance and its lateness in the input plan (`feasibility.deadlines`). A ride
the upstream plan already made late may stay as late, never later, in minutes.
"""

from __future__ import annotations

import hashlib
from bisect import insort
from dataclasses import dataclass
from typing import Any

import numpy as np

from optimizer.feasibility import (
    Reason,
    RouteSchedule,
    Violation,
    check_capability,
    check_locked,
    deadlines,
    routes_of,
    schedule_route,
)
from optimizer.moves import Candidates, CountFilter, Move, generate, solo_feasible
from optimizer.objective import Evaluation, Value, evaluate, value_of
from optimizer.problem import FloatArray, IntArray, Problem
from optimizer.ride_model import tables
from optimizer.routes import RouteArrays

# Which violation names a rejection when a move adds several (most specific first).
_REASON_ORDER: tuple[Reason, ...] = (
    "locked",
    "capability",
    "driver_limit",
    "shift",
)
_EPS = 1e-6


def plan_key(assignment: IntArray) -> bytes:
    """A short digest of an assignment: equal plans, equal keys (the visited set's key)."""
    return hashlib.blake2b(assignment.tobytes(), digest_size=16).digest()


@dataclass(frozen=True, slots=True)
class Trial:
    """A validated move: why it is rejected (`violation`), or the value it would give."""

    move: Move
    violation: Reason | None
    detail: str
    value: Value | None
    schedules: dict[int, RouteSchedule]


class SearchState:
    """The assignment being improved, with its per-driver schedules and aggregates."""

    def __init__(
        self, problem: Problem, assignment: IntArray, deadline: FloatArray | None = None
    ) -> None:
        """`deadline`: latest allowed pickups (default: from `assignment`, the input plan)."""
        self.problem = problem
        self.assignment = assignment.copy()
        self.routes = [list(r) for r in routes_of(problem, assignment)]
        self.schedules = [schedule_route(problem, k, r) for k, r in enumerate(self.routes)]
        self.deadline = deadlines(problem, self.schedules) if deadline is None else deadline
        self._deadline_list: list[float] = self.deadline.tolist()
        self.counts = np.array([s.rides for s in self.schedules], dtype=np.int64)
        self.workload = np.array([s.workload_minutes for s in self.schedules], dtype=float)
        self.deadhead = np.array([s.deadhead_km for s in self.schedules], dtype=float)
        self.lateness = np.array([s.lateness_minutes for s in self.schedules], dtype=float)
        self.solo = solo_feasible(problem, self.deadline)
        self.value: Value = value_of(self.counts, self.workload, self.deadhead, self.lateness)
        self._routes_index: RouteArrays | None = None
        self._memo: dict[Any, Any] = {}  # `moves.generate`'s; shared by forks (same bookings)
        self._trials: dict[Move, Trial] = {}  # `trial`'s, for this plan only

    def fork(self) -> SearchState:
        """An independent copy (schedules are immutable and shared)."""
        other = SearchState.__new__(SearchState)
        other.problem = self.problem
        other.assignment = self.assignment.copy()
        other.routes = [list(r) for r in self.routes]
        other.schedules = list(self.schedules)
        other.deadline = self.deadline
        other._deadline_list = self._deadline_list
        other.counts = self.counts.copy()
        other.workload = self.workload.copy()
        other.deadhead = self.deadhead.copy()
        other.lateness = self.lateness.copy()
        other.solo = self.solo
        other.value = self.value
        other._routes_index = self._routes_index
        other._memo = self._memo
        other._trials = {}
        return other

    @property
    def gap(self) -> int:
        return int(self.value[0])

    def key(self) -> bytes:
        return plan_key(self.assignment)

    def key_after(self, move: Move) -> bytes:
        """The key of the plan `move` would give (without applying it)."""
        out = self.assignment.copy()
        for s in move.steps:
            out[s.booking] = s.to_driver
        return plan_key(out)

    def candidates(
        self,
        *,
        chains: bool = False,
        balancing_only: bool = False,
        swap_window: int = 6,
        keep: CountFilter = "any",
    ) -> Candidates:
        """The plan's candidates (`moves.generate`); `keep` filters them by their count terms."""
        return generate(
            self.problem,
            self.assignment,
            self.counts,
            self.solo,
            self.routes,
            index=self.route_arrays(),
            balancing_only=balancing_only,
            chains=chains,
            swap_window=swap_window,
            keep=keep,
            memo=self._memo,
            terms=(self.value[0], self.value[1]),
        )

    def solo_rows(self) -> list[list[bool]]:
        """`solo` as nested lists, for ride-by-ride loops (kept for the search: it never
        changes)."""
        rows: list[list[bool]] | None = self._memo.get("solo_rows")
        if rows is None:
            rows = self._memo["solo_rows"] = self.solo.tolist()
        return rows

    def route_arrays(self) -> RouteArrays:
        """The current plan as flat route arrays (cached until the next applied move)."""
        if self._routes_index is None:
            self._routes_index = RouteArrays(self.problem, self.schedules, self.deadline)
        return self._routes_index

    def evaluation(self) -> Evaluation:
        return evaluate(self.schedules, unassigned=int((self.assignment < 0).sum()))

    def trial(self, move: Move) -> Trial:
        """Validate `move` against the hard constraints and compute its objective value.

        Remembered until the plan changes (phases re-check the same moves on the same plan)."""
        hit = self._trials.get(move)
        if hit is None:
            hit = self._trials[move] = self._trial(move)
        return hit

    def _trial(self, move: Move) -> Trial:
        p = self.problem
        for s in move.steps:
            reason = check_locked(p, s.booking, s.from_driver, s.to_driver) or check_capability(
                p, s.booking, s.to_driver
            )
            if reason is not None:
                return Trial(move, reason, f"booking {p.booking_ids[s.booking]}", None, {})
        routes = {d: list(self.routes[d]) for s in move.steps for d in (s.from_driver, s.to_driver)}
        key = tables(p).order.__getitem__
        for s in move.steps:
            routes[s.from_driver].remove(s.booking)
            insort(routes[s.to_driver], s.booking, key=key)
        new = {d: schedule_route(p, d, r) for d, r in routes.items()}
        old_v: set[Violation] = set()
        new_v: set[Violation] = set()
        for d, sched in new.items():
            old_v |= self.schedules[d].violations
            new_v |= sched.violations
        # Windows are judged by the deadlines below (exact per booking), the rest by set.
        added = {v for v in new_v - old_v if v[0] not in ("time_window", "priority")}
        if added:
            reason = min((r for r, _ in added), key=_REASON_ORDER.index)
            subjects = sorted(
                (p.driver_ids[i] if r in ("shift", "driver_limit") else p.booking_ids[i])
                for r, i in added
                if r == reason
            )
            return Trial(move, reason, ", ".join(subjects), None, new)
        late = self._later_than_allowed(new)
        if late is not None:
            return Trial(move, late[0], late[1], None, new)
        counts, workload = self.counts.tolist(), self.workload.tolist()
        deadhead, lateness = self.deadhead.tolist(), self.lateness.tolist()
        for d, sched in new.items():
            counts[d], workload[d] = sched.rides, sched.workload_minutes
            deadhead[d], lateness[d] = sched.deadhead_km, sched.lateness_minutes
        return Trial(move, None, "", value_of(counts, workload, deadhead, lateness), new)

    def _later_than_allowed(self, new: dict[int, RouteSchedule]) -> tuple[Reason, str] | None:
        """The lateness rule, per booking and in minutes (see the module docstring)."""
        p = self.problem
        deadline = self._deadline_list
        for sched in new.values():
            for b, at in zip(sched.bookings, sched.pickup_at, strict=True):
                if at > deadline[b] + _EPS:
                    allowed = self.deadline[b] - p.latest[b]
                    reason: Reason = "priority" if p.high_priority[b] else "time_window"
                    return reason, (
                        f"{p.booking_ids[b]} would be {at - p.latest[b]:.1f} min late "
                        f"(allowed {allowed:.1f})"
                    )
        return None

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
        self._trials = {}
