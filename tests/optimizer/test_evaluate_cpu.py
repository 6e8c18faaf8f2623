"""The evaluation's pass CPU time (what the promotion gate compares) is the pass's own: other
threads of the calling process, busy at the same time, are not charged to it."""

from __future__ import annotations

import threading

import numpy as np

from optimizer.dqn.days import generated_days
from optimizer.evaluate import evaluate_days
from optimizer.pass_config import PassConfig
from optimizer.policy import GreedyPolicy


def test_pass_cpu_excludes_other_threads_of_the_process() -> None:
    days = generated_days([(40, 6)], range(3))
    stop = threading.Event()

    def busy() -> None:  # numpy releases the GIL in a large product: real parallel CPU
        a = np.random.default_rng(0).random((300, 300))
        while not stop.is_set():
            a @ a

    spinner = threading.Thread(target=busy, daemon=True)
    spinner.start()
    try:
        rows = evaluate_days(days, {"greedy": GreedyPolicy()}, PassConfig(), exact=False)
    finally:
        stop.set()
        spinner.join()
    outcomes = [row.policies["greedy"] for row in rows]
    assert len(outcomes) == 3
    for o in outcomes:
        # one thread cannot spend more CPU than the wall time it ran; a process-wide clock
        # would add the spinner's CPU (up to one more core) during the pass
        assert o.cpu_ms is not None and 0 < o.cpu_ms <= o.latency_ms + 1.0


def test_the_callers_heap_is_frozen_while_passes_run_and_released_after() -> None:
    """A full collection inside a measured pass scans only that pass's objects: the caller's
    heap (here a large list) is out of the collector's generations during the evaluation."""
    import gc

    heap = [[i] for i in range(100_000)]
    seen: list[int] = []
    evaluate_days(
        generated_days([(10, 3)], range(2)),
        {"greedy": GreedyPolicy()},
        PassConfig(),
        exact=False,
        on_day=lambda _row: seen.append(gc.get_freeze_count()),
    )
    assert len(seen) == 2 and min(seen) >= len(heap)
    assert gc.get_freeze_count() == 0
