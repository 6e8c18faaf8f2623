"""Where a message's end-to-end time goes: wall-clock stamps per stage, for the stream bench.

Off unless `DISPATCH_RL_STAGE_TRACE` names a path prefix (`bench/stream_throughput.py
--stages` sets it). Then every process of the worker (the worker and its prepare processes)
stamps each input message, by key, at each stage it passes, and writes the stamps as JSON lines
to `<prefix>.<pid>` (the worker at exit, a prepare process after each batch: it is killed, not
stopped). The stages, in order:

* `agent`: the agent took the message from Faust's stream;
* `prep0` / `prep1`: its lane batch went to be prepared / came back (worker);
* `c_recv` / `c_done`: the prepare process read the batch / finished this message;
* `round0` / `aud1` / `fin1`: its send round started / every audit of the round acknowledged /
  every final record acknowledged;
* `acked`: its input offset acked (committable).

Each traced process also records its garbage collections of 2 ms or more (`gc` lines: wall
start, duration, generation), so a stall of one process can be told from a wait on another.

A diagnostic, not a metric: one dict per message, kept until exit. Off, `mark` is one test.
"""

from __future__ import annotations

import atexit
import gc
import json
import os
import time
from collections.abc import Iterable

__all__ = ["ENV", "collections", "enabled", "flush", "mark", "mark_all", "watch_gc"]

ENV = "DISPATCH_RL_STAGE_TRACE"
_PATH = os.environ.get(ENV) or None
_stamps: dict[str, dict[str, float]] = {}
_collections: list[tuple[float, float, int]] = []
_gc_started = 0.0
_GC_MIN_SECONDS = 0.002


def enabled() -> bool:
    return _PATH is not None


def mark(key: bytes | None, stage: str) -> None:
    """Stamp `stage` now for the message with `key` (nothing when off or keyless)."""
    if _PATH is not None and key is not None:
        _stamps.setdefault(key.decode(errors="replace"), {})[stage] = time.time()


def mark_all(keys: Iterable[bytes | None], stage: str) -> None:
    """`mark` for each key (the loop is skipped when off)."""
    if _PATH is not None:
        for key in keys:
            mark(key, stage)


def _on_gc(phase: str, info: dict[str, int]) -> None:
    global _gc_started
    if phase == "start":
        _gc_started = time.perf_counter()
        return
    took = time.perf_counter() - _gc_started
    if took >= _GC_MIN_SECONDS:
        _collections.append((time.time() - took, took, info["generation"]))


def watch_gc() -> None:
    """Record this process's collections of 2 ms or more (written by `flush` as `gc` lines)."""
    # By name: a reloaded module (tests) must not record each collection twice.
    gc.callbacks[:] = [c for c in gc.callbacks if getattr(c, "__module__", None) != __name__]
    gc.callbacks.append(_on_gc)


def collections() -> list[tuple[float, float, int]]:
    """`(wall start, seconds, generation)` of the collections recorded by `watch_gc`."""
    return list(_collections)


def flush() -> None:
    """Append the stamps taken so far to this process's file and forget them."""
    if _PATH is None or not (_stamps or _collections):
        return
    with open(f"{_PATH}.{os.getpid()}", "a") as f:
        for key, stages in _stamps.items():
            f.write(json.dumps({"key": key, **stages}) + "\n")
        for start, took, generation in _collections:
            f.write(json.dumps({"gc": start, "seconds": took, "generation": generation}) + "\n")
    _stamps.clear()
    _collections.clear()


atexit.register(flush)
if _PATH is not None:
    watch_gc()
