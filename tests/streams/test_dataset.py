"""The dataset writer's files: idempotent by dispatch_id, torn tails cut, one writer per dir."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from optimizer.dispatch import optimize_event
from optimizer.generate import generate_day
from optimizer.policy import GreedyPolicy
from schemas import HeuristicDone
from streams.dataset import (
    DatasetLockedError,
    DatasetWriter,
    consumer_group,
    dataset_stats,
    iter_records,
    load_days,
    lock_holder,
    read_dataset_id,
)
from streams.settings import Settings


def test_each_dispatch_is_written_once_per_kind(tmp_path: Path, seed_day: HeuristicDone) -> None:
    """A second add of the same dispatch (input or outcome) is skipped."""
    outcome = optimize_event(seed_day, GreedyPolicy()).optimized
    with DatasetWriter(tmp_path) as w:
        assert w.add("heuristic_done", seed_day)
        assert not w.add("heuristic_done", seed_day)
        assert w.add("optimized", outcome)
        assert not w.add("optimized", outcome)
    records = list(iter_records(tmp_path))
    assert [r["kind"] for r in records] == ["heuristic_done", "optimized"]
    assert (tmp_path / f"{seed_day.service_date.isoformat()}.jsonl").is_file()


def test_index_is_rebuilt_from_the_files_on_restart(
    tmp_path: Path, seed_day: HeuristicDone
) -> None:
    """A new writer on the same directory knows what the last one wrote."""
    with DatasetWriter(tmp_path) as w:
        w.add("heuristic_done", seed_day)
    with DatasetWriter(tmp_path) as w:
        assert ("heuristic_done", seed_day.dispatch_id) in w.written
        assert not w.add("heuristic_done", seed_day)
    assert len(list(iter_records(tmp_path))) == 1


def test_one_file_per_service_date(tmp_path: Path) -> None:
    """Days of different service dates go to different files."""
    from datetime import date

    a = generate_day(10, 3, 1, service_date=date(2026, 1, 5))
    b = generate_day(10, 3, 2, service_date=date(2026, 1, 6))
    with DatasetWriter(tmp_path) as w:
        w.add("heuristic_done", a)
        w.add("heuristic_done", b)
    assert sorted(p.name for p in tmp_path.glob("*.jsonl")) == [
        "2026-01-05.jsonl",
        "2026-01-06.jsonl",
    ]
    assert [d.dispatch_id for d in load_days(tmp_path)] == [a.dispatch_id, b.dispatch_id]


def test_torn_last_line_is_cut_at_start(tmp_path: Path, seed_day: HeuristicDone) -> None:
    """Half a record left by a crash is dropped, and the dispatch can be written again."""
    with DatasetWriter(tmp_path) as w:
        w.add("heuristic_done", seed_day)
    path = next(tmp_path.glob("*.jsonl"))
    good = path.read_bytes()
    path.write_bytes(good + b'{"kind":"optimized","dispatch_id":"x","ev')
    with DatasetWriter(tmp_path) as w:
        assert ("optimized", "x") not in w.written
    assert path.read_bytes() == good


def test_second_writer_on_the_same_directory_is_refused(tmp_path: Path) -> None:
    """An exclusive lock keeps two writers from interleaving records."""
    with DatasetWriter(tmp_path), pytest.raises(DatasetLockedError) as refused:
        DatasetWriter(tmp_path).open()
    assert refused.value.pid == os.getpid()  # the holder's pid, for the operator's log line


def test_lock_names_the_holding_process_and_frees_when_it_dies(tmp_path: Path) -> None:
    """A writer in another process: a second writer is refused with that process's pid, and
    gets the directory once the holder is killed (the kernel drops a dead process's flock)."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from streams.dataset import DatasetWriter; "
            f"w = DatasetWriter({str(tmp_path)!r}).open(); print('locked', flush=True); "
            "time.sleep(120)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert any(ln.strip() == "locked" for ln in iter(holder.stdout.readline, ""))
        assert lock_holder(tmp_path) == holder.pid
        with pytest.raises(DatasetLockedError) as refused:
            DatasetWriter(tmp_path).open()
        assert refused.value.pid == holder.pid
    finally:
        holder.kill()
        holder.wait()
    with DatasetWriter(tmp_path):
        assert lock_holder(tmp_path) == os.getpid()


def test_stats_count_dispatches_outcomes_and_gaps(tmp_path: Path, seed_day: HeuristicDone) -> None:
    """Stats match what was written; lines are printable."""
    outcome = optimize_event(seed_day, GreedyPolicy()).optimized
    with DatasetWriter(tmp_path) as w:
        w.add("heuristic_done", seed_day)
        w.add("optimized", outcome)
    stats = dataset_stats(tmp_path)
    assert (stats.files, stats.dispatches, stats.outcomes, stats.matched) == (1, 1, 1, 1)
    assert stats.gap_before == [3] and stats.gap_after == [1]
    assert stats.statuses == {"optimized": 1}
    assert any("3.00 -> 1.00" in line for line in stats.lines())


def test_records_are_json_lines_with_the_event(tmp_path: Path, seed_day: HeuristicDone) -> None:
    """Each line is one JSON object carrying the validated event verbatim."""
    with DatasetWriter(tmp_path) as w:
        w.add("heuristic_done", seed_day, {"topic": "t", "partition": 0, "offset": 5})
    [line] = next(tmp_path.glob("*.jsonl")).read_text().splitlines()
    rec = json.loads(line)
    assert rec["source"] == {"topic": "t", "partition": 0, "offset": 5}
    assert HeuristicDone.model_validate(rec["event"]) == seed_day


def test_each_directory_has_an_id_that_names_its_group(tmp_path: Path) -> None:
    """A directory's id is made once (by the first writer) and kept; another directory (another
    host's) gets another one, hence another consumer group: each records every dispatch."""
    assert read_dataset_id(tmp_path / "a") is None
    with DatasetWriter(tmp_path / "a") as w:
        id_a = w.dataset_id
    with DatasetWriter(tmp_path / "a") as w:
        assert w.dataset_id == id_a == read_dataset_id(tmp_path / "a")
    with DatasetWriter(tmp_path / "b") as w:
        assert w.dataset_id != id_a
    assert consumer_group(Settings(), id_a) == f"dispatch-rl-dataset-{id_a[:12]}"
    assert consumer_group(Settings(dataset_group="mine"), id_a) == "mine"
