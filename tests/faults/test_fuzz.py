"""10,000 fuzzed inputs interleaved with 1,000 valid days through one real worker."""

from __future__ import annotations

import pytest

from tests.faults.scenarios import FuzzFigures, fuzz_scenario

pytestmark = [pytest.mark.faults, pytest.mark.kafka, pytest.mark.timeout(1500)]

# Kinds whose handling is issue 9 items 1 (a dead letter that fits under the topic limit) and
# 7 (input sanity: absurd dates); asserted separately below.
EDGE_KINDS = {"size_limit_minus_1k", "size_at_limit", "absurd_date"}


@pytest.fixture(scope="module")
async def fuzz_run(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> FuzzFigures:
    """One worker, 10,050 inputs: hypothesis mutations and binaries, raw-byte kinds, absurd
    dates (years 1 and 9999), the size edges (1 KiB under the topic limit, at it, over it),
    and 1,000 valid days."""
    f = await fuzz_scenario(kafka_bootstrap, tmp_path_factory.mktemp("fuzz"))
    print(
        f"\n[fuzz] {f.inputs} inputs in {f.elapsed_s:.0f} s: {f.expected_optimized} valid, "
        f"{f.expected_dead_letter} malformed, {f.expected_refused} over the limit; missing "
        f"Optimized {f.optimized_missing}, missing DeadLetter {f.dead_letter_missing}, "
        f"refused wrongly {f.refused_wrongly}; kinds {f.by_kind}"
    )
    return f


def test_at_least_10000_inputs(fuzz_run: FuzzFigures) -> None:
    assert fuzz_run.inputs >= 10_000
    assert fuzz_run.expected_dead_letter >= 8_000 and fuzz_run.expected_optimized >= 1_000


def test_every_valid_day_answered_once(fuzz_run: FuzzFigures) -> None:
    """Every input the validator accepts gets an Optimized; repeats are identical."""
    assert fuzz_run.optimized_missing == {}
    assert fuzz_run.inconsistent == 0
    assert fuzz_run.dead_letters_for_valid == 0


def test_every_malformed_input_dead_lettered(fuzz_run: FuzzFigures) -> None:
    """Every other input has a DeadLetter at its source partition and offset (edge kinds
    apart: see the next test)."""
    missing = {k: v for k, v in fuzz_run.dead_letter_missing.items() if k not in EDGE_KINDS}
    assert missing == {}


def test_over_the_limit_is_refused_at_produce(fuzz_run: FuzzFigures) -> None:
    """An input larger than the topic's max.message.bytes never enters: the producer gets
    the broker's refusal (nothing to lose silently)."""
    assert fuzz_run.expected_refused >= 1
    assert fuzz_run.refused_wrongly == {}


def test_worker_stays_up_without_traceback(fuzz_run: FuzzFigures) -> None:
    assert fuzz_run.worker_alive and fuzz_run.tracebacks == 0


def test_size_edges_and_absurd_dates_dead_lettered(fuzz_run: FuzzFigures) -> None:
    """Inputs 1 KiB under and at the topic limit, and days in years 1 and 9999: each has
    its DeadLetter."""
    missing = {k: v for k, v in fuzz_run.dead_letter_missing.items() if k in EDGE_KINDS}
    assert missing == {}
