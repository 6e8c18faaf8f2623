"""The compiled loops (`optimizer/_kernels.c`) give the pure-Python/numpy code's numbers, bit
for bit, and the pass decides the same with or without them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import numpy.typing as npt
import pytest

import optimizer.routes as routes_module
from optimizer.dqn.days import generated_days
from optimizer.kernels import compiled, describe
from optimizer.moves import Candidates
from optimizer.policy import GreedyPolicy
from optimizer.routes import RouteArrays
from optimizer.swap_pass import PassConfig, SearchState, run_pass

needs_kernels = pytest.mark.skipif(compiled is None, reason="optimizer._kernels is not built")


def test_the_kernels_are_built_in_ci() -> None:
    """CI (`.ci/run` sets CI) installs with a C compiler: the compiled loops must be there, or
    the comparisons below would be skipped unseen."""
    if os.environ.get("CI", "").lower() in ("", "0", "false"):
        pytest.skip("not CI: a machine without a C compiler runs the Python code")
    assert compiled is not None, "optimizer._kernels did not build (see setup.py)"


class _Keep(GreedyPolicy):
    """Greedy ranking that keeps a copy of every plan it scores."""

    def __init__(self) -> None:
        self.states: list[SearchState] = []

    def score(self, state: SearchState, candidates: Candidates) -> npt.NDArray[np.float64]:
        self.states.append(state.fork())
        return super().score(state, candidates)


def _arrays(state: SearchState, pure: bool, monkeypatch: pytest.MonkeyPatch) -> RouteArrays:
    with monkeypatch.context() as m:
        if pure:
            m.setattr(routes_module, "compiled", None)
        arrays = RouteArrays(state.problem, state.schedules, state.deadline)
        arrays._grid()
    return arrays


def _same_bits(a: npt.NDArray[np.generic], b: npt.NDArray[np.generic]) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


@needs_kernels
def test_route_arrays_and_grid_equal_the_python_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    """On the plans of real passes, 10x3 to 100x13 (late, locked, urgent rides of generated
    days), the flat route arrays, their forward slack and every table of the insertion grid
    are the same bits."""
    policy = _Keep()
    sizes = [(10, 3), (12, 4), (25, 4), (40, 6), (100, 13)]
    for day in generated_days(sizes, range(80, 110)):
        run_pass(day.problem, day.assignment, policy, PassConfig())
        policy.states.append(SearchState(day.problem, day.assignment))
    assert len(policy.states) > 100
    grids = 0
    for state in policy.states:
        fast, slow = _arrays(state, False, monkeypatch), _arrays(state, True, monkeypatch)
        for name in ("driver", "booking", "key", "position", "pickup", "dropoff", "slack"):
            assert _same_bits(getattr(fast, name), getattr(slow, name)), name
        assert fast.size == slow.size
        a, b = fast._grid(), slow._grid()
        if a is None or b is None:
            assert a is None and b is None
            continue
        grids += 1
        if b.fits is None:
            b.fits = routes_module.fits_mask(b.own, b.downstream, b.push)
        for name in ("own", "downstream", "empty", "push", "km", "fits"):
            assert _same_bits(getattr(a, name), getattr(b, name)), name
    assert grids > 100


def test_a_changed_bit_is_caught() -> None:
    """The comparison above sees one ulp and a sign of zero (it can fail)."""
    a = np.array([1.0, 0.0])
    b = a.copy()
    b[0] = np.nextafter(1.0, 2.0)
    assert not _same_bits(a, b)
    assert not _same_bits(a, np.array([1.0, -0.0]))


@needs_kernels
def test_the_pass_decides_the_same_without_them(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whole passes (greedy policy; default and polish configs): the same checks, values and
    plan with the compiled loops and with the Python code."""
    polish = PassConfig(polish_steps=4, batch_moves=False)
    for day in generated_days([(10, 3), (25, 4), (40, 6)], range(90, 95)):
        for config in (PassConfig(), polish):
            fast = run_pass(day.problem, day.assignment, GreedyPolicy(), config)
            with monkeypatch.context() as m:
                m.setattr(routes_module, "compiled", None)
                slow = run_pass(day.problem, day.assignment, GreedyPolicy(), config)
            assert fast.checked == slow.checked
            assert np.array_equal(fast.assignment, slow.assignment)


@needs_kernels
def test_candidates_equal_the_python_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    """`moves.generate`'s moves and swaps on the plans of real passes, every filter and swap
    window the pass uses: the same candidates in the same order, the same terms."""
    import optimizer.moves as moves_module

    policy = _Keep()
    for day in generated_days([(10, 3), (12, 4), (25, 4), (40, 6)], range(120, 140)):
        run_pass(day.problem, day.assignment, policy, PassConfig())
        policy.states.append(SearchState(day.problem, day.assignment))
    seen = 0
    for state in policy.states:
        for keep in ("improving", "not_worse", "same", "any"):
            for balancing in (False, True):
                for window in (6, 12):
                    args = {"balancing_only": balancing, "swap_window": window, "keep": keep}
                    fast = state.candidates(**args)  # type: ignore[arg-type]
                    with monkeypatch.context() as m:
                        m.setattr(moves_module, "compiled", None)
                        slow = state.candidates(**args)  # type: ignore[arg-type]
                    for name in Candidates.__dataclass_fields__:
                        a, b = getattr(fast, name), getattr(slow, name)
                        assert a.dtype == b.dtype and a.tolist() == b.tolist(), name
                    seen += len(fast)
    assert seen > 10_000


@needs_kernels
def test_insertions_with_skips_equal_the_python_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    """`RouteArrays.insertion` and `km_insertion` with and without a ride leaving (`skip`):
    every booking into every route, skipping nothing, each ride of that route, or another."""
    policy = _Keep()
    for day in generated_days([(10, 3), (25, 4), (60, 8), (150, 18)], range(140, 150)):
        run_pass(day.problem, day.assignment, policy, PassConfig())
    rng = np.random.default_rng(7)
    rows = 0
    for state in policy.states[::3]:
        arrays = state.route_arrays()
        n, k = state.problem.n_bookings, state.problem.n_drivers
        b = np.repeat(np.arange(n, dtype=np.int64), k)
        d = np.tile(np.arange(k, dtype=np.int64), n)
        on_route = arrays.booking[np.minimum(arrays.position[b] + 1, arrays.size)]
        near = arrays.booking[rng.integers(0, max(arrays.size, 1), len(b))]
        for skip in (None, np.full(len(b), -1), on_route, near, np.where(d % 2 == 0, near, -1)):
            fast = arrays._insert_compiled(b, d, skip)
            assert fast is not None
            with monkeypatch.context() as m:
                m.setattr(routes_module, "compiled", None)
                slow = (*arrays._insertion(b, d, skip), arrays._km_insertion(b, d, skip))
            for x, y in zip(fast, slow, strict=True):
                assert _same_bits(x, y)
            rows += len(b)
    assert rows > 100_000


class _Features(GreedyPolicy):
    """Greedy ranking that builds every plan's features compiled and in Python (row by row
    and vectorised) and keeps all three."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.monkeypatch = monkeypatch
        self.triples: list[tuple[npt.NDArray[np.float32], ...]] = []

    def score(self, state: SearchState, candidates: Candidates) -> npt.NDArray[np.float64]:
        import optimizer.dqn.features as features

        fast = features.candidate_features(state, candidates)
        with self.monkeypatch.context() as m:
            m.setattr(features, "compiled", None)
            small = features.candidate_features(state, candidates)
            m.setattr(features, "_SMALL", -1)
            vector = features.candidate_features(state, candidates)
        self.triples.append((fast, small, vector))
        return super().score(state, candidates)


@needs_kernels
def test_features_equal_the_python_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    """The DQN's candidate features on the plans of real passes (moves, swaps in the polish,
    chains; late and locked rides): the compiled rows equal both Python builds in every bit."""
    policy = _Features(monkeypatch)
    polish = PassConfig(polish_steps=4, batch_moves=False)
    for day in generated_days([(10, 3), (12, 4), (25, 4), (60, 8)], range(60, 72)):
        for config in (PassConfig(), polish):
            run_pass(day.problem, day.assignment, policy, config)
        state = SearchState(day.problem, day.assignment)
        for chains in (False, True):
            policy.score(state, state.candidates(chains=chains))
    assert sum(len(t[0]) for t in policy.triples) > 2000
    for fast, small, vector in policy.triples:
        assert _same_bits(fast, small) and _same_bits(fast, vector)


def _schedule_bits(s: object) -> tuple[object, ...]:
    """A schedule's fields with each float as its hex (so -0.0 and 0.0 differ)."""
    from optimizer.feasibility import RouteSchedule

    assert isinstance(s, RouteSchedule)
    return (
        s.driver,
        s.bookings,
        tuple(x.hex() for x in s.pickup_at),
        tuple(x.hex() for x in s.dropoff_at),
        s.workload_minutes.hex(),
        s.deadhead_km.hex(),
        s.lateness_minutes.hex(),
        s.violations,
        tuple(type(x) for x in (*s.pickup_at, s.workload_minutes)),
    )


@needs_kernels
def test_schedules_equal_the_python_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    """`schedule_route` on random routes of 0 to 40 rides (most break a window, the shift, a
    capability or a ride cap): the same times, sums and violations, bit for bit."""
    import optimizer.feasibility as feasibility

    rng = np.random.default_rng(11)
    seen: set[str] = set()
    for day in generated_days([(10, 3), (40, 6), (150, 18)], range(160, 166)):
        p = day.problem
        for _ in range(60):
            size = int(rng.integers(0, min(p.n_bookings, 40) + 1))
            chosen = rng.choice(p.n_bookings, size, replace=False)
            route = sorted(chosen.tolist(), key=lambda b: int(p.order[b]))
            driver = int(rng.integers(0, p.n_drivers))
            fast = feasibility.schedule_route(p, driver, route)
            with monkeypatch.context() as m:
                m.setattr(feasibility, "compiled", None)
                slow = feasibility.schedule_route(p, driver, route)
            assert _schedule_bits(fast) == _schedule_bits(slow)
            seen |= {reason for reason, _ in fast.violations}
            assert (
                feasibility.schedule_route(p, driver, tuple(np.array(route, dtype=np.int64)))
                == fast
            )
    assert seen == {"capability", "driver_limit", "priority", "shift", "time_window"}


_DIGEST = """
import hashlib, sys
from optimizer import kernels
from optimizer.dqn.days import generated_days
from optimizer.serving import default_provider
from optimizer.swap_pass import PassConfig, run_pass
from pathlib import Path
policy = default_provider(Path(sys.argv[1])).policy()
h = hashlib.sha256()
for day in generated_days([(10, 3), (25, 4)], range(200, 212)):
    result = run_pass(day.problem, day.assignment, policy, PassConfig())
    h.update(repr((result.checked, result.assignment.tolist(), result.stop_reason)).encode())
print(kernels.describe(), h.hexdigest())
"""


def _digest(tmp_path: Path, pure: bool) -> tuple[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DISPATCH_RL_PURE_PYTHON"}
    if pure:
        env["DISPATCH_RL_PURE_PYTHON"] = "1"
    out = (
        subprocess.run(
            [sys.executable, "-c", _DIGEST, str(tmp_path)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        .stdout.splitlines()[-1]
        .split()
    )  # fmt: skip (logs go to stdout before it)
    return " ".join(out[:-1]), out[-1]


def test_pure_python_env_decides_the_same(tmp_path: Path) -> None:
    """`DISPATCH_RL_PURE_PYTHON=1` runs the Python code (and says so), and the served DQN's
    passes (audit trails, plans, stop reasons) are the same as with the default path."""
    path, pure = _digest(tmp_path, True)
    assert path == "python: turned off by DISPATCH_RL_PURE_PYTHON"
    default_path, default = _digest(tmp_path, False)
    assert default_path == describe()
    assert pure == default


def test_health_says_which_loops_serve(tmp_path: Path) -> None:
    """The served model's status (the worker's health) names the path of the pass's loops."""
    from optimizer.serving import default_provider

    assert default_provider(tmp_path).status()["pass_loops"] == describe()  # type: ignore[attr-defined]


@needs_kernels
def test_the_km_beam_equals_the_numpy_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """`km_repair.km_replan` with `_kernels.replan`, with `_kernels.beam` alone and with its
    numpy beam: the same move and work, for pairs, triples and fives, narrow and wide beams,
    improving and annealing rounds, on generated and patient days (where moves exist and
    where none do)."""
    import optimizer.km_repair as km_module
    from optimizer.objective import Objective
    from optimizer.patient_transport import PATIENT_RULES, patient_day
    from optimizer.problem import Problem

    days = [(d.problem, d.assignment) for d in generated_days([(40, 6), (60, 8)], range(90, 92))]
    days += [Problem.from_event(patient_day(60, 8, s), rules=PATIENT_RULES) for s in (5, 6)]
    objective = Objective()
    moves = 0
    for problem, upstream in days:
        local = run_pass(problem, upstream, GreedyPolicy(), PassConfig(rr_iterations=0))
        state = SearchState(problem, local.assignment, SearchState(problem, upstream).deadline)
        subsets = km_module.km_subsets(state, 2)[:4] + km_module.km_subsets(state, 3)[:3]
        subsets += km_module.km_subsets(state, 5)[:2]
        for drivers in subsets:
            for width, worse in ((8, 0.0), (48, 0.0), (96, 0.0), (48, 3.0)):
                fast = km_module.km_replan(state, drivers, objective, width, 0.5, worse)
                with monkeypatch.context() as m:
                    # a build with the beam's loop only (before `replan`): `_beam_compiled`
                    m.setattr(km_module, "compiled", SimpleNamespace(beam=compiled.beam))
                    loop = km_module.km_replan(state, drivers, objective, width, 0.5, worse)
                    m.setattr(km_module, "compiled", None)
                    slow = km_module.km_replan(state, drivers, objective, width, 0.5, worse)
                assert fast == loop == slow, (drivers, width, worse)
                moves += fast[0] is not None
    assert moves > 0


@needs_kernels
def test_the_whole_km_replan_and_bound_equal_the_numpy_ones(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`_kernels.replan` (set-up, beam and choice in C) against `km_repair`'s numpy code: the
    same move, work and bound to the last bit, on the working plans of ruin and recreate
    (100x13 days, random subsets of 2-5 drivers, improving and annealing rounds)."""
    import optimizer.km_repair as km_module
    from optimizer.objective import Objective
    from optimizer.patient_transport import PATIENT_RULES, patient_day
    from optimizer.problem import Problem

    days = [(d.problem, d.assignment) for d in generated_days([(100, 13)], range(93, 94))]
    days += [Problem.from_event(patient_day(100, 13, 8), rules=PATIENT_RULES)]
    objective = Objective()
    rng = np.random.default_rng(0)
    moves = 0
    for problem, upstream in days:
        state = SearchState(problem, upstream)
        for _ in range(60):
            size = int(rng.integers(2, 6))
            drivers = tuple(sorted(rng.choice(problem.n_drivers, size, replace=False).tolist()))
            worse = float(rng.choice([0.0, 0.0, 2.5]))
            width = int(rng.choice([8, 48]))
            fast = km_module.km_replan(state, drivers, objective, width, 0.5, worse)
            fast_bound = km_module.km_bound(state, drivers, objective)
            with monkeypatch.context() as m:
                m.setattr(km_module, "compiled", None)
                slow = km_module.km_replan(state, drivers, objective, width, 0.5, worse)
                slow_bound = km_module.km_bound(state, drivers, objective)
            assert fast == slow, (drivers, width, worse)
            assert fast_bound == slow_bound, drivers
            if fast[0] is not None:
                moves += 1
                trial = state.trial(fast[0])
                if trial.value is not None and trial.violation is None:
                    state.apply(trial)  # walk on, as the search does
    assert moves > 0
