"""Hot reload on a real broker: a running worker serves a newly promoted model without a
restart, stamps each `Optimized` with the version that served it, and keeps the previous model
when the new champion's file is corrupt."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import pytest

from optimizer.dqn.inference import MlpWeights
from optimizer.generate import generate_day
from optimizer.registry import ModelRegistry
from optimizer.serving import RegistryPolicyProvider
from schemas import Optimized
from streams.worker import keyed, publish_events, running_worker
from tests.models import ranking_weights
from tests.streams.conftest import read_topic, unique_settings

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(300)]


def _net(seed: int) -> MlpWeights:
    return ranking_weights(1.0, seed)


def _corrupt_champion(registry: ModelRegistry, version: str, *, previous: str) -> None:
    """Make `version` the champion after its file went bad (say, a truncated copy on shared
    storage): the pointer is switched by hand, since `set_champion` refuses a model that does
    not load."""
    (registry.path(version) / "model.npz").write_bytes(b"truncated by a bad copy")
    doc = registry.pointer()
    doc.update(version=version, history=[*doc["history"], previous])
    tmp = registry.root / ".champion.test"
    tmp.write_text(json.dumps(doc))
    os.replace(tmp, registry.champion_file)


async def _wait_for(predicate: Any, timeout: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(0.1)


async def test_promoted_model_is_picked_up_by_a_running_worker(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """Champion A serves; promote B -> B serves; promote a corrupt C -> B keeps serving."""
    registry = ModelRegistry(tmp_path / "models")
    a, b, c = (registry.save(_net(i), {}) for i in range(3))
    registry.set_champion(a)
    settings = unique_settings(
        kafka_bootstrap, tmp_path, model_dir=registry.root, model_poll_seconds=0.5
    )
    provider = RegistryPolicyProvider(registry.root, default_dir=None)
    days = [generate_day(12, 3, seed=7100 + i) for i in range(3)]
    seen: dict[str, str] = {}

    async def publish_and_read(i: int) -> str:
        await publish_events(settings, keyed([days[i]]))
        wanted = days[i].dispatch_id

        def done(records: list[Any]) -> bool:
            return any(
                Optimized.model_validate_json(r.value).dispatch_id == wanted for r in records
            )

        records = await read_topic(settings, settings.topic_optimized, done=done, timeout=90)
        for r in records:
            ev = Optimized.model_validate_json(r.value)
            seen.setdefault(ev.dispatch_id, ev.model_version)
        return seen[wanted]

    async with running_worker(settings, dataset=False, provider=provider):
        assert await publish_and_read(0) == a

        registry.set_champion(b)  # what `dispatch-rl models promote` does, atomically
        await _wait_for(lambda: provider.policy().version == b)
        assert await publish_and_read(1) == b

        _corrupt_champion(registry, c, previous=b)
        await _wait_for(
            lambda: (
                provider.status()["champion"] == c and provider.status()["last_error"] is not None
            )
        )
        assert await publish_and_read(2) == b
        assert "corrupt" in str(provider.status()["last_error"])


async def test_prepare_processes_pick_up_a_promoted_model(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """The same with the default deployment, where the pass runs in a prepare process that
    holds its own copy of the model (no injected provider): after a promotion the process
    serves the new champion, and a champion whose file went bad leaves the previous one
    serving. Each answer's `model_version` says which model served it."""
    registry = ModelRegistry(tmp_path / "models")
    a, b, c = (registry.save(_net(i), {}) for i in range(3))
    registry.set_champion(a)
    settings = unique_settings(
        kafka_bootstrap,
        tmp_path,
        model_dir=registry.root,
        model_poll_seconds=0.5,
        prepare_processes=1,
    )
    served: dict[str, Optimized] = {}
    seed = iter(range(7200, 7400))

    async def serve_one() -> Optimized:
        day = generate_day(12, 3, seed=next(seed))
        await publish_events(settings, keyed([day]))

        def done(records: list[Any]) -> bool:
            for r in records:
                ev = Optimized.model_validate_json(r.value)
                served.setdefault(ev.dispatch_id, ev)
            return day.dispatch_id in served

        await read_topic(settings, settings.topic_optimized, done=done, timeout=90)
        return served[day.dispatch_id]

    async def serve_until(version: str, tries: int = 20) -> list[Optimized]:
        out = []
        for _ in range(tries):
            out.append(await serve_one())
            if out[-1].model_version == version:
                return out
            await asyncio.sleep(0.6)  # past the poll interval: the next batch refreshes
        raise AssertionError(f"never served {version}: {[o.model_version for o in out]}")

    async with running_worker(settings, dataset=False) as worker:
        first = await serve_one()
        assert worker.app is not None
        pool = worker.app.dispatch_pipeline.processes  # type: ignore[attr-defined]  # a child
        assert pool is not None and len(pool.pids) == 1
        assert first.model_version == a

        registry.set_champion(b)
        before_b = await serve_until(b)
        assert {o.model_version for o in before_b} <= {a, b}

        _corrupt_champion(registry, c, previous=b)
        after_c = []
        for _ in range(3):
            await asyncio.sleep(0.6)
            after_c.append(await serve_one())
        assert [o.model_version for o in after_c] == [b, b, b]
    assert all(o.status != "fallback" for o in served.values())
