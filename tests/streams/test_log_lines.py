"""Each log record reaches stderr in one write (`streams.logs.configure_logging`)."""

from __future__ import annotations

import io
import json

import pytest
import structlog

from streams.logs import configure_logging


class Writes(io.StringIO):
    """A stderr that remembers each write call."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def write(self, s: str) -> int:
        self.calls.append(s)
        return super().write(s)

    def isatty(self) -> bool:
        return False


def test_a_record_and_its_newline_are_one_write(monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker and its prepare processes share one stderr: a record written as two calls
    (text, then newline) can be glued to another process's record in between."""
    stderr = Writes()
    monkeypatch.setattr("sys.stderr", stderr)
    configure_logging("json", "INFO")
    try:
        structlog.get_logger("t").info("pass_started", dispatch_id="d-1")
        assert len(stderr.calls) == 1
        assert stderr.calls[0].endswith("\n") and stderr.calls[0].count("\n") == 1
        assert json.loads(stderr.calls[0])["dispatch_id"] == "d-1"
    finally:
        configure_logging("json", "WARNING")
