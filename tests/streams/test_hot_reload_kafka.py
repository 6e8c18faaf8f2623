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

        # A champion whose file went bad (say, a truncated copy on shared storage): the pointer
        # is switched by hand, since `set_champion` refuses a model that does not load.
        (registry.path(c) / "model.npz").write_bytes(b"truncated by a bad copy")
        doc = registry.pointer()
        doc.update(version=c, history=[*doc["history"], b])
        tmp = registry.root / ".champion.test"
        tmp.write_text(json.dumps(doc))
        os.replace(tmp, registry.champion_file)
        await _wait_for(
            lambda: (
                provider.status()["champion"] == c and provider.status()["last_error"] is not None
            )
        )
        assert await publish_and_read(2) == b
        assert "corrupt" in str(provider.status()["last_error"])
