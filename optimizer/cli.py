"""Offline commands (no Kafka): optimize a day from a file, generate days, convert DARP, exact.

`add_commands` registers them on the `dispatch-rl` parser (see `streams.cli`); each handler
takes the parsed arguments and the settings object and returns an exit code.
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys
from pathlib import Path
from typing import Any, Protocol

from pydantic import ValidationError

from optimizer.cli_args import (
    UsageError,
    describe_validation_error,
    non_negative_int,
    positive_float,
    positive_int,
    read_input_file,
)
from optimizer.dispatch import DispatchConfig, optimize_event
from optimizer.policy import GreedyPolicy
from optimizer.problem import Problem
from optimizer.report import render_outcome
from optimizer.serving import default_provider
from optimizer.swap_pass import MovePolicy, run_pass
from schemas import HeuristicDone, Limits


class CliSettings(Protocol):
    """What the offline commands need of the settings (`streams.settings.Settings`)."""

    model_dir: Path

    def dispatch_config(self) -> DispatchConfig: ...

    def limits(self) -> Limits: ...


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("optimize", help="optimize one dispatch day from a HeuristicDone JSON file")
    p.add_argument("file", type=Path)
    p.add_argument("--json", action="store_true", help="print the Optimized event (JSON)")
    p.add_argument("--audit-out", type=Path, help="write the SwapAudit events here (JSON lines)")
    p.add_argument(
        "--policy",
        choices=["auto", "greedy"],
        default="auto",
        help="auto: the registry's champion model, else the shipped one, else greedy",
    )
    p.set_defaults(handler=cmd_optimize)

    p = sub.add_parser("generate", help="write a synthetic dispatch day (seeded)")
    p.add_argument(
        "--kind",
        choices=["synthetic", "patient"],
        default="synthetic",
        help="synthetic: Geneva peaks (optimizer.generate); patient: dialysis slots, "
        "consultations, discharges, late tolerance 0 (optimizer.patient_transport)",
    )
    p.add_argument("--bookings", type=positive_int, default=10)
    p.add_argument("--drivers", type=positive_int, default=3)
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.add_argument("--out", type=Path, help="file to write (default: stdout)")
    p.set_defaults(handler=cmd_generate)

    p = sub.add_parser("darp", help="write the dispatch day made from a Cordeau DARP instance")
    p.add_argument("name", nargs="?", help="e.g. a2-16; omit with --list")
    p.add_argument("--list", action="store_true", help="list the instances")
    p.add_argument("--out", type=Path, help="file to write (default: stdout)")
    p.set_defaults(handler=cmd_darp)

    p = sub.add_parser("exact", help="the proven minimum ride-count gap of a day (CP-SAT)")
    p.add_argument("file", type=Path)
    p.add_argument("--time-limit", type=positive_float, default=30.0, help="seconds")
    p.add_argument(
        "--no-hint",
        action="store_true",
        help="start CP-SAT from the upstream plan only, not from the greedy pass's plan",
    )
    p.add_argument(
        "--lexicographic",
        action="store_true",
        help="then the least deadhead at that gap (a second CP-SAT solve with the gap fixed)",
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_exact)


def load_day(path: Path, limits: Limits | None = None) -> HeuristicDone:
    """Read and validate a day; a validation error names the field."""
    context = (limits or Limits()).context()
    return HeuristicDone.model_validate_json(path.read_bytes(), context=context)


def _load_or_report(path: Path, settings: CliSettings) -> HeuristicDone:
    """The day in `path`; `UsageError` (one line) when it cannot be read or is not valid."""
    raw = read_input_file(path)
    try:
        return HeuristicDone.model_validate_json(raw, context=settings.limits().context())
    except ValidationError as exc:
        raise UsageError(
            f"{path} is not a valid HeuristicDone: {describe_validation_error(exc)}"
        ) from None


def cmd_optimize(args: argparse.Namespace, settings: CliSettings) -> int:
    event = _load_or_report(args.file, settings)
    policy: MovePolicy = (
        GreedyPolicy() if args.policy == "greedy" else default_provider(settings.model_dir).policy()
    )
    outcome = optimize_event(event, policy, settings.dispatch_config())
    if args.audit_out:
        _write_file(args.audit_out, "".join(a.model_dump_json() + "\n" for a in outcome.audits))
    if args.json:
        doc: dict[str, Any] = outcome.optimized.model_dump(mode="json")
        if not args.audit_out:
            doc["audits"] = [a.model_dump(mode="json") for a in outcome.audits]
        print(json.dumps(doc, indent=2))
    else:
        print(render_outcome(outcome.optimized, outcome.audits))
    return 0 if outcome.optimized.status != "fallback" else 1


def _write_file(out: Path, text: str) -> None:
    try:
        out.write_text(text)
    except OSError as exc:
        raise UsageError(f"cannot write {out}: {exc.strerror or exc}") from None


def _write(text: str, out: Path | None) -> None:
    if out is None:
        sys.stdout.write(text)
    else:
        _write_file(out, text)
        print(f"wrote {out}", file=sys.stderr)


def cmd_generate(args: argparse.Namespace, settings: CliSettings) -> int:
    from optimizer.generate import generate_day
    from optimizer.patient_transport import patient_day

    make = patient_day if args.kind == "patient" else generate_day
    day = make(args.bookings, args.drivers, args.seed)
    _write(day.model_dump_json(indent=2) + "\n", args.out)
    return 0


def cmd_darp(args: argparse.Namespace, settings: CliSettings) -> int:
    from optimizer.darp import darp_day, list_instances

    try:
        names = list_instances()
    except OSError as exc:
        raise UsageError(f"no Cordeau instances to read: {exc}") from None
    if args.list or not args.name:
        print("\n".join(names))
        return 0
    if args.name not in names:
        close = difflib.get_close_matches(args.name, names, n=3)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise UsageError(
            f"unknown instance {args.name!r}; {hint}{len(names)} known "
            f"({names[0]} .. {names[-1]}), listed by `dispatch-rl darp --list`"
            if names
            else f"unknown instance {args.name!r}: no instances found"
        )
    try:
        day, notes = darp_day(args.name)
    except (OSError, ValueError) as exc:
        raise UsageError(f"instance {args.name!r} cannot be read: {exc}") from None
    print(f"{args.name}: {notes.reason}", file=sys.stderr)
    _write(day.model_dump_json(indent=2) + "\n", args.out)
    return 0


def cmd_exact(args: argparse.Namespace, settings: CliSettings) -> int:
    from optimizer.exact import solve_min_gap  # CP-SAT: imported only when asked for

    event = _load_or_report(args.file, settings)
    cfg = settings.dispatch_config()
    problem, assignment = Problem.from_event(event, travel_model=cfg.travel, rules=cfg.rules)
    # The greedy plan as a hint: when it meets the structural floor the optimum is proven at
    # once, and otherwise CP-SAT starts from a good plan. The proof does not depend on it.
    hint = None
    if not args.no_hint:
        hint = run_pass(problem, assignment, GreedyPolicy(), cfg.pass_config).assignment
    result = solve_min_gap(problem, assignment, time_limit_s=args.time_limit, hint=hint)
    summary: dict[str, Any] = {
        "dispatch_id": event.dispatch_id,
        "gap": result.gap,
        "lower_bound": result.lower_bound,
        "proven_optimal": result.proven_optimal,
        "status": result.status,
        "verified": result.verified,
        "wall_s": round(result.wall_s, 3),
        "rides_per_driver": None
        if result.assignment is None
        else {d: int((result.assignment == k).sum()) for k, d in enumerate(problem.driver_ids)},
    }
    lex = None
    if args.lexicographic and result.gap is not None:
        from optimizer.exact import solve_lexicographic

        lex = solve_lexicographic(
            problem, assignment, gap=result.gap, time_limit_s=args.time_limit, hint=hint
        )
        summary["lexicographic"] = {
            "min_deadhead_km": None if lex.deadhead_km is None else round(lex.deadhead_km, 3),
            "proven_optimal": lex.proven_optimal,
            "status": lex.status,
            "verified": lex.verified,
            "wall_s": round(lex.wall_s, 3),
        }
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        proven = "proven optimal" if result.proven_optimal else "NOT proven optimal"
        print(
            f"{event.dispatch_id}: minimum gap {result.gap} ({proven}; lower bound "
            f"{result.lower_bound}; CP-SAT {result.status}; {result.wall_s:.2f} s)"
        )
        if summary["rides_per_driver"]:
            print(f"  rides per driver: {summary['rides_per_driver']}")
        if lex is not None:
            km = "none found" if lex.deadhead_km is None else f"{lex.deadhead_km:.3f} km"
            how = "proven" if lex.proven_optimal else "NOT proven"
            print(
                f"  least deadhead at gap {result.gap}: {km} ({how}; CP-SAT {lex.status}; "
                f"{lex.wall_s:.2f} s)"
            )
    if lex is not None and lex.deadhead_km is None:
        return 1
    return 0 if result.gap is not None else 1
