"""Argument types and the usage error of the command line (pure: no Kafka, no settings).

Bad input on the command line gets one line on stderr and exit code 2, never a traceback:
argparse `type=` functions here reject zero, negative or non-finite numbers with a message
that names the expected range, and a handler raises `UsageError` for what argparse cannot
check (a missing file, an unknown instance name). `streams.cli.main` prints
`error: <message>` and returns 2.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from pydantic import ValidationError

__all__ = [
    "UsageError",
    "describe_json_error",
    "describe_validation_error",
    "non_negative_float",
    "non_negative_int",
    "positive_float",
    "positive_int",
    "read_input_file",
]


class UsageError(Exception):
    """Bad input from the user (file, name, value): printed as one line, exit code 2."""


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None


def _float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"not a finite number: {text!r}")
    return value


def positive_int(text: str) -> int:
    """An integer >= 1 (counts of bookings, drivers, days, episodes)."""
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def non_negative_int(text: str) -> int:
    """An integer >= 0 (seeds, optional counts)."""
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def positive_float(text: str) -> float:
    """A finite number > 0 (time limits, timeouts)."""
    value = _float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, got {text}")
    return value


def non_negative_float(text: str) -> float:
    """A finite number >= 0."""
    value = _float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def read_input_file(path: Path) -> bytes:
    """The bytes of a file the user named; `UsageError` saying why it cannot be read."""
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"{path}: is a directory, not a file") from None
    except PermissionError:
        raise UsageError(f"{path}: permission denied") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot read: {exc.strerror or exc}") from None


def describe_validation_error(exc: ValidationError, *, limit: int = 3) -> str:
    """pydantic's errors on one line: the first `limit` locations and messages, and a count.

    Invalid JSON gets its own wording (where the parser stopped), not a field location.
    """
    errors = exc.errors(include_url=False, include_input=False)
    if errors and errors[0]["type"] == "json_invalid":
        return f"not valid JSON ({errors[0]['msg'].removeprefix('Invalid JSON: ')})"
    parts = [f"{'.'.join(map(str, e['loc'])) or '<root>'}: {e['msg']}" for e in errors[:limit]]
    more = f" (and {len(errors) - limit} more)" if len(errors) > limit else ""
    return "; ".join(parts) + more


def describe_json_error(exc: json.JSONDecodeError) -> str:
    """A `json` module error as a short phrase: what, and where."""
    return f"not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
