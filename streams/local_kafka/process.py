"""Process plumbing for the broker JVM: liveness, signals, detaching, free ports, log tails."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from streams.local_kafka.jars import KafkaLaunchError

__all__ = [
    "DETACH_SCRIPT",
    "free_ports",
    "is_broker_process",
    "parent_death_signal",
    "pid_alive",
    "signal_group",
    "tail",
    "terminate",
    "wait_pid_gone",
]

# Starts the broker as a grandchild and exits: the broker is then not our child, so it outlives
# us without becoming a zombie we must reap, and Popen never warns about it still running.
DETACH_SCRIPT = (
    "import subprocess, sys\n"
    "log = open(sys.argv[1], 'ab')\n"
    "p = subprocess.Popen(sys.argv[3:], cwd=sys.argv[2], stdin=subprocess.DEVNULL,\n"
    "                     stdout=log, stderr=subprocess.STDOUT, start_new_session=True)\n"
    "print(p.pid, flush=True)\n"
)


def free_ports(count: int) -> list[int]:
    """``count`` distinct ports free on 127.0.0.1 right now.

    All sockets stay open until every port is picked so the ports are distinct. Another process
    can still take one before the broker binds it; the launcher retries on that.
    """
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def tail(path: Path, lines: int = 40) -> str:
    """The last ``lines`` lines of a log file (for error messages)."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 16_000))
            text = fh.read().decode("utf-8", "replace")
    except OSError:
        return "(no broker log)"
    return "\n".join(text.splitlines()[-lines:]) or "(broker log is empty)"


def pid_alive(pid: int) -> bool:
    """True if ``pid`` runs and is not a zombie (a zombie answers signal 0 but is dead)."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)  # reap it if it is our own exited child
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc (macOS): signal 0 is the best we have
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def is_broker_process(pid: int, server_properties: Path) -> bool:
    """Whether ``pid`` is the broker started with ``server_properties`` (guards pid reuse)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return pid_alive(pid)  # no /proc: cannot tell, trust the pid
    return b"kafka.Kafka" in cmdline and os.fsencode(server_properties) in cmdline


def signal_group(pid: int, sig: signal.Signals) -> None:
    """Signal the broker's process group (it leads its own session), else the pid alone."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)


def terminate(pid: int, timeout: float, wait: Callable[[float], bool]) -> None:
    """SIGTERM, wait up to ``timeout`` s for a clean shutdown, then SIGKILL."""
    signal_group(pid, signal.SIGTERM)
    if wait(timeout):
        return
    signal_group(pid, signal.SIGKILL)
    if not wait(10.0):
        raise KafkaLaunchError(f"Kafka broker pid {pid} survived SIGKILL")


def wait_pid_gone(pid: int, timeout: float) -> bool:
    """Poll until ``pid`` is gone; False if it still runs after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while pid_alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)
    return True


def parent_death_signal() -> Callable[[], None] | None:
    """A preexec_fn asking Linux to SIGTERM the child when this process dies, or None.

    Keeps a crashed or killed test session from leaking a broker. Linux ties the signal to the
    *thread* that forked, so it is only used from the main thread (which lives as long as the
    process); libc is resolved here, before the fork, as the child may not load libraries.
    """
    if not sys.platform.startswith("linux") or threading.current_thread() is not (
        threading.main_thread()
    ):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig = 1

    def preexec() -> None:
        prctl(pr_set_pdeathsig, int(signal.SIGTERM))

    return preexec
