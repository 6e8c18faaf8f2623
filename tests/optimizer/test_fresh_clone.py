"""`train` and `evaluate` work from a fresh copy of the package, with no sibling folders:
the Cordeau instances they need ship inside the package."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]


@pytest.mark.slow
def test_train_and_evaluate_from_a_bare_copy(tmp_path: Path) -> None:
    """Copy only the packages into an empty folder; train (with the Cordeau days) and
    evaluate (with the held-out Cordeau days) run there."""
    clone = tmp_path / "clone"
    clone.mkdir()
    for name in ("optimizer", "schemas", "streams"):
        shutil.copytree(ROOT / name, clone / name, ignore=shutil.ignore_patterns("__pycache__"))
    assert not (tmp_path / "shared").exists() and not (clone.parent.parent / "shared").is_dir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DISPATCH_RL_", "PYTHONPATH"))}
    env.update(
        PYTHONPATH=str(clone),
        DISPATCH_RL_MODEL_DIR=str(tmp_path / "models"),
        DISPATCH_RL_DATASET_DIR=str(tmp_path / "no-dataset"),
    )

    def cli(*argv: str) -> dict:  # type: ignore[type-arg]
        out = subprocess.run(
            [sys.executable, "-m", "streams.cli", *argv],
            cwd=clone,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert out.returncode == 0, out.stderr[-3000:]
        text = out.stdout
        return json.loads(text[text.index("{\n") :])  # type: ignore[no-any-return]

    trained = cli(
        "train", "--episodes", "10", "--generated", "8", "--patient", "4", "--no-progress", "--json"
    )
    assert trained["sources"].get("cordeau", 0) > 0
    report = tmp_path / "report"
    summary = cli(
        "evaluate", "--model", trained["version"], "--per-class", "1", "--kinds", "cordeau",
        "--no-exact", "--no-latency", "--out", str(report), "--json",
    )  # fmt: skip
    assert summary["sources"]["cordeau"] == 38
    assert (report / "report.md").exists()
