"""The promotion gate: a candidate model replaces the champion only if it is not worse.

Both run the same pass (the operator's `PassConfig`) on the same held-out days with the exact
reference (`optimizer.evaluate`), and the gate compares, metric by metric:

| metric | rule |
|---|---|
| infeasible outputs | candidate must be 0 (absolute) |
| proven-optimum rate | candidate >= champion - `optimum_rate_slack` |
| mean gap excess | candidate <= champion + `gap_excess_slack` |
| deadhead excess (%) | candidate <= champion + `deadhead_slack_pct` |
| lateness (minutes per day) | candidate <= champion + `lateness_slack_minutes` |
| p99 pass CPU time | candidate <= max(champion x `latency_factor`, champion + `latency_floor_ms`) |

(timings are noisy on a shared CPU: a few milliseconds either way are not a regression; the
gate compares each pass's CPU time, not its wall time, which a busy machine stretched up to
2x between two identical models on the same days)

`GATE_METRICS` is the single list the gate, the report and `models promote` print, in this
order, so what is compared is exactly what is shown.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

GATE_METRICS: tuple[tuple[str, str], ...] = (
    ("optimum_rate", "proven-optimum rate"),
    ("mean_gap_excess", "mean gap excess"),
    ("deadhead_excess_pct", "deadhead excess %"),
    ("lateness_minutes", "lateness min/day"),
    ("infeasible", "infeasible"),
    ("cpu_ms_p99", "p99 pass CPU ms"),
)


@dataclass(frozen=True, slots=True)
class GateConfig:
    optimum_rate_slack: float = 0.0
    gap_excess_slack: float = 0.0
    deadhead_slack_pct: float = 1.0
    lateness_slack_minutes: float = 1.0
    latency_factor: float = 1.5
    latency_floor_ms: float = 5.0


@dataclass(frozen=True, slots=True)
class GateRow:
    metric: str
    label: str
    candidate: float | None
    champion: float | None
    passed: bool
    rule: str


@dataclass(frozen=True, slots=True)
class GateResult:
    passed: bool
    rows: tuple[GateRow, ...]

    def failures(self) -> list[str]:
        return [
            f"{r.label}: {_f(r.candidate)} vs {_f(r.champion)} ({r.rule})"
            for r in self.rows
            if not r.passed
        ]

    def table(self) -> str:
        """The comparison as a Markdown table."""
        lines = ["| metric | candidate | champion | rule | verdict |", "|---|---:|---:|---|---|"]
        for r in self.rows:
            verdict = "ok" if r.passed else "WORSE"
            lines.append(
                f"| {r.label} | {_f(r.candidate)} | {_f(r.champion)} | {r.rule} | {verdict} |"
            )
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "rows": [
                {
                    "metric": r.metric,
                    "candidate": r.candidate,
                    "champion": r.champion,
                    "passed": r.passed,
                    "rule": r.rule,
                }
                for r in self.rows
            ],
        }


def compare(
    candidate: Mapping[str, Any], champion: Mapping[str, Any], config: GateConfig | None = None
) -> GateResult:
    """Candidate vs champion on `GATE_METRICS` (`evaluate.method_metrics` dicts)."""
    cfg = config or GateConfig()
    rows = []
    for metric, label in GATE_METRICS:
        c, h = _num(candidate.get(metric)), _num(champion.get(metric))
        if metric == "infeasible":
            ok, rule = c == 0, "must be 0"
        elif c is None or h is None:
            ok, rule = c is not None or h is None, "not measured on both"
        elif metric == "optimum_rate":
            ok, rule = c >= h - cfg.optimum_rate_slack, f">= champion - {cfg.optimum_rate_slack}"
        elif metric == "mean_gap_excess":
            ok, rule = c <= h + cfg.gap_excess_slack, f"<= champion + {cfg.gap_excess_slack}"
        elif metric == "deadhead_excess_pct":
            ok, rule = c <= h + cfg.deadhead_slack_pct, f"<= champion + {cfg.deadhead_slack_pct}"
        elif metric == "lateness_minutes":
            slack = cfg.lateness_slack_minutes
            ok, rule = c <= h + slack, f"<= champion + {slack}"
        else:
            bound = max(h * cfg.latency_factor, h + cfg.latency_floor_ms)
            ok = c <= bound
            rule = f"<= max(champion x {cfg.latency_factor}, champion + {cfg.latency_floor_ms})"
        rows.append(GateRow(metric, label, c, h, bool(ok), rule))
    return GateResult(all(r.passed for r in rows), tuple(rows))


def _num(x: Any) -> float | None:
    return None if x is None else float(x)


def _f(x: float | None) -> str:
    if x is None:
        return "–"
    return f"{x:.3g}" if abs(x) < 100 else f"{x:.0f}"
