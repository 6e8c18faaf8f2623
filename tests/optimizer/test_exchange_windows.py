"""The two ways `balanced_exchanges` scores stretches (flat numpy, per-pair loop) agree."""

from __future__ import annotations

import pytest

from optimizer import exchange
from optimizer.generate import generate_day
from optimizer.patient_transport import PATIENT_RULES, patient_day
from optimizer.problem import Problem, Rules
from optimizer.ride_model import tables
from optimizer.search_state import SearchState


@pytest.mark.parametrize(
    ("kind", "n", "k", "seed"),
    [
        ("patient", 10, 3, 1),
        ("patient", 60, 8, 2),
        ("patient", 300, 40, 3),
        ("generated", 25, 4, 4),
        ("generated", 100, 13, 5),
    ],
)
def test_flat_and_loop_windows_give_the_same_exchanges(
    kind: str, n: int, k: int, seed: int
) -> None:
    """Same stretches, same savings to the last bit, for every partner pair;
    and `balanced_exchanges` returns the same moves whichever path it takes."""
    if kind == "patient":
        problem, plan = Problem.from_event(patient_day(n, k, seed), rules=PATIENT_RULES)
    else:
        problem, plan = Problem.from_event(generate_day(n, k, seed), rules=Rules())
    state = SearchState(problem, plan)
    order = tables(problem).order
    pairs = exchange.partner_pairs(state)
    merged = [
        sorted(
            [(order[x], x, a) for x in state.routes[a]]
            + [(order[x], x, b) for x in state.routes[b]]
        )
        for a, b in pairs
    ]
    for max_rides in (2, 5, 6):
        flat = exchange._windows_flat(state, pairs, merged, max_rides)
        loop = exchange._windows_loop(state, pairs, merged, max_rides)
        assert [sorted(w) for w in flat] == [sorted(w) for w in loop]  # order: sorted later
    assert any(flat) or n <= 10  # non-vacuous beyond the smallest day
    saved = exchange.FLAT_FROM
    try:
        exchange.FLAT_FROM = 0
        a = exchange.balanced_exchanges(state, max_rides=5)
        exchange.FLAT_FROM = 10**9
        b = exchange.balanced_exchanges(state, max_rides=5)
    finally:
        exchange.FLAT_FROM = saved
    assert a == b
