"""A small local Apache Kafka broker for development and tests, run from Maven jars.

No Docker and no Kafka tarball: the broker's jars are fetched once with Maven (``ensure_jars``)
and the broker runs as a plain ``java`` process in KRaft combined mode (broker and controller in
one process, static voters), listening on 127.0.0.1 only.

Two ways to use it:

* In-process, for tests and scripts::

      with LocalKafka() as kafka:
          use(kafka.bootstrap)          # "127.0.0.1:<port>"

  The broker is a child of the caller, started in its own process group, and is stopped by
  ``stop()``/the context manager (and, best effort, when the caller exits or dies).

* Detached, for the ``dispatch-rl kafka start|status|stop`` command (``main``): ``start`` leaves a
  broker running after the calling process exits and records it in ``<state dir>/kafka.json``;
  ``status`` and ``stop`` read that file.

What callers must know:

* Needs Java 17+ (``$JAVA_HOME/bin/java`` or ``java`` on PATH). The first use needs Maven
  (``mvn`` on PATH) and access to Maven Central to download about 46 MB of jars into
  ``~/.cache/dispatch-rl/kafka-<version>/libs``; later uses are offline.
* Every start uses a fresh, empty data directory and two newly picked free ports: topics and
  offsets never survive a restart, and the bootstrap address changes on each start.
* Development/test broker only: one node, replication factor 1, PLAINTEXT, no authentication.

Environment variables:

* ``DISPATCH_RL_KAFKA_HOME``: where the jars live (``$DISPATCH_RL_KAFKA_HOME/libs``), default
  ``~/.cache/dispatch-rl/kafka-<version>``. It may also point at an unpacked Apache Kafka 3.9
  tarball, whose ``libs/`` has everything needed; no download happens then.
* ``DISPATCH_RL_STATE_DIR``: the project's state root; the detached broker's state dir is
  ``$DISPATCH_RL_STATE_DIR/kafka`` (default ``./var/kafka``, relative to the current directory).

This module uses the standard library only (no Faust, no Kafka client), so the CLI and the test
fixtures can import it cheaply.
"""

from __future__ import annotations

import argparse
import atexit
import base64
import contextlib
import ctypes
import fcntl
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType

__all__ = [
    "KAFKA_VERSION",
    "BrokerMetadata",
    "KafkaLaunchError",
    "KafkaState",
    "KafkaStatus",
    "LocalKafka",
    "default_state_dir",
    "ensure_jars",
    "kafka_home",
    "main",
    "metadata_request",
    "start",
    "status",
    "stop",
]

KAFKA_VERSION = "3.9.1"
"""Apache Kafka version of the local broker; must match ``streams/kafka/pom.xml``."""

_RESOURCES = Path(__file__).resolve().parent / "kafka"
_POM = _RESOURCES / "pom.xml"
_LOG4J = _RESOURCES / "log4j.properties"

_STATE_FILE = "kafka.json"
_HEAP = "512m"  # kafka-server-start defaults to 1 GiB; a test broker needs far less
_CLIENT_ID = "dispatch-rl-local-kafka"
_NODE_ID = 1


class KafkaLaunchError(RuntimeError):
    """The local broker could not be provisioned, started, or stopped.

    The message says why and, when the broker itself failed, ends with the tail of its log.
    """


# --------------------------------------------------------------------------------------------
# Jars


def kafka_home() -> Path:
    """Directory holding ``libs/`` with the broker's jars (see ``DISPATCH_RL_KAFKA_HOME``)."""
    override = os.environ.get("DISPATCH_RL_KAFKA_HOME")
    if override:
        return Path(override).expanduser()
    return Path.home() / ".cache" / "dispatch-rl" / f"kafka-{KAFKA_VERSION}"


def _jars_present(libs: Path) -> bool:
    # A libs dir only ever appears complete (it is renamed into place), so the broker jar
    # standing in it is enough; this also accepts the libs/ of an unpacked Kafka tarball.
    return libs.is_dir() and any(libs.glob("kafka_2.13-*.jar"))


def ensure_jars() -> Path:
    """Return the directory with the broker's jars, downloading them with Maven if needed.

    Idempotent and cheap once the jars are there (no Maven run, no network). The download goes
    to a temporary directory next to the final one, which is renamed into place only when Maven
    succeeded, so an interrupted download never leaves a half set; concurrent callers (say,
    parallel test sessions) are serialised by a lock file.

    Raises ``KafkaLaunchError`` if Maven is missing or fails (its output is in the message).
    """
    home = kafka_home()
    libs = home / "libs"
    if _jars_present(libs):
        return libs
    home.mkdir(parents=True, exist_ok=True)
    with (home / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _jars_present(libs):  # another process finished while we waited for the lock
            return libs
        mvn = shutil.which("mvn")
        if mvn is None:
            raise KafkaLaunchError(
                f"the Kafka {KAFKA_VERSION} jars are not in {libs} and Maven ('mvn') is not on "
                "PATH to fetch them; install Maven or set DISPATCH_RL_KAFKA_HOME to an unpacked "
                "Kafka 3.9 distribution"
            )
        tmp = Path(tempfile.mkdtemp(prefix="libs.partial-", dir=home))
        try:
            cmd = [
                mvn,
                "-q",
                "-B",
                "-f",
                str(_POM),
                "dependency:copy-dependencies",
                "-DincludeScope=runtime",
                f"-DoutputDirectory={tmp}",
            ]
            proc = subprocess.run(
                cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False
            )
            if proc.returncode != 0 or not _jars_present(tmp):
                output = (proc.stdout + proc.stderr).strip()[-4000:]
                raise KafkaLaunchError(
                    f"fetching the Kafka {KAFKA_VERSION} jars with Maven failed "
                    f"(exit {proc.returncode}): {' '.join(cmd)}\n{output}"
                )
            if libs.exists():
                # We only ever rename complete sets into place, so this one is not ours (say, a
                # DISPATCH_RL_KAFKA_HOME pointing at the wrong tree): refuse to delete it.
                raise KafkaLaunchError(
                    f"{libs} exists but holds no kafka_2.13-*.jar; remove it or fix "
                    "DISPATCH_RL_KAFKA_HOME"
                )
            tmp.rename(libs)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return libs


def _java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").is_file():
        return str(Path(java_home) / "bin" / "java")
    java = shutil.which("java")
    if java is None:
        raise KafkaLaunchError("Java 17+ is needed for the local Kafka broker: no 'java' on PATH")
    return java


# --------------------------------------------------------------------------------------------
# Readiness: a real Kafka Metadata request over a socket


@dataclass(frozen=True)
class BrokerMetadata:
    """What a broker answered to a Metadata request."""

    cluster_id: str | None
    controller_id: int
    brokers: tuple[tuple[int, str, int], ...]  # (node id, host, port)


def _split_host_port(address: str) -> tuple[str, int]:
    host, _, port = address.strip().rpartition(":")
    return host.strip("[]"), int(port)


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    buf = bytearray()
    while len(buf) < size:
        chunk = sock.recv(size - len(buf))
        if not chunk:
            raise ConnectionError("broker closed the connection")
        buf += chunk
    return bytes(buf)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    def _take(self, fmt: str) -> int:
        (value,) = struct.unpack_from(fmt, self._data, self._pos)
        self._pos += struct.calcsize(fmt)
        return int(value)

    def int16(self) -> int:
        return self._take(">h")

    def int32(self) -> int:
        return self._take(">i")

    def string(self) -> str | None:
        size = self.int16()
        if size < 0:
            return None
        raw = self._data[self._pos : self._pos + size]
        self._pos += size
        return raw.decode("utf-8")


def _metadata_once(host: str, port: int, timeout: float) -> BrokerMetadata:
    # Metadata v4 (non-flexible, request header v1): answered by Kafka 1.0 through 4.x, which
    # dropped only v0-v3. An empty topic array asks for brokers and cluster info only.
    api_key, api_version, correlation_id = 3, 4, 1
    client = _CLIENT_ID.encode()
    header = struct.pack(">hhih", api_key, api_version, correlation_id, len(client)) + client
    body = struct.pack(">ib", 0, 0)  # topics: empty array; allow_auto_topic_creation: false
    request = header + body
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        sock.sendall(struct.pack(">i", len(request)) + request)
        (size,) = struct.unpack(">i", _recv_exact(sock, 4))
        reader = _Reader(_recv_exact(sock, size))
    if reader.int32() != correlation_id:
        raise ConnectionError("unexpected correlation id in Metadata response")
    reader.int32()  # throttle_time_ms
    brokers = []
    for _ in range(reader.int32()):
        node_id = reader.int32()
        broker_host = reader.string() or ""
        broker_port = reader.int32()
        reader.string()  # rack
        brokers.append((node_id, broker_host, broker_port))
    cluster_id = reader.string()
    controller_id = reader.int32()
    return BrokerMetadata(cluster_id, controller_id, tuple(brokers))


def metadata_request(bootstrap: str, timeout: float = 5.0) -> BrokerMetadata:
    """Send a Kafka Metadata request to the first answering address of ``bootstrap``.

    ``bootstrap`` is a comma-separated ``host:port`` list. Raises ``OSError`` (including
    ``ConnectionError``/``TimeoutError``) if no address answers with a well-formed response, and
    ``ValueError`` for an unparsable address. An answer lists at least one broker once the
    broker serves requests; an empty broker list means it is still starting.
    """
    errors: list[str] = []
    for address in filter(None, (part.strip() for part in bootstrap.split(","))):
        host, port = _split_host_port(address)
        try:
            return _metadata_once(host, port, timeout)
        except (OSError, struct.error) as exc:
            errors.append(f"{address}: {exc!r}")
    raise ConnectionError(f"no Kafka broker answered at {bootstrap!r}: {'; '.join(errors)}")


def _broker_answers(bootstrap: str, timeout: float = 2.0) -> bool:
    try:
        return bool(metadata_request(bootstrap, timeout).brokers)
    except (OSError, ValueError):
        return False


# --------------------------------------------------------------------------------------------
# Processes


def _free_ports(count: int) -> list[int]:
    # Hold all sockets open until every port is picked so the ports are distinct. Another
    # process can still take one before the broker binds it; start() retries on that.
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


def _cluster_id() -> str:
    """22 chars of url-safe base64 of a uuid4, never starting with '-'.

    One id in 64 would start with '-', which StorageTool's argument parser takes for an
    option, so `format -t -abc...` fails (Kafka's own `Uuid.randomUuid()` skips those too).
    """
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


def _tail(path: Path, lines: int = 40) -> str:
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 16_000))
            text = fh.read().decode("utf-8", "replace")
    except OSError:
        return "(no broker log)"
    return "\n".join(text.splitlines()[-lines:]) or "(broker log is empty)"


def _pid_alive(pid: int) -> bool:
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


def _is_broker_process(pid: int, server_properties: Path) -> bool:
    """Whether ``pid`` is the broker started with ``server_properties`` (guards pid reuse)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return _pid_alive(pid)  # no /proc: cannot tell, trust the pid
    return b"kafka.Kafka" in cmdline and os.fsencode(server_properties) in cmdline


def _signal_group(pid: int, sig: signal.Signals) -> None:
    # The broker leads its own process group (new session), so signal the whole group.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)


def _terminate(pid: int, timeout: float, wait: Callable[[float], bool]) -> None:
    """SIGTERM, wait up to ``timeout`` s for a clean shutdown, then SIGKILL."""
    _signal_group(pid, signal.SIGTERM)
    if wait(timeout):
        return
    _signal_group(pid, signal.SIGKILL)
    if not wait(10.0):
        raise KafkaLaunchError(f"Kafka broker pid {pid} survived SIGKILL")


def _wait_pid_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while _pid_alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)
    return True


def _parent_death_signal() -> Callable[[], None] | None:
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


# Starts the broker as a grandchild and exits: the broker is then not our child, so it outlives
# us without becoming a zombie we must reap, and Popen never warns about it still running.
_DETACH = (
    "import subprocess, sys\n"
    "log = open(sys.argv[1], 'ab')\n"
    "p = subprocess.Popen(sys.argv[3:], cwd=sys.argv[2], stdin=subprocess.DEVNULL,\n"
    "                     stdout=log, stderr=subprocess.STDOUT, start_new_session=True)\n"
    "print(p.pid, flush=True)\n"
)


class LocalKafka:
    """One single-node KRaft Kafka broker on 127.0.0.1, started from the cached jars.

    ``work_dir`` receives ``server.properties``, ``data/`` (the broker's log dirs, wiped at every
    start) and ``logs/broker.log`` (the broker's console output, WARN and above). Without
    ``work_dir`` a temporary directory is used and deleted by ``stop()``.

    ``start()`` returns only once the broker answers a Metadata request; it raises
    ``KafkaLaunchError`` (with the tail of the broker log) if the broker dies or does not answer
    within ``startup_timeout`` seconds. A cold start takes a few seconds once the jars are cached;
    the first start on a machine also downloads them (``ensure_jars``).

    With ``detached=True`` the broker is not a child of this process and keeps running after it
    exits (used by the ``start`` function); otherwise it is a child in its own process group,
    stopped by ``stop()``, the context manager, at interpreter exit, or (Linux, when started
    from the main thread) by the kernel if this process dies.

    Not thread-safe; one instance runs at most one broker at a time.
    """

    def __init__(
        self,
        work_dir: Path | str | None = None,
        *,
        startup_timeout: float = 60.0,
        heap: str = _HEAP,
        detached: bool = False,
    ) -> None:
        self._owns_work_dir = work_dir is None
        self._work_dir_arg = Path(work_dir).resolve() if work_dir is not None else None
        self._startup_timeout = startup_timeout
        self._heap = heap
        self._detached = detached
        self._work_dir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._pid: int | None = None
        self._bootstrap: str | None = None

    # -- properties ---------------------------------------------------------------------------

    @property
    def bootstrap(self) -> str:
        """``"127.0.0.1:PORT"`` of the running broker; ``RuntimeError`` before ``start()``."""
        if self._bootstrap is None:
            raise RuntimeError("LocalKafka is not started")
        return self._bootstrap

    @property
    def pid(self) -> int:
        """Process id of the broker JVM (also its process group id)."""
        if self._pid is None:
            raise RuntimeError("LocalKafka is not started")
        return self._pid

    @property
    def work_dir(self) -> Path:
        if self._work_dir is None:
            raise RuntimeError("LocalKafka is not started")
        return self._work_dir

    @property
    def data_dir(self) -> Path:
        return self.work_dir / "data"

    @property
    def log_file(self) -> Path:
        return self.work_dir / "logs" / "broker.log"

    @property
    def server_properties(self) -> Path:
        return self.work_dir / "server.properties"

    def is_running(self) -> bool:
        """Whether the broker process is alive (not whether it answers; see ``metadata``)."""
        if self._proc is not None:
            return self._proc.poll() is None
        return self._pid is not None and _pid_alive(self._pid)

    def metadata(self, timeout: float = 5.0) -> BrokerMetadata:
        """A Metadata request to this broker (raises ``OSError`` if it does not answer)."""
        return metadata_request(self.bootstrap, timeout)

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> LocalKafka:
        """Start the broker and wait until it answers; returns ``self``."""
        if self._pid is not None:
            raise RuntimeError("LocalKafka is already started")
        libs = ensure_jars()
        java = _java()
        if self._work_dir_arg is None:
            self._work_dir = Path(tempfile.mkdtemp(prefix="dispatch-rl-kafka-"))
        else:
            self._work_dir = self._work_dir_arg
            self._work_dir.mkdir(parents=True, exist_ok=True)
        try:
            # A port picked free can be taken by someone else before the JVM binds it: retry.
            for attempt in range(3):
                try:
                    self._start_once(java, libs)
                    return self
                except KafkaLaunchError as exc:
                    if attempt == 2 or "Address already in use" not in str(exc):
                        raise
        except BaseException:
            self._cleanup_after_failure()
            raise
        raise AssertionError("unreachable")

    def _java_cmd(self, java: str, libs: Path, main_class: str, *args: str) -> list[str]:
        logs = self.work_dir / "logs"
        return [
            java,
            f"-Xmx{self._heap}",
            "-Djava.awt.headless=true",
            f"-Dkafka.logs.dir={logs}",
            f"-Dlog4j.configuration={_LOG4J.as_uri()}",
            "-cp",
            str(libs / "*"),  # expanded by the JVM, not a shell
            main_class,
            *args,
        ]

    def _write_properties(self, port: int, controller_port: int) -> None:
        props = {
            # KRaft combined mode with static voters, as tested on Kafka 3.9 and 4.x.
            "process.roles": "broker,controller",
            "node.id": str(_NODE_ID),
            "controller.quorum.voters": f"{_NODE_ID}@127.0.0.1:{controller_port}",
            "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
            "inter.broker.listener.name": "PLAINTEXT",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(self.data_dir),
            # Single node: everything replicated once; tests create topics implicitly.
            "num.partitions": "1",
            "auto.create.topics.enable": "true",
            "default.replication.factor": "1",
            "offsets.topic.replication.factor": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            # One partition for the internal topics: the first consumer group and transaction
            # come up much faster than with the default 50 partitions.
            "offsets.topic.num.partitions": "1",
            "transaction.state.log.num.partitions": "1",
            "group.initial.rebalance.delay.ms": "0",
            # Small-disk and small-heap friendly: short retention, modest segments, and a
            # log-cleaner buffer that fits the 512 MiB heap comfortably.
            "log.retention.hours": "24",
            "log.segment.bytes": str(64 * 1024 * 1024),
            "log.cleaner.dedupe.buffer.size": str(16 * 1024 * 1024),
        }
        text = "".join(f"{key}={value}\n" for key, value in props.items())
        self.server_properties.write_text(text)

    def _start_once(self, java: str, libs: Path) -> None:
        work = self.work_dir
        shutil.rmtree(self.data_dir, ignore_errors=True)
        self.data_dir.mkdir(parents=True)
        (work / "logs").mkdir(exist_ok=True)
        self.log_file.write_bytes(b"")
        port, controller_port = _free_ports(2)
        self._write_properties(port, controller_port)

        # Without formatting the broker dies with "No readable meta.properties files found".
        # Static voters: no --standalone.
        fmt = self._java_cmd(
            java,
            libs,
            "kafka.tools.StorageTool",
            "format",
            "-t",
            _cluster_id(),
            "-c",
            str(self.server_properties),
        )
        proc = subprocess.run(
            fmt, cwd=work, stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False
        )
        if proc.returncode != 0:
            raise KafkaLaunchError(
                f"formatting the Kafka storage failed (exit {proc.returncode}):\n"
                f"{(proc.stdout + proc.stderr).strip()[-4000:]}"
            )

        cmd = self._java_cmd(java, libs, "kafka.Kafka", str(self.server_properties))
        if self._detached:
            detach = [sys.executable, "-I", "-W", "ignore", "-c", _DETACH]
            launcher = subprocess.run(
                [*detach, str(self.log_file), str(work), *cmd],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                check=False,
                timeout=60,
            )
            if launcher.returncode != 0:
                raise KafkaLaunchError(f"could not launch the broker: {launcher.stderr.strip()}")
            self._pid = int(launcher.stdout.split()[0])
        else:
            with self.log_file.open("ab") as log:
                self._proc = subprocess.Popen(
                    cmd,
                    cwd=work,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # own process group: our Ctrl-C does not hit it
                    preexec_fn=_parent_death_signal(),
                )
            self._pid = self._proc.pid
            atexit.register(self._stop_at_exit)
        self._bootstrap = f"127.0.0.1:{port}"
        try:
            self._wait_ready()
        except BaseException:
            self._kill_now()
            raise

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self._startup_timeout
        last_error = "no answer yet"
        while True:
            if not self.is_running():
                raise KafkaLaunchError(
                    f"the Kafka broker exited during startup{self._log_hint()}:\n"
                    f"{_tail(self.log_file)}"
                )
            try:
                if self.metadata(timeout=2.0).brokers:
                    return
                last_error = "Metadata response listed no broker yet"
            except (OSError, ValueError) as exc:
                last_error = repr(exc)
            if time.monotonic() >= deadline:
                raise KafkaLaunchError(
                    f"the Kafka broker at {self._bootstrap} did not answer a Metadata request "
                    f"within {self._startup_timeout:g} s (last: {last_error}){self._log_hint()}:"
                    f"\n{_tail(self.log_file)}"
                )
            time.sleep(0.2)

    def _log_hint(self) -> str:
        # A temporary work dir is deleted on failure, so only name a log that will still exist.
        return "" if self._owns_work_dir else f" (log {self.log_file})"

    def _wait_gone(self, timeout: float) -> bool:
        if self._proc is not None:
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                return False
            return True
        return self._pid is None or _wait_pid_gone(self._pid, timeout)

    def _kill_now(self) -> None:
        if self._pid is not None and self.is_running():
            _signal_group(self._pid, signal.SIGKILL)
            self._wait_gone(10.0)
        self._forget()

    def _forget(self) -> None:
        atexit.unregister(self._stop_at_exit)
        self._proc = None
        self._pid = None
        self._bootstrap = None

    def _cleanup_after_failure(self) -> None:
        # Keep a caller-chosen work dir (its broker.log explains the failure); the tail of the
        # log is already in the exception for temporary ones.
        if self._owns_work_dir and self._work_dir is not None:
            shutil.rmtree(self._work_dir, ignore_errors=True)
            self._work_dir = None

    def _stop_at_exit(self) -> None:
        with contextlib.suppress(Exception):
            self.stop(timeout=15.0)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the broker: SIGTERM, up to ``timeout`` s for a clean shutdown, then SIGKILL.

        Idempotent. Deletes the work dir if it was a temporary one.
        """
        if self._pid is not None:
            if self.is_running():
                _terminate(self._pid, timeout, self._wait_gone)
            self._forget()
        if self._owns_work_dir and self._work_dir is not None:
            shutil.rmtree(self._work_dir, ignore_errors=True)
            self._work_dir = None

    def __enter__(self) -> LocalKafka:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


# --------------------------------------------------------------------------------------------
# Detached broker recorded in a state file (the CLI)


@dataclass(frozen=True)
class KafkaState:
    """Contents of ``<state dir>/kafka.json``, written by ``start``."""

    pid: int
    bootstrap: str
    data_dir: str
    log_file: str
    server_properties: str
    kafka_version: str
    started_at: float  # Unix time


@dataclass(frozen=True)
class KafkaStatus:
    """Answer of ``status``: ``running`` means the pid is alive and a Metadata request answers."""

    running: bool
    state: KafkaState | None
    detail: str


def default_state_dir() -> Path:
    """``$DISPATCH_RL_STATE_DIR/kafka``, or ``./var/kafka`` relative to the current directory."""
    return Path(os.environ.get("DISPATCH_RL_STATE_DIR") or "var") / "kafka"


def _read_state(state_dir: Path) -> KafkaState | None:
    try:
        raw = json.loads((state_dir / _STATE_FILE).read_text())
        return KafkaState(**raw)
    except (OSError, ValueError, TypeError):
        return None


def _write_state(state_dir: Path, state: KafkaState) -> None:
    tmp = state_dir / f".{_STATE_FILE}.tmp"
    tmp.write_text(json.dumps(asdict(state), indent=2) + "\n")
    os.replace(tmp, state_dir / _STATE_FILE)  # atomic: readers never see half a file


def status(state_dir: Path | str | None = None) -> KafkaStatus:
    """Whether the broker recorded in ``state_dir`` runs and answers a Metadata request."""
    state_dir = Path(state_dir) if state_dir is not None else default_state_dir()
    state = _read_state(state_dir)
    if state is None:
        return KafkaStatus(False, None, f"no broker recorded in {state_dir / _STATE_FILE}")
    if not (_pid_alive(state.pid) and _is_broker_process(state.pid, Path(state.server_properties))):
        return KafkaStatus(False, state, f"broker pid {state.pid} is not running")
    if not _broker_answers(state.bootstrap):
        return KafkaStatus(
            False, state, f"broker pid {state.pid} runs but {state.bootstrap} does not answer"
        )
    return KafkaStatus(True, state, f"broker pid {state.pid} answers at {state.bootstrap}")


def start(state_dir: Path | str | None = None, *, startup_timeout: float = 60.0) -> KafkaState:
    """Start a detached broker that outlives the caller and record it in ``state_dir``.

    Returns once the broker answers. If the broker recorded in ``state_dir`` already runs and
    answers, returns its state and starts nothing. A recorded broker that runs but does not
    answer is stopped first. Each start begins with an empty ``state_dir/data``. Raises
    ``KafkaLaunchError`` on failure (``state_dir/logs/broker.log`` is kept for a look).
    """
    state_dir = Path(state_dir) if state_dir is not None else default_state_dir()
    current = status(state_dir)
    if current.running and current.state is not None:
        return current.state
    stop(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    kafka = LocalKafka(state_dir, startup_timeout=startup_timeout, detached=True).start()
    state = KafkaState(
        pid=kafka.pid,
        bootstrap=kafka.bootstrap,
        data_dir=str(kafka.data_dir),
        log_file=str(kafka.log_file),
        server_properties=str(kafka.server_properties),
        kafka_version=KAFKA_VERSION,
        started_at=time.time(),
    )
    _write_state(state_dir, state)
    return state


def stop(state_dir: Path | str | None = None, *, timeout: float = 30.0) -> bool:
    """Stop the broker recorded in ``state_dir``; True if one was running.

    SIGTERM, then SIGKILL after ``timeout`` s. Only a process whose command line shows it is
    that broker is signalled (a recorded pid may have been reused since). Removes the state
    file and the data dir; keeps ``logs/``.
    """
    state_dir = Path(state_dir) if state_dir is not None else default_state_dir()
    state = _read_state(state_dir)
    if state is None:
        return False
    was_running = _pid_alive(state.pid) and _is_broker_process(
        state.pid, Path(state.server_properties)
    )
    if was_running:
        _terminate(state.pid, timeout, lambda t: _wait_pid_gone(state.pid, t))
    (state_dir / _STATE_FILE).unlink(missing_ok=True)
    shutil.rmtree(state.data_dir, ignore_errors=True)
    return was_running


# --------------------------------------------------------------------------------------------
# CLI


def _print_state(state: KafkaState) -> None:
    print(f"bootstrap={state.bootstrap}")
    print(f"pid={state.pid}")
    print(f"data_dir={state.data_dir}")
    print(f"log_file={state.log_file}")


def main(argv: Sequence[str] | None = None) -> int:
    """``dispatch-rl kafka start|status|stop``: a detached local broker for development.

    Prints ``key=value`` lines, ``bootstrap=127.0.0.1:PORT`` first, on ``start`` and on a running
    ``status``. Exit codes: 0 success / running; 1 failure / not running.
    """
    parser = argparse.ArgumentParser(
        prog="dispatch-rl kafka",
        description=f"Run a local single-node Apache Kafka {KAFKA_VERSION} broker (KRaft) "
        "from Maven jars, detached, recorded in a state dir.",
    )
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help="where kafka.json, data/ and logs/ live "
        "(default: $DISPATCH_RL_STATE_DIR/kafka, else ./var/kafka)",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    start_p = sub.add_parser("start", help="start a broker (no-op if one already runs)")
    start_p.add_argument("--timeout", type=float, default=60.0, help="startup timeout, seconds")
    sub.add_parser("status", help="say whether the broker runs and answers")
    stop_p = sub.add_parser("stop", help="stop the broker")
    stop_p.add_argument("--timeout", type=float, default=30.0, help="seconds before SIGKILL")
    args = parser.parse_args(argv)
    state_dir: Path = args.state_dir if args.state_dir is not None else default_state_dir()

    if args.command == "start":
        already = status(state_dir)
        try:
            state = start(state_dir, startup_timeout=args.timeout)
        except KafkaLaunchError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        _print_state(state)
        print("status=already-running" if already.running else "status=started")
        return 0
    if args.command == "status":
        result = status(state_dir)
        if result.running and result.state is not None:
            _print_state(result.state)
            print("status=running")
            return 0
        print("status=stopped")
        print(f"detail={result.detail}")
        return 1
    try:
        stopped = stop(state_dir, timeout=args.timeout)
    except KafkaLaunchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print("status=stopped" if stopped else "status=not-running")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
