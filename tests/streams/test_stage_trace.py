"""streams/stage_trace.py: per-message stage stamps for bench/stream_throughput.py --stages."""

from __future__ import annotations

import importlib
import json
import os
from pathlib import Path

import pytest

from streams import stage_trace


def test_stamps_are_written_per_key_and_stage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With DISPATCH_RL_STAGE_TRACE set, each key's stages land in `<prefix>.<pid>`."""
    monkeypatch.setenv(stage_trace.ENV, str(tmp_path / "st"))
    trace = importlib.reload(stage_trace)
    try:
        trace.mark(b"d-1", "agent")
        trace.mark_all([b"d-1", b"d-2", None], "prep0")
        trace.flush()
        lines = (tmp_path / f"st.{os.getpid()}").read_text().splitlines()
        docs = {d["key"]: d for d in map(json.loads, lines)}
        assert set(docs) == {"d-1", "d-2"}
        assert docs["d-1"]["agent"] <= docs["d-1"]["prep0"]
        assert set(docs["d-2"]) == {"key", "prep0"}
    finally:
        monkeypatch.delenv(stage_trace.ENV)
        importlib.reload(stage_trace)


def test_off_by_default_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(stage_trace.ENV, raising=False)
    trace = importlib.reload(stage_trace)
    monkeypatch.chdir(tmp_path)
    trace.mark(b"d-1", "agent")
    trace.flush()
    assert not trace.enabled() and list(tmp_path.iterdir()) == []
