"""`evaluate` and the promotion gate run behind `models promote` (see `optimizer.learn_cli`).

One config flows through: `settings.dispatch_config()` gives the pass config (passed whole;
`--swaps-per-booking` only replaces the budget, with `dataclasses.replace`), the rules and the
travel model the held-out days are built with. The report header is built from the run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from optimizer.dispatch import DispatchConfig
from optimizer.moves import Candidates
from optimizer.problem import FloatArray
from optimizer.swap_pass import MovePolicy, PassConfig, SearchState


class LearnSettings(Protocol):
    model_dir: Path
    dataset_dir: Path

    def dispatch_config(self) -> DispatchConfig: ...


class RandomPolicy:
    """Random ranking (the ablation's floor): the search, with no knowledge in the order."""

    version = "random"

    def __init__(self, seed: int = 0) -> None:
        self._rng = np.random.default_rng(seed)

    def score(self, state: SearchState, candidates: Candidates) -> FloatArray:
        out: FloatArray = self._rng.random(len(candidates))
        return out


def pass_config(settings: LearnSettings, swaps_per_booking: float | None = None) -> PassConfig:
    """The operator's pass config, whole; only the budget may be replaced."""
    base = settings.dispatch_config().pass_config
    if swaps_per_booking is None:
        return base
    return replace(base, swaps_per_booking=swaps_per_booking)


def cmd_evaluate(args: argparse.Namespace, settings: LearnSettings) -> int:
    from optimizer.evaluate import evaluate_days, latency_sweep, latency_table, summarize
    from optimizer.evaluation_report import write_report
    from optimizer.heldout import (
        LARGE_CLASSES,
        SIZE_CLASSES,
        HeldOutSpec,
        heldout_days,
        set_fingerprint,
    )
    from optimizer.policy import GreedyPolicy
    from optimizer.registry import ModelLoadError, ModelRegistry, update_model_metadata

    registry = ModelRegistry(settings.model_dir)
    try:
        policy, version, model_path = resolve_model(args.model, settings)
    except (ModelLoadError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    dispatch = settings.dispatch_config()
    config = pass_config(settings, args.swaps_per_booking)
    classes = SIZE_CLASSES + (LARGE_CLASSES if args.large else ())
    spec = HeldOutSpec(per_class=args.per_class, classes=classes, kinds=tuple(args.kinds))
    days = heldout_days(spec, rules=dispatch.rules, travel=dispatch.travel)
    label = "dqn" if version != GreedyPolicy.version else "served"
    policies: dict[str, MovePolicy] = {label: policy, "greedy": GreedyPolicy()}
    if args.ablation:
        policies["random"] = RandomPolicy(0)
    started = time.perf_counter()
    rows = evaluate_days(
        days, policies, config, exact=not args.no_exact, exact_time_limit_s=args.exact_time_limit
    )
    latency = [] if args.no_latency else latency_sweep(policies, config)
    summary = summarize(rows, list(policies))
    summary.update(
        model_version=version,
        evaluation_set=set_fingerprint(days),
        pass_config=json.loads(json.dumps(asdict(config), default=str)),
        wall_s=round(time.perf_counter() - started, 1),
        evaluated_at=datetime.now(UTC).isoformat(),
    )
    if latency:
        summary["latency_by_size"] = latency_table(latency, list(policies))
    out = args.out or (
        model_path / "evaluation"
        if model_path is not None and model_path.is_relative_to(registry.root)
        else Path("var/reports") / datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    )
    header = run_header(version, model_path, config, spec, args, summary)
    report = write_report(out, rows, summary, list(policies), latency=latency, header=header)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    if model_path is not None and (args.record or model_path.parent == registry.versions_dir):
        update_model_metadata(model_path, evaluation=stored_metrics(summary, label))
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        m = summary["methods"]
        print(
            f"{len(rows)} held-out days: {label} at the proven optimum on "
            f"{_pc(m[label]['optimum_rate'])}, greedy {_pc(m['greedy']['optimum_rate'])}; "
            f"infeasible {m[label]['infeasible']}; report {report}"
        )
    return 0


def run_header(
    version: str,
    model_path: Path | None,
    config: PassConfig,
    spec: Any,
    args: argparse.Namespace,
    summary: dict[str, Any],
) -> dict[str, Any]:
    """The report header, every line from this run (model metadata, config, set, machine)."""
    header: dict[str, Any] = {"model version": version}
    if model_path is not None:
        try:
            meta = json.loads((model_path / "metadata.json").read_text())
        except (OSError, ValueError):
            meta = {}
        arch = meta.get("architecture") or {}
        header["network"] = (
            f"{arch.get('kind')} {arch.get('n_features')} -> {arch.get('hidden')} -> 1, "
            f"{meta.get('parameters')} parameters, features {meta.get('feature_version')}, "
            f"weights sha256 {str(meta.get('weights_sha256'))[:12]}, ranking "
            f"{meta.get('ranking', 'q')}"
        )
        training = meta.get("training") or {}
        if training:
            header["training"] = (
                f"{training.get('episodes')} episodes in {training.get('elapsed_s')} s on "
                f"{training.get('days')} days {training.get('sources')}, data fingerprint "
                f"{str(training.get('data_fingerprint'))[:16]}"
            )
    header["pass config (as run)"] = json.dumps(asdict(config), default=str)
    header["held-out set"] = f"{spec.describe()}; fingerprint {summary['evaluation_set'][:16]}"
    header["exact reference"] = (
        "skipped"
        if args.no_exact
        else f"CP-SAT minimum gap (then minimum deadhead at that gap where available), "
        f"{args.exact_time_limit} s limit per day, hinted with the best pass plan"
    )
    load = os.getloadavg()
    header["machine"] = (
        f"{os.cpu_count()} CPUs, load average {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} at "
        f"the end; evaluation wall time {summary['wall_s']} s; at {summary['evaluated_at']}"
    )
    header["command"] = "dispatch-rl " + " ".join(sys.argv[1:]) if sys.argv else "(library)"
    return header


def stored_metrics(summary: dict[str, Any], label: str) -> dict[str, Any]:
    m = summary["methods"]
    return {
        "evaluation_set": summary["evaluation_set"],
        "days": summary["days"],
        "dqn": m[label],
        "greedy": m["greedy"],
        "exact": m["exact"],
        "evaluated_at": summary["evaluated_at"],
    }


def resolve_model(spec: str, settings: LearnSettings) -> tuple[MovePolicy, str, Path | None]:
    """The policy named by `--model`, its version, and its directory (None for greedy)."""
    from optimizer.policy import GreedyPolicy
    from optimizer.registry import DEFAULT_MODEL_DIR, ModelRegistry, load_model
    from optimizer.serving import RegistryPolicyProvider

    # Evaluation measures quality itself, so it loads without the serving quality check (an
    # under-trained model can be evaluated; it cannot serve). Checksums are still checked.
    registry = ModelRegistry(settings.model_dir)
    if spec == "serving":
        provider = RegistryPolicyProvider(settings.model_dir)
        source, policy = provider.status()["source"], provider.policy()
        if source == "registry":
            return policy, policy.version, registry.path(policy.version)
        if source == "default":
            return policy, policy.version, DEFAULT_MODEL_DIR
        return policy, policy.version, None
    if spec == "greedy":
        return GreedyPolicy(), GreedyPolicy.version, None
    if spec == "default":
        loaded = load_model(DEFAULT_MODEL_DIR, check_quality=False)
    elif spec == "champion":
        version = registry.champion()
        if version is None:
            raise ValueError("the registry has no champion")
        loaded = registry.load(version, check_quality=False)
    elif Path(spec).is_dir() and (Path(spec) / "metadata.json").exists():
        loaded = load_model(Path(spec), check_quality=False)
    else:
        loaded = registry.load(spec, check_quality=False)
    return loaded.policy(), loaded.version, loaded.path


def promote(
    registry: Any,
    version: str,
    settings: LearnSettings,
    *,
    force: bool,
    per_class: int,
    kinds: tuple[str, ...] = ("generated", "patient", "cordeau"),
    exact_time_limit_s: float = 5.0,
    gate_config: Any = None,
) -> tuple[int, str]:
    """Promote `version` when the gate (`optimizer.gate`) finds it not worse than what serves.

    Both run the operator's pass on the same held-out days with the exact reference.
    """
    from optimizer.evaluate import evaluate_days, summarize
    from optimizer.gate import compare
    from optimizer.heldout import HeldOutSpec, heldout_days
    from optimizer.registry import ModelLoadError, RegistryError
    from optimizer.serving import RegistryPolicyProvider

    try:
        candidate = registry.load(version)
    except (ModelLoadError, RegistryError) as exc:
        return 1, f"not promoted: {exc}"
    champion = RegistryPolicyProvider(registry.root).policy()
    dispatch = settings.dispatch_config()
    days = heldout_days(
        HeldOutSpec(per_class=per_class, kinds=kinds), rules=dispatch.rules, travel=dispatch.travel
    )
    policies: dict[str, MovePolicy] = {"candidate": candidate.policy(), "champion": champion}
    rows = evaluate_days(
        days, policies, dispatch.pass_config, exact=True, exact_time_limit_s=exact_time_limit_s
    )
    m = summarize(rows, list(policies))["methods"]
    gate = compare(m["candidate"], m["champion"], gate_config)
    detail = (
        f"candidate {version} vs champion {champion.version} on {len(rows)} held-out days:\n"
        + gate.table()
    )
    if not gate.passed and not force:
        return 1, f"not promoted: worse than the champion ({detail})\n--force to override"
    try:
        registry.set_champion(version, reason="promote" if gate.passed else "promote --force")
    except (ModelLoadError, RegistryError) as exc:
        return 1, f"error: {exc}"
    registry.update_metadata(
        version,
        promotion={
            "compared_with": champion.version,
            "gate": gate.as_dict(),
            "forced": not gate.passed,
            "at": datetime.now(UTC).isoformat(),
        },
    )
    how = "FORCED despite the gate" if not gate.passed else "promoted"
    return 0, f"{how}: {version} is the champion ({detail})"


def _pc(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f} %"
