"""CPU per dispatch of what a prepare process does per message, split by phase, vs a baseline.

A prepare process (`streams.prepare_processes`) runs `DispatchHandler.prepare` per message:
decode and validate the `HeuristicDone`, build the problem, run the pass with the served policy
(the shipped DQN unless the registry has a champion), build the `Optimized` and audit events,
encode them; then it pickles the result back to the worker. This bench times each phase on a
pool of generated days (`generate_days(days, [(n, k)], seed=n)`, the stream bench's pool when
`--days 50`) with `time.process_time` (CPU, not wall: the machine is shared), each phase over
each message's phases in turn (the child's order), the pool `--repeats` times after a
warm-up, and keeps each phase's smallest sum:

    decode    codec.decode_heuristic_done (pydantic validation of the input)
    problem   Problem.from_event
    pass      run_pass (on the fresh problem: its first-use tables count)
    events    the rest of optimize_event (the Optimized and audit models, logs)
    encode    codec.outcome_records (JSON bytes of every event)
    frame     pickling the records (the child sends them back to the worker)
    prepare   DispatchHandler.prepare, whole, in a loop of its own (what the child runs)

    python bench/prepare_cost.py                                  # 10x3 and 25x4, this tree
    python bench/prepare_cost.py --baseline /tmp/base --rounds 3  # and a checkout of main
    python bench/prepare_cost.py --pass-split --sizes 10x3:200     # where the pass's CPU goes
    python bench/prepare_cost.py --steps --baseline /tmp/base --rounds 6  # three steps alone
    python bench/prepare_cost.py --baseline . --baseline-env DISPATCH_RL_PURE_PYTHON=1  # kernels

With `--baseline DIR` each round runs this tree and DIR (PYTHONPATH) in fresh processes, in
alternating order, and the table shows both and the ratio. Both sides also hash every day's
encoded events (produced_at fixed, latency_ms zeroed) with the pass on, disabled and for a
mode that is not optimized, and the bench says whether the two are byte-identical.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import pickle
import re
import subprocess
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest import mock

PHASES = ("decode", "problem", "pass", "events", "encode", "frame", "prepare")
_AT = datetime(2026, 1, 1, tzinfo=UTC)
_LATENCY = re.compile(rb'"latency_ms":[-0-9.eE+]+')


def measure(sizes: list[tuple[int, int, int]], repeats: int) -> dict[str, Any]:
    """Per size: min CPU ms per dispatch of each phase, and per-day digests of the events."""
    from streams.prepare_processes import settings_handler
    from streams.settings import Settings

    handler = settings_handler(Settings(log_level="WARNING"))
    out: dict[str, Any] = {"model_version": handler.provider.policy().version, "sizes": {}}
    for n, k, days in sizes:
        out["sizes"][f"{n}x{k}:{days}"] = _measure_size(handler, n, k, days, repeats)
    return out


def _measure_size(handler: Any, n: int, k: int, days: int, repeats: int) -> dict[str, Any]:
    import optimizer.dispatch as dispatch
    from optimizer.generate import generate_days
    from optimizer.problem import Problem
    from optimizer.swap_pass import run_pass
    from schemas import HeuristicDone
    from streams import codec
    from streams.agents import Source

    policy, cfg, limits = handler.provider.policy(), handler.config, handler.limits
    raws = [codec.encode(e) for e in generate_days(days, [(n, k)], seed=n)]
    src = Source("bench", 0, 0)
    clock = time.process_time

    built: list[Any] = []
    result: list[Any] = []

    class _Built:
        """What `optimize_event` builds and runs, handed the ones timed just before."""

        @staticmethod
        def from_event(*args: Any, **kwargs: Any) -> Any:
            return built[0]

    def phases() -> dict[str, float]:
        """Each phase of each message in turn (the child's order), CPU seconds per phase."""
        spent = dict.fromkeys(("decode", "problem", "pass", "events", "encode", "frame"), 0.0)
        # `optimize_event` itself, handed the problem and pass result timed just before.
        with (
            mock.patch.object(dispatch, "Problem", _Built),
            mock.patch.object(dispatch, "run_pass", lambda *args, **kwargs: result[0]),
        ):
            for raw in raws:
                t0 = clock()
                event = codec.decode_heuristic_done(raw, limits)
                t1 = clock()
                assert isinstance(event, HeuristicDone), event
                problem, upstream = Problem.from_event(
                    event, travel_model=cfg.travel, rules=cfg.rules
                )
                built[:] = [(problem, upstream)]
                t2 = clock()
                result[:] = [run_pass(problem, upstream, policy, cfg.pass_config)]
                t3 = clock()
                outcome = dispatch.optimize_event(event, policy, cfg)
                t4 = clock()
                records = codec.outcome_records(outcome)
                t5 = clock()
                pickle.dumps(records, protocol=pickle.HIGHEST_PROTOCOL)
                t6 = clock()
                marks = (t0, t1, t2, t3, t4, t5, t6)
                for i, name in enumerate(spent):
                    spent[name] += marks[i + 1] - marks[i]
        return spent

    def whole() -> float:
        t = clock()
        for raw in raws:
            handler.prepare(raw, b"k", src)
        return clock() - t

    phases()  # warm-up
    whole()
    best: dict[str, float] = {}
    for _ in range(repeats):
        for name, seconds in [*phases().items(), ("prepare", whole())]:
            ms = seconds * 1000 / len(raws)
            best[name] = min(best.get(name, ms), ms)
    events = [codec.decode_heuristic_done(r, limits) for r in raws]
    return {"ms": {p: best[p] for p in PHASES}, "digests": _digests(events, policy, cfg)}


# Where the pass's CPU goes (`--pass-split`): (module, attribute, label); nested ones overlap
# (a route-array rebuild is inside whichever call first needs it; the phases hold the rest).
SPLIT = (
    ("optimizer.swap_pass", "Search.__init__", "set-up (schedules, masks, value)"),
    ("optimizer.swap_pass", "Search.fairness", "fairness phase"),
    ("optimizer.swap_pass", "Search.polish", "polish"),
    ("optimizer.cost_phase", "cost_phase", "cost phase"),
    ("optimizer.search_state", "SearchState.candidates", "  candidate generation"),
    ("optimizer.routes", "RouteArrays.__init__", "  route arrays rebuilt"),
    ("optimizer.routes", "RouteArrays._grid", "  insertion grid"),
    ("optimizer.dqn.policy", "DQNPolicy.score", "  DQN scoring"),
    ("optimizer.dqn.policy", "candidate_features", "    features"),
    ("optimizer.dqn.inference", "MlpWeights.__call__", "    network"),
    ("optimizer.search_state", "SearchState._trial", "  validator checks"),
    ("optimizer.lookahead", "lookahead", "  lookahead"),
    ("optimizer.swap_pass", "Search.repair_round", "  subset re-plans (CP-SAT)"),
    ("optimizer.cost_phase", "estimated_km_saving", "  cost: km estimates"),
    ("optimizer.cost_phase", "neutral_chains", "  cost: neutral chains"),
    ("optimizer.cost_phase", "balanced_exchanges", "  cost: balanced exchanges"),
)


def pass_split(n: int, k: int, days: int) -> None:
    """Print CPU ms per pass spent in `SPLIT`'s functions (timing wrappers; this tree only)."""
    import importlib
    from collections import defaultdict

    from optimizer.generate import generate_days
    from optimizer.problem import Problem
    from optimizer.swap_pass import run_pass
    from streams.prepare_processes import settings_handler
    from streams.settings import Settings

    handler = settings_handler(Settings(log_level="WARNING"))
    policy, cfg = handler.provider.policy(), handler.config
    spent: defaultdict[str, float] = defaultdict(float)
    calls: defaultdict[str, int] = defaultdict(int)

    def timed(label: str, f: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            t = time.process_time()
            try:
                return f(*args, **kwargs)
            finally:
                spent[label] += time.process_time() - t
                calls[label] += 1

        return wrapper

    for module, attribute, label in SPLIT:
        owner: Any = importlib.import_module(module)
        *path, name = attribute.split(".")
        for part in path:
            owner = getattr(owner, part)
        setattr(owner, name, timed(label, getattr(owner, name)))
    events = generate_days(days, [(n, k)], seed=n)
    for _ in range(2):  # the first warms up
        spent.clear()
        calls.clear()
        t = time.process_time()
        for e in events:
            problem, upstream = Problem.from_event(e, travel_model=cfg.travel, rules=cfg.rules)
            run_pass(problem, upstream, policy, cfg.pass_config)
        total = time.process_time() - t
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"{n}x{k}, {days} days, load {load}: pass {total * 1000 / days:.3f} ms CPU (with the "
          f"wrappers' own cost); ms per pass and calls per pass:")  # fmt: skip
    for _, _, label in SPLIT:
        print(f"{label:36s} {spent[label] * 1000 / days:7.3f} {calls[label] / days:7.2f}")


def _digests(events: list[Any], policy: Any, cfg: Any) -> list[str]:
    """sha256 of each day's encoded events: pass on, disabled, mode not optimized."""
    from optimizer.dispatch import optimize_event
    from streams import codec

    configs = (cfg, replace(cfg, enabled=False), replace(cfg, modes=frozenset({"manual"})))
    out = []
    for e in events:
        h = hashlib.sha256()
        for c in configs:
            outcome = optimize_event(e, policy, c, now=lambda: _AT)
            for kind, key, value in codec.outcome_records(outcome):
                h.update(kind.encode() + b"\0" + key + b"\0")
                h.update(_LATENCY.sub(b'"latency_ms":0', value) + b"\n")
        out.append(h.hexdigest())
    return out


def steps(days: int) -> dict[str, float]:
    """CPU us of three small steps (session 6): the DQN features per scoring call, on the
    pass's own states; decode per day; the audit events per day. Min of 7 loops, 10x3 days."""
    import inspect

    import optimizer.dispatch as dispatch
    from optimizer.dqn.features import candidate_features
    from optimizer.generate import generate_days
    from optimizer.problem import Problem
    from optimizer.swap_pass import run_pass
    from streams import codec
    from streams.prepare_processes import settings_handler
    from streams.settings import Settings

    handler = settings_handler(Settings(log_level="WARNING"))
    policy, cfg, limits = handler.provider.policy(), handler.config, handler.limits
    raws = [codec.encode(e) for e in generate_days(days, [(10, 3)], seed=10)]
    states: list[Any] = []
    score = type(policy).score

    def keep(self: Any, state: Any, cands: Any) -> Any:
        states.append((state.fork(), cands))
        return score(self, state, cands)

    runs = []
    with mock.patch.object(type(policy), "score", keep):
        for raw in raws:
            event = codec.decode_heuristic_done(raw, limits)
            assert not isinstance(event, list), event
            problem, upstream = Problem.from_event(event, travel_model=cfg.travel, rules=cfg.rules)
            runs.append((event, problem, run_pass(problem, upstream, policy, cfg.pass_config)))
    shared = "memo" in inspect.signature(dispatch._audit).parameters  # this session's memo

    def audits() -> None:
        for event, problem, result in runs:
            extra = [dispatch.AuditMemo()] if shared else []  # type: ignore[attr-defined]
            for c in result.checked:
                dispatch._audit(event, problem, c, "v", _AT, *extra)

    def best(f: Any, n: int) -> float:
        out = float("inf")
        for _ in range(7):
            t = time.process_time()
            f()
            out = min(out, time.process_time() - t)
        return out * 1e6 / n

    return {
        "features us/call": best(lambda: [candidate_features(*sc) for sc in states], len(states)),
        "decode us/day": best(lambda: [codec.decode_heuristic_done(r, limits) for r in raws], days),
        "audits us/day": best(audits, days),
    }


def _child(
    tree: str, args: argparse.Namespace, extra: dict[str, str] | None = None
) -> dict[str, Any]:
    env = os.environ | {"PYTHONPATH": tree} | (extra or {})
    cmd = [sys.executable, __file__, "--sizes", args.sizes, "--repeats", str(args.repeats),
           "--json"] + (["--steps"] if args.steps else [])  # fmt: skip
    done = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--sizes", default="10x3:300,25x4:60", help="comma-separated NxK:days (the pool sizes)"
    )
    ap.add_argument("--repeats", type=int, default=3, help="timed loops per phase (min kept)")
    ap.add_argument("--baseline", help="a checkout to compare with (its root, as PYTHONPATH)")
    ap.add_argument("--rounds", type=int, default=2, help="with --baseline: alternating rounds")
    ap.add_argument(
        "--baseline-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="environment of the baseline's processes only (e.g. --baseline . --baseline-env "
        "DISPATCH_RL_PURE_PYTHON=1: this tree without its compiled loops)",
    )
    ap.add_argument("--json", action="store_true", help="print the raw figures as JSON")
    ap.add_argument(
        "--pass-split", action="store_true", help="where the pass's CPU goes (this tree only)"
    )
    ap.add_argument(
        "--steps", action="store_true", help="features, decode, audits alone (see `steps`)"
    )
    args = ap.parse_args()
    sizes = [
        (int(n), int(k), int(d)) for n, k, d in (re.split("[x:]", s) for s in args.sizes.split(","))
    ]
    if args.json:
        print(json.dumps(steps(100) if args.steps else measure(sizes, args.repeats)))
        return
    if args.steps:  # this tree and the baseline in fresh processes, alternating
        here = str(Path(__file__).resolve().parent.parent)
        order = [here, args.baseline] if args.baseline else [here]
        for r in range(args.rounds if args.baseline else 1):
            for tree in order if r % 2 == 0 else order[::-1]:
                figures = ", ".join(f"{k} {v:.1f}" for k, v in _child(tree, args).items())
                print(f"{'here' if tree == here else 'base'}: {figures}", flush=True)
        load = " ".join(f"{x:.2f}" for x in os.getloadavg())
        print(f"load average {load}")
        return
    if args.pass_split:
        for n, k, days in sizes:
            pass_split(n, k, days)
        return
    here = str(Path(__file__).resolve().parent.parent)
    sides = {"here": here} | ({"base": args.baseline} if args.baseline else {})
    runs: dict[str, list[dict[str, Any]]] = {s: [] for s in sides}
    base_env = dict(kv.split("=", 1) for kv in args.baseline_env)
    for r in range(args.rounds if args.baseline else 1):
        order = list(sides) if r % 2 == 0 else list(reversed(sides))
        for side in order:
            runs[side].append(_child(sides[side], args, base_env if side == "base" else None))
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"load average {load}; days per size {args.sizes}, model "
          f"{runs['here'][0]['model_version']}; CPU ms per dispatch, min of {args.repeats} "
          f"loops x {len(runs['here'])} runs")  # fmt: skip
    print("| size | tree | " + " | ".join(PHASES) + " |")
    print("|---|---|" + "---:|" * len(PHASES))
    for size in (f"{n}x{k}:{d}" for n, k, d in sizes):
        best = {
            side: {p: min(run["sizes"][size]["ms"][p] for run in rs) for p in PHASES}
            for side, rs in runs.items()
        }
        for side in sides:
            cells = " | ".join(f"{best[side][p]:.3f}" for p in PHASES)
            print(f"| {size} | {side} | {cells} |")
        if "base" in best:
            cells = " | ".join(
                f"{best['base'][p] / best['here'][p]:.2f}x" if best["here"][p] > 0 else "-"
                for p in PHASES
            )
            print(f"| {size} | base/here | {cells} |")
    if "base" in runs:
        for size in (f"{n}x{k}:{d}" for n, k, d in sizes):
            a = runs["base"][0]["sizes"][size]["digests"]
            b = runs["here"][0]["sizes"][size]["digests"]
            differ = sum(x != y for x, y in zip(a, b, strict=True))
            print(f"{size}: events of {len(a)} days x 3 configs: {differ} days differ "
                  f"({'byte-identical' if not differ else 'NOT identical'})")  # fmt: skip


if __name__ == "__main__":
    main()
