"""`dispatch-rl`: the one command line. Offline commands come from `optimizer`, the service's
from `streams`; each handler gets the parsed arguments and the settings object."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import NoReturn

from optimizer.cli_args import UsageError
from streams.logs import configure_logging
from streams.settings import Settings, SettingsInputError, load_settings

# Modules that contribute subcommands through `add_commands(subparsers)`.
_COMMAND_MODULES = ("optimizer.cli", "optimizer.learn_cli", "streams.commands")


class _Parser(argparse.ArgumentParser):
    """argparse with its usage errors on one line (the subcommand and `--help` named)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="dispatch-rl",
        description="Kafka-native, DQN-guided fairness optimizer for patient-transport dispatch.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    kafka = sub.add_parser("kafka", help="a local Apache Kafka broker: start | stop | status")
    kafka.add_argument("action", choices=["start", "stop", "status"])
    kafka.add_argument(
        "--ephemeral",
        action="store_true",
        help="start: fresh empty data on free ports, deleted by `stop` (default: the durable "
        "broker under DISPATCH_RL_DATA_DIR, on DISPATCH_RL_LOCAL_BROKER_PORT)",
    )
    kafka.set_defaults(handler=_kafka)
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:  # a real missing dependency, not an absent optional module
                raise
            continue
        module.add_commands(sub)
    return parser


def _kafka(args: argparse.Namespace, settings: Settings) -> int:
    from streams import local_kafka

    argv = ["--dir", str(settings.local_broker_dir), args.action]
    if args.action == "start":
        argv += [
            f"--port={settings.local_broker_port}",
            f"--controller-port={settings.local_controller_port}",
        ]
        if args.ephemeral:
            argv.append("--ephemeral")
    return local_kafka.main(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse, load the settings, run the handler; bad input is one line on stderr, exit 2."""
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
    except SettingsInputError as exc:
        print(f"dispatch-rl: error: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_format, settings.log_level)
    try:
        code: int = args.handler(args, settings)
    except UsageError as exc:
        print(f"dispatch-rl {args.command}: error: {exc}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())
