"""Audits built with a dispatch's shared `AuditMemo` are the bytes built without one."""

from __future__ import annotations

from datetime import UTC, datetime

from optimizer.adapter import AuditMemo, swap_audit
from optimizer.generate import generate_day
from optimizer.moves import Move, Step
from optimizer.policy import GreedyPolicy
from optimizer.problem import Problem
from optimizer.swap_pass import CheckedMove, run_pass

_AT = datetime(2026, 1, 1, tzinfo=UTC)


def test_memo_audits_equal_fresh_ones_byte_for_byte() -> None:
    """Every audit of real passes (steps and vectors recurring) encodes the same with a memo."""
    checked = 0
    for seed in range(5):
        event = generate_day(25, 4, seed=300 + seed)
        problem, upstream = Problem.from_event(event)
        result = run_pass(problem, upstream, GreedyPolicy())
        memo = AuditMemo()
        for c in result.checked:
            fresh = swap_audit("ev", event, problem, c, "v", _AT)
            shared = swap_audit("ev", event, problem, c, "v", _AT, memo)
            assert shared.model_dump_json() == fresh.model_dump_json()
            checked += 1
    assert checked > 50 and memo.steps and memo.vectors


def test_equal_vectors_of_another_sign_are_not_confused() -> None:
    """0.0 == -0.0, but the wire writes them apart: a memo keyed by value would not."""
    event = generate_day(10, 3, seed=1)
    problem, _ = Problem.from_event(event)
    move = Move("move", (Step(0, 0, 1),))
    memo = AuditMemo()
    texts = []
    for zero in (0.0, -0.0):
        value = (1.0, 2.0, zero, 0.0, 0.0)
        c = CheckedMove(0, move, 0.5, "rejected", "no_improvement", "", value, value, 0.0)
        texts.append(swap_audit("ev", event, problem, c, "v", _AT, memo).model_dump_json())
    assert '"objective_before":[1.0,2.0,0.0,' in texts[0]
    assert '"objective_before":[1.0,2.0,-0.0,' in texts[1]
