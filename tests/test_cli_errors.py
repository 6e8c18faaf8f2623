"""Bad input on the command line or in the environment: one line on stderr, exit code 2,
never a traceback. Each case runs the real `dispatch-rl` entry point in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str, env: dict[str, str] | None = None, cwd: Path = ROOT) -> tuple[int, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("DISPATCH_RL_")}
    base["PYTHONPATH"] = str(ROOT)
    base.update(env or {})
    proc = subprocess.run(
        [sys.executable, "-m", "streams.cli", *args],
        env=base,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return proc.returncode, proc.stderr


def _assert_one_line(code: int, err: str, *needles: str) -> None:
    assert code == 2, err
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Files that are not usable days: text, truncated JSON, binary, empty, a wrong object,
    an unreadable file and a directory."""
    d = tmp_path_factory.mktemp("bad-files")
    out = {
        "text": d / "notes.md",
        "truncated": d / "truncated.json",
        "binary": d / "binary.json",
        "empty": d / "empty.json",
        "not_a_day": d / "not-a-day.json",
        "unreadable": d / "secret.json",
        "directory": d / "a-directory",
    }
    out["text"].write_text("# not json\n")
    out["truncated"].write_text('{"event_id": "x", "drivers": [')
    out["binary"].write_bytes(b"\xff\xfe\x00\x01")
    out["empty"].write_text("")
    out["not_a_day"].write_text('{"hello": 1}')
    out["unreadable"].write_text("{}")
    out["unreadable"].chmod(0)
    out["directory"].mkdir()
    out["missing"] = d / "missing.json"
    return out


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["darp", "zzz-9"], ["unknown instance 'zzz-9'", "darp --list"]),
        (["darp", "a2-1"], ["did you mean a2-16"]),
        (["generate", "--drivers", "0"], ["--drivers", "at least 1, got 0"]),
        (["generate", "--bookings", "-5"], ["--bookings", "at least 1, got -5"]),
        (["generate", "--seed", "-1"], ["--seed", "0 or more"]),
        (["exact", "examples/seed-day.json", "--time-limit", "0"], ["--time-limit"]),
        (["demo", "--timeout", "nan"], ["not a finite number"]),
        (["no-such-command"], ["invalid choice"]),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(args: list[str], needles: list[str]) -> None:
    """Unknown names, zero/negative/non-numeric counts and unknown commands."""
    code, err = _run(*args)
    _assert_one_line(code, err, *needles)


@pytest.mark.parametrize(
    ("command", "kind", "needle"),
    [
        ("optimize", "missing", "no such file"),
        ("exact", "missing", "no such file"),
        ("publish", "missing", "no such file"),
        ("optimize", "directory", "is a directory"),
        ("publish", "text", "not valid JSON"),
        ("exact", "truncated", "not valid JSON"),
        ("optimize", "truncated", "not valid JSON"),
        ("publish", "binary", "not UTF-8"),
        ("optimize", "not_a_day", "not a valid HeuristicDone"),
        ("publish", "not_a_day", "not a valid HeuristicDone"),
    ],
)
def test_bad_files_are_one_line_and_exit_2(
    command: str, kind: str, needle: str, files: dict[str, Path]
) -> None:
    """optimize, exact and publish say what is wrong with the file. (publish validates
    before it looks for a broker, so none is needed here.)"""
    code, err = _run(command, str(files[kind]))
    _assert_one_line(code, err, needle)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a mode-000 file anyway")
def test_unreadable_file_is_one_line(files: dict[str, Path]) -> None:
    """A file without read permission: one line, exit 2."""
    code, err = _run("optimize", str(files["unreadable"]))
    _assert_one_line(code, err, "permission denied")


def test_empty_file_to_publish_is_one_line(files: dict[str, Path]) -> None:
    """publish with a file holding no document says so."""
    code, err = _run("publish", str(files["empty"]))
    _assert_one_line(code, err, "no documents")


def test_unwritable_output_is_one_line(tmp_path: Path) -> None:
    """generate --out into a directory that does not exist."""
    code, err = _run("generate", "--out", str(tmp_path / "nowhere" / "day.json"))
    _assert_one_line(code, err, "cannot write")


def test_missing_dataset_dir_is_one_line(tmp_path: Path) -> None:
    code, err = _run("dataset", "stats", "--dir", str(tmp_path / "none"))
    _assert_one_line(code, err, "no dataset at")


@pytest.mark.parametrize(
    ("env", "needles"),
    [
        (
            {"DISPATCH_RL_MODES": "auto"},
            ["DISPATCH_RL_MODES='auto'", "e.g. DISPATCH_RL_MODES='[\"auto\"]'"],
        ),
        (
            {"DISPATCH_RL_MODES": '["bogus"]'},
            ["DISPATCH_RL_MODES", "'auto', 'semi_auto' or 'manual'"],
        ),
        ({"DISPATCH_RL_OBJECTIVE_WEIGHTS": "1,2"}, ["DISPATCH_RL_OBJECTIVE_WEIGHTS", "JSON"]),
        ({"DISPATCH_RL_MAX_SWAPS": "-1"}, ["DISPATCH_RL_MAX_SWAPS='-1'", "greater than or equal"]),
        ({"DISPATCH_RL_LOG_LEVEL": "loud"}, ["DISPATCH_RL_LOG_LEVEL", "INFO"]),
        ({"DISPATCH_RL_WEB_PORT": "70000"}, ["DISPATCH_RL_WEB_PORT"]),
        ({"DISPATCH_RL_SASL_MECHANISM": "GSSAPI"}, ["DISPATCH_RL_SASL_MECHANISM"]),
    ],
)
def test_bad_environment_settings_are_one_line_and_exit_2(
    env: dict[str, str], needles: list[str]
) -> None:
    """An invalid DISPATCH_RL_* value names the variable, its value and what is expected."""
    code, err = _run("generate", env=env)
    _assert_one_line(code, err, "invalid setting", *needles)


def test_secrets_are_not_echoed() -> None:
    """A bad value next to a password: the error does not print the password."""
    code, err = _run(
        "generate",
        env={"DISPATCH_RL_SASL_PASSWORD": "hunter2", "DISPATCH_RL_MAX_SWAPS": "-1"},
    )
    _assert_one_line(code, err)
    assert "hunter2" not in err


def test_good_input_still_works(tmp_path: Path) -> None:
    """The same entry point with valid input: exit 0 (the checks above are not blanket)."""
    out = tmp_path / "day.json"
    code, err = _run("generate", "--bookings", "5", "--drivers", "1", "--out", str(out))
    assert code == 0, err
    code, err = _run("optimize", str(out), env={"DISPATCH_RL_MODES": '["auto", "manual"]'})
    assert code == 0, err
