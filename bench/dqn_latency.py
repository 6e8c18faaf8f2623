"""Swap-pass latency, DQN beside greedy in the same run, and DQN training throughput.

    python bench/dqn_latency.py                      # shipped default model, 10x3 and 300x40
    python bench/dqn_latency.py --model var/models/versions/<v> --days 30 --json
    python bench/dqn_latency.py --train-episodes 5000   # the full 5,000-episode training run

Targets (issue 4): pass p99 <= 20 ms on 10x3 days and <= 300 ms on 300x40 days, on the CPU;
5,000 training episodes in <= 180 s. The days are generated with seeds neither training nor
`evaluate` uses. Each day is run `--repeats` times per policy after one warm-up, the two
policies interleaved so that machine load hits both alike.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from optimizer.dqn.days import generated_days
from optimizer.policy import GreedyPolicy
from optimizer.registry import DEFAULT_MODEL_DIR, load_model
from optimizer.swap_pass import MovePolicy, PassConfig, run_pass

TARGETS_MS = {(10, 3): 20.0, (300, 40): 300.0}
TRAIN_TARGET_S = 180.0
BENCH_SEED_BASE = 2_000_000


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=DEFAULT_MODEL_DIR, help="a model directory")
    ap.add_argument("--sizes", default="10x3,300x40", help="comma-separated NxK")
    ap.add_argument("--days", type=int, default=20, help="days per size")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument(
        "--swaps-per-booking",
        type=float,
        default=None,
        help="replace the pass budget (default: the service's pass config, unchanged)",
    )
    ap.add_argument(
        "--train-episodes", type=int, default=500, help="episodes of the throughput run (0: skip)"
    )
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)

    model = load_model(args.model, check_quality=False)
    policies: dict[str, MovePolicy] = {"dqn": model.policy(), "greedy": GreedyPolicy()}
    config = PassConfig()
    if args.swaps_per_booking is not None:
        config = replace(config, swaps_per_booking=args.swaps_per_booking)
    sizes = [tuple(int(x) for x in s.split("x")) for s in args.sizes.split(",")]
    out: dict[str, object] = {
        "model_version": model.version,
        "budget": f"max({config.max_swaps}, ceil({config.swaps_per_booking} x bookings))",
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "inference": "numpy",
        "latency": {},
    }
    for j, (n, k) in enumerate(sizes):
        seeds = range(BENCH_SEED_BASE + 1000 * j, BENCH_SEED_BASE + 1000 * j + args.days)
        days = generated_days([(n, k)], seeds)
        times: dict[str, list[float]] = {lb: [] for lb in policies}
        gaps: dict[str, list[int]] = {lb: [] for lb in policies}
        for d in days:
            for rep in range(args.repeats + 1):
                for label, policy in policies.items():
                    r = run_pass(d.problem, d.assignment, policy, config)
                    if rep:
                        times[label].append(r.elapsed_s * 1000.0)
                        if rep == 1:
                            gaps[label].append(r.after.gap)
        row = {}
        for label in policies:
            t = np.asarray(times[label])
            row[label] = {
                "p50_ms": round(float(np.percentile(t, 50)), 3),
                "p99_ms": round(float(np.percentile(t, 99)), 3),
                "max_ms": round(float(t.max()), 3),
                "mean_gap": round(float(np.mean(gaps[label])), 3),
                "runs": len(t),
            }
        row["dqn_over_greedy_p50"] = round(  # type: ignore[assignment]
            row["dqn"]["p50_ms"] / max(row["greedy"]["p50_ms"], 1e-9),
            2,  # type: ignore[index]
        )
        target = TARGETS_MS.get((n, k))
        if target is not None:
            row["target_p99_ms"] = target
            row["dqn_meets_target"] = row["dqn"]["p99_ms"] <= target  # type: ignore[index]
        out["latency"][f"{n}x{k}"] = row  # type: ignore[index]
        if not args.json:
            print(
                f"{n}x{k}: "
                + "; ".join(
                    f"{lb} p50 {row[lb]['p50_ms']:.2f} ms p99 {row[lb]['p99_ms']:.2f} ms "  # type: ignore[index]
                    f"mean gap {row[lb]['mean_gap']}"
                    for lb in policies
                )  # type: ignore[index]
                + f"; dqn/greedy p50 x{row['dqn_over_greedy_p50']}"
                + (
                    f"  (target p99 <= {target:.0f} ms: "
                    f"{'met' if row.get('dqn_meets_target') else 'MISSED'})"
                    if target
                    else ""
                ),
                flush=True,
            )

    if args.train_episodes:
        from optimizer.dqn.train import TrainConfig, train, training_days  # needs [train]

        days = training_days(1)
        started, cpu0 = time.perf_counter(), time.process_time()
        result = train(days, TrainConfig(episodes=args.train_episodes, checkpoint_every=0))
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu0
        per_episode = result.elapsed_s / result.episodes
        out["training"] = {
            "episodes": result.episodes,
            "loop_s": round(result.elapsed_s, 2),
            "wall_s_with_setup": round(wall, 2),
            "cpu_s": round(cpu, 2),
            "episodes_per_s": round(result.episodes / result.elapsed_s, 1),
            "steps_per_s": round(result.global_steps / result.elapsed_s, 1),
            "projected_5000_episodes_s": round(per_episode * 5000, 1),
            "target_s": TRAIN_TARGET_S,
        }
        if not args.json:
            t = out["training"]
            print(
                f"training: {t['episodes']} episodes in {t['loop_s']} s "  # type: ignore[index]
                f"({t['episodes_per_s']} episodes/s, {t['steps_per_s']} steps/s); "  # type: ignore[index]
                f"{t['cpu_s']} s of CPU; 5,000 episodes ~ {t['projected_5000_episodes_s']} s "  # type: ignore[index]
                f"(target {TRAIN_TARGET_S:.0f} s)"
            )
    if args.json:
        print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
