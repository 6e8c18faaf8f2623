"""The worker's end of one prepare process (`streams.prepare_child` is the other end).

`PrepareChild.start` runs `python -m streams.prepare_child` with pipes on its stdin and stdout;
`call` sends one frame and reads one (the start-up handshake), `prepare` sends a batch and
reads its `Prepared` one frame at a time, handing each lane's part over as soon as it is
complete. A child whose pipes break raises `ChildDied`; `streams.prepare_processes` keeps the
pool (replacing the dead, growing when every child is held by one message).
"""

from __future__ import annotations

import asyncio
import contextlib
import pickle
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from streams.agents import Prepared
from streams.prepare_child import HEADER, Job, frame

__all__ = ["ChildDied", "OnPart", "PrepareChild"]


class ChildDied(Exception):
    """A prepare process exited (or its pipes broke) before answering."""


OnPart = Callable[[int, list[Prepared]], None]
"""Called with a part's index and its `Prepared` as soon as that part of a call is done."""


class PrepareChild:
    """One prepare process, seen from the worker."""

    def __init__(self, proc: asyncio.subprocess.Process, *, own: bool = False) -> None:
        self.proc = proc
        self.own = own
        """Started for one large input alone (`PrepareProcesses.map_alone`): stopped after it,
        never in the pool."""
        self.message_since: float | None = None
        """When the child last sent prepared messages, or was given its batch (monotonic): the
        message it is on began no earlier. None: not busy."""

    @classmethod
    async def start(cls, *, own: bool = False) -> PrepareChild:
        """Start the process (it then waits for its handler's factory: `call`)."""
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "streams.prepare_child",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        return cls(proc, own=own)

    async def call(self, obj: Any) -> Any:
        """Send one frame, read one frame (the start-up handshake)."""
        try:
            self._write(obj)
            await self._drain()
            return await self._read()
        except (asyncio.IncompleteReadError, ConnectionError, BrokenPipeError) as exc:
            raise ChildDied(f"prepare process {self.proc.pid} died: {exc!r}") from exc

    async def prepare(
        self, jobs: Sequence[Job], ends: Sequence[int] = (), on_part: OnPart | None = None
    ) -> list[Prepared]:
        """The child's `Prepared` for each job (its raw input put back), read one frame at a
        time as they come (at least every `prepare_child.PROGRESS_SECONDS` while no message
        holds the child). `ends`: message counts at which a part of `jobs` is complete; the
        child writes out each part when done and `on_part(i, prepared)` gets part i then."""
        out: list[Prepared] = []
        parts = iter(enumerate(ends))
        part = next(parts, None)
        try:
            self._write((list(jobs), list(ends)))
            self.message_since = time.monotonic()
            await self._drain()
            start = 0
            for raw, _, _ in jobs:
                prepared: Prepared = await self._read()
                prepared.raw = raw
                out.append(prepared)
                self.message_since = time.monotonic()
                if part is not None and len(out) == part[1]:
                    if on_part is not None:
                        on_part(part[0], out[start:])
                    start = len(out)
                    part = next(parts, None)
            return out
        except (asyncio.IncompleteReadError, ConnectionError, BrokenPipeError) as exc:
            raise ChildDied(f"prepare process {self.proc.pid} died: {exc!r}") from exc
        finally:
            self.message_since = None

    def _write(self, obj: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(frame(obj))

    async def _drain(self) -> None:
        assert self.proc.stdin is not None
        await self.proc.stdin.drain()

    async def _read(self) -> Any:
        stdout = self.proc.stdout
        assert stdout is not None
        (size,) = HEADER.unpack(await stdout.readexactly(HEADER.size))
        return pickle.loads(await stdout.readexactly(size))

    def held(self, now: float, seconds: float) -> bool:
        """True when the child has been on one message for `seconds` or more."""
        return self.message_since is not None and now - self.message_since >= seconds

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()
