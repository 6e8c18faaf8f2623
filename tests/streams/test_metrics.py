"""The Prometheus recorder: what one dispatch, one dead letter and a consumer's lag become."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

from optimizer.dispatch import optimize_event
from optimizer.policy import GreedyPolicy
from optimizer.seed import seed_day
from streams.metrics import DispatchMetrics, PartitionLag


@dataclass(frozen=True)
class _Pos:
    topic: str
    partition: int
    offset: int


class _FakeSource:
    def __init__(self, lags: list[PartitionLag], version: str | None = None) -> None:
        self.lags_ = lags
        self.version = version

    async def lags(self) -> list[PartitionLag]:
        return self.lags_

    def model_version(self) -> str | None:
        return self.version


class _BrokenSource:
    async def lags(self) -> list[PartitionLag]:
        raise RuntimeError("rebalancing")

    def model_version(self) -> str | None:
        return None


async def _samples(metrics: DispatchMetrics) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    body, content_type = await metrics.render()
    assert content_type.startswith("text/plain")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }


def _get(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return samples[(name, frozenset(labels.items()))]


async def test_outcome_moves_status_latency_and_moves() -> None:
    """One optimized dispatch: its status counter, one latency observation, one move per audit."""
    metrics = DispatchMetrics()
    outcome = optimize_event(seed_day(), GreedyPolicy())
    opt = outcome.optimized
    metrics.record_outcome(opt, outcome.audits, _Pos("dispatch.heuristic_done", 0, 4))
    s = await _samples(metrics)
    assert _get(s, "dispatch_rl_dispatches_total", status=opt.status) == 1
    assert _get(s, "dispatch_rl_dispatches_total", status="fallback") == 0
    assert _get(s, "dispatch_rl_pass_latency_seconds_count") == 1
    assert _get(s, "dispatch_rl_pass_latency_seconds_sum") == opt.latency_ms / 1000
    accepted = _get(s, "dispatch_rl_moves_total", decision="accepted", reason="improves")
    assert accepted == opt.moves_accepted > 0
    moves = sum(v for (name, _), v in s.items() if name == "dispatch_rl_moves_total")
    assert moves == len(outcome.audits) == opt.moves_proposed
    assert _get(s, "dispatch_rl_serving_model_info", model_version=opt.model_version) == 1
    assert metrics.finished_up_to("dispatch.heuristic_done", 0) == 5


async def test_dead_letter_counts_by_source_topic() -> None:
    """A dead letter counts under the topic the bad message came from."""
    metrics = DispatchMetrics()
    metrics.record_dead_letter(_Pos("dispatch.heuristic_done", 2, 9))
    metrics.record_dead_letter(_Pos("dispatch.heuristic_done", 2, 10))
    s = await _samples(metrics)
    assert _get(s, "dispatch_rl_dead_letters_total", source_topic="dispatch.heuristic_done") == 2
    assert metrics.finished_up_to("dispatch.heuristic_done", 2) == 11


async def test_lag_is_reported_while_watched_and_a_broken_source_is_skipped() -> None:
    """Lag per consumer/topic/partition appears while watched, goes away after; errors skip."""
    metrics = DispatchMetrics()
    source = _FakeSource([PartitionLag("t", 0, 3), PartitionLag("t", 1, 0)], version="dqn-7")
    with metrics.watching("group-a", source), metrics.watching("group-b", _BrokenSource()):
        s = await _samples(metrics)
        assert (
            _get(
                s, "dispatch_rl_consumer_lag_messages", consumer="group-a", topic="t", partition="0"
            )
            == 3
        )
        assert (
            _get(
                s, "dispatch_rl_consumer_lag_messages", consumer="group-a", topic="t", partition="1"
            )
            == 0
        )
        assert _get(s, "dispatch_rl_serving_model_info", model_version="dqn-7") == 1
        source.lags_ = [PartitionLag("t", 1, 5)]  # partition 0 moved to another worker
        s = await _samples(metrics)
        assert (
            "dispatch_rl_consumer_lag_messages",
            frozenset({("consumer", "group-a"), ("topic", "t"), ("partition", "0")}),
        ) not in s
    s = await _samples(metrics)
    assert not [k for k in s if k[0] == "dispatch_rl_consumer_lag_messages"]


async def test_serving_model_keeps_one_series() -> None:
    """When the model changes, the old version's series goes away."""
    metrics = DispatchMetrics()
    outcome = optimize_event(seed_day(), GreedyPolicy())
    metrics.record_outcome(outcome.optimized, ())
    metrics.record_outcome(outcome.optimized.model_copy(update={"model_version": "dqn-2"}), ())
    s = await _samples(metrics)
    versions = [dict(k[1]) for k in s if k[0] == "dispatch_rl_serving_model_info"]
    assert versions == [{"model_version": "dqn-2"}]
