"""The CP-SAT model of a re-plan of some drivers' rides (`optimizer.repair` adds the objective
or the target and asks for a move).

The exact solver's model (`optimizer.exact`) restricted to the rides of the chosen drivers,
with the swap pass's deadlines (so the lateness rule holds) and the current plan as the hint.
Solved with one worker, seed 0 and a conflict limit: deterministic, machine-independent.
ortools is imported on the first model, so a worker that never needs a re-plan never loads it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from optimizer.moves import Move, Step
from optimizer.ride_model import duration
from optimizer.search_state import SearchState

__all__ = ["ReplanModel"]

_SCALE = 1000  # model time unit: 1/1000 minute, as in `optimizer.exact`


class ReplanModel:
    """The exact solver's model (`optimizer.exact`) on the rides of `drivers`; the caller adds
    the objective or the target.

    One pickup time per ride within [window open, the pass's deadline], each driver's rides in
    service order separated by the ride and the empty leg between them (pairwise, exact under
    the triangle inequality; the validator re-checks the result with the ride model), shifts,
    capabilities, locked rides, ride caps. Times in integer milliminutes, rounded towards
    feasible. `counts[k]`: how many rides `drivers[k]` gets.
    """

    def __init__(self, state: SearchState, drivers: tuple[int, ...]) -> None:
        p = state.problem
        ds = list(drivers)
        rides = np.array([b for d in ds for b in state.routes[d]], dtype=np.int64)
        rides = rides[np.argsort(p.order[rides], kind="stable")]
        n, kk = len(rides), len(ds)
        self.drivers, self.rides, self.n = ds, rides, n
        self.now = now = np.array(
            [ds.index(int(state.assignment[b])) for b in rides], dtype=np.int64
        )
        self.deterministic_time = 0.0
        """CP-SAT's deterministic time the last `solve` took (0 before one)."""
        if n < 2:
            return
        dset = np.array(ds, dtype=np.int64)
        allowed = state.solo[np.ix_(rides, dset)] & ~p.locked[rides][:, None]
        allowed[np.arange(n), now] = True
        lo = np.ceil(p.earliest[rides] * _SCALE - 1e-6).astype(np.int64)
        hi = np.maximum(lo, np.floor(state.deadline[rides] * _SCALE + 1e-6).astype(np.int64))
        dur = duration(p, rides)
        first = np.ceil(
            (p.shift_start[dset][None, :] + p.travel.start_to_pickup[np.ix_(dset, rides)].T)
            * _SCALE
            - 1e-6
        ).astype(np.int64)
        last = np.floor((p.shift_end[dset][None, :] - dur[:, None]) * _SCALE + 1e-6).astype(
            np.int64
        )
        late_shift = [any(r == "shift" for r, _ in state.schedules[d].violations) for d in ds]
        need = np.ceil(
            (dur[:, None] + p.travel.dropoff_to_pickup[np.ix_(rides, rides)]) * _SCALE - 1e-6
        ).astype(np.int64)

        self.m = m = _lean_model()
        t = [m.new_int_var(int(lo[i]), int(hi[i]), f"t{i}") for i in range(n)]
        self.x: dict[tuple[int, int], Any] = {}
        x = self.x
        for i in range(n):
            ks = np.nonzero(allowed[i])[0].tolist()
            for k in ks:
                v = x[i, k] = m.new_bool_var(f"x{i}_{k}")
                m.add(t[i] >= int(first[i, k])).only_enforce_if(v)
                if not late_shift[k]:
                    m.add(t[i] <= int(last[i, k])).only_enforce_if(v)
            m.add_exactly_one(x[i, k] for k in ks)
        for a in range(n):
            for b in range(a + 1, n):
                gap = int(need[a, b])
                if lo[b] >= hi[a] + gap:
                    continue  # never binding
                apart = lo[a] + gap > hi[b]
                for k in np.nonzero(allowed[a] & allowed[b])[0].tolist():
                    if apart:
                        m.add_bool_or([~x[a, k], ~x[b, k]])
                    else:
                        m.add(t[b] - t[a] >= gap).only_enforce_if([x[a, k], x[b, k]])
        self.counts: list[Any] = []
        for k in range(kk):
            count = m.new_int_var(0, n, f"count{k}")
            m.add(count == sum(x[i, k] for i in range(n) if (i, k) in x))
            cap = int(p.max_rides[ds[k]])
            if cap >= 0 and int((now == k).sum()) <= cap:
                m.add(count <= cap)
            self.counts.append(count)
        for (i, k), v in x.items():
            m.add_hint(v, int(now[i] == k))

    def solve(
        self, conflicts: int, *, deterministic_time: float = 1.0, first_solution: bool = False
    ) -> Move | None:
        """Solve deterministically (one worker, seed 0, at most `conflicts` conflicts and
        `deterministic_time` of CP-SAT's deterministic work units, which do not depend on the
        machine or its load); the re-plan as one compound move, or None."""
        from ortools.sat.python import cp_model

        solver = cp_model.CpSolver()
        solver.parameters.num_workers = 1
        solver.parameters.random_seed = 0
        solver.parameters.max_number_of_conflicts = conflicts
        # A conflict limit alone does not bound a search that propagates long between
        # conflicts: a whole-day re-plan of a Solomon R101 day ran 12 s to 20,000 conflicts.
        solver.parameters.max_deterministic_time = deterministic_time
        solver.parameters.stop_after_first_solution = first_solution
        status = solver.solve(self.m)
        self.deterministic_time = float(solver.deterministic_time)
        if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
            return None
        ds, now = self.drivers, self.now
        steps = [
            Step(int(self.rides[i]), ds[int(now[i])], ds[k])
            for (i, k), v in self.x.items()
            if k != now[i] and solver.value(v)
        ]
        if not steps:
            return None
        return Move("compound", tuple(steps))


def _lean_model() -> Any:
    """A CpModel without the deprecated camelCase aliases that ortools 9.x builds for every
    new model (about 1.5 ms each; the repair builds many small models). ortools is imported
    here, on the first solve, so a worker or `optimize` call that never needs a repair never
    loads it (about 0.8 s and tens of MB)."""
    global _LEAN
    if _LEAN is None:
        from ortools.sat.python import cp_model

        class Lean(cp_model.CpModel):
            def _add_pre_pep8_methods(self) -> None:
                pass

        _LEAN = Lean
    return _LEAN()


_LEAN: Any = None
