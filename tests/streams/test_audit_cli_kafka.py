"""`dispatch-rl audit` with keys, on a real broker: from the audit store when one exists, from
a scan of the topics when none does, with the same answers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from optimizer.generate import generate_day
from optimizer.serving import StaticPolicyProvider
from schemas import HeuristicDone, SwapAudit
from streams.reader import TopicReader
from streams.store import sqlite_path
from streams.worker import keyed, publish_events, running_worker
from tests.streams.conftest import cli_env, group_caught_up, read_topic, run_cli, unique_settings

pytestmark = pytest.mark.kafka


async def test_audit_by_keys_reads_the_store_and_falls_back_to_the_topics(
    kafka_bootstrap: str, tmp_path: Path, seed_day: HeuristicDone
) -> None:
    """--booking/--driver/--date/--decision list the same moves from the store and from the
    topic scan; `audit ID` says where it read; nothing matching exits 2."""
    settings = unique_settings(kafka_bootstrap, tmp_path, store_enabled=True)
    day = generate_day(20, 4, 12)  # has rejected moves
    topics = (settings.topic_input, settings.topic_optimized, settings.topic_audit)
    async with running_worker(settings, dataset=False, provider=StaticPolicyProvider()):
        await publish_events(settings, keyed([seed_day, day]))
        await read_topic(settings, settings.topic_optimized, done=lambda r: len(r) >= 2)
        await group_caught_up(settings, settings.store_group, topics, timeout=60)
    async with TopicReader(settings, settings.topic_audit) as reader:
        audits = [SwapAudit.model_validate_json(r.value) async for r in reader.snapshot()]
    rejected = [a for a in audits if a.decision == "rejected"]
    assert rejected, "the generated day should have rejected moves"
    driver = rejected[0].steps[0].to_driver
    expected = {
        a.event_id
        for a in rejected
        if a.dispatch_id == day.dispatch_id
        and any(driver in (s.from_driver, s.to_driver) for s in a.steps)
    }
    env = cli_env(settings)
    assert sqlite_path(settings).is_file()
    args = ["audit", "--json", "--driver", driver, "--decision", "rejected",
            "--date", str(day.service_date)]  # fmt: skip
    code, out, err = await run_cli(env, *args)
    assert code == 0, err
    from_store = json.loads(out)
    assert {a["event_id"] for a in from_store["audits"]} == expected
    assert day.dispatch_id in {d["dispatch_id"] for d in from_store["dispatches"]}

    code, out, err = await run_cli(env, *args, "--topics")  # the fallback, forced
    assert code == 0, err
    from_topics = json.loads(out)
    assert from_topics["audits"] == from_store["audits"]
    no_store = env | {"DISPATCH_RL_DATA_DIR": str(tmp_path / "elsewhere")}
    code, out, err = await run_cli(no_store, *args)  # the fallback: no store file there
    assert code == 0, err
    assert json.loads(out)["audits"] == from_store["audits"]

    booking = rejected[0].steps[0].booking_id
    code, out, _ = await run_cli(env, "audit", "--booking", booking)
    assert code == 0 and f"dispatches matching booking={booking}: 1" in out
    assert rejected[0].dispatch_id in out

    code, out, _ = await run_cli(env, "audit", day.dispatch_id)
    assert code == 0 and "replay verified" in out and "(from store)" in out
    code, out, _ = await run_cli(env, "audit", day.dispatch_id, "--topics")
    assert code == 0 and "(from topics)" in out
    code, out, _ = await run_cli(env, "audit", "--booking", "no-such-booking")
    assert code == 2
    code, _, err = await run_cli(env, "audit")
    assert code == 2 and "DISPATCH_ID or a filter" in err
