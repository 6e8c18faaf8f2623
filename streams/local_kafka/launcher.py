"""``LocalKafka``: one single-node KRaft broker on 127.0.0.1, run from the cached jars."""

from __future__ import annotations

import atexit
import contextlib
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

from streams.local_kafka.config import (
    HOST,
    cluster_id_of,
    new_cluster_id,
    server_properties,
)
from streams.local_kafka.jars import LOG4J_PROPERTIES, KafkaLaunchError, ensure_jars, java
from streams.local_kafka.probe import BrokerMetadata, cluster_metadata, port_in_use
from streams.local_kafka.process import (
    DETACH_SCRIPT,
    free_ports,
    parent_death_signal,
    pid_alive,
    signal_group,
    tail,
    terminate,
    wait_pid_gone,
)

__all__ = ["LocalKafka"]

_HEAP = "512m"  # kafka-server-start defaults to 1 GiB; a development broker needs far less


class LocalKafka:
    """One single-node KRaft Kafka broker on 127.0.0.1, started from the cached jars.

    ``work_dir`` receives ``server.properties``, ``data/`` (the broker's log dir) and
    ``logs/broker.log`` (the broker's console output, WARN and above).

    * Durable (a ``work_dir`` and ``ephemeral=False``, the default with a ``work_dir``): the
      data dir is formatted on the first start only and kept by ``stop()``; topics, records and
      committed offsets survive restarts. Give fixed ``port``/``controller_port`` so clients find
      it at the same address every time. A fixed port taken by another program fails the start
      with one clear line.
    * Ephemeral (no ``work_dir``, or ``ephemeral=True``): a fresh data dir at each start, deleted
      by ``stop()`` (the whole work dir when it was a temporary one). Port 0 picks a free port.

    ``start()`` returns only once the broker answers a Metadata request (asked with aiokafka's
    admin client); it raises ``KafkaLaunchError`` (with the tail of the broker log) if the
    broker dies or does not answer within ``startup_timeout`` seconds.

    With ``detached=True`` the broker is not a child of this process and keeps running after it
    exits (``streams.local_kafka.state.start`` uses it); otherwise it is a child in its own
    process group, stopped by ``stop()``, the context manager, at interpreter exit, or (Linux,
    when started from the main thread) by the kernel if this process dies.

    The broker never auto-creates topics (``auto.create.topics.enable=false``): a producer that
    publishes to a missing topic gets an error, so topics always carry the configs their creator
    chose. Broker-wide retention is unlimited (``log.retention.ms=-1``): topic configs decide.

    Not thread-safe; one instance runs at most one broker at a time.
    """

    def __init__(
        self,
        work_dir: Path | str | None = None,
        *,
        port: int = 0,
        controller_port: int = 0,
        ephemeral: bool | None = None,
        startup_timeout: float = 60.0,
        heap: str = _HEAP,
        detached: bool = False,
    ) -> None:
        self._owns_work_dir = work_dir is None
        self._work_dir_arg = Path(work_dir).resolve() if work_dir is not None else None
        self._ephemeral = work_dir is None if ephemeral is None else ephemeral
        self._port_arg = port
        self._controller_port_arg = controller_port
        self._startup_timeout = startup_timeout
        self._heap = heap
        self._detached = detached
        self._work_dir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._pid: int | None = None
        self._bootstrap: str | None = None
        self._ports: tuple[int, int] | None = None

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
    def ports(self) -> tuple[int, int]:
        """(broker port, controller port) of the running broker."""
        if self._ports is None:
            raise RuntimeError("LocalKafka is not started")
        return self._ports

    @property
    def ephemeral(self) -> bool:
        return self._ephemeral

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
        return self._pid is not None and pid_alive(self._pid)

    def metadata(self, timeout: float = 5.0) -> BrokerMetadata:
        """A Metadata request to this broker (``ConnectionError`` if it does not answer)."""
        return cluster_metadata(self.bootstrap, timeout)

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> LocalKafka:
        """Start the broker and wait until it answers; returns ``self``."""
        if self._pid is not None:
            raise RuntimeError("LocalKafka is already started")
        libs = ensure_jars()
        java_bin = java()
        if self._work_dir_arg is None:
            self._work_dir = Path(tempfile.mkdtemp(prefix="dispatch-rl-kafka-"))
        else:
            self._work_dir = self._work_dir_arg
            self._work_dir.mkdir(parents=True, exist_ok=True)
        try:
            # A port picked free can be taken by someone else before the JVM binds it: retry.
            picks_ports = not (self._port_arg and self._controller_port_arg)
            for attempt in range(3 if picks_ports else 1):
                try:
                    self._start_once(java_bin, libs)
                    return self
                except KafkaLaunchError as exc:
                    if attempt == 2 or "Address already in use" not in str(exc):
                        raise
        except BaseException:
            self._cleanup_after_failure()
            raise
        raise AssertionError("unreachable")

    def _java_cmd(self, java_bin: str, libs: Path, main_class: str, *args: str) -> list[str]:
        logs = self.work_dir / "logs"
        return [
            java_bin,
            f"-Xmx{self._heap}",
            "-Djava.awt.headless=true",
            f"-Dkafka.logs.dir={logs}",
            f"-Dlog4j.configuration={LOG4J_PROPERTIES.as_uri()}",
            "-cp",
            str(libs / "*"),  # expanded by the JVM, not a shell
            main_class,
            *args,
        ]

    def _pick_ports(self) -> tuple[int, int]:
        fixed = [p for p in (self._port_arg, self._controller_port_arg) if p]
        picked = iter([*free_ports(2 - len(fixed)), 0, 0])
        port = self._port_arg or next(picked)
        controller_port = self._controller_port_arg or next(picked)
        if port == controller_port:
            raise KafkaLaunchError(f"broker and controller ports must differ (both {port})")
        for what, p in (("broker", self._port_arg), ("controller", self._controller_port_arg)):
            if p and port_in_use(HOST, p):
                raise KafkaLaunchError(self._port_taken_message(what, p))
        return port, controller_port

    def _port_taken_message(self, what: str, port: int) -> str:
        ours = cluster_id_of(self.data_dir)
        with contextlib.suppress(ConnectionError, ValueError):
            if ours and cluster_metadata(f"{HOST}:{port}", 3.0).cluster_id == ours:
                return (
                    f"the broker of {self.work_dir} already runs at {HOST}:{port} but is not "
                    "recorded as started by us; stop it (or use it as "
                    f"DISPATCH_RL_BOOTSTRAP_SERVERS={HOST}:{port})"
                )
        setting = "LOCAL_BROKER_PORT" if what == "broker" else "LOCAL_CONTROLLER_PORT"
        return (
            f"{what} port {HOST}:{port} is taken by another program, not the dispatch-rl broker "
            f"of {self.work_dir}: free it, set DISPATCH_RL_{setting} to a free port, "
            "or use --ephemeral"
        )

    def _write_properties(self, port: int, controller_port: int) -> None:
        props = server_properties(self.data_dir, port, controller_port)
        text = "".join(f"{key}={value}\n" for key, value in props.items())
        self.server_properties.write_text(text)

    def _format_once(self, java_bin: str, libs: Path) -> None:
        if self._ephemeral:
            shutil.rmtree(self.data_dir, ignore_errors=True)
        elif cluster_id_of(self.data_dir) is not None:
            return  # formatted by an earlier start: keep every topic and offset
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # Without formatting the broker dies with "No readable meta.properties files found".
        # Static voters: no --standalone.
        fmt = self._java_cmd(
            java_bin,
            libs,
            "kafka.tools.StorageTool",
            "format",
            "-t",
            new_cluster_id(),
            "-c",
            str(self.server_properties),
        )
        proc = subprocess.run(
            fmt,
            cwd=self.work_dir,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise KafkaLaunchError(
                f"formatting the Kafka storage in {self.data_dir} failed (exit {proc.returncode}):"
                f"\n{(proc.stdout + proc.stderr).strip()[-4000:]}"
            )

    def _start_once(self, java_bin: str, libs: Path) -> None:
        work = self.work_dir
        (work / "logs").mkdir(exist_ok=True)
        port, controller_port = self._pick_ports()
        self._write_properties(port, controller_port)
        self._format_once(java_bin, libs)
        with self.log_file.open("ab") as log:
            log.write(f"[dispatch-rl] starting the broker on {HOST}:{port}\n".encode())

        cmd = self._java_cmd(java_bin, libs, "kafka.Kafka", str(self.server_properties))
        if self._detached:
            detach = [sys.executable, "-I", "-W", "ignore", "-c", DETACH_SCRIPT]
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
                    preexec_fn=parent_death_signal(),
                )
            self._pid = self._proc.pid
            atexit.register(self._stop_at_exit)
        self._bootstrap = f"{HOST}:{port}"
        self._ports = (port, controller_port)
        try:
            self._wait_ready()
        except BaseException:
            self._kill_now()
            raise

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self._startup_timeout
        last_error = "no answer yet"
        port = self.ports[0]
        while True:
            if not self.is_running():
                raise KafkaLaunchError(
                    f"the Kafka broker exited during startup{self._log_hint()}:\n"
                    f"{tail(self.log_file)}"
                )
            # An open port first (cheap), then a real client's Metadata request.
            if port_in_use(HOST, port):
                try:
                    if self.metadata(timeout=2.0).brokers:
                        return
                    last_error = "Metadata response listed no broker yet"
                except (ConnectionError, ValueError) as exc:
                    last_error = str(exc)
            else:
                last_error = f"port {port} not open yet"
            if time.monotonic() >= deadline:
                raise KafkaLaunchError(
                    f"the Kafka broker at {self._bootstrap} did not answer a Metadata request "
                    f"within {self._startup_timeout:g} s (last: {last_error}){self._log_hint()}:"
                    f"\n{tail(self.log_file)}"
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
        return self._pid is None or wait_pid_gone(self._pid, timeout)

    def _kill_now(self) -> None:
        if self._pid is not None and self.is_running():
            signal_group(self._pid, signal.SIGKILL)
            self._wait_gone(10.0)
        self._forget()

    def _forget(self) -> None:
        atexit.unregister(self._stop_at_exit)
        self._proc = None
        self._pid = None
        self._bootstrap = None
        self._ports = None

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

        Idempotent. A durable broker's data is kept; an ephemeral one's is deleted (the whole
        work dir if it was a temporary one).
        """
        if self._pid is not None:
            if self.is_running():
                terminate(self._pid, timeout, self._wait_gone)
            self._forget()
        if self._work_dir is not None and self._ephemeral:
            if self._owns_work_dir:
                shutil.rmtree(self._work_dir, ignore_errors=True)
                self._work_dir = None
            else:
                shutil.rmtree(self._work_dir / "data", ignore_errors=True)

    def __enter__(self) -> LocalKafka:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
