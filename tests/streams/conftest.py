"""Fixtures for the streaming tests: unique settings per test and a recording topic sender."""

from __future__ import annotations

import asyncio
import gc
import os
import sys
import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from streams.settings import Settings


def unique_settings(bootstrap: str, base_dir: Path, **overrides: Any) -> Settings:
    """Settings with a unique app id, consumer groups and topic names (so tests never share
    broker state), the web server and the audit store off, and the dataset and state under
    `base_dir`. Keyword
    arguments override any field."""
    u = uuid.uuid4().hex[:10]
    fields: dict[str, Any] = {
        "bootstrap_servers": bootstrap,
        "app_id": f"test-app-{u}",
        "dataset_group": f"test-dataset-{u}",
        "topic_input": f"test.{u}.heuristic_done",
        "topic_optimized": f"test.{u}.optimized",
        "topic_audit": f"test.{u}.swap_audit",
        "topic_dead_letter": f"test.{u}.dead_letter",
        "web_enabled": False,
        "data_dir": base_dir / f"data-{u}",
        "store_enabled": False,
        "store_group": f"test-store-{u}",
        "dataset_dir": base_dir / f"dataset-{u}",
        "state_dir": base_dir / "state",
        "model_poll_seconds": 3600.0,
    }
    fields.update(overrides)
    return Settings(**fields)


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    """`unique_settings` under `tmp_path`; the bootstrap defaults to an address never dialled
    (unit tests), pass the real one for end-to-end tests."""

    def make(bootstrap: str = "127.0.0.1:9", **overrides: Any) -> Settings:
        return unique_settings(bootstrap, tmp_path, **overrides)

    return make


class Recorder:
    """Stands in for the producer (`send`) or for `topic.send` on Faust topics (`patch`):
    records `(topic, key, value)` in order."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, bytes]] = []

    def patch(self, topic: Any) -> None:
        name = topic.get_topic_name()

        async def send(*, key: bytes | None = None, value: bytes = b"", **_: Any) -> Any:
            self.sent.append((name, key, value))
            done = asyncio.get_running_loop().create_future()
            done.set_result(None)
            return done

        topic.send = send

    async def send(self, topic: str, key: bytes | None, value: bytes) -> Any:
        """A `streams.agents.Sender`: records, and returns an acknowledgement already done."""
        self.sent.append((topic, key, value))
        done = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    def on(self, topic_name: str) -> list[tuple[bytes | None, bytes]]:
        return [(k, v) for t, k, v in self.sent if t == topic_name]


@pytest.fixture
def recorder() -> Recorder:
    """A fresh `Recorder`."""
    return Recorder()


@pytest.fixture(autouse=True)
def _collect_faust_leftovers() -> Iterator[None]:
    """Collect what Faust leaves unclosed, with ResourceWarning silenced, right after each test.

    `agent.test_context()` makes the app build its consumer, whose thread owns an event loop
    that is never started nor closed; its `__del__` warns. Left to a random later garbage
    collection, that warning (an error under `filterwarnings = error`) can fire inside the AST
    parser of pytest's assertion rewriting, where CPython 3.11 turns it into
    "SystemError: AST constructor recursion depth mismatch" and the session dies.
    """
    yield
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


@pytest.fixture
def plain_tracebacks() -> Iterator[None]:
    """structlog renders exceptions as plain text for this test, then its config is restored.

    Unconfigured, structlog's console renderer draws rich tracebacks with every local
    variable (numpy arrays included): about half a second per logged exception.
    """
    import structlog

    saved = structlog.get_config()
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.format_exc_info,
            structlog.processors.KeyValueRenderer(key_order=["event"]),
        ]
    )
    try:
        yield
    finally:
        structlog.configure(**saved)


# ------------------------------------------------------------------ real-broker helpers


async def read_topic(
    settings: Settings,
    topic: str,
    *,
    done: Callable[[list[Any]], bool],
    timeout: float = 60.0,
    linger: float = 0.0,
) -> list[Any]:
    """Every record of `topic` from the beginning, until `done(records)` (then `linger` more
    seconds, to catch late duplicates) or `timeout`."""
    from streams.reader import TopicReader

    records: list[Any] = []
    loop = asyncio.get_running_loop()
    end: float | None = None
    async with TopicReader(settings, topic, poll_ms=200) as reader:
        async for batch in reader.batches(timeout=timeout):
            records.extend(batch)
            if end is None and done(records):
                end = loop.time() + linger
            if end is not None and loop.time() >= end:
                break
    return records


async def dataset_caught_up(settings: Settings, timeout: float = 60.0) -> None:
    """Wait until the dataset writer's committed offsets reach the end of both its topics."""
    topics = (settings.topic_input, settings.topic_optimized)
    await group_caught_up(settings, settings.dataset_group, topics, timeout)


async def group_caught_up(
    settings: Settings, group: str, topics: tuple[str, ...], timeout: float = 60.0
) -> None:
    """Wait until consumer group `group` has committed the end of every partition of `topics`."""
    from aiokafka.admin import AIOKafkaAdminClient

    from streams.reader import TopicReader
    from streams.topics import client_options

    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        async with TopicReader(settings, *topics) as probe:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout
            while True:
                ends = await probe.end_offsets()
                committed = await admin.list_consumer_group_offsets(group)
                behind = {
                    tp: end - (committed[tp].offset if tp in committed else 0)
                    for tp, end in ends.items()
                    if end > (committed[tp].offset if tp in committed else 0)
                }
                if not behind:
                    return
                if loop.time() > deadline:
                    raise TimeoutError(f"consumer group {group} still behind: {behind}")
                await asyncio.sleep(0.2)
    finally:
        await admin.close()


ROOT = Path(__file__).parents[2]


def cli_env(settings: Settings) -> dict[str, str]:
    """The environment a `dispatch-rl` subprocess needs to use `settings` (JSON logs)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DISPATCH_RL_")}
    for name in (
        "bootstrap_servers",
        "app_id",
        "dataset_group",
        "topic_input",
        "topic_optimized",
        "topic_audit",
        "topic_dead_letter",
        "data_dir",
        "dataset_dir",
        "state_dir",
        "store_enabled",
        "store_group",
    ):
        env[f"DISPATCH_RL_{name.upper()}"] = str(getattr(settings, name))
    if settings.store_url:
        env["DISPATCH_RL_STORE_URL"] = settings.store_url
    env.update(DISPATCH_RL_WEB_ENABLED="false", DISPATCH_RL_LOG_FORMAT="json", PYTHONPATH=str(ROOT))
    return env


async def run_cli(env: dict[str, str], *args: str, timeout: float = 120) -> tuple[int, str, str]:
    """Run `python -m streams.cli ARGS`; exit code, stdout, stderr."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "streams.cli",
        *args,
        env=env,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()
