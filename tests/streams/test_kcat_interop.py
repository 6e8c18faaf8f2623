"""Interop: a Kafka client we did not write (kcat, librdkafka) publishes a HeuristicDone JSON and
reads the Optimized result back from a running worker."""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

import pytest

from schemas import HeuristicDone, Optimized
from streams import codec
from streams.worker import running_worker
from tests.streams.conftest import unique_settings

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(180)]


def _kcat() -> str:
    found = shutil.which("kcat") or shutil.which("kafkacat")
    if found:
        return found
    message = (
        "kcat is not on PATH: the interop test needs it (Debian/Ubuntu: apt-get install -y kcat)"
    )
    if os.environ.get("CI") == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


async def _run(*args: str, stdin: bytes | None = None, timeout: float = 60.0) -> bytes:
    proc = await asyncio.create_subprocess_exec(
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(stdin), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode == 0, f"{args[0]} failed ({proc.returncode}): {err.decode()}"
    return out


async def test_kcat_publishes_a_day_and_reads_the_optimized_result(
    kafka_bootstrap: str, tmp_path: Path, seed_day: HeuristicDone
) -> None:
    """kcat -P a HeuristicDone line keyed by dispatch_id; kcat -C gets the Optimized back."""
    kcat = _kcat()
    settings = unique_settings(kafka_bootstrap, tmp_path)
    async with running_worker(settings, dataset=False):
        await _run(
            kcat,
            "-P",
            "-b",
            kafka_bootstrap,
            "-t",
            settings.topic_input,
            "-k",
            seed_day.dispatch_id,
            stdin=codec.encode(seed_day) + b"\n",
        )
        out = await _run(
            kcat,
            "-C",
            "-b",
            kafka_bootstrap,
            "-t",
            settings.topic_optimized,
            "-o",
            "beginning",
            "-c",
            "1",
            "-q",
            "-f",
            "%k\\t%s\\n",
        )
    key, _, value = out.rstrip(b"\n").partition(b"\t")
    assert key == seed_day.dispatch_id.encode()
    optimized = Optimized.model_validate_json(value)
    assert optimized.source_event_id == seed_day.event_id
    assert optimized.status == "optimized"
    assert optimized.metrics.before.gap == 3 and optimized.metrics.after.gap == 1
