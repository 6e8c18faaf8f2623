"""Fixtures of the audit store tests: a store on each backend, and the events to put in it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from optimizer.dispatch import Outcome, optimize_event
from optimizer.generate import generate_day
from optimizer.policy import GreedyPolicy
from schemas import HeuristicDone
from streams.store import AuditStore


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty database: a SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'audit.sqlite3'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def store(store_url: str) -> Iterator[AuditStore]:
    """An opened (migrated) store on each backend, disposed after the test."""
    s = AuditStore.open(store_url)
    try:
        yield s
    finally:
        s.close()


@pytest.fixture(scope="session")
def days_and_outcomes(seed_day: HeuristicDone) -> list[tuple[HeuristicDone, Outcome]]:
    """Three days (the seed day and two generated ones, different dates) and their outcomes."""
    days = [seed_day, generate_day(30, 5, 11), generate_day(20, 4, 12)]
    return [(d, optimize_event(d, GreedyPolicy())) for d in days]
