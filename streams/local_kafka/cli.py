"""``dispatch-rl kafka start|status|stop`` (also ``python -m streams.local_kafka``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from streams.local_kafka.jars import KAFKA_VERSION, KafkaLaunchError
from streams.local_kafka.state import (
    DEFAULT_CONTROLLER_PORT,
    DEFAULT_PORT,
    KafkaState,
    default_broker_dir,
    start,
    status,
    stop,
)

__all__ = ["build_parser", "main"]


def _print_state(state: KafkaState) -> None:
    print(f"bootstrap={state.bootstrap}")
    print(f"pid={state.pid}")
    print(f"data_dir={state.data_dir}")
    print(f"log_file={state.log_file}")
    print(f"ephemeral={str(state.ephemeral).lower()}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dispatch-rl kafka",
        description=f"Run a local single-node Apache Kafka {KAFKA_VERSION} broker (KRaft) "
        "from Maven jars, detached, recorded in its broker dir. Its data is kept across "
        "restarts and it listens on a stable port, unless --ephemeral.",
    )
    parser.add_argument(
        "--dir",
        "--state-dir",
        dest="broker_dir",
        type=Path,
        default=None,
        help="where kafka.json, data/ and logs/ live (default: $DISPATCH_RL_DATA_DIR/kafka, "
        "else $XDG_DATA_HOME/dispatch-rl/kafka, else ~/.local/share/dispatch-rl/kafka)",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    start_p = sub.add_parser("start", help="start a broker (no-op if one already runs)")
    start_p.add_argument("--timeout", type=float, default=60.0, help="startup timeout, seconds")
    start_p.add_argument("--port", type=int, default=DEFAULT_PORT, help="broker port")
    start_p.add_argument(
        "--controller-port", type=int, default=DEFAULT_CONTROLLER_PORT, help="KRaft controller port"
    )
    start_p.add_argument(
        "--ephemeral",
        action="store_true",
        help="fresh empty data and free ports, deleted by `stop`",
    )
    sub.add_parser("status", help="say whether the broker runs and answers")
    stop_p = sub.add_parser("stop", help="stop the broker (its data is kept unless ephemeral)")
    stop_p.add_argument("--timeout", type=float, default=30.0, help="seconds before SIGKILL")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Prints ``key=value`` lines, ``bootstrap=127.0.0.1:PORT`` first, on ``start`` and on a
    running ``status``. Exit codes: 0 success / running; 1 failure / not running."""
    args = build_parser().parse_args(argv)
    broker_dir: Path = args.broker_dir if args.broker_dir is not None else default_broker_dir()

    if args.command == "start":
        already = status(broker_dir)
        try:
            state = start(
                broker_dir,
                port=args.port,
                controller_port=args.controller_port,
                ephemeral=args.ephemeral,
                startup_timeout=args.timeout,
            )
        except KafkaLaunchError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        _print_state(state)
        print("status=already-running" if already.running else "status=started")
        return 0
    if args.command == "status":
        result = status(broker_dir)
        if result.running and result.state is not None:
            _print_state(result.state)
            print("status=running")
            return 0
        print("status=stopped")
        print(f"detail={result.detail}")
        return 1
    try:
        stopped = stop(broker_dir, timeout=args.timeout)
    except KafkaLaunchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print("status=stopped" if stopped else "status=not-running")
    return 0
