"""dispatch-rl's streaming service: the only package that knows Kafka.

Names are imported lazily (PEP 562): `import streams.local_kafka` stays cheap, and Faust is
loaded only by whoever asks for the app.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from streams.app import create_app
    from streams.codec import decode, encode
    from streams.commands import add_commands
    from streams.dataset import DatasetWriter, dataset_stats, run_dataset_writer
    from streams.settings import Settings
    from streams.topics import ensure_topics, topic_specs
    from streams.worker import running_worker

_WHERE = {
    "DatasetWriter": "streams.dataset",
    "Settings": "streams.settings",
    "add_commands": "streams.commands",
    "create_app": "streams.app",
    "dataset_stats": "streams.dataset",
    "decode": "streams.codec",
    "encode": "streams.codec",
    "ensure_topics": "streams.topics",
    "run_dataset_writer": "streams.dataset",
    "running_worker": "streams.worker",
    "topic_specs": "streams.topics",
}

__all__ = [
    "DatasetWriter",
    "Settings",
    "add_commands",
    "create_app",
    "dataset_stats",
    "decode",
    "encode",
    "ensure_topics",
    "run_dataset_writer",
    "running_worker",
    "topic_specs",
]


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'streams' has no attribute {name!r}")
