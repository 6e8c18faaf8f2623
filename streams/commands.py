"""The service's CLI subcommands: `run`, `publish`, `demo`, `dataset stats`.

`add_commands(subparsers)` registers them on the `dispatch-rl` parser (`streams.cli`); every
handler is `handler(args, settings) -> exit code`, set with `set_defaults(handler=...)`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from optimizer.cli_args import (
    UsageError,
    describe_json_error,
    non_negative_int,
    positive_float,
    read_input_file,
)
from optimizer.report import render_outcome
from schemas import HeuristicDone, Optimized
from streams import codec
from streams.audit_cli import add_arguments as add_audit_arguments
from streams.settings import Settings


def add_commands(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register `run`, `publish`, `demo` and `dataset` on `subparsers`."""
    run_p = subparsers.add_parser(
        "run",
        help="run the worker: optimizer agent, dataset writer, audit store and web server",
        description="Start the local broker if no bootstrap is configured, create the topics, "
        "and run the optimizer agent, the dataset writer, the audit store consumer and the web "
        "server (API, dashboard, /metrics) until SIGINT/SIGTERM. The store and the web server run "
        "unless DISPATCH_RL_STORE_ENABLED=false or DISPATCH_RL_WEB_ENABLED=false.",
    )
    only = run_p.add_mutually_exclusive_group()
    only.add_argument(
        "--optimizer-only",
        action="store_true",
        help="run the optimizer agent without the dataset writer (the audit store still runs "
        "unless DISPATCH_RL_STORE_ENABLED=false)",
    )
    only.add_argument(
        "--dataset-only",
        action="store_true",
        help="run the dataset writer without the optimizer agent",
    )
    run_p.add_argument(
        "--ephemeral",
        action="store_true",
        help="a fresh local broker on free ports and a temporary data dir, all deleted on exit "
        "(default: the durable broker and data under DISPATCH_RL_DATA_DIR)",
    )
    run_p.set_defaults(handler=_run)

    pub = subparsers.add_parser(
        "publish",
        help="send dispatch days (HeuristicDone JSON) to the input topic",
        description="Each FILE holds one HeuristicDone object, a JSON list of them, or JSON "
        "lines. Days are validated first and keyed by dispatch_id.",
    )
    pub.add_argument("files", nargs="+", type=Path, metavar="FILE")
    pub.add_argument(
        "--raw",
        action="store_true",
        help="send the documents verbatim, unvalidated and unkeyed (to exercise "
        "the dead-letter path)",
    )
    pub.add_argument("--topic", default=None, help="topic (default: the input topic)")
    pub.set_defaults(handler=_publish)

    demo_p = subparsers.add_parser(
        "demo",
        help="run the worker, publish the seed day and a few generated days, print the results",
    )
    demo_p.add_argument(
        "--days",
        type=non_negative_int,
        default=3,
        help="generated days besides the seed day (default 3)",
    )
    demo_p.add_argument(
        "--seed", type=non_negative_int, default=7, help="seed of the generated days"
    )
    demo_p.add_argument(
        "--timeout", type=positive_float, default=120.0, help="seconds to wait for results"
    )
    demo_p.add_argument(
        "--ephemeral",
        action="store_true",
        help="a fresh local broker and a temporary data dir, deleted on exit",
    )
    demo_p.set_defaults(handler=_demo)

    audit_p = subparsers.add_parser(
        "audit",
        help="an auditor's view: one dispatch's replay verdict, or the moves matching keys",
        description="With DISPATCH_ID alone: print the dispatch's trail and check that "
        "replaying the accepted moves on the input reproduces the published assignment "
        "without adding a violation (exit 0 when it does, 1 when it does not, 2 when the "
        "dispatch is not found). With --booking/--driver/--date/--decision/--reason/--model: "
        "list the dispatches and the swap audits matching all of them (exit 2 if none). "
        "Reads the audit store (DISPATCH_RL_STORE_URL, or the SQLite file in the data dir); "
        "without one, it scans the topics.",
    )
    audit_p.add_argument("--json", action="store_true", help="print JSON")
    audit_p.add_argument(
        "--timeout", type=positive_float, default=60.0, help="seconds to read the topics"
    )
    add_audit_arguments(audit_p)
    audit_p.set_defaults(handler=_audit)

    topics_p = subparsers.add_parser(
        "topics",
        help="compare the topics on the broker with the settings (check), or apply them (apply)",
        description="check: list how the four topics differ from the settings (partitions, "
        "retention, max.message.bytes, cleanup policy); exit 1 if any does. apply: create the "
        "missing ones and set the wanted configs on the others (the partition count is never "
        "changed: keyed records would move); exit 1 if a config still differs.",
    )
    topics_p.add_argument("action", choices=["check", "apply"])
    topics_p.set_defaults(handler=_topics)

    ds = subparsers.add_parser("dataset", help="the training dataset written by the worker")
    ds_sub = ds.add_subparsers(dest="dataset_command", required=True)
    stats = ds_sub.add_parser("stats", help="summarise the dataset directory")
    stats.add_argument(
        "--dir",
        type=Path,
        default=None,
        help="dataset directory (default: DISPATCH_RL_DATASET_DIR)",
    )
    stats.set_defaults(handler=_dataset_stats)


def _run(args: argparse.Namespace, settings: Settings) -> int:
    from streams.audit_service import StoreConfigError
    from streams.local_kafka import KafkaLaunchError
    from streams.worker import run

    try:
        return run(
            settings,
            optimizer=not args.dataset_only,
            dataset=not args.optimizer_only,
            ephemeral=args.ephemeral,
        )
    except KafkaLaunchError as exc:
        print(f"error: local Kafka broker: {exc}", file=sys.stderr)
        return 1
    except StoreConfigError as exc:
        print(f"dispatch-rl run: error: audit store: {exc}", file=sys.stderr)
        return 2


def _topics(args: argparse.Namespace, settings: Settings) -> int:
    from streams.topics import apply_topic_configs, ensure_topics, topic_differences
    from streams.worker import broker_for

    try:
        with broker_for(settings) as resolved:
            if args.action == "apply":
                created = asyncio.run(ensure_topics(resolved))
                altered = asyncio.run(apply_topic_configs(resolved))
                for name in created:
                    print(f"created {name}")
                for name in altered:
                    print(f"altered {name}")
            differences = asyncio.run(topic_differences(resolved))
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for line in differences:
        print(f"differs: {line}")
    if not differences:
        print("topics match the settings")
    if args.action == "apply":
        # The partition count is left as it is; only a config still differing is a failure.
        return 1 if any(": partitions=" not in d for d in differences) else 0
    return 1 if differences else 0


def _publish(args: argparse.Namespace, settings: Settings) -> int:
    from streams.topics import ensure_topics, existing_topics, topic_specs
    from streams.worker import broker_for, publish_events

    docs = [doc for path in args.files for doc in _documents(path)]
    if not docs:
        raise UsageError(f"no documents in {', '.join(map(str, args.files))}")
    payloads: list[tuple[bytes | None, bytes]] = []
    for i, doc in enumerate(docs):
        if args.raw:
            payloads.append((None, doc))
            continue
        day = codec.decode_heuristic_done(doc, settings.limits())
        if isinstance(day, list):
            where = "; ".join(f"{'.'.join(map(str, e.loc)) or '<root>'}: {e.msg}" for e in day[:3])
            more = f" (and {len(day) - 3} more)" if len(day) > 3 else ""
            raise UsageError(
                f"document {i + 1} is not a valid HeuristicDone (nothing was sent; --raw sends "
                f"it as is): {where}{more}"
            )
        payloads.append((day.dispatch_id.encode(), codec.encode(day)))
    try:
        # No bootstrap set: the durable local broker (started if needed; the days wait there
        # for the next `run`).
        with broker_for(settings) as resolved:
            # Our topics exist with our configs before the first record (the local broker does
            # not auto-create; another broker's defaults would be 1 partition and 1 MB).
            ours = [s for s in topic_specs(resolved) if args.topic in (None, s.name)]
            if ours:
                asyncio.run(ensure_topics(resolved, ours))
            elif args.topic not in asyncio.run(existing_topics(resolved)):
                print(
                    f"error: topic {args.topic!r} does not exist at "
                    f"{resolved.bootstrap_servers} (topics are not auto-created)",
                    file=sys.stderr,
                )
                return 1
            asyncio.run(publish_events(resolved, payloads, topic=args.topic))
            topic = args.topic or resolved.topic_input
            print(f"published {len(payloads)} day(s) to {topic} at {resolved.bootstrap_servers}")
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def _documents(path: Path) -> list[bytes]:
    """The JSON documents of one file (see `read_day_files`); `UsageError` naming the file."""
    from streams.worker import read_day_files

    read_input_file(path)  # a missing or unreadable file, said plainly
    try:
        return read_day_files([path])
    except json.JSONDecodeError as exc:
        raise UsageError(f"{path}: {describe_json_error(exc)}") from None
    except UnicodeDecodeError:
        raise UsageError(f"{path}: not UTF-8 text (expected JSON)") from None
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path}: {exc}") from None


def _audit(args: argparse.Namespace, settings: Settings) -> int:
    from streams.audit_cli import audit_command

    return audit_command(args, settings)


def _demo(args: argparse.Namespace, settings: Settings) -> int:
    from streams.local_kafka import KafkaLaunchError
    from streams.worker import demo, demo_days

    days = demo_days(args.days, args.seed)
    try:
        results = demo(settings, days, timeout=args.timeout, ephemeral=args.ephemeral)
    except KafkaLaunchError as exc:
        print(f"error: local Kafka broker: {exc}", file=sys.stderr)
        return 1
    missing = 0
    for day, opt in results:
        if opt is None:
            missing += 1
            print(f"{day.dispatch_id}: no result within {args.timeout:.0f} s\n")
            continue
        print(describe(day, opt))
        print()
    return 1 if missing else 0


def _dataset_stats(args: argparse.Namespace, settings: Settings) -> int:
    from streams.dataset import dataset_stats

    directory = args.dir or settings.dataset_dir
    if not directory.is_dir():
        raise UsageError(f"no dataset at {directory} (not a directory)")
    print(f"dataset: {directory}")
    for line in dataset_stats(directory).lines():
        print(f"  {line}")
    return 0


# ------------------------------------------------------------------ printing


def describe(day: HeuristicDone, opt: Optimized) -> str:
    """One result for people: size, then the shared before/after rendering of the core."""
    return f"{len(day.bookings)} bookings / {len(day.drivers)} drivers\n" + render_outcome(opt)
