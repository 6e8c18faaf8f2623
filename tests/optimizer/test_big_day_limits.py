"""Size limits of the pass's costlier parts (`PassConfig.lookahead_max_bookings`)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from optimizer.generate import generate_day
from optimizer.policy import GreedyPolicy
from optimizer.problem import Problem
from optimizer.swap_pass import PassConfig, run_pass


def test_days_above_the_lookahead_limit_skip_it() -> None:
    """10x3 seed 16 (9 assigned bookings) needs the lookahead for its optimum: with the limit
    below 9 the pass ends as one without a lookahead, with no plateau step audited; at the
    limit it still runs."""
    problem, upstream = Problem.from_event(generate_day(10, 3, 16))
    alone = PassConfig(cost_phase=False, ejection_depth=0, repair_tries=())
    flat = run_pass(problem, upstream, GreedyPolicy(), replace(alone, lookahead_depth=0))
    over = run_pass(problem, upstream, GreedyPolicy(), replace(alone, lookahead_max_bookings=8))
    at = run_pass(problem, upstream, GreedyPolicy(), replace(alone, lookahead_max_bookings=9))
    assert np.array_equal(over.assignment, flat.assignment) and over.after.gap == 2
    assert not [c for c in over.checked if "plateau" in c.detail]
    assert at.after.gap == 0
