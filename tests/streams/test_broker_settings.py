"""Settings of the broker side: where durable data lives, topic configs, failover timeouts."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from streams.settings import DAY_MS, Settings
from streams.topics import consumer_group_options, faust_broker_options, topic_specs


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No DISPATCH_RL_DATA_DIR / XDG_DATA_HOME from the session (tests/conftest.py sets them)."""
    monkeypatch.delenv("DISPATCH_RL_DATA_DIR", raising=False)
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    return monkeypatch


def test_data_dir_defaults_to_the_xdg_data_home(clean_env: pytest.MonkeyPatch) -> None:
    """XDG default ~/.local/share/dispatch-rl; XDG_DATA_HOME honoured; everything under it."""
    settings = Settings()
    assert settings.data_dir == Path.home() / ".local" / "share" / "dispatch-rl"

    clean_env.setenv("XDG_DATA_HOME", "/srv/xdg")
    settings = Settings()
    assert settings.data_dir == Path("/srv/xdg/dispatch-rl")
    assert settings.dataset_dir == Path("/srv/xdg/dispatch-rl/dataset")
    assert settings.state_dir == Path("/srv/xdg/dispatch-rl/state")
    assert settings.local_broker_dir == Path("/srv/xdg/dispatch-rl/kafka")


def test_data_dir_setting_moves_the_defaults_but_not_explicit_paths(
    clean_env: pytest.MonkeyPatch,
) -> None:
    """DISPATCH_RL_DATA_DIR moves the defaulted paths; an explicit dataset dir stays put."""
    clean_env.setenv("DISPATCH_RL_DATA_DIR", "/data/d")
    clean_env.setenv("DISPATCH_RL_DATASET_DIR", "/elsewhere/ds")
    settings = Settings()
    assert settings.data_dir == Path("/data/d")
    assert settings.state_dir == Path("/data/d/state")
    assert settings.dataset_dir == Path("/elsewhere/ds")

    moved = settings.with_data_dir(Path("/tmp/eph"))
    assert (moved.data_dir, moved.state_dir) == (Path("/tmp/eph"), Path("/tmp/eph/state"))
    assert moved.dataset_dir == Path("/elsewhere/ds")


def test_the_swap_log_and_its_inputs_are_kept_forever_by_default() -> None:
    """Input, optimized and audit share one retention (forever); dead letter one year; all
    8 MiB messages, no size cut."""
    settings = Settings(bootstrap_servers="127.0.0.1:9")
    specs = {s.name: s for s in topic_specs(settings)}
    for name in (settings.topic_input, settings.topic_optimized, settings.topic_audit):
        assert specs[name].configs["retention.ms"] == "-1"
    assert specs[settings.topic_dead_letter].configs["retention.ms"] == str(365 * DAY_MS)
    for spec in specs.values():
        assert spec.configs["retention.bytes"] == "-1"
        assert spec.configs["max.message.bytes"] == str(8 * 1024 * 1024)
        assert spec.partitions == settings.topic_partitions

    shorter = Settings(
        bootstrap_servers="127.0.0.1:9",
        topic_retention_ms=DAY_MS,
        dead_letter_retention_ms=DAY_MS,
    )
    kept = {s.configs["retention.ms"] for s in topic_specs(shorter)[:3]}
    assert kept == {str(DAY_MS)}, "one value for the three, so a replay finds its input"


def test_failover_timeouts_reach_faust_and_plain_consumers() -> None:
    """Session/heartbeat/rebalance settings go to Faust and to aiokafka consumers alike, and
    the defaults detect a dead worker in 10 s (Faust's own default is 60 s)."""
    settings = Settings(bootstrap_servers="127.0.0.1:9")
    faust_opts = faust_broker_options(settings)
    assert faust_opts["broker_session_timeout"] == 10.0
    assert faust_opts["broker_heartbeat_interval"] == 2.0
    assert faust_opts["broker_rebalance_timeout"] == 60.0
    assert faust_opts["broker_request_timeout"] > faust_opts["broker_session_timeout"]

    tuned = Settings(
        bootstrap_servers="127.0.0.1:9", session_timeout_seconds=6, heartbeat_interval_seconds=1
    )
    group = consumer_group_options(tuned)
    assert (group["session_timeout_ms"], group["heartbeat_interval_ms"]) == (6000, 1000)


def test_a_heartbeat_slower_than_the_session_is_refused() -> None:
    """A heartbeat at or above the session timeout would evict every member: refused."""
    with pytest.raises(ValidationError, match="heartbeat_interval_seconds"):
        Settings(session_timeout_seconds=5, heartbeat_interval_seconds=5)


def test_dead_letters_may_not_outlive_the_inputs_they_refer_to() -> None:
    """A dead letter refers to its input by offset: the input topic must keep it as long."""
    with pytest.raises(ValidationError, match="dead_letter_retention_ms"):
        Settings(topic_retention_ms=DAY_MS, dead_letter_retention_ms=2 * DAY_MS)
    with pytest.raises(ValidationError, match="dead_letter_retention_ms"):
        Settings(topic_retention_ms=DAY_MS, dead_letter_retention_ms=-1)
    Settings(topic_retention_ms=-1, dead_letter_retention_ms=-1)
