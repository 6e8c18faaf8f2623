"""`train` and `evaluate` end to end through their CLI handlers, on tiny budgets."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from optimizer.dispatch import DispatchConfig
from optimizer.learn_cli import add_commands
from optimizer.registry import ModelRegistry
from optimizer.swap_pass import PassConfig


def run(argv: list[str], tmp_path: Path) -> int:
    parser = argparse.ArgumentParser()
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    settings = SimpleNamespace(
        model_dir=tmp_path / "models",
        dataset_dir=tmp_path / "dataset",
        dispatch_config=DispatchConfig,
    )
    code: int = args.handler(args, settings)
    return code


def last_json(out: str) -> dict:
    return json.loads(out[out.rindex("\n{\n") + 1 :] if "\n{\n" in out else out)


def test_train_registers_then_evaluate_reports(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """train -> a registry version with metadata; evaluate -> report, plots, JSON summary."""
    dataset = tmp_path / "dataset"
    dataset.mkdir()
    from optimizer.generate import generate_day

    day = generate_day(14, 3, seed=4242)
    lines = [
        json.dumps(
            {
                "kind": "heuristic_done",
                "dispatch_id": day.dispatch_id,
                "event": day.model_dump(mode="json"),
            }
        ),
        json.dumps({"kind": "optimized", "dispatch_id": day.dispatch_id, "event": {}}),
        "{torn line",
    ]
    (dataset / "2026-01-05.jsonl").write_text("\n".join(lines) + "\n")
    assert (
        run(
            [
                "train",
                "--episodes",
                "20",
                "--generated",
                "12",
                "--patient",
                "6",
                "--no-cordeau",
                "--no-progress",
                "--json",
            ],
            tmp_path,
        )
        == 0
    )
    summary = last_json(capsys.readouterr().out)
    version = summary["version"]
    assert summary["sources"].get("dataset") == 1 and summary["parameters"] > 0
    meta = ModelRegistry(tmp_path / "models").metadata(version)
    assert meta["training"]["data_fingerprint"] == summary["data_fingerprint"]
    assert "1 lines skipped" in meta["training"]["dataset"]

    out = tmp_path / "report"
    assert (
        run(
            [
                "evaluate",
                "--model",
                version,
                "--per-class",
                "1",
                "--kinds",
                "generated",
                "patient",
                "--no-latency",
                "--exact-time-limit",
                "2",
                "--out",
                str(out),
                "--json",
            ],
            tmp_path,
        )
        == 0
    )
    result = last_json(capsys.readouterr().out)
    assert result["model_version"] == version and result["days"] == 10
    assert result["sources"] == {"generated": 5, "patient": 5}
    assert result["methods"]["dqn"]["infeasible"] == 0
    assert result["methods"]["greedy"]["infeasible"] == 0
    assert set(result["groups"]) >= {"generated 10x3", "patient 100x13"}
    for name in ("report.md", "quality.png", "summary.json"):
        assert (out / name).stat().st_size > 0
    report = (out / "report.md").read_text()
    # the header comes from this run: its model, its pass config, its held-out set
    assert version in report and f'"max_checks": {PassConfig().max_checks}' in report
    assert "patient transport" in report
    assert "| method | proven-optimum rate | mean gap excess | deadhead excess % |" in report
    stored = ModelRegistry(tmp_path / "models").metadata(version)["evaluation"]
    assert stored["days"] == 10 and "optimum_rate" in stored["dqn"]
    # training kept the operator's pass config, whole
    assert meta["training"]["config"]["pass_config"]["max_checks"] == PassConfig().max_checks
