"""Text rendering for people: ride bars per driver (as the original report had) and the audit."""

from __future__ import annotations

from collections.abc import Iterable

from schemas import Optimized, SwapAudit


def render_bars(title: str, rides: dict[str, int], *, width: int = 40) -> str:
    """One line per driver: id, count and a bar; then the gap."""
    if not rides:
        return f"{title}\n  (no drivers)"
    top = max(max(rides.values()), 1)
    scale = min(1.0, width / top)
    name_w = max(len(d) for d in rides)
    lines = [title]
    for driver, n in rides.items():
        lines.append(f"  {driver:<{name_w}} : {n:>3} rides {'█' * round(n * scale)}")
    lines.append(f"  {'gap':<{name_w}} : {max(rides.values()) - min(rides.values()):>3}")
    return "\n".join(lines)


def render_outcome(optimized: Optimized, audits: Iterable[SwapAudit] = ()) -> str:
    """Before/after bars, the status line and the audit trail of one dispatch."""
    before, after = optimized.metrics.before, optimized.metrics.after
    parts = [
        f"dispatch {optimized.dispatch_id}: {optimized.status} ({optimized.reason}) "
        f"model={optimized.model_version}",
        render_bars("before (heuristic)", before.rides_per_driver),
        render_bars("after (optimized)", after.rides_per_driver),
        f"  unfairness {before.unfairness:.2f} -> {after.unfairness:.2f}, "
        f"workload spread {before.workload_spread_minutes:.0f} -> "
        f"{after.workload_spread_minutes:.0f} min, deadhead {before.deadhead_km:.1f} -> "
        f"{after.deadhead_km:.1f} km, lateness {before.lateness_minutes:.1f} -> "
        f"{after.lateness_minutes:.1f} min, violations {before.violations} -> {after.violations}",
        f"  moves proposed {optimized.moves_proposed}, accepted {optimized.moves_accepted}, "
        f"{optimized.latency_ms:.1f} ms",
    ]
    trail = [_audit_line(a) for a in audits]
    if trail:
        parts.append("audit trail:")
        parts.extend(trail)
    return "\n".join(parts)


def _audit_line(a: SwapAudit) -> str:
    steps = ", ".join(f"{s.booking_id} {s.from_driver}->{s.to_driver}" for s in a.steps)
    gap = f"gap {a.gap_before}" + (f" -> {a.gap_after}" if a.gap_after is not None else "")
    delta = f" Δ={a.delta:.3f}" if a.delta is not None else ""
    mark = "✔" if a.decision == "accepted" else "✘"
    detail = f" ({a.detail})" if a.detail else ""
    head = f"  {mark} #{a.sequence:<3} {a.kind:<5} {steps}"
    return f"{head}: {a.decision} {a.reason}{detail}; {gap}{delta}"
