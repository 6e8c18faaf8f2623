"""Broken model files: the worker falls back to the shipped model and its health says why."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.faults.scenarios import MODEL_FAULTS, model_fault_scenario

pytestmark = [pytest.mark.faults, pytest.mark.kafka, pytest.mark.timeout(600)]

# What the refusal must mention, per fault (the registry's own wording, loosely).
EXPECTED_REASON = {
    "corrupt": "sha256",
    "missing": "weights",
    "wrong_shape": "fit",
    "nan": "non-finite",
    "malicious_pickle": "pickle",
}


async def test_broken_models_fall_back_and_health_says_why(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """Corrupt, missing, wrong-shape, NaN and malicious-pickle champions, at start and by hot
    reload: each is refused, the shipped default serves the next day, the health endpoint
    names the refused version with a reason, and the pickle never runs."""
    f = await model_fault_scenario(kafka_bootstrap, tmp_path)
    for fault, r in f.results.items():
        print(f"\n[model] {fault}: served {r['served']}; health: {r['health_says']}")
    assert list(f.results) == list(MODEL_FAULTS)
    for fault, r in f.results.items():
        assert r["fell_back"], (fault, r)
        assert r["health_says"] is not None, fault
        assert EXPECTED_REASON[fault] in r["health_says"], (fault, r["health_says"])
    assert not f.pickle_executed
    assert f.worker_alive and f.tracebacks == 0
