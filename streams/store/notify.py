"""`OptimizedNotifier`: in-process news of each `Optimized` the audit store has stored.

The store consumer calls `publish` after the database transaction that stored the row has
committed (never for a duplicate). Subscribers (the dashboard's server-sent events) get their
own bounded queue: a subscriber that does not keep up loses its oldest items, and the store is
never held up by a slow reader.

    async with notifier.subscribe() as events:
        async for optimized in events:
            ...
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from schemas import Optimized


class OptimizedNotifier:
    """Fan-out of stored `Optimized` events to any number of in-process subscribers."""

    def __init__(self, maxsize: int = 256) -> None:
        self.maxsize = maxsize
        self._queues: set[asyncio.Queue[Optimized]] = set()
        self.published = 0
        self.dropped = 0

    @property
    def subscribers(self) -> int:
        return len(self._queues)

    def publish(self, item: Optimized) -> None:
        """Hand `item` to every subscriber (call from the event loop's thread)."""
        self.published += 1
        for q in self._queues:
            if q.full():
                q.get_nowait()  # the oldest goes: a stalled page must not stall the store
                self.dropped += 1
            q.put_nowait(item)

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[AsyncIterator[Optimized]]:
        """An async iterator of the `Optimized` events stored from now on."""
        queue: asyncio.Queue[Optimized] = asyncio.Queue(self.maxsize)
        self._queues.add(queue)

        async def events() -> AsyncIterator[Optimized]:
            while True:
                yield await queue.get()

        try:
            yield events()
        finally:
            self._queues.discard(queue)
