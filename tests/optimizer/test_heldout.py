"""The held-out set never meets training, and the gate compares exactly its metrics."""

from __future__ import annotations

import numpy as np

from optimizer.dqn.days import TRAIN_CORDEAU
from optimizer.gate import GATE_METRICS, compare
from optimizer.heldout import HeldOutSpec, group_of, heldout_cordeau, heldout_days, is_heldout_seed


def test_training_seeds_and_instances_never_meet_the_heldout_set() -> None:
    """Training's SeedSequence words that would fall in a held-out range are dropped, and the
    training Cordeau instances are not held out; the held-out days all are `is_heldout_seed`."""
    from optimizer.dqn.train import training_days

    days = training_days(1, generated=300, patient=100, cordeau=())
    for d in days:
        seed = int(d.name.rsplit("-s", 1)[1])
        assert not is_heldout_seed(seed)
    held = heldout_days(HeldOutSpec(per_class=2, kinds=("generated", "patient")))
    assert all(is_heldout_seed(int(d.name.rsplit("-s", 1)[1])) for d in held)
    assert not set(TRAIN_CORDEAU) & set(heldout_cordeau())
    assert {d.fingerprint for d in days}.isdisjoint({d.fingerprint for d in held})


def test_heldout_groups_by_source_and_class() -> None:
    """Each generated or patient day is grouped by its size class."""
    held = heldout_days(HeldOutSpec(per_class=1, classes=((10, 3), (25, 4))))
    groups = [group_of(d) for d in held]
    assert groups[:4] == ["generated 10x3", "patient 10x3", "generated 25x4", "patient 25x4"]
    assert set(groups[4:]) == {"cordeau"}


def test_gate_passes_equal_and_refuses_worse_on_each_metric() -> None:
    """Same figures pass; worse on any one metric (or one infeasible output) refuses."""
    champion = {
        "optimum_rate": 0.95,
        "mean_gap_excess": 0.05,
        "deadhead_excess_pct": 20.0,
        "lateness_minutes": 3.0,
        "infeasible": 0,
        "cpu_ms_p99": 10.0,
    }
    assert compare(champion, champion).passed
    worse = {
        "optimum_rate": 0.90,
        "mean_gap_excess": 0.2,
        "deadhead_excess_pct": 25.0,
        "lateness_minutes": 9.0,
        "infeasible": 1,
        "cpu_ms_p99": 400.0,
    }
    assert [m for m, _ in GATE_METRICS] == list(champion)
    for metric in champion:
        result = compare({**champion, metric: worse[metric]}, champion)
        assert not result.passed, metric
        assert [r.metric for r in result.rows if not r.passed] == [metric]
    better = {k: (v * 0.5 if k != "optimum_rate" else 1.0) for k, v in champion.items()}
    assert compare(better, champion).passed
    assert np.isclose(compare(better, champion).rows[0].candidate or 0, 1.0)
