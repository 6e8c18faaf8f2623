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
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from optimizer.dispatch import DispatchConfig
from optimizer.swap_pass import MovePolicy, PassConfig

PROMOTION_TOLERANCE = 1e-9


class LearnSettings(Protocol):
    """What these commands need of the settings."""

    model_dir: Path
    dataset_dir: Path

    def dispatch_config(self) -> DispatchConfig: ...


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("train", help="train a DQN move policy; it becomes a registry version")
    p.add_argument("--episodes", type=int, default=5000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument(
        "--generated", type=int, default=1000, help="generated training days in the pool (0: none)"
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

    p = sub.add_parser("evaluate", help="held-out days: heuristic vs DQN vs greedy vs exact")
    p.add_argument(
        "--model",
        default="serving",
        help="a registry version, a model directory, `champion`, `default`, or "
        "`serving` (what a worker would serve; default)",
    )
    p.add_argument("--per-size", type=int, default=20, help="generated days per held-out size")
    p.add_argument("--no-cordeau", action="store_true", help="leave out the Cordeau b-series")
    p.add_argument(
        "--swaps-per-booking",
        type=float,
        default=None,
        help="pass budget per booking (default 2.0; the report states the budget)",
    )
    p.add_argument("--exact-time-limit", type=float, default=10.0, help="CP-SAT seconds per day")
    p.add_argument("--no-exact", action="store_true", help="skip the exact optimum")
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
    q = msub.add_parser("promote", help="make VERSION the champion if it is not worse")
    q.add_argument("version")
    q.add_argument(
        "--force",
        action="store_true",
        help="promote even if it evaluates worse than the champion (logged)",
    )
    q.add_argument(
        "--per-size", type=int, default=5, help="generated days per size for the comparison"
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
        code, note = _promote(registry, version, settings, force=False, per_size=5)
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
    from optimizer.dqn.train import TRAIN_CORDEAU

    return TRAIN_CORDEAU


def _sources(days: Sequence[Any]) -> str:
    counts: dict[str, int] = {}
    for d in days:
        counts[d.source] = counts.get(d.source, 0) + 1
    return ", ".join(f"{k}: {v}" for k, v in sorted(counts.items()))


# ------------------------------------------------------------------ evaluate


def cmd_evaluate(args: argparse.Namespace, settings: LearnSettings) -> int:
    from optimizer.evaluate import (
        EVAL_SWAPS_PER_BOOKING,
        evaluate_days,
        evaluation_days,
        latency_sweep,
        set_fingerprint,
        summarize,
        write_report,
    )
    from optimizer.policy import GreedyPolicy
    from optimizer.registry import ModelLoadError, ModelRegistry, update_model_metadata

    registry = ModelRegistry(settings.model_dir)
    try:
        policy, version, model_path = _resolve_model(args.model, settings)
    except (ModelLoadError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    spb = args.swaps_per_booking if args.swaps_per_booking is not None else EVAL_SWAPS_PER_BOOKING
    config = _pass_config(settings, spb)
    days = evaluation_days(args.per_size, cordeau=not args.no_cordeau)
    label = "dqn" if version != GreedyPolicy.version else "served"
    policies: dict[str, MovePolicy] = {label: policy, "greedy": GreedyPolicy()}
    started = time.perf_counter()
    rows = evaluate_days(
        days, policies, config, exact=not args.no_exact, exact_time_limit_s=args.exact_time_limit
    )
    latency = [] if args.no_latency else latency_sweep(policies, config)
    summary = summarize(rows, list(policies))
    summary.update(
        model_version=version,
        evaluation_set=set_fingerprint(days),
        budget=f"max({config.max_swaps}, ceil({spb} x bookings))",
        swaps_per_booking=spb,
        max_checks=config.max_checks,
        wall_s=round(time.perf_counter() - started, 1),
        evaluated_at=datetime.now(UTC).isoformat(),
    )
    if latency:
        from optimizer.evaluate import latency_table

        summary["latency_by_size"] = latency_table(latency, list(policies))
    out = args.out or (
        model_path / "evaluation"
        if model_path is not None and model_path.is_relative_to(registry.root)
        else Path("var/reports") / datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    )
    header = _report_header(version, model_path, config, spb, days, summary)
    report = write_report(out, rows, summary, list(policies), latency=latency, header=header)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    if model_path is not None and (args.record or model_path.parent == registry.versions_dir):
        update_model_metadata(model_path, evaluation=_stored_metrics(summary, label))
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        m = summary["methods"]
        print(
            f"{len(rows)} held-out days, budget {summary['budget']}: mean gap heuristic "
            f"{m['heuristic']['mean_gap']:.3f}, {label} {m[label]['mean_gap']:.3f}, greedy "
            f"{m['greedy']['mean_gap']:.3f}, exact {m['exact']['mean_gap']}; {label} at the "
            f"proven optimum on {100 * (m[label]['share_at_proven_optimum'] or 0):.1f} %, "
            f"infeasible {m[label]['infeasible']}; report {report}"
        )
    return 0


def _report_header(
    version: str,
    model_path: Path | None,
    config: PassConfig,
    spb: float,
    days: Sequence[Any],
    summary: dict[str, Any],
) -> dict[str, Any]:
    header: dict[str, Any] = {"model version": version}
    if model_path is not None:
        try:
            meta = json.loads((model_path / "metadata.json").read_text())
            header["architecture"] = meta.get("architecture")
            header["parameters"] = meta.get("parameters")
            header["feature version"] = meta.get("feature_version")
            training = meta.get("training", {})
            header["training"] = (
                f"{training.get('episodes')} episodes in "
                f"{training.get('elapsed_s')} s on {training.get('days')} days "
                f"{training.get('sources')}, data fingerprint "
                f"{str(training.get('data_fingerprint'))[:16]}"
            )
        except (OSError, ValueError):
            pass
    header["move budget"] = (
        f"max({config.max_swaps}, ceil({spb} x bookings)) steps, at most "
        f"{config.max_checks} checks per step and phase, chains "
        f"{'on' if config.chains else 'off'}, min_improvement "
        f"{config.min_improvement}"
    )
    header["held-out set"] = (
        f"generated sizes and seeds never used in training, the Cordeau "
        f"b-series, the seed day; fingerprint "
        f"{str(summary['evaluation_set'])[:16]}"
    )
    header["exact"] = "CP-SAT `solve_min_gap`, 10 s limit, hinted with the best pass result"
    return header


def _stored_metrics(summary: dict[str, Any], label: str) -> dict[str, Any]:
    m = summary["methods"]
    return {
        "evaluation_set": summary["evaluation_set"],
        "budget": summary["budget"],
        "days": summary["days"],
        "dqn": m[label],
        "greedy": m["greedy"],
        "heuristic": m["heuristic"],
        "exact": m["exact"],
        "evaluated_at": summary["evaluated_at"],
    }


def _pass_config(settings: LearnSettings, swaps_per_booking: float) -> PassConfig:
    base = settings.dispatch_config().pass_config
    return PassConfig(
        max_swaps=base.max_swaps,
        swaps_per_booking=swaps_per_booking,
        min_improvement=base.min_improvement,
        max_checks=base.max_checks,
        chains=base.chains,
        stop_at_target=base.stop_at_target,
        objective=base.objective,
    )


def _resolve_model(spec: str, settings: LearnSettings) -> tuple[MovePolicy, str, Path | None]:
    """The policy named by `--model`, its version, and its directory (None for greedy)."""
    from optimizer.policy import GreedyPolicy
    from optimizer.registry import DEFAULT_MODEL_DIR, ModelRegistry, load_model
    from optimizer.serving import RegistryPolicyProvider

    registry = ModelRegistry(settings.model_dir)
    if spec == "serving":
        provider = RegistryPolicyProvider(settings.model_dir)
        status = provider.status()
        policy = provider.policy()
        if status["source"] == "registry":
            return policy, policy.version, registry.path(policy.version)
        if status["source"] == "default":
            return policy, policy.version, DEFAULT_MODEL_DIR
        return policy, policy.version, None
    if spec == "greedy":
        return GreedyPolicy(), GreedyPolicy.version, None
    if spec == "default":
        loaded = load_model(DEFAULT_MODEL_DIR)
    elif spec == "champion":
        version = registry.champion()
        if version is None:
            raise ValueError("the registry has no champion")
        loaded = registry.load(version)
    elif Path(spec).is_dir() and (Path(spec) / "metadata.json").exists():
        loaded = load_model(Path(spec))
    else:
        loaded = registry.load(spec)
    return loaded.policy(), loaded.version, loaded.path


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
                "eval_at_optimum": ev.get("share_at_proven_optimum"),
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
    code, note = _promote(
        registry, args.version, settings, force=args.force, per_size=args.per_size
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


def _promote(
    registry: Any, version: str, settings: LearnSettings, *, force: bool, per_size: int
) -> tuple[int, str]:
    """Promote `version` when it is not worse than what serves now on the evaluation set.

    "Not worse": no infeasible output, and a mean gap at most the incumbent's, both passes run
    on the same held-out days with the same budget (no exact solver needed to compare).
    """
    from optimizer.evaluate import EVAL_SWAPS_PER_BOOKING, evaluate_days, evaluation_days, summarize
    from optimizer.registry import ModelLoadError, RegistryError
    from optimizer.serving import RegistryPolicyProvider

    try:
        candidate = registry.load(version)
    except (ModelLoadError, RegistryError) as exc:
        return 1, f"error: {exc}"
    incumbent = RegistryPolicyProvider(registry.root).policy()
    config = _pass_config(settings, EVAL_SWAPS_PER_BOOKING)
    days = evaluation_days(per_size)
    policies: dict[str, MovePolicy] = {"candidate": candidate.policy(), "incumbent": incumbent}
    rows = evaluate_days(days, policies, config, exact=False)
    m = summarize(rows, list(policies))["methods"]
    c, i = m["candidate"], m["incumbent"]
    verdict = c["infeasible"] == 0 and c["mean_gap"] <= i["mean_gap"] + PROMOTION_TOLERANCE
    detail = (
        f"candidate {version}: mean gap {c['mean_gap']:.3f}, infeasible {c['infeasible']}; "
        f"incumbent {incumbent.version}: mean gap {i['mean_gap']:.3f} on {len(rows)} days"
    )
    if not verdict and not force:
        return 1, f"not promoted: worse than the incumbent ({detail}); --force to override"
    try:
        registry.set_champion(version, reason="promote --force" if not verdict else "promote")
    except (ModelLoadError, RegistryError) as exc:
        return 1, f"error: {exc}"
    registry.update_metadata(
        version,
        promotion={
            "compared_with": incumbent.version,
            "candidate": c,
            "incumbent": i,
            "forced": not verdict,
            "at": datetime.now(UTC).isoformat(),
        },
    )
    how = "FORCED despite being worse" if not verdict else "promoted"
    return 0, f"{how}: {version} is the champion ({detail})"
