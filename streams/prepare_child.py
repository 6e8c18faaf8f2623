"""A prepare process: the child side of `streams.prepare_processes` (`python -m
streams.prepare_child`).

It reads pickled frames on stdin and writes them on stdout: first the factory of its
`DispatchHandler` and the policy refresh interval (answered `True` once it is warm), then
batches `(jobs, ends)`: `jobs` a list of `(raw, key, source)`, answered with one frame per
message, each message's `Prepared` without its raw input (the worker has it); `ends` the
message counts at which a part of the batch (one lane's batch) is complete: what is prepared
is written out then, at the batch's end, and at least every `PROGRESS_SECONDS`. Its logs go to
the worker's stderr. It exits at end-of-file on stdin (the worker stopped it, or died).
"""

from __future__ import annotations

import contextlib
import gc
import os
import pickle
import signal
import struct
import sys
import time
import types
from collections.abc import Awaitable
from typing import IO, Any

import structlog

from streams import stage_trace
from streams.agents import DispatchHandler, Source, TopicNames
from streams.settings import Settings

log = structlog.get_logger("dispatch_rl.streams")

Job = tuple[bytes | None, bytes | None, Source]
"""What a child prepares: `(raw, key, source)`."""


def settings_handler(settings: Settings) -> DispatchHandler:
    """The handler a child prepares with (no sender: the worker publishes), warmed up."""
    from optimizer.serving import default_provider
    from streams.logs import configure_logging
    from streams.topics import MAX_MESSAGE_BYTES

    configure_logging(settings.log_format, "WARNING")  # the warm-up's passes are not news
    handler = DispatchHandler(
        TopicNames(settings.topic_optimized, settings.topic_audit, settings.topic_dead_letter),
        default_provider(settings.model_dir),
        settings.dispatch_config(),
        settings.limits(),
        _no_send,
        max_record_bytes=MAX_MESSAGE_BYTES,
    )
    _warm_up(handler)
    configure_logging(settings.log_format, settings.log_level)
    return handler


async def _no_send(topic: str, key: bytes | None, value: bytes) -> Awaitable[Any]:
    raise RuntimeError("a prepare process does not publish")


# ---------------------------------------------------------------- frames

PROGRESS_SECONDS = 0.05
"""A child sends the messages it has prepared at least this often (and at a batch's end)."""

HEADER = struct.Struct(">Q")
"""Each frame: its pickled body's length, then the body."""


def frame(obj: Any) -> bytes:
    body = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    return HEADER.pack(len(body)) + body


def _read_frame(stream: IO[bytes]) -> Any:
    header = stream.read(HEADER.size)
    if len(header) < HEADER.size:
        raise EOFError
    (size,) = HEADER.unpack(header)
    body = stream.read(size)
    if len(body) < size:
        raise EOFError
    return pickle.loads(body)


# ---------------------------------------------------------------- in the child


class _NotPandas(types.ModuleType):
    """Stands in for pandas in a prepare process (`without_pandas`)."""

    class Index:
        """Matches nothing: `isinstance(x, pd.Index)` is False for every value the pass has."""

    class Series:
        """Likewise for `pd.Series`."""

    def __getattr__(self, name: str) -> Any:
        raise AttributeError(
            f"pandas.{name}: pandas is not loaded in a prepare process (streams.prepare_child)"
        )


def without_pandas() -> bool:
    """Keep pandas out of this process: CP-SAT's Python layer (`ortools.sat.python.cp_model`)
    imports it at load time for its helpers that take pandas objects (`new_int_var_series`
    and the like) and otherwise only names `pd.Index` / `pd.Series` in annotations and
    `isinstance` tests; the pass never calls those helpers. pandas is ~42 MB resident of a
    child's ~130 (measured with pandas 3.1 and ortools 9.15), so a stand-in that matches
    nothing takes its place, unless pandas is already imported. Any other use of it raises an
    AttributeError that names this function. False when pandas was already there."""
    if "pandas" in sys.modules:
        return False
    sys.modules["pandas"] = _NotPandas("pandas")
    return True


def child_main() -> int:
    """A prepare process: factory frame, then batches until end-of-file on stdin."""
    without_pandas()
    results = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # a stray print must not corrupt the frames
    sys.stdout = sys.stderr
    # Ctrl-C reaches the whole process group: the worker stops its children itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    jobs_in = sys.stdin.buffer
    try:
        factory, refresh_seconds = _read_frame(jobs_in)
        handler: DispatchHandler = factory()
        # What is loaded now (modules, the model, CP-SAT) lives as long as the process: out of
        # the collector's sight, a full collection no longer walks it. Measured on 1,500 10x3
        # days: the one full collection took 196 ms without, 22 ms with (load ~6); every
        # message queued behind the child waits for it.
        gc.freeze()
        results.write(frame(True))
        results.flush()
        refreshed = time.monotonic()
        while True:
            jobs: list[Job]
            jobs, ends = _read_frame(jobs_in)
            flush_at = set(ends)
            stage_trace.mark_all((key for _, key, _ in jobs), "c_recv")
            now = time.monotonic()
            if now - refreshed >= refresh_seconds:
                refreshed = now
                _refresh(handler)
            # One frame per message, written when a lane's part of the batch is complete (its
            # lane can publish it without waiting for the other lanes' parts) and at least
            # every PROGRESS_SECONDS: the worker sees how long the current message has taken (a
            # large day, not a long batch of small ones under load) without waking up for
            # every small day of a burst.
            pending = bytearray()
            sent = time.monotonic()
            for n, (raw, key, source) in enumerate(jobs, start=1):
                prepared = handler.prepare(raw, key, source)
                stage_trace.mark(key, "c_done")
                prepared.raw = None  # the worker has it: not sent back
                pending += frame(prepared)
                if n in flush_at or n == len(jobs) or time.monotonic() - sent >= PROGRESS_SECONDS:
                    results.write(pending)
                    results.flush()
                    pending.clear()
                    sent = time.monotonic()
            stage_trace.flush()
    except (EOFError, BrokenPipeError):
        return 0  # the worker closed the pipe (or died)


def _warm_up(handler: DispatchHandler) -> None:
    """Pay the first-use costs before the first real message: CP-SAT's import (~0.6 s, on
    the first day that needs a subset re-plan) and the first passes' lazy set-ups, which
    would otherwise stall every message queued behind them."""
    from optimizer.generate import generate_day
    from streams import codec

    with contextlib.suppress(ImportError):
        from ortools.sat.python import cp_model  # noqa: F401
    for seed in range(3):
        day = generate_day(10, 3, seed=seed)
        handler.prepare(codec.encode(day), None, Source("warm-up", 0, seed))


def _refresh(handler: DispatchHandler) -> None:
    try:
        if handler.provider.refresh():
            log.info("policy_reloaded", model_version=handler.provider.policy().version)
    except Exception:  # a broken registry must not stop preparing: the old policy serves
        log.exception("policy_refresh_failed")


if __name__ == "__main__":
    sys.exit(child_main())
