"""Shared fixtures. The Kafka broker fixture (`kafka_bootstrap`) comes from `tests.kafka_broker`."""

from __future__ import annotations

import os
import shutil
import tempfile

import hypothesis  # noqa: F401  # see below
import pytest

from optimizer.seed import seed_day as build_seed_day
from schemas import HeuristicDone

# hypothesis is imported here, at collection, on purpose: when its pytest plugin first imports
# it at the end of a session (a run with no test that uses it), pytest's assertion rewriter
# hits CPython 3.11.7's "SystemError: AST constructor recursion depth mismatch" and the run
# fails after its tests passed.
pytest_plugins = ["tests.kafka_broker", "tests.pg_server"]

_DATA_HOME = pytest.StashKey[str]()


def pytest_configure(config: pytest.Config) -> None:
    """Point the default data dir (`XDG_DATA_HOME`, `DISPATCH_RL_DATA_DIR`) at a temporary
    directory for the session and its subprocesses, so no test writes into the user's real
    `~/.local/share/dispatch-rl` (the durable broker, dataset and audit store live there)."""
    root = tempfile.mkdtemp(prefix="dispatch-rl-test-data-")
    config.stash[_DATA_HOME] = root
    os.environ["XDG_DATA_HOME"] = root
    os.environ["DISPATCH_RL_DATA_DIR"] = os.path.join(root, "dispatch-rl")


def pytest_unconfigure(config: pytest.Config) -> None:
    root = config.stash.get(_DATA_HOME, None)
    if root is not None:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def seed_day() -> HeuristicDone:
    """The original system's historical day: 10 bookings, 3 drivers, rides 5/3/2."""
    return build_seed_day()
