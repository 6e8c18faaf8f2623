"""The broker's jars and the Java that runs them.

The jars are fetched once with Maven (``ensure_jars``) into ``kafka_home()/libs``; later uses are
offline. ``DISPATCH_RL_KAFKA_HOME`` may point at an unpacked Apache Kafka 3.9 tarball instead,
whose ``libs/`` has everything needed.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

__all__ = [
    "KAFKA_VERSION",
    "LOG4J_PROPERTIES",
    "KafkaLaunchError",
    "ensure_jars",
    "java",
    "kafka_home",
]

KAFKA_VERSION = "3.9.1"
"""Apache Kafka version of the local broker; must match ``streams/kafka/pom.xml``."""

# The Maven POM and the log4j config are package data of `streams` (pyproject package-data).
_RESOURCES = Path(__file__).resolve().parent.parent / "kafka"
_POM = _RESOURCES / "pom.xml"
LOG4J_PROPERTIES = _RESOURCES / "log4j.properties"


class KafkaLaunchError(RuntimeError):
    """The local broker could not be provisioned, started, or stopped.

    The message says why and, when the broker itself failed, ends with the tail of its log.
    """


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


def java() -> str:
    """``$JAVA_HOME/bin/java``, else ``java`` on PATH; ``KafkaLaunchError`` if neither."""
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").is_file():
        return str(Path(java_home) / "bin" / "java")
    found = shutil.which("java")
    if found is None:
        raise KafkaLaunchError("Java 17+ is needed for the local Kafka broker: no 'java' on PATH")
    return found
