"""The learning loop's commands: `train`, `evaluate`, `models list | promote | rollback`.

`add_commands` registers them on the `dispatch-rl` parser (see `streams.cli`); each handler takes
the parsed arguments and the settings object (`streams.settings.Settings`, typed here by the
small `LearnSettings` protocol so `optimizer` does not import `streams`) and returns an exit
code.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from optimizer.cli_args import non_negative_int, positive_float, positive_int
from optimizer.evaluate_cli import LearnSettings, cmd_evaluate, promote


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("train", help="train a DQN move policy; it becomes a registry version")
    p.add_argument("--episodes", type=positive_int, default=5000)
    p.add_argument("--seed", type=non_negative_int, default=1)
    p.add_argument(
        "--generated",
        type=non_negative_int,
        default=1000,
        help="generated training days in the pool (0: none)",
    )
    p.add_argument(
        "--ranking",
        choices=["q", "count_then_q"],
        default="count_then_q",
        help="how the served policy ranks with Q (stored in the model; optimizer/dqn/policy.py)",
    )
    p.add_argument(
        "--patient",
        type=non_negative_int,
        default=500,
        help="patient-transport training days in the pool (0: none)",
    )
    p.add_argument(
        "--dataset-dir",
        type=Path,
        default=None,
        help="recorded days (default: the settings' dataset_dir, if it exists)",
    )
    p.add_argument("--no-dataset", action="store_true", help="do not use recorded days")
    p.add_argument("--no-cordeau", action="store_true", help="no Cordeau a-series days")
    p.add_argument(
        "--run-dir",
        type=Path,
        default=None,
        help="metrics.jsonl and checkpoints (default: <model_dir>/runs/<time>)",
    )
    p.add_argument(
        "--promote",
        action="store_true",
        help="evaluate and promote the new version if not worse than the champion",
    )
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(handler=cmd_train)

    p = sub.add_parser(
        "evaluate", help="held-out days: the served model vs greedy vs the exact optimum"
    )
    p.add_argument(
        "--model",
        default="serving",
        help="a registry version, a model directory, `champion`, `default`, or "
        "`serving` (what a worker would serve; default)",
    )
    p.add_argument(
        "--per-class", type=positive_int, default=10, help="days per size class and kind"
    )
    p.add_argument(
        "--kinds",
        nargs="+",
        choices=["generated", "patient", "cordeau"],
        default=["generated", "patient", "cordeau"],
        help="which held-out days (default: all three)",
    )
    p.add_argument("--large", action="store_true", help="also the 150x18 and 300x40 classes")
    p.add_argument(
        "--swaps-per-booking",
        type=positive_float,
        default=None,
        help="replace the pass budget (default: the operator's pass config, unchanged)",
    )
    p.add_argument("--ablation", action="store_true", help="add a random-ranking policy")
    p.add_argument(
        "--exact-time-limit", type=positive_float, default=10.0, help="CP-SAT seconds per day"
    )
    p.add_argument("--no-exact", action="store_true", help="skip the exact reference")
    p.add_argument(
        "--no-latency", action="store_true", help="skip the latency sweep (10x3 .. 300x40)"
    )
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="report directory (default: <model>/evaluation or var/reports/<time>)",
    )
    p.add_argument(
        "--record",
        action="store_true",
        help="store the metrics in the model's metadata even outside the registry "
        "(registry versions always get them)",
    )
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(handler=cmd_evaluate)

    p = sub.add_parser("models", help="the model registry: list | promote VERSION | rollback")
    msub = p.add_subparsers(dest="models_command", required=True)
    q = msub.add_parser("list", help="every version, the champion marked")
    q.add_argument("--json", action="store_true")
    q.set_defaults(handler=cmd_models_list)
    q = msub.add_parser(
        "promote",
        help="make VERSION the champion if the gate finds it not worse (optimizer/gate.py)",
    )
    q.add_argument("version")
    q.add_argument(
        "--force",
        action="store_true",
        help="promote even if the gate refuses it (recorded in its metadata)",
    )
    q.add_argument(
        "--per-class", type=positive_int, default=3, help="held-out days per size class and kind"
    )
    q.add_argument(
        "--kinds",
        nargs="+",
        choices=["generated", "patient", "cordeau"],
        default=["generated", "patient", "cordeau"],
    )
    q.add_argument(
        "--exact-time-limit", type=positive_float, default=5.0, help="CP-SAT seconds per day"
    )
    q.set_defaults(handler=cmd_models_promote)
    q = msub.add_parser(
        "rollback",
        help="switch back to the previous champion; past the first one, the shipped default",
    )
    q.add_argument(
        "--to-default",
        action="store_true",
        help="go straight back to the model shipped with the package",
    )
    q.set_defaults(handler=cmd_models_rollback)


# ------------------------------------------------------------------ train


def cmd_train(args: argparse.Namespace, settings: LearnSettings) -> int:
    from optimizer.dqn.days import dataset_days
    from optimizer.dqn.train import TrainConfig, config_dict, train, training_days
    from optimizer.registry import ModelRegistry

    registry = ModelRegistry(settings.model_dir)
    dispatch = settings.dispatch_config()  # the one config: settings -> pass, days, training
    extra = []
    dataset_note = "not used"
    if not args.no_dataset:
        folder = args.dataset_dir or settings.dataset_dir
        if Path(folder).is_dir():
            read = dataset_days(Path(folder), rules=dispatch.rules, travel=dispatch.travel)
            extra = [d for d in read.days if d.improvable]
            dataset_note = (
                f"{folder}: {len(read.days)} days from {read.files} files, "
                f"{len(extra)} improvable, {read.skipped} lines skipped"
            )
        else:
            dataset_note = f"{folder}: absent"
    days = training_days(
        args.seed,
        generated=args.generated,
        patient=args.patient,
        cordeau=() if args.no_cordeau else _train_cordeau(),
        extra=extra,
        rules=dispatch.rules,
        travel=dispatch.travel,
    )
    if not days:
        print("error: no training days (all sources empty or already fair)", file=sys.stderr)
        return 2
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    run_dir = args.run_dir or settings.model_dir / "runs" / stamp
    cfg = TrainConfig(episodes=args.episodes, seed=args.seed, pass_config=dispatch.pass_config)
    print(
        f"training on {len(days)} days ({_sources(days)}); dataset: {dataset_note}; "
        f"metrics: {run_dir / 'metrics.jsonl'}",
        file=sys.stderr,
    )
    result = train(days, cfg, run_dir=run_dir, progress=not args.no_progress)
    version = registry.save(
        result.network.weights(),
        {
            "ranking": args.ranking,
            "training": {
                "config": config_dict(cfg),
                "episodes": result.episodes,
                "global_steps": result.global_steps,
                "gradient_steps": result.gradient_steps,
                "elapsed_s": round(result.elapsed_s, 2),
                "data_fingerprint": result.data_fingerprint,
                "days": result.days,
                "sources": result.sources,
                "dataset": dataset_note,
                "final_metrics": result.final_metrics,
                "run_dir": str(run_dir),
            },
        },
    )
    summary: dict[str, Any] = {
        "version": version,
        "parameters": result.parameters,
        "episodes": result.episodes,
        "elapsed_s": round(result.elapsed_s, 2),
        "days": result.days,
        "sources": result.sources,
        "data_fingerprint": result.data_fingerprint,
        "final_metrics": result.final_metrics,
        "path": str(registry.path(version)),
    }
    code = 0
    if args.promote:
        code, note = promote(registry, version, settings, force=False, per_class=2)
        summary["promotion"] = note
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(
            f"model {version}: {result.parameters} parameters, {result.episodes} episodes in "
            f"{result.elapsed_s:.1f} s; mean gap {result.final_metrics.get('charts/mean_gap')}"
            f" (last {cfg.log_every} episodes); saved in {registry.path(version)}"
        )
        if "promotion" in summary:
            print(summary["promotion"])
    return code


def _train_cordeau() -> Sequence[str]:
    from optimizer.dqn.days import TRAIN_CORDEAU

    return TRAIN_CORDEAU


def _sources(days: Sequence[Any]) -> str:
    counts: dict[str, int] = {}
    for d in days:
        counts[d.source] = counts.get(d.source, 0) + 1
    return ", ".join(f"{k}: {v}" for k, v in sorted(counts.items()))


# ------------------------------------------------------------------ models


def cmd_models_list(args: argparse.Namespace, settings: LearnSettings) -> int:
    from optimizer.registry import DEFAULT_MODEL_DIR, ModelRegistry
    from optimizer.serving import RegistryPolicyProvider

    registry = ModelRegistry(settings.model_dir)
    infos = registry.versions()
    status = RegistryPolicyProvider(settings.model_dir).status()
    rows = []
    for info in infos:
        meta = info.metadata or {}
        ev = meta.get("evaluation", {}).get("dqn", {})
        rows.append(
            {
                "version": info.version,
                "champion": info.champion,
                "created_at": meta.get("created_at"),
                "parameters": meta.get("parameters"),
                "feature_version": meta.get("feature_version"),
                "episodes": meta.get("training", {}).get("episodes"),
                "eval_mean_gap": ev.get("mean_gap"),
                "eval_at_optimum": ev.get("optimum_rate"),
                "readable": info.metadata is not None,
            }
        )
    if args.json:
        print(
            json.dumps(
                {"models": rows, "serving": status, "default_model": str(DEFAULT_MODEL_DIR)},
                indent=2,
            )
        )
        return 0
    if not rows:
        print(f"no models in {registry.versions_dir}")
    for r in rows:
        mark = "*" if r["champion"] else " "
        gap = "-" if r["eval_mean_gap"] is None else f"{r['eval_mean_gap']:.3f}"
        opt = "-" if r["eval_at_optimum"] is None else f"{100 * r['eval_at_optimum']:.1f}%"
        print(
            f"{mark} {r['version']:<32} {str(r['created_at'])[:19]:<19} "
            f"params={r['parameters']} features={r['feature_version']} "
            f"episodes={r['episodes']} eval_gap={gap} at_optimum={opt}"
            + ("" if r["readable"] else "  (unreadable metadata)")
        )
    note = f" ({status['note']})" if status.get("note") else ""
    print(f"serving: {status['model_version']} from {status['source']}{note}")
    return 0


def cmd_models_promote(args: argparse.Namespace, settings: LearnSettings) -> int:
    from optimizer.registry import ModelRegistry

    registry = ModelRegistry(settings.model_dir)
    code, note = promote(
        registry,
        args.version,
        settings,
        force=args.force,
        per_class=args.per_class,
        kinds=tuple(args.kinds),
        exact_time_limit_s=args.exact_time_limit,
    )
    print(note, file=sys.stderr if code else sys.stdout)
    return code


def cmd_models_rollback(args: argparse.Namespace, settings: LearnSettings) -> int:
    from optimizer.registry import ModelRegistry, RegistryError

    registry = ModelRegistry(settings.model_dir)
    try:
        version = registry.rollback(to_default=args.to_default)
    except RegistryError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if version == "default":
        print("no champion: the shipped default model serves (rolled back)")
    else:
        print(f"champion is now {version} (rolled back)")
    return 0
