"""The offline CLI runs end to end on real files (CleanRL-style smoke tests)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from schemas import HeuristicDone, Optimized, SwapAudit
from streams.cli import main

SEED = Path(__file__).parents[2] / "examples" / "seed-day.json"


def test_optimize_prints_bars_and_trail(capsys: pytest.CaptureFixture[str]) -> None:
    """`optimize FILE` shows before/after bars, the gap and the audit trail."""
    assert main(["optimize", str(SEED), "--policy", "greedy"]) == 0
    out = capsys.readouterr().out
    assert "before (heuristic)" in out and "after (optimized)" in out
    assert "gap      :   3" in out and "gap      :   1" in out
    assert "audit trail:" in out and "accepted improves" in out


def test_optimize_json_and_audit_out(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`--json` prints a valid Optimized event; `--audit-out` writes valid SwapAudit lines."""
    audits = tmp_path / "audits.jsonl"
    assert (
        main(["optimize", str(SEED), "--json", "--policy", "greedy", "--audit-out", str(audits)])
        == 0
    )
    event = Optimized.model_validate_json(capsys.readouterr().out)
    assert event.metrics.after.gap == 1
    lines = audits.read_text().splitlines()
    assert len(lines) == event.moves_proposed
    assert all(SwapAudit.model_validate_json(line) for line in lines)


def test_optimize_rejects_invalid_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A broken day is a clear error naming the field, exit code 2."""
    doc = json.loads(SEED.read_text())
    doc["assignments"][0]["booking_id"] = "ghost"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    assert main(["optimize", str(bad)]) == 2
    assert "assignments[0].booking_id" in capsys.readouterr().err


def test_generate_darp_and_exact(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """generate and darp write valid days; exact prints a proven gap as JSON."""
    gen = tmp_path / "gen.json"
    assert (
        main(["generate", "--bookings", "12", "--drivers", "3", "--seed", "5", "--out", str(gen)])
        == 0
    )
    assert len(HeuristicDone.model_validate_json(gen.read_text()).bookings) == 12
    darp = tmp_path / "a2-16.json"
    assert main(["darp", "a2-16", "--out", str(darp)]) == 0
    assert HeuristicDone.model_validate_json(darp.read_text()).travel_time_matrix is not None
    capsys.readouterr()
    assert main(["exact", str(SEED), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["gap"] == 1 and summary["proven_optimal"] is True


def test_exact_lexicographic_reports_the_least_deadhead(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`exact --lexicographic --json`: the gap, then the proven least deadhead at that gap."""
    capsys.readouterr()
    assert main(["exact", str(SEED), "--lexicographic", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    lex = summary["lexicographic"]
    assert summary["gap"] == 1 and lex["proven_optimal"] is True and lex["verified"] is True
    assert lex["min_deadhead_km"] > 0
