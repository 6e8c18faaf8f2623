"""Held-out evaluation: heuristic input vs DQN pass vs greedy pass vs the exact CP-SAT optimum.

The evaluation set never meets the training set: generated days use sizes and seeds training
does not (`EVAL_SIZES`, seeds from `EVAL_SEED_BASE`), and the Cordeau days are the b-series
(training sees a few a-series instances). Each policy runs the real swap pass (`run_pass`) with
the same `PassConfig`; its output is re-checked with `is_feasible_change` (an infeasible output
is counted, and must be 0). The exact optimum comes from `solve_min_gap` with a time limit and
the best pass result as a hint, so a day whose pass met the structural floor is proven at once.

`write_report` renders a Markdown report with PNG plots (gap distributions, latency against
size); `summarize` is what `--json` prints and what the registry stores as a model's metrics.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from optimizer.dqn.days import Day, cordeau_days, fingerprint, generated_days, seed_days
from optimizer.exact import solve_min_gap
from optimizer.feasibility import is_feasible_change
from optimizer.objective import gap_floor
from optimizer.swap_pass import MovePolicy, PassConfig, run_pass

EVAL_SIZES: tuple[tuple[int, int], ...] = (
    (12, 3),
    (16, 4),
    (24, 4),
    (36, 6),
    (50, 7),
    (80, 10),
    (120, 15),
)
"""Generated evaluation sizes: none of them is a training size."""
EVAL_SEED_BASE = 1_000_000
LATENCY_SIZES: tuple[tuple[int, int], ...] = ((10, 3), (30, 5), (100, 12), (300, 40))
EVAL_SWAPS_PER_BOOKING = 2.0
"""The pass budget used by `evaluate` (budget = max(max_swaps, ceil(2.0 x bookings)))."""


@dataclass(frozen=True, slots=True)
class PolicyOutcome:
    gap: int
    deadhead_km: float
    feasible: bool
    latency_ms: float
    steps: int
    checked: int
    stop: str


@dataclass(frozen=True, slots=True)
class DayResult:
    name: str
    source: str
    bookings: int
    drivers: int
    budget: int
    floor: int
    heuristic_gap: int
    heuristic_deadhead_km: float
    exact_gap: int | None
    exact_bound: int
    exact_proven: bool
    exact_status: str
    exact_s: float
    policies: dict[str, PolicyOutcome] = field(default_factory=dict)


def evaluation_days(
    per_size: int = 10,
    *,
    sizes: Sequence[tuple[int, int]] = EVAL_SIZES,
    cordeau: bool = True,
    seed_day: bool = True,
) -> list[Day]:
    """The held-out set: `per_size` generated days per size, the b-series, the seed day."""
    days: list[Day] = []
    for j, size in enumerate(sizes):
        seeds = range(EVAL_SEED_BASE + 1000 * j, EVAL_SEED_BASE + 1000 * j + per_size)
        days += generated_days([size], seeds)
    if cordeau:
        from optimizer.darp import list_instances

        days += cordeau_days(n for n in list_instances() if n.startswith("b"))
    if seed_day:
        days += seed_days()
    return days


def evaluate_days(
    days: Sequence[Day],
    policies: Mapping[str, MovePolicy],
    config: PassConfig,
    *,
    exact: bool = True,
    exact_time_limit_s: float = 10.0,
    on_day: Callable[[DayResult], None] | None = None,
) -> list[DayResult]:
    """Run every policy's pass on every day (same order each day), then the exact solver."""
    if days:  # warm-up: the first call of a policy pays imports and allocations
        d = days[0]
        for policy in policies.values():
            run_pass(d.problem, d.assignment, policy, config)
    out = []
    for d in days:
        p, upstream = d.problem, d.assignment
        outcomes: dict[str, PolicyOutcome] = {}
        results = {}
        for label, policy in policies.items():
            r = run_pass(p, upstream, policy, config)
            ok, _ = is_feasible_change(p, upstream, r.assignment)
            results[label] = r
            outcomes[label] = PolicyOutcome(
                gap=r.after.gap,
                deadhead_km=r.after.deadhead_km,
                feasible=ok and r.after.value[0] <= r.before.value[0],
                latency_ms=r.elapsed_s * 1000.0,
                steps=r.steps,
                checked=len(r.checked),
                stop=r.stop_reason,
            )
        before = next(iter(results.values())).before if results else None
        floor = gap_floor(int((upstream >= 0).sum()), p.n_drivers)
        heuristic_gap = before.gap if before is not None else d.gap
        if exact:
            best = min(results.values(), key=lambda r: r.after.gap, default=None)
            hint = best.assignment if best is not None else None
            ex = solve_min_gap(p, upstream, time_limit_s=exact_time_limit_s, hint=hint)
            exact_fields: tuple[int | None, int, bool, str, float] = (
                ex.gap,
                ex.lower_bound,
                ex.proven_optimal,
                ex.status,
                ex.wall_s,
            )
        else:
            exact_fields = (None, floor, False, "SKIPPED", 0.0)
        row = DayResult(
            d.name,
            d.source,
            p.n_bookings,
            p.n_drivers,
            config.budget(int((upstream >= 0).sum())),
            floor,
            heuristic_gap,
            before.deadhead_km if before is not None else math.nan,
            *exact_fields,
            policies=outcomes,
        )
        out.append(row)
        if on_day is not None:
            on_day(row)
    return out


def latency_sweep(
    policies: Mapping[str, MovePolicy],
    config: PassConfig,
    *,
    sizes: Sequence[tuple[int, int]] = LATENCY_SIZES,
    days_per_size: int = 5,
    repeats: int = 3,
) -> list[dict[str, Any]]:
    """Pass latency per policy on generated days of each size, the policies interleaved."""
    rows = []
    for j, (n, k) in enumerate(sizes):
        seeds = range(
            EVAL_SEED_BASE + 500_000 + 1000 * j, EVAL_SEED_BASE + 500_000 + 1000 * j + days_per_size
        )
        for d in generated_days([(n, k)], seeds):
            for rep in range(repeats + 1):
                for label, policy in policies.items():
                    r = run_pass(d.problem, d.assignment, policy, config)
                    if rep == 0:
                        continue  # warm-up round
                    rows.append(
                        {
                            "policy": label,
                            "bookings": n,
                            "drivers": k,
                            "day": d.name,
                            "ms": r.elapsed_s * 1000.0,
                            "gap": r.after.gap,
                        }
                    )
    return rows


# ------------------------------------------------------------------ summary


def summarize(rows: Sequence[DayResult], labels: Sequence[str]) -> dict[str, Any]:
    """Per method: mean gap, share at the proven optimum, share with gap <= 1, excess over the
    optimum, deadhead change, infeasible outputs, latency p50/p99."""
    methods: dict[str, Any] = {}
    proven = [r for r in rows if r.exact_proven and r.exact_gap is not None]

    def block(
        gaps: list[int],
        at_opt: list[bool],
        excess: list[int],
        dead: list[float],
        infeasible: int,
        lat: list[float],
    ) -> dict[str, Any]:
        return {
            "mean_gap": _mean(gaps),
            "share_at_proven_optimum": _mean([float(x) for x in at_opt]),
            "share_gap_le_1": _mean([float(g <= 1) for g in gaps]),
            "mean_excess_over_optimum": _mean(excess),
            "max_excess_over_optimum": max(excess) if excess else None,
            "mean_deadhead_km_change": _mean(dead),
            "infeasible": infeasible,
            "latency_ms_p50": _pct(lat, 50),
            "latency_ms_p99": _pct(lat, 99),
        }

    methods["heuristic"] = block(
        [r.heuristic_gap for r in rows],
        [r.heuristic_gap == r.exact_gap for r in proven],
        [r.heuristic_gap - int(r.exact_gap) for r in proven if r.exact_gap is not None],
        [0.0 for _ in rows],
        0,
        [],
    )
    for label in labels:
        outs = [(r, r.policies[label]) for r in rows if label in r.policies]
        methods[label] = block(
            [o.gap for _, o in outs],
            [o.gap == r.exact_gap for r, o in outs if r.exact_proven],
            [
                o.gap - int(r.exact_gap)
                for r, o in outs
                if r.exact_proven and r.exact_gap is not None
            ],
            [o.deadhead_km - r.heuristic_deadhead_km for r, o in outs],
            sum(not o.feasible for _, o in outs),
            [o.latency_ms for _, o in outs],
        )
    methods["exact"] = {
        "mean_gap": _mean([r.exact_gap for r in rows if r.exact_gap is not None]),
        "proven": len(proven),
        "solved": sum(r.exact_gap is not None for r in rows),
        "latency_ms_p50": _pct([r.exact_s * 1000 for r in rows if r.exact_status != "SKIPPED"], 50),
        "latency_ms_p99": _pct([r.exact_s * 1000 for r in rows if r.exact_status != "SKIPPED"], 99),
    }
    return {
        "days": len(rows),
        "days_proven": len(proven),
        "sources": _count(r.source for r in rows),
        "methods": methods,
    }


def set_fingerprint(days: Sequence[Day]) -> str:
    return fingerprint(days, extra="eval")


def rows_as_dicts(rows: Sequence[DayResult]) -> list[dict[str, Any]]:
    return [asdict(r) for r in rows]


# ------------------------------------------------------------------ report


def write_report(
    out_dir: Path,
    rows: Sequence[DayResult],
    summary: Mapping[str, Any],
    labels: Sequence[str],
    *,
    latency: Sequence[Mapping[str, Any]] = (),
    header: Mapping[str, Any] | None = None,
    title: str = "DQN evaluation on held-out days",
) -> Path:
    """Write `report.md`, `gap_distribution.png` and `latency.png` into `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    _plot_gaps(out_dir / "gap_distribution.png", rows, labels)
    _plot_latency(out_dir / "latency.png", rows, labels, latency)
    lines = [f"# {title}", ""]
    for key, value in (header or {}).items():
        lines.append(f"- **{key}**: {value}")
    sources = ", ".join(f"{k}: {v}" for k, v in summary["sources"].items())
    lines += [
        f"- **days**: {summary['days']} ({sources}); "
        f"exact optimum proven on {summary['days_proven']}",
        "",
        "## Summary",
        "",
        "| method | mean gap | at proven optimum | gap <= 1 | mean excess | max excess | "
        "deadhead km change | infeasible | p50 ms | p99 ms |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for label in ("heuristic", *labels):
        m = summary["methods"][label]
        lines.append(
            f"| {label} | {_f(m['mean_gap'])} | {_pc(m['share_at_proven_optimum'])} | "
            f"{_pc(m['share_gap_le_1'])} | {_f(m['mean_excess_over_optimum'])} | "
            f"{m['max_excess_over_optimum']} | {_f(m['mean_deadhead_km_change'])} | "
            f"{m['infeasible']} | {_f(m['latency_ms_p50'])} | {_f(m['latency_ms_p99'])} |"
        )
    ex = summary["methods"]["exact"]
    lines.append(
        f"| exact (CP-SAT) | {_f(ex['mean_gap'])} | {ex['proven']} proven | | | | | | "
        f"{_f(ex['latency_ms_p50'])} | {_f(ex['latency_ms_p99'])} |"
    )
    lines += [
        "",
        "## By source and size",
        "",
        "| group | days | heuristic | "
        + " | ".join(labels)
        + " | exact | "
        + " | ".join(f"{lb} at optimum" for lb in labels)
        + " |",
        "|---|---:|---:|" + "---:|" * (2 * len(labels) + 1),
    ]
    for group, members in _groups(rows).items():
        opt = [r for r in members if r.exact_proven]
        cells = [f"{_f(_mean([r.policies[lb].gap for r in members]))}" for lb in labels]
        shares = [
            _pc(_mean([float(r.policies[lb].gap == r.exact_gap) for r in opt])) for lb in labels
        ]
        lines.append(
            f"| {group} | {len(members)} | {_f(_mean([r.heuristic_gap for r in members]))} | "
            + " | ".join(cells)
            + f" | {_f(_mean([r.exact_gap for r in members if r.exact_gap is not None]))} | "
            + " | ".join(shares)
            + " |"
        )
    missed = [
        r
        for r in rows
        if r.exact_proven and any(r.policies[lb].gap != r.exact_gap for lb in labels)
    ]
    if missed:
        lines += [
            "",
            "## Days where a pass missed the proven optimum",
            "",
            "| day | size | budget | heuristic | " + " | ".join(labels) + " | optimum |",
            "|---|---|---:|---:|" + "---:|" * (len(labels) + 1),
        ]
        for r in missed:
            cells = [f"{r.policies[lb].gap} ({r.policies[lb].stop})" for lb in labels]
            lines.append(
                f"| {r.name} | {r.bookings}x{r.drivers} | {r.budget} | "
                f"{r.heuristic_gap} | " + " | ".join(cells) + f" | {r.exact_gap} |"
            )
    if latency:
        lines += [
            "",
            "## Latency against size (generated days, policies interleaved)",
            "",
            "| size | " + " | ".join(f"{lb} p50 ms | {lb} p99 ms" for lb in labels) + " |",
            "|---|" + "---:|" * (2 * len(labels)),
        ]
        for size, stats in latency_table(latency, labels).items():
            lines.append(
                f"| {size} | "
                + " | ".join(f"{_f(stats[lb]['p50'])} | {_f(stats[lb]['p99'])}" for lb in labels)
                + " |"
            )
    lines += [
        "",
        "![gap distributions](gap_distribution.png)",
        "",
        "![latency against size](latency.png)",
        "",
    ]
    path = out_dir / "report.md"
    path.write_text("\n".join(lines))
    return path


def latency_table(
    latency: Sequence[Mapping[str, Any]], labels: Sequence[str]
) -> dict[str, dict[str, dict[str, float | None]]]:
    sizes = sorted({(int(r["bookings"]), int(r["drivers"])) for r in latency})
    out: dict[str, dict[str, dict[str, float | None]]] = {}
    for n, k in sizes:
        out[f"{n}x{k}"] = {
            lb: {
                "p50": _pct(
                    [
                        float(r["ms"])
                        for r in latency
                        if r["policy"] == lb and r["bookings"] == n and r["drivers"] == k
                    ],
                    50,
                ),
                "p99": _pct(
                    [
                        float(r["ms"])
                        for r in latency
                        if r["policy"] == lb and r["bookings"] == n and r["drivers"] == k
                    ],
                    99,
                ),
            }
            for lb in labels
        }
    return out


def _groups(rows: Sequence[DayResult]) -> dict[str, list[DayResult]]:
    groups: dict[str, list[DayResult]] = {}
    for r in rows:
        key = f"generated {r.bookings}x{r.drivers}" if r.source == "generated" else r.source
        groups.setdefault(key, []).append(r)
    return groups


def _plot_gaps(path: Path, rows: Sequence[DayResult], labels: Sequence[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = {"heuristic": [r.heuristic_gap for r in rows]}
    for lb in labels:
        series[lb] = [r.policies[lb].gap for r in rows]
    series["exact"] = [r.exact_gap for r in rows if r.exact_gap is not None]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    top = max(max(v) for v in series.values() if v) + 1
    bins = np.arange(-0.5, top + 0.5, 1.0)
    for name, values in series.items():
        ax1.hist(values, bins=bins, histtype="step", linewidth=1.6, label=name)
    ax1.set_xlabel("ride-count gap after")
    ax1.set_ylabel("days")
    ax1.set_title("Gap distribution")
    ax1.legend()
    proven = [r for r in rows if r.exact_proven and r.exact_gap is not None]
    width = 0.8 / max(len(labels), 1)
    most = 1
    for i, lb in enumerate(labels):
        excess = [r.policies[lb].gap - int(r.exact_gap) for r in proven if r.exact_gap is not None]
        counts = np.bincount(np.asarray(excess, dtype=int), minlength=1) if excess else np.zeros(1)
        most = max(most, len(counts))
        ax2.bar(np.arange(len(counts)) + i * width, counts, width=width, label=lb)
    ax2.set_xticks(np.arange(most) + width * (len(labels) - 1) / 2, [str(i) for i in range(most)])
    ax2.set_xlabel("gap above the proven optimum")
    ax2.set_ylabel("days")
    ax2.set_title("Excess over the exact optimum")
    ax2.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_latency(
    path: Path,
    rows: Sequence[DayResult],
    labels: Sequence[str],
    latency: Sequence[Mapping[str, Any]],
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    markers = ("o", "s", "^", "D")
    for i, lb in enumerate(labels):
        xs = [r.bookings for r in rows] + [int(r["bookings"]) for r in latency if r["policy"] == lb]
        ys = [r.policies[lb].latency_ms for r in rows] + [
            float(r["ms"]) for r in latency if r["policy"] == lb
        ]
        ax.scatter(xs, ys, s=14, alpha=0.6, marker=markers[i % len(markers)], label=lb)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("bookings")
    ax.set_ylabel("swap pass latency (ms)")
    ax.set_title("Latency against day size")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _mean(values: Sequence[float] | Sequence[int]) -> float | None:
    return float(np.mean(values)) if len(values) else None


def _pct(values: Sequence[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if len(values) else None


def _count(items: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for x in items:
        out[x] = out.get(x, 0) + 1
    return out


def _f(x: float | None) -> str:
    return "–" if x is None else f"{x:.3g}" if abs(x) < 100 else f"{x:.0f}"


def _pc(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f} %"
