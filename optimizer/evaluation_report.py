"""The evaluation report: Markdown with the gate's metrics side by side, and PNG plots.

Everything in it comes from the run: the header is built by the caller from the model's
metadata, the pass config actually used, the held-out set and the machine (never a fixed
text), the tables show exactly `optimizer.gate.GATE_METRICS` per method and per group, and
every plot gives a policy the same colour in every panel (`colour_of`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from optimizer.evaluate import DayResult, latency_table
from optimizer.gate import GATE_METRICS, GateResult

_FIXED = {
    "heuristic": "#7f7f7f",
    "dqn": "#1f77b4",
    "candidate": "#1f77b4",
    "served": "#1f77b4",
    "greedy": "#ff7f0e",
    "random": "#2ca02c",
    "champion": "#9467bd",
    "exact": "#000000",
}
_SPARE = ("#d62728", "#8c564b", "#e377c2", "#17becf", "#bcbd22")


def colour_of(labels: Sequence[str]) -> dict[str, str]:
    """One colour per label, the same in every panel and every report."""
    out, spare = {}, iter(_SPARE)
    for lb in labels:
        out[lb] = _FIXED.get(lb) or next(spare, "#333333")
    return out


def write_report(
    out_dir: Path,
    rows: Sequence[DayResult],
    summary: Mapping[str, Any],
    labels: Sequence[str],
    *,
    header: Mapping[str, Any],
    latency: Sequence[Mapping[str, Any]] = (),
    gate: GateResult | None = None,
    title: str = "Evaluation on held-out days",
) -> Path:
    """Write `report.md`, `quality.png` and `latency.png` into `out_dir`; returns report.md."""
    out_dir.mkdir(parents=True, exist_ok=True)
    colours = colour_of(["heuristic", *labels])
    _plot_quality(out_dir / "quality.png", summary, labels, colours)
    if latency:
        _plot_latency(out_dir / "latency.png", latency, labels, colours)
    lines = [f"# {title}", ""]
    lines += [f"- **{k}**: {v}" for k, v in header.items()]
    sources = ", ".join(f"{k}: {v}" for k, v in summary["sources"].items())
    lines += [
        f"- **days**: {summary['days']} ({sources}); exact optimum proven on "
        f"{summary['days_proven']}; minimum deadhead at the optimal gap known on "
        f"{summary['methods']['exact']['min_deadhead_known']}",
        "",
        "## The gate's metrics, all held-out days",
        "",
        *_metric_table(summary["methods"], labels),
    ]
    if gate is not None:
        verdict = "PASSED" if gate.passed else "REFUSED"
        lines += ["", f"## Promotion gate: {verdict}", "", gate.table()]
    lines += ["", "## By group (source and size class)", ""]
    for group, block in summary["groups"].items():
        lines += [f"### {group} ({block['exact']['days']} days)", ""]
        lines += [*_metric_table(block, labels), ""]
    lines += _search_effort(summary["methods"], labels)
    missed = [r for r in rows if any(r.at_optimum(lb) is False for lb in labels)]
    if missed:
        lines += [
            "",
            "## Days where a pass missed the proven optimum",
            "",
            "| day | size | heuristic | " + " | ".join(labels) + " | optimum |",
            "|---|---|---:|" + "---:|" * (len(labels) + 1),
        ]
        for r in missed:
            cells = [f"{r.policies[lb].gap} ({r.policies[lb].stop})" for lb in labels]
            lines.append(
                f"| {r.name} | {r.bookings}x{r.drivers} | {r.heuristic_gap} | "
                + " | ".join(cells)
                + f" | {r.exact.gap} |"
            )
    if latency:
        lines += [
            "",
            "## Pass latency against size (generated days, policies interleaved)",
            "",
            "| size | " + " | ".join(f"{lb} p50 ms | {lb} p99 ms" for lb in labels) + " |",
            "|---|" + "---:|" * (2 * len(labels)),
        ]
        for size, stats in latency_table(latency, labels).items():
            cells = [f"{_f(stats[lb]['p50'])} | {_f(stats[lb]['p99'])}" for lb in labels]
            lines.append(f"| {size} | " + " | ".join(cells) + " |")
    lines += ["", "![optimum rate, gap excess and deadhead excess by group](quality.png)", ""]
    if latency:
        lines += ["![pass latency by size](latency.png)", ""]
    path = out_dir / "report.md"
    path.write_text("\n".join(lines))
    return path


def _metric_table(block: Mapping[str, Any], labels: Sequence[str]) -> list[str]:
    head = "| method | " + " | ".join(name for _, name in GATE_METRICS) + " |"
    lines = [head, "|---|" + "---:|" * len(GATE_METRICS)]
    for lb in labels:
        m = block[lb]
        cells = []
        for key, _ in GATE_METRICS:
            v = m.get(key)
            cells.append(_pc(v) if key == "optimum_rate" else _f(v))
        lines.append(f"| {lb} | " + " | ".join(cells) + " |")
    h = block["heuristic"]
    lines.append(
        f"| heuristic input | {_pc(h['optimum_rate'])} | {_f(h['mean_gap_excess'])} | – | "
        f"{_f(h['lateness_minutes'])} | 0 | – |"
    )
    return lines


def _search_effort(methods: Mapping[str, Any], labels: Sequence[str]) -> list[str]:
    lines = [
        "## Search effort",
        "",
        "| method | mean checks per pass | mean accepted steps | stops on the budget | "
        "mean gap | p50 ms |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for lb in labels:
        m = methods[lb]
        lines.append(
            f"| {lb} | {_f(m['mean_checks'])} | {_f(m['mean_steps'])} | {m['budget_stops']} | "
            f"{_f(m['mean_gap'])} | {_f(m['latency_ms_p50'])} |"
        )
    return lines


def _plot_quality(
    path: Path, summary: Mapping[str, Any], labels: Sequence[str], colours: Mapping[str, str]
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = list(summary["groups"])
    panels = (
        ("optimum_rate", "proven-optimum rate (%)", 100.0),
        ("mean_gap_excess", "mean gap above the optimum", 1.0),
        ("deadhead_excess_pct", "deadhead above the exact minimum (%)", 1.0),
    )
    width = max(8.0, 0.55 * len(groups) * max(len(labels), 1) + 2.0)
    fig, axes = plt.subplots(
        len(panels), 1, figsize=(width, 3.2 * len(panels)), sharex=True, layout="constrained"
    )
    x = np.arange(len(groups))
    bar = 0.8 / max(len(labels), 1)
    for ax, (key, name, scale) in zip(axes, panels, strict=True):
        measured = False
        for i, lb in enumerate(labels):
            values = [summary["groups"][g][lb].get(key) for g in groups]
            ys = np.array([np.nan if v is None else scale * float(v) for v in values])
            xs = x + (i - (len(labels) - 1) / 2) * bar
            ax.bar(xs, ys, bar, label=lb, color=colours[lb])
            # a zero is a result, not a missing bar: mark it on the axis
            zero = ys == 0
            ax.plot(xs[zero], ys[zero], "_", color=colours[lb], markersize=12, mew=3)
            measured |= bool(np.isfinite(ys).any())
        ax.set_ylabel(name, fontsize="small")
        ax.grid(True, axis="y", alpha=0.3)
        if not measured:
            ax.text(0.5, 0.5, "not measured in this run", transform=ax.transAxes, ha="center")
    axes[0].set_ylim(0, 105)
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside upper center", ncols=len(labels))
    axes[-1].set_xticks(x, groups, rotation=30, ha="right")
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_latency(
    path: Path,
    latency: Sequence[Mapping[str, Any]],
    labels: Sequence[str],
    colours: Mapping[str, str],
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = latency_table(latency, labels)
    sizes = list(table)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True, layout="constrained")
    x = np.arange(len(sizes))
    bar = 0.8 / max(len(labels), 1)
    for ax, q in zip(axes, ("p50", "p99"), strict=True):
        for i, lb in enumerate(labels):
            ys = [table[s][lb][q] or np.nan for s in sizes]
            ax.bar(x + (i - (len(labels) - 1) / 2) * bar, ys, bar, label=lb, color=colours[lb])
        ax.set_yscale("log")
        ax.set_xticks(x, sizes)
        ax.set_title(f"pass latency {q} (ms)")
        ax.grid(True, axis="y", which="both", alpha=0.3)
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside upper center", ncols=len(labels))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _f(x: float | None) -> str:
    if x is None:
        return "–"
    return f"{x:.3g}" if abs(x) < 100 else f"{x:.0f}"


def _pc(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f} %"
