"""streams/stage_trace.py: per-message stage stamps for bench/stream_throughput.py --stages."""

from __future__ import annotations

import gc
import importlib
import json
import os
import time
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
        gc.callbacks[:] = [c for c in gc.callbacks if c.__module__ != "streams.stage_trace"]
        monkeypatch.delenv(stage_trace.ENV)
        importlib.reload(stage_trace)


def test_off_by_default_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(stage_trace.ENV, raising=False)
    trace = importlib.reload(stage_trace)
    monkeypatch.chdir(tmp_path)
    trace.mark(b"d-1", "agent")
    trace.flush()
    assert not trace.enabled() and list(tmp_path.iterdir()) == []


def test_collections_are_recorded_with_their_generation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A traced process writes its garbage collections as `gc` lines (start, seconds, gen)."""
    monkeypatch.setenv(stage_trace.ENV, str(tmp_path / "st"))
    trace = importlib.reload(stage_trace)
    try:
        monkeypatch.setattr(trace, "_GC_MIN_SECONDS", 0.0)
        before = time.time()
        gc.collect(2)
        assert [g for _, _, g in trace.collections()] == [2]
        trace.flush()
        [doc] = map(json.loads, (tmp_path / f"st.{os.getpid()}").read_text().splitlines())
        assert doc["generation"] == 2 and before <= doc["gc"] <= time.time()
        assert 0 <= doc["seconds"] < 60 and trace.collections() == []
    finally:
        gc.callbacks[:] = [c for c in gc.callbacks if c.__module__ != "streams.stage_trace"]
        monkeypatch.delenv(stage_trace.ENV)
        importlib.reload(stage_trace)
