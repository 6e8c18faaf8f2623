"""A detached local broker recorded in ``<broker dir>/kafka.json``: start, status, stop.

The broker dir (default ``<data dir>/kafka``) holds ``kafka.json`` (the running broker: pid,
bootstrap, paths), ``server.properties``, ``data/`` (the broker's log dir, formatted once and
kept across restarts) and ``logs/broker.log``. ``start`` leaves a broker running after the
calling process exits; ``status`` and ``stop`` read the state file. An ephemeral broker
(``ephemeral=True``) is recorded the same way but lives in a fresh temporary work dir with free
ports, deleted by ``stop``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from streams.local_kafka.jars import KAFKA_VERSION
from streams.local_kafka.launcher import LocalKafka
from streams.local_kafka.probe import broker_answers
from streams.local_kafka.process import is_broker_process, pid_alive, terminate, wait_pid_gone

__all__ = [
    "DEFAULT_CONTROLLER_PORT",
    "DEFAULT_PORT",
    "KafkaState",
    "KafkaStatus",
    "default_broker_dir",
    "default_data_dir",
    "start",
    "status",
    "stop",
    "using",
]

DEFAULT_PORT = 19092
"""Port of the durable local broker: stable across restarts, so clients keep their bootstrap."""
DEFAULT_CONTROLLER_PORT = 19093

_STATE_FILE = "kafka.json"


def default_data_dir() -> Path:
    """Where dispatch-rl keeps what must survive restarts.

    ``$DISPATCH_RL_DATA_DIR``, else ``$XDG_DATA_HOME/dispatch-rl``, else
    ``~/.local/share/dispatch-rl`` (the XDG default). Always absolute.
    """
    override = os.environ.get("DISPATCH_RL_DATA_DIR")
    if override:
        return Path(override).expanduser().absolute()
    xdg = os.environ.get("XDG_DATA_HOME", "")
    # The XDG spec says to ignore a relative XDG_DATA_HOME.
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".local" / "share"
    return base / "dispatch-rl"


def default_broker_dir() -> Path:
    """``<default_data_dir()>/kafka``: the durable local broker's dir."""
    return default_data_dir() / "kafka"


@dataclass(frozen=True)
class KafkaState:
    """Contents of ``<broker dir>/kafka.json``, written by ``start``."""

    pid: int
    bootstrap: str
    data_dir: str
    log_file: str
    server_properties: str
    kafka_version: str
    started_at: float  # Unix time
    ephemeral: bool = False
    work_dir: str = ""
    on_demand: bool = False
    """Started by `using` (run, demo, audit): the last of them to exit stops it. A broker
    started by `dispatch-rl kafka start` runs until `dispatch-rl kafka stop`."""


@dataclass(frozen=True)
class KafkaStatus:
    """Answer of ``status``: ``running`` means the pid is alive and a Metadata request answers."""

    running: bool
    state: KafkaState | None
    detail: str


def _read_state(broker_dir: Path) -> KafkaState | None:
    try:
        raw = json.loads((broker_dir / _STATE_FILE).read_text())
        known = {f.name for f in fields(KafkaState)}
        return KafkaState(**{k: v for k, v in raw.items() if k in known})
    except (OSError, ValueError, TypeError):
        return None


def _write_state(broker_dir: Path, state: KafkaState) -> None:
    tmp = broker_dir / f".{_STATE_FILE}.tmp"
    tmp.write_text(json.dumps(asdict(state), indent=2) + "\n")
    os.replace(tmp, broker_dir / _STATE_FILE)  # atomic: readers never see half a file


@contextlib.contextmanager
def _locked(broker_dir: Path) -> Iterator[None]:
    # Two `dispatch-rl run` starting at once must not both launch a broker on one data dir.
    broker_dir.mkdir(parents=True, exist_ok=True)
    with (broker_dir / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _as_dir(broker_dir: Path | str | None) -> Path:
    return Path(broker_dir) if broker_dir is not None else default_broker_dir()


def status(broker_dir: Path | str | None = None) -> KafkaStatus:
    """Whether the broker recorded in ``broker_dir`` runs and answers a Metadata request."""
    broker_dir = _as_dir(broker_dir)
    state = _read_state(broker_dir)
    if state is None:
        return KafkaStatus(False, None, f"no broker recorded in {broker_dir / _STATE_FILE}")
    if not (pid_alive(state.pid) and is_broker_process(state.pid, Path(state.server_properties))):
        return KafkaStatus(False, state, f"broker pid {state.pid} is not running")
    if not broker_answers(state.bootstrap):
        return KafkaStatus(
            False, state, f"broker pid {state.pid} runs but {state.bootstrap} does not answer"
        )
    return KafkaStatus(True, state, f"broker pid {state.pid} answers at {state.bootstrap}")


def start(
    broker_dir: Path | str | None = None,
    *,
    port: int = DEFAULT_PORT,
    controller_port: int = DEFAULT_CONTROLLER_PORT,
    ephemeral: bool = False,
    startup_timeout: float = 60.0,
    on_demand: bool = False,
) -> KafkaState:
    """Start a detached broker that outlives the caller and record it in ``broker_dir``.

    Returns once the broker answers. If the broker recorded in ``broker_dir`` already runs and
    answers, returns its state and starts nothing. A recorded broker that runs but does not
    answer is stopped first.

    Durable (default): data in ``broker_dir/data``, formatted on the first start and kept;
    listens on ``port`` (a port taken by another program fails with one clear line).
    Ephemeral: a fresh temporary work dir and free ports, deleted by ``stop``.
    Raises ``KafkaLaunchError`` on failure (``logs/broker.log`` is kept for a look).
    """
    broker_dir = _as_dir(broker_dir)
    with _locked(broker_dir):
        current = status(broker_dir)
        if current.running and current.state is not None:
            return current.state
        stop(broker_dir)
        if ephemeral:
            # A fresh temporary work dir, never inside the durable data.
            work = Path(tempfile.mkdtemp(prefix="dispatch-rl-kafka-ephemeral-"))
            kafka = LocalKafka(work, ephemeral=True, detached=True, startup_timeout=startup_timeout)
        else:
            kafka = LocalKafka(
                broker_dir,
                port=port,
                controller_port=controller_port,
                ephemeral=False,
                detached=True,
                startup_timeout=startup_timeout,
            )
        try:
            kafka.start()
        except BaseException:
            if ephemeral:
                shutil.rmtree(work, ignore_errors=True)
            raise
        state = KafkaState(
            pid=kafka.pid,
            bootstrap=kafka.bootstrap,
            data_dir=str(kafka.data_dir),
            log_file=str(kafka.log_file),
            server_properties=str(kafka.server_properties),
            kafka_version=KAFKA_VERSION,
            started_at=time.time(),
            ephemeral=ephemeral,
            work_dir=str(kafka.work_dir),
            on_demand=on_demand,
        )
        _write_state(broker_dir, state)
        return state


def stop(broker_dir: Path | str | None = None, *, timeout: float = 30.0) -> bool:
    """Stop the broker recorded in ``broker_dir``; True if one was running.

    SIGTERM, then SIGKILL after ``timeout`` s. Only a process whose command line shows it is
    that broker is signalled (a recorded pid may have been reused since). Removes the state
    file; a durable broker's data is kept, an ephemeral one's work dir is deleted.
    """
    broker_dir = _as_dir(broker_dir)
    state = _read_state(broker_dir)
    if state is None:
        return False
    was_running = pid_alive(state.pid) and is_broker_process(
        state.pid, Path(state.server_properties)
    )
    if was_running:
        terminate(state.pid, timeout, lambda t: wait_pid_gone(state.pid, t))
    (broker_dir / _STATE_FILE).unlink(missing_ok=True)
    if state.ephemeral and state.work_dir:
        shutil.rmtree(state.work_dir, ignore_errors=True)
    return was_running


@contextlib.contextmanager
def using(
    broker_dir: Path | str | None = None,
    *,
    port: int = DEFAULT_PORT,
    controller_port: int = DEFAULT_CONTROLLER_PORT,
    startup_timeout: float = 60.0,
) -> Iterator[tuple[KafkaState, bool]]:
    """Use the durable broker of ``broker_dir`` for the duration of the block, starting it if
    none runs; yields ``(state, started)``.

    Several processes on one host may use it at once (a second worker, an audit while `run`
    serves): each holds a shared lock on ``users.lock`` while inside. A broker this function
    started (``on_demand``) is stopped, its data kept, by the last user to leave; one started
    by ``dispatch-rl kafka start`` is left running.
    """
    broker_dir = _as_dir(broker_dir)
    broker_dir.mkdir(parents=True, exist_ok=True)
    users = broker_dir / "users.lock"
    mine = users.open("a")
    try:
        fcntl.flock(mine, fcntl.LOCK_SH)
        current = status(broker_dir)
        started = not (current.running and current.state is not None)
        state = (
            start(
                broker_dir,
                port=port,
                controller_port=controller_port,
                startup_timeout=startup_timeout,
                on_demand=True,
            )
            if started
            else current.state
        )
        assert state is not None
    except BaseException:
        mine.close()
        raise
    try:
        yield state, started
    finally:
        mine.close()  # releases our shared lock
        _stop_if_last_user(broker_dir, users, state)


def _stop_if_last_user(broker_dir: Path, users: Path, state: KafkaState) -> None:
    # The broker is ours to stop only if no other process holds a shared lock on `users`.
    with users.open("a") as probe:
        try:
            fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return  # another process still uses it
        recorded = _read_state(broker_dir)
        if recorded is not None and recorded.on_demand and recorded.pid == state.pid:
            stop(broker_dir)
