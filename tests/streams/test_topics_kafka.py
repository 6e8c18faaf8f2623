"""Topics are created before use with our configs, and existing ones are checked (real broker)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from structlog.testing import capture_logs

from streams.settings import Settings
from streams.topics import client_options, ensure_topics, topic_differences, topic_specs
from tests.streams.conftest import ROOT, cli_env, run_cli

pytestmark = pytest.mark.kafka


async def _partitions(settings: Settings, topic: str) -> int:
    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        [described] = await admin.describe_topics([topic])
        assert described["error_code"] == 0, described
        return len(described["partitions"])
    finally:
        await admin.close()


async def test_ensure_topics_creates_them_with_the_partitions_setting_and_configs(
    kafka_bootstrap: str, make_settings: Callable[..., Settings]
) -> None:
    """Created with `topic_partitions` partitions, 8 MiB messages, the retention settings; a
    second call creates nothing and finds no difference."""
    settings = make_settings(kafka_bootstrap, topic_partitions=2)

    created = await ensure_topics(settings)

    assert created == [s.name for s in topic_specs(settings)]
    assert await _partitions(settings, settings.topic_input) == 2
    assert await topic_differences(settings) == []
    audit = next(s for s in topic_specs(settings) if s.name == settings.topic_audit)
    assert audit.configs["retention.ms"] == "-1", "the swap log is kept forever by default"
    assert await ensure_topics(settings) == []


async def test_an_existing_topic_with_other_configs_is_reported_in_one_line(
    kafka_bootstrap: str, make_settings: Callable[..., Settings]
) -> None:
    """An input topic made by someone else (1 partition, broker defaults) is not altered, and
    one warning line names each difference."""
    settings = make_settings(kafka_bootstrap)
    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        await admin.create_topics([NewTopic(settings.topic_input, 1, 1)], timeout_ms=30_000)
    finally:
        await admin.close()

    with capture_logs() as logs:
        created = await ensure_topics(settings)

    assert settings.topic_input not in created
    warnings = [e for e in logs if e["event"] == "topic_configs_differ"]
    assert len(warnings) == 1
    differences = warnings[0]["differences"]
    assert f"{settings.topic_input}: partitions=1 (wanted 3)" in differences
    assert any(d.startswith(f"{settings.topic_input}: max.message.bytes=") for d in differences)
    assert all(d.startswith(settings.topic_input) for d in differences), differences
    assert await _partitions(settings, settings.topic_input) == 1, "never altered"


async def test_publish_before_any_worker_creates_the_topics_first(
    kafka_bootstrap: str, make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    """`dispatch-rl publish` on a fresh deployment: the topics get our partitions and configs,
    not a broker's auto-created defaults."""
    settings = make_settings(kafka_bootstrap)

    code, out, err = await run_cli(
        cli_env(settings), "publish", str(ROOT / "examples" / "seed-day.json")
    )

    assert code == 0, err
    assert "published 1 day(s)" in out
    assert await _partitions(settings, settings.topic_input) == settings.topic_partitions
    assert await topic_differences(settings) == []


async def test_publish_to_a_topic_nobody_created_says_so(
    kafka_bootstrap: str, make_settings: Callable[..., Settings]
) -> None:
    """`publish --topic X` for a topic that is not ours and does not exist: one line, exit 1,
    and the topic is not created behind anyone's back."""
    settings = make_settings(kafka_bootstrap)
    topic = f"{settings.topic_input}.nobody"

    code, _, err = await run_cli(
        cli_env(settings), "publish", "--topic", topic, str(ROOT / "examples" / "seed-day.json")
    )

    assert code == 1
    assert f"topic '{topic}' does not exist" in err
    assert err.strip().count("\n") == 0, err


async def test_topics_check_then_apply_fixes_the_configs_but_not_the_partitions(
    kafka_bootstrap: str, make_settings: Callable[..., Settings]
) -> None:
    """`topics check` lists the differences (exit 1); `topics apply` creates the missing topics
    and sets the configs of a foreign one, leaves its partition count, and says so."""
    settings = make_settings(kafka_bootstrap)
    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(settings.topic_audit, 1, 1, topic_configs={"retention.ms": "3600000"})],
            timeout_ms=30_000,
        )
    finally:
        await admin.close()
    env = cli_env(settings)

    code, out, _ = await run_cli(env, "topics", "check")
    assert code == 1
    assert f"differs: {settings.topic_audit}: retention.ms=3600000 (wanted -1)" in out
    assert f"differs: {settings.topic_input}: missing" in out

    code, out, err = await run_cli(env, "topics", "apply")
    assert code == 0, out + err
    assert f"created {settings.topic_input}" in out
    assert f"altered {settings.topic_audit}" in out
    assert await topic_differences(settings) == [
        f"{settings.topic_audit}: partitions=1 (wanted 3)"
    ], "configs applied, partitions left as they were"
    assert await _partitions(settings, settings.topic_audit) == 1
