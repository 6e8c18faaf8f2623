"""The auditor's replay on a real broker: the swap log reproduces every published outcome."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from optimizer.generate import generate_day
from optimizer.serving import StaticPolicyProvider
from schemas import HeuristicDone
from streams.audit import fetch_dispatch, verify
from streams.worker import collect_optimized, end_offsets, keyed, publish_events, running_worker
from tests.streams.conftest import cli_env, run_cli, unique_settings

pytestmark = pytest.mark.kafka


async def test_audit_replays_each_dispatch_and_catches_a_gap_in_the_log(
    kafka_bootstrap: str, tmp_path: Path, seed_day: HeuristicDone
) -> None:
    """Each dispatch verifies from the topics alone; a log missing one accepted move fails."""
    settings = unique_settings(kafka_bootstrap, tmp_path)
    days = [seed_day, generate_day(30, 5, 11), generate_day(60, 8, 12)]
    async with running_worker(settings, dataset=False, provider=StaticPolicyProvider()):
        start = await end_offsets(settings, settings.topic_optimized)
        await publish_events(settings, keyed(days))
        outs = await collect_optimized(settings, {d.dispatch_id for d in days}, start, 120)
    assert len(outs) == len(days)
    for day in days:
        record = await fetch_dispatch(settings, day.dispatch_id)
        assert [e.event_id for e in record.inputs] == [day.event_id]
        verdict = verify(record)
        assert verdict.ok, verdict.problems
        assert verdict.accepted == outs[day.dispatch_id].moves_accepted >= 1
    # Tamper: drop the first accepted move from the log; the verdict must say so.
    record = await fetch_dispatch(settings, days[1].dispatch_id)
    first = next(a for a in record.audits if a.decision == "accepted")
    tampered = replace(record, audits=[a for a in record.audits if a is not first])
    verdict = verify(tampered)
    assert not verdict.ok
    assert any("incomplete" in p or "replay" in p for p in verdict.problems)


async def test_audit_command_prints_the_trail_and_the_verdict(
    kafka_bootstrap: str, tmp_path: Path, seed_day: HeuristicDone
) -> None:
    """`dispatch-rl audit ID` shows the bars and the trail and exits 0 on a verified replay."""
    settings = unique_settings(kafka_bootstrap, tmp_path)
    async with running_worker(settings, dataset=False, provider=StaticPolicyProvider()):
        start = await end_offsets(settings, settings.topic_optimized)
        await publish_events(settings, keyed([seed_day]))
        await collect_optimized(settings, {seed_day.dispatch_id}, start, 60)
    env = cli_env(settings)

    code, out, err = await run_cli(env, "audit", seed_day.dispatch_id)
    assert code == 0, out + err
    assert "audit trail:" in out and "replay verified" in out
    code, out, err = await run_cli(env, "audit", "no-such-dispatch")
    assert code == 2
