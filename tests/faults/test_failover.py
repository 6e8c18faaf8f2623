"""Two workers on one host, one killed with SIGKILL: the survivor takes its partitions over
within 15 s, nothing is lost, and it takes the dataset writer over too."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.faults.scenarios import failover_scenario

pytestmark = [pytest.mark.faults, pytest.mark.kafka, pytest.mark.timeout(900)]

TAKEOVER_LIMIT_S = 15.0


async def test_survivor_takes_over_within_15_s(kafka_bootstrap: str, tmp_path: Path) -> None:
    """Days at 30/s; kill -9 of the worker holding the dataset directory: the partitions it
    held are served again within 15 s of the kill (measured from the output topic's
    timestamps), every partition answers again, and every day is answered."""
    f = await failover_scenario(kafka_bootstrap, tmp_path)
    per = ", ".join(f"p{p} {s:.1f} s" for p, s in f.per_partition_s.items())
    print(
        f"\n[failover] takeover {f.takeover_s:.1f} s, all partitions {f.all_served_s:.1f} s "
        f"({per}; orphaned {f.orphaned}); session timeout "
        f"{f.session_timeout_s:g} s; lost {len(f.output.lost)} of {f.days}; "
        f"duplicates {f.output.duplicates}"
    )
    assert len(f.per_partition_s) == 3  # every partition was served after the kill
    assert f.orphaned  # the killed worker held partitions: there was something to take over
    assert f.takeover_s <= TAKEOVER_LIMIT_S
    assert f.output.lost == [] and f.output.inconsistent == []
    assert f.survivor_alive and f.survivor_tracebacks == 0
    assert f.dataset_taken_over
