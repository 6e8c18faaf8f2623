"""The optimizer agent's handler in memory: the app's handler with its sends recorded."""

from __future__ import annotations

import base64
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import faust
import pytest

from optimizer.moves import Candidates
from optimizer.serving import StaticPolicyProvider
from optimizer.swap_pass import SearchState
from schemas import DeadLetter, HeuristicDone, Optimized, SwapAudit
from streams import codec
from streams.agents import Handled, Source
from streams.app import create_app
from streams.settings import Settings
from tests.streams.conftest import Recorder


class FailingPolicy:
    version = "failing-test"

    def score(self, state: SearchState, candidates: Candidates) -> Any:
        raise RuntimeError("forced failure")


class BrokenProvider:
    def policy(self) -> Any:
        raise OSError("model store unreachable")

    def refresh(self) -> bool:
        return False


def _app(settings: Settings, recorder: Recorder, provider: Any = None) -> faust.App:
    app = create_app(settings, provider)
    app.dispatch_handler.send = recorder.send  # type: ignore[attr-defined]
    return app


class _Agent:
    """Feeds messages to the app's handler one at a time, like the agent's serial path."""

    def __init__(self, app: faust.App, topic: str) -> None:
        self.handler = app.dispatch_handler  # type: ignore[attr-defined]
        self.topic = topic
        self.results: list[Handled] = []

    async def put(self, value: bytes, key: bytes | None = None) -> None:
        source = Source(self.topic, 0, len(self.results))
        self.results.append(await self.handler.handle(value, key, source))


@contextlib.asynccontextmanager
async def _agent(app: faust.App, settings: Settings) -> AsyncIterator[_Agent]:
    yield _Agent(app, settings.topic_input)


def _optimized(recorder: Recorder, settings: Settings) -> list[Optimized]:
    return [Optimized.model_validate_json(v) for _, v in recorder.on(settings.topic_optimized)]


async def test_valid_day_publishes_audits_then_optimized(
    make_settings: Callable[..., Settings], recorder: Recorder, seed_day: HeuristicDone
) -> None:
    """A valid day yields its audits, then one Optimized, all keyed by dispatch_id."""
    settings = make_settings()
    app = _app(settings, recorder)
    async with _agent(app, settings) as agent:
        await agent.put(codec.encode(seed_day), key=b"any")
        handled = agent.results[0]
    assert handled.status == "optimized"
    names = [t for t, _, _ in recorder.sent]
    assert names == [settings.topic_audit] * handled.audits + [settings.topic_optimized]
    assert {k for _, k, _ in recorder.sent} == {seed_day.dispatch_id.encode()}
    [opt] = _optimized(recorder, settings)
    assert opt.metrics.before.gap == 3 and opt.metrics.after.gap == 1
    audits = [SwapAudit.model_validate_json(v) for _, v in recorder.on(settings.topic_audit)]
    assert [a.sequence for a in audits] == list(range(len(audits)))


async def test_bad_input_goes_to_dead_letter_and_the_agent_goes_on(
    make_settings: Callable[..., Settings], recorder: Recorder, seed_day: HeuristicDone
) -> None:
    """Undecodable bytes become a DeadLetter with the original bytes; the next day is served."""
    settings = make_settings()
    app = _app(settings, recorder)
    bad = b'{"event_id": 42}'
    async with _agent(app, settings) as agent:
        await agent.put(bad, key=b"k-bad")
        await agent.put(codec.encode(seed_day), key=b"k-good")
        results = [agent.results[0], agent.results[1]]
    assert [r.kind for r in results] == ["dead_letter", "optimized"]
    [(key, value)] = recorder.on(settings.topic_dead_letter)
    dl = DeadLetter.model_validate_json(value)
    assert key == b"k-bad"
    assert base64.b64decode(dl.value_b64) == bad
    assert dl.source_topic == settings.topic_input and dl.source_offset == 0
    assert any(e.loc == ("dispatch_id",) for e in dl.errors)
    assert len(_optimized(recorder, settings)) == 1


@pytest.mark.parametrize(
    "provider",
    [StaticPolicyProvider(FailingPolicy()), BrokenProvider()],  # type: ignore[arg-type]
    ids=["policy-raises", "provider-raises"],
)
async def test_failing_optimizer_falls_back_to_the_heuristic(
    make_settings: Callable[..., Settings],
    recorder: Recorder,
    seed_day: HeuristicDone,
    provider: Any,
    plain_tracebacks: None,
) -> None:
    """Any failure in the core gives status fallback with the heuristic assignment."""
    settings = make_settings()
    app = _app(settings, recorder, provider)
    async with _agent(app, settings) as agent:
        await agent.put(codec.encode(seed_day))
    [opt] = _optimized(recorder, settings)
    assert opt.status == "fallback"
    assert set(opt.assignments) == set(seed_day.assignments)
    assert recorder.on(settings.topic_audit) == []


async def test_disabled_passes_through(
    make_settings: Callable[..., Settings], recorder: Recorder, seed_day: HeuristicDone
) -> None:
    """enabled=false publishes the heuristic assignment with status disabled."""
    settings = make_settings(enabled=False)
    app = _app(settings, recorder)
    async with _agent(app, settings) as agent:
        await agent.put(codec.encode(seed_day))
    [opt] = _optimized(recorder, settings)
    assert opt.status == "disabled"
    assert set(opt.assignments) == set(seed_day.assignments)


async def test_unoptimized_mode_is_skipped(
    make_settings: Callable[..., Settings], recorder: Recorder, seed_day: HeuristicDone
) -> None:
    """A manual-mode day passes through with status skipped_mode."""
    settings = make_settings()
    app = _app(settings, recorder)
    day = seed_day.model_copy(update={"mode": "manual"})
    async with _agent(app, settings) as agent:
        await agent.put(codec.encode(day))
    assert _optimized(recorder, settings)[0].status == "skipped_mode"


async def test_redelivery_gives_the_same_event_ids(
    make_settings: Callable[..., Settings], recorder: Recorder, seed_day: HeuristicDone
) -> None:
    """The same input twice gives byte-identical ids for the Optimized and every audit."""
    settings = make_settings()
    app = _app(settings, recorder)
    async with _agent(app, settings) as agent:
        await agent.put(codec.encode(seed_day))
        await agent.put(codec.encode(seed_day))
    first, second = _optimized(recorder, settings)
    assert first.event_id == second.event_id
    ids = [SwapAudit.model_validate_json(v).event_id for _, v in recorder.on(settings.topic_audit)]
    half = len(ids) // 2
    assert ids[:half] == ids[half:] and len(set(ids)) == half


async def test_core_raising_still_publishes_the_heuristic_result(
    make_settings: Callable[..., Settings],
    recorder: Recorder,
    seed_day: HeuristicDone,
    monkeypatch: pytest.MonkeyPatch,
    plain_tracebacks: None,
) -> None:
    """If optimize_event itself raises, the agent's last resort publishes status fallback."""

    def explode(*args: Any, **kwargs: Any) -> Any:
        raise MemoryError("core blew up")

    monkeypatch.setattr("streams.agents.optimize_event", explode)
    settings = make_settings()
    app = _app(settings, recorder)
    async with _agent(app, settings) as agent:
        await agent.put(codec.encode(seed_day))
    [opt] = _optimized(recorder, settings)
    assert opt.status == "fallback" and "MemoryError" in opt.reason
    assert opt.assignments == seed_day.assignments
    assert opt.metrics.before.rides_per_driver == {"driver-a": 5, "driver-b": 3, "driver-c": 2}
