"""`dispatch-rl`: the one command line. Offline commands come from `optimizer`, the service's
from `streams`; each handler gets the parsed arguments and the settings object."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from streams.logs import configure_logging
from streams.settings import Settings

# Modules that contribute subcommands through `add_commands(subparsers)`.
_COMMAND_MODULES = ("optimizer.cli", "optimizer.learn_cli", "streams.commands")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dispatch-rl",
        description="Kafka-native, DQN-guided fairness optimizer for patient-transport dispatch.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    kafka = sub.add_parser("kafka", help="a local Apache Kafka broker: start | stop | status")
    kafka.add_argument("action", choices=["start", "stop", "status"])
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

    return local_kafka.main([args.action])


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings()
    except ValidationError as exc:
        print(f"error: invalid DISPATCH_RL_* setting:\n{exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_format, settings.log_level)
    code: int = args.handler(args, settings)
    return code


if __name__ == "__main__":
    sys.exit(main())
