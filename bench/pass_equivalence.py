"""Does a change to the pass keep every decision? Digests of its runs on a fixed corpus.

Runs the swap pass (greedy and the shipped DQN) on a fixed corpus — generated days from 10x3
to 300x40 (default day shape, and a strict one: tolerance 0, more locked and urgent rides),
patient-transport days and Cordeau's instances, plus a few non-default pass configs — and
records, per run, a digest of the final assignment, the stop reason, the step counts and the
whole audit trail (every checked move: kind, steps, decision, reason, detail, values and score,
floats rounded to 1e-6). Write the digests on the base commit, then compare on the branch:

    git worktree add /tmp/base main
    PYTHONPATH=/tmp/base python bench/pass_equivalence.py --write /tmp/base.json
    PYTHONPATH=$PWD python bench/pass_equivalence.py --compare /tmp/base.json

`--compare` prints every run whose digest differs (with the first differing audit record when
the base file holds the records, `--write --records`) and exits 1 if any does; it also prints
the total pass time of both runs and their ratio (same corpus; a shared machine makes it rough).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from collections.abc import Iterator
from typing import Any

# A sibling script (run as `python bench/pass_equivalence.py`, bench/ is on sys.path): the same
# policy names as the latency bench, built in one place.
from optimize_latency import _policies

from optimizer.generate import DayShape, generate_day
from optimizer.objective import Objective
from optimizer.problem import IntArray, Problem, Rules
from optimizer.swap_pass import PassConfig, PassResult, run_pass

GENERATED = ((10, 3, 150), (25, 4, 50), (40, 6, 30), (60, 8, 20), (100, 13, 12), (150, 18, 6),
             (300, 40, 4))  # fmt: skip
STRICT = ((10, 3, 40), (40, 6, 15), (100, 13, 5))
PATIENT = ((10, 3), (25, 4), (40, 6), (60, 8), (100, 13))
PATIENT_SEEDS = range(7000, 7008)
CONFIGS = {
    "default": PassConfig(),
    "weighted": PassConfig(objective=Objective(mode="weighted")),
    "polish": PassConfig(polish_steps=4, batch_moves=False),
    "no-exchanges": PassConfig(exchanges=False, lookahead_depth=1, chains=False),
}
"""Non-default configs run on the first days of a few classes only (`_corpus`)."""


def _corpus(quick: bool) -> Iterator[tuple[str, Problem, IntArray, str]]:
    """(name, problem, upstream, config name) in a fixed order."""
    scale = 4 if quick else 1
    strict_rules = Rules(late_tolerance_minutes=0.0)
    strict_shape = DayShape(locked=0.1, high_priority=0.3)
    for n, k, days in GENERATED:
        for i in range(max(1, days // scale)):
            problem, upstream = Problem.from_event(generate_day(n, k, 1000 + i))
            yield f"gen-{n}x{k}-{i}", problem, upstream, "default"
            if i < 4 and n <= 100:
                for cfg in ("weighted", "polish", "no-exchanges"):
                    yield f"gen-{n}x{k}-{i}", problem, upstream, cfg
    for n, k, days in STRICT:
        for i in range(max(1, days // scale)):
            event = generate_day(n, k, 5000 + i, shape=strict_shape)
            problem, upstream = Problem.from_event(event, rules=strict_rules)
            yield f"strict-{n}x{k}-{i}", problem, upstream, "default"
    from optimizer.patient_transport import patient_days

    seeds = list(PATIENT_SEEDS)[: max(1, len(PATIENT_SEEDS) // scale)]
    for n, k in PATIENT:
        for day in patient_days([(n, k)], seeds):
            yield day.name, day.problem, day.assignment, "default"
    from optimizer.darp import list_instances
    from optimizer.dqn.days import cordeau_days

    names = list_instances()
    for day in cordeau_days(names[:: 3 if quick else 1]):
        yield f"cordeau-{day.name}", day.problem, day.assignment, "default"


def _r(x: float | None) -> float | None:
    return None if x is None else round(float(x), 6)


def _records(result: PassResult) -> list[Any]:
    out: list[Any] = []
    for c in result.checked:
        steps = [[s.booking, s.from_driver, s.to_driver] for s in c.move.steps]
        after = None if c.value_after is None else [_r(v) for v in c.value_after]
        out.append(
            [c.move.kind, steps, c.decision, c.reason, c.detail,
             [_r(v) for v in c.value_before], after, _r(c.gain), _r(c.score)]
        )  # fmt: skip
    return out


def _digest(result: PassResult) -> tuple[str, list[Any]]:
    records = _records(result)
    head = [result.assignment.tolist(), result.stop_reason, result.steps, result.cost_steps,
            result.budget, [_r(v) for v in result.after.value]]  # fmt: skip
    blob = json.dumps([head, records], separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:20], records


def run(policy_names: list[str], quick: bool, keep_records: bool) -> dict[str, Any]:
    policies = _policies(policy_names)
    runs: dict[str, Any] = {}
    seconds = 0.0
    for name, problem, upstream, cfg_name in _corpus(quick):
        for pname, policy in policies.items():
            config = CONFIGS[cfg_name]
            t = time.perf_counter()
            result = run_pass(problem, upstream, policy, config)
            seconds += time.perf_counter() - t
            digest, records = _digest(result)
            key = f"{name}/{cfg_name}/{pname}"
            runs[key] = {"digest": digest, "records": records if keep_records else None}
    return {"runs": runs, "seconds": seconds}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--policies", default="greedy,dqn")
    ap.add_argument("--quick", action="store_true", help="a quarter of the corpus")
    ap.add_argument("--write", help="store the digests here")
    ap.add_argument("--records", action="store_true", help="with --write: keep audit records")
    ap.add_argument("--compare", help="compare with digests stored by --write")
    args = ap.parse_args()
    out = run(args.policies.split(","), args.quick, args.records)
    print(f"{len(out['runs'])} runs, pass time {out['seconds']:.2f} s")
    if args.write:
        with open(args.write, "w") as f:
            json.dump(out, f)
    if args.compare:
        with open(args.compare) as f:
            base = json.load(f)
        missing = [k for k in out["runs"] if k not in base["runs"]]
        differ = [
            k for k in out["runs"]
            if k in base["runs"] and base["runs"][k]["digest"] != out["runs"][k]["digest"]
        ]  # fmt: skip
        for k in differ:
            print(f"DIFFERS {k}")
            old = base["runs"][k].get("records")
            if old is not None:
                new = run_one_records(k, args.quick)
                for i, (a, b) in enumerate(zip(old, new, strict=False)):
                    if a != b:
                        print(f"  first difference at record {i}:\n    base {a}\n    here {b}")
                        break
                else:
                    print(f"  records equal up to {min(len(old), len(new))}; lengths "
                          f"{len(old)} vs {len(new)} (or the final plan differs)")  # fmt: skip
        ratio = base["seconds"] / out["seconds"] if out["seconds"] else float("nan")
        print(
            f"compared {len(out['runs']) - len(missing)} runs: {len(differ)} differ, "
            f"{len(missing)} not in the base; pass time base {base['seconds']:.2f} s, "
            f"here {out['seconds']:.2f} s ({ratio:.2f}x faster)"
        )
        if differ or missing:
            sys.exit(1)


def run_one_records(key: str, quick: bool) -> list[Any]:
    """The audit records of one run of the corpus (to show where two runs part)."""
    name, cfg_name, pname = key.split("/")
    policy = _policies([pname])[pname]
    for n, problem, upstream, c in _corpus(quick):
        if n == name and c == cfg_name:
            return _records(run_pass(problem, upstream, policy, CONFIGS[c]))
    return []


if __name__ == "__main__":
    main()
