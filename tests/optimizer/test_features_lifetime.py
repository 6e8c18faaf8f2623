"""The DQN's per-day feature table lives as long as its day's problem, no longer."""

from __future__ import annotations

import gc

from optimizer.dqn.days import generated_days
from optimizer.dqn.features import _booking_features
from optimizer.problem import Problem
from optimizer.serving import default_provider
from optimizer.swap_pass import PassConfig, SearchState, run_pass


def _live_problems() -> int:
    gc.collect()
    return sum(type(o) is Problem for o in gc.get_objects())  # (isinstance asks torch proxies)


def test_finished_days_are_not_kept_alive(tmp_path: object) -> None:
    """After 12 passes of the served DQN on days no one holds any more, none of their
    problems is alive (a cache of finished days' tables would keep them)."""
    from pathlib import Path

    policy = default_provider(Path(str(tmp_path))).policy()
    assert "dqn" in policy.version  # the features run only with the learned policy

    def one_day(seed: int) -> None:
        day = next(iter(generated_days([(10, 3)], range(seed, seed + 1))))
        run_pass(day.problem, day.assignment, policy, PassConfig())

    one_day(300)  # first-use tables of the modules
    before = _live_problems()
    for seed in range(301, 313):
        one_day(seed)
    assert _live_problems() == before


def test_the_table_is_built_once_per_problem() -> None:
    """Two states of one day share the table (built on the first scoring)."""
    day = next(iter(generated_days([(10, 3)], range(320, 321))))
    first = _booking_features(SearchState(day.problem, day.assignment))
    assert _booking_features(SearchState(day.problem, day.assignment)) is first
