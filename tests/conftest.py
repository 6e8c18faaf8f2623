"""Shared fixtures. The Kafka broker fixture (`kafka_bootstrap`) comes from `tests.kafka_broker`."""

from __future__ import annotations

import pytest

from optimizer.seed import seed_day as build_seed_day
from schemas import HeuristicDone

pytest_plugins = ["tests.kafka_broker"]


@pytest.fixture(scope="session")
def seed_day() -> HeuristicDone:
    """The original system's historical day: 10 bookings, 3 drivers, rides 5/3/2."""
    return build_seed_day()
