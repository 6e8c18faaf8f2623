"""kill -9 of the worker mid-stream: nothing lost, duplicates identical, dataset exact."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.faults.scenarios import kill9_scenario

pytestmark = [pytest.mark.faults, pytest.mark.kafka, pytest.mark.timeout(900)]


async def test_kill9_mid_stream_loses_nothing(kafka_bootstrap: str, tmp_path: Path) -> None:
    """2,000 days; SIGKILL after 600 Optimized; a restarted worker finishes: every dispatch has
    an Optimized, every repeat has the first one's event id and assignments, the dataset holds
    each input and outcome exactly once, and 20 sampled dispatches replay from their audits."""
    f = await kill9_scenario(kafka_bootstrap, tmp_path, days=2000, kill_after=600)
    print(
        f"\n[kill9] handled at kill {f.handled_at_kill}/{f.days}, lost {len(f.output.lost)}, "
        f"duplicate Optimized {f.output.duplicates}, recovery {f.recovery_s:.1f} s, "
        f"replay {f.replay_ok}/{f.replay_checked}"
    )
    assert f.handled_at_kill < f.days  # the kill really was mid-stream
    assert f.output.lost == []
    assert f.output.inconsistent == [] and f.output.extra == 0
    assert f.dataset_missing == 0 and f.dataset_repeated == 0
    assert f.replay_checked == 20 and f.replay_ok == 20, f.replay_problems[:5]
    assert f.tracebacks == 0 and f.restarted_exit == 0
