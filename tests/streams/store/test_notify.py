"""The in-process notifier: every subscriber gets each stored Optimized; a slow one loses its
oldest items instead of holding up the store; leaving unsubscribes."""

from __future__ import annotations

import asyncio

from optimizer.dispatch import optimize_event
from optimizer.policy import GreedyPolicy
from schemas import HeuristicDone
from streams.store import OptimizedNotifier


async def test_fan_out_and_drop_oldest(seed_day: HeuristicDone) -> None:
    """Two subscribers both see the item; a full queue keeps the newest `maxsize` items."""
    opt = optimize_event(seed_day, GreedyPolicy()).optimized
    items = [opt.model_copy(update={"event_id": f"e{i}"}) for i in range(5)]
    notifier = OptimizedNotifier(maxsize=3)
    async with notifier.subscribe() as a, notifier.subscribe() as b:
        assert notifier.subscribers == 2
        notifier.publish(items[0])
        assert (await anext(a)).event_id == "e0" and (await anext(b)).event_id == "e0"
        for item in items[1:]:
            notifier.publish(item)  # never blocks, even though nobody reads
        got = [(await asyncio.wait_for(anext(a), 1)).event_id for _ in range(3)]
        assert got == ["e2", "e3", "e4"]
        assert notifier.dropped == 2  # one per subscriber: e1 left both full queues
    assert notifier.subscribers == 0
