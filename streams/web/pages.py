"""HTML of the dashboard, rendered on the server from the events (no template engine).

Two pages: the recent dispatches (`dashboard_page`) and one dispatch (`dispatch_page`: rides
per driver before and after as bars, the swap trail, the replay verdict). `dispatch_row`
renders one table row; the server-sent events carry it so the list page can insert a new
dispatch without knowing how to draw one. Every value from an event goes through `html.escape`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from html import escape
from urllib.parse import quote

from schemas import HeuristicDone, Optimized, SwapAudit
from streams.audit import Verdict

STATIC = "/static/dashboard"


def h(value: object) -> str:
    """Escaped text of any value (None shows as an em dash)."""
    return "—" if value is None else escape(str(value), quote=True)


def dispatch_href(dispatch_id: str) -> str:
    return "/dispatches/" + quote(dispatch_id, safe="")


def _num(value: float, digits: int = 1) -> str:
    return f"{value:,.{digits}f}"


def _arrow(before: str, after: str, better: bool | None) -> str:
    cls = "" if better is None else (" better" if better else " worse")
    return f'<span class="change{cls}">{before} → {after}</span>'


def _compare(before: float, after: float, digits: int = 1) -> str:
    better = None if round(after - before, digits) == 0 else after < before
    return _arrow(_num(before, digits), _num(after, digits), better)


def _layout(title: str, page: str, body: str, dispatch_id: str = "") -> str:
    data = f' data-dispatch-id="{h(dispatch_id)}"' if dispatch_id else ""
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{h(title)} · dispatch-rl</title>
<link rel="stylesheet" href="{STATIC}.css">
<script src="{STATIC}.js" defer></script>
</head>
<body data-page="{page}"{data}>
<header>
<a class="brand" href="/">dispatch-rl</a>
<nav><a href="/">Dispatches</a><a href="/docs">Audit API</a>\
<a href="/asyncapi.json">Events</a><a href="/metrics">Metrics</a></nav>
<span id="live" class="live off" title="live updates (server-sent events)">offline</span>
</header>
<main id="content">
{body}
</main>
</body>
</html>
"""


# ------------------------------------------------------------------ the list


ROW_HEADERS = (
    "dispatch",
    "service date",
    "status",
    "model",
    "gap",
    "deadhead km",
    "moves",
    "latency",
    "at",
)


@dataclass(frozen=True, slots=True)
class Row:
    """What the list shows of one dispatch (from an `Optimized` or a stored summary row).

    A stored input without its outcome yet has `status` None (shown as pending).
    """

    dispatch_id: str
    service_date: date
    status: str | None
    model_version: str | None
    gap_before: int | None
    gap_after: int | None
    deadhead_km_before: float | None
    deadhead_km_after: float | None
    moves_accepted: int | None
    moves_proposed: int | None
    latency_ms: float | None
    at: datetime
    """When the outcome was produced (the input, while pending)."""

    @classmethod
    def of(cls, opt: Optimized) -> Row:
        before, after = opt.metrics.before, opt.metrics.after
        return cls(
            dispatch_id=opt.dispatch_id,
            service_date=opt.service_date,
            status=opt.status,
            model_version=opt.model_version,
            gap_before=before.gap,
            gap_after=after.gap,
            deadhead_km_before=before.deadhead_km,
            deadhead_km_after=after.deadhead_km,
            moves_accepted=opt.moves_accepted,
            moves_proposed=opt.moves_proposed,
            latency_ms=opt.latency_ms,
            at=opt.produced_at,
        )


def _pair(before: float | None, after: float | None, digits: int = 1) -> str:
    if before is None or after is None:
        return "—"
    return _compare(before, after, digits)


def dispatch_row(row: Row) -> str:
    """One `<tr>` of the recent-dispatches table."""
    status = row.status or "pending"
    moves = "—" if row.moves_proposed is None else f"{row.moves_accepted} / {row.moves_proposed}"
    cells = (
        f'<a href="{h(dispatch_href(row.dispatch_id))}">{h(row.dispatch_id)}</a>',
        h(row.service_date),
        f'<span class="status {h(status)}">{h(status)}</span>',
        h(row.model_version),
        _pair(row.gap_before, row.gap_after, 0),
        _pair(row.deadhead_km_before, row.deadhead_km_after),
        moves,
        "—" if row.latency_ms is None else f"{_num(row.latency_ms)} ms",
        f'<time datetime="{h(row.at.isoformat())}" title="{h(row.at.isoformat())}">'
        f"{h(row.at.strftime('%H:%M:%S'))}</time>",
    )
    tds = "".join(
        f'<td data-col="{name}">{c}</td>' for name, c in zip(ROW_HEADERS, cells, strict=True)
    )
    return f'<tr class="dispatch" data-dispatch-id="{h(row.dispatch_id)}">{tds}</tr>'


def dashboard_page(recent: Sequence[Row], store_note: str = "") -> str:
    """The recent dispatches, newest first; new ones arrive by server-sent events."""
    head = "".join(f"<th>{name}</th>" for name in ROW_HEADERS)
    rows = "\n".join(dispatch_row(o) for o in recent)
    empty = "" if recent else '<p id="empty" class="note">No dispatch yet: publish one.</p>'
    note = f'<p class="note">{h(store_note)}</p>' if store_note else ""
    body = f"""<h1>Recent dispatches</h1>
{note}<table id="dispatches">
<thead><tr>{head}</tr></thead>
<tbody>
{rows}
</tbody>
</table>
{empty}"""
    return _layout("Dispatches", "dashboard", body)


# ------------------------------------------------------------------ one dispatch


def _bars(event: HeuristicDone | None, opt: Optimized) -> str:
    before, after = opt.metrics.before.rides_per_driver, opt.metrics.after.rides_per_driver
    drivers = [d.driver_id for d in event.drivers] if event else []
    drivers += sorted((set(before) | set(after)) - set(drivers))
    top = max([*before.values(), *after.values(), 1])
    rows = []
    for d in drivers:
        bars = "".join(
            f'<div class="track"><div class="bar {when}" data-rides="{n}" '
            f'style="width:{100 * n / top:.1f}%"></div><span class="count">{n}</span></div>'
            for when, n in (("before", before.get(d, 0)), ("after", after.get(d, 0)))
        )
        rows.append(
            f'<div class="driver" data-driver="{h(d)}"><span class="name">{h(d)}</span>'
            f'<div class="tracks">{bars}</div></div>'
        )
    return f"""<section id="bars">
<h2>Rides per driver</h2>
<p class="legend"><span class="key before"></span>heuristic input
<span class="key after"></span>published plan</p>
{"".join(rows)}
</section>"""


def _summary(opt: Optimized) -> str:
    b, a = opt.metrics.before, opt.metrics.after
    items = (
        ("status", f'<span class="status {h(opt.status)}">{h(opt.status)}</span>'),
        ("reason", h(opt.reason or "—")),
        ("model", h(opt.model_version)),
        ("gap", _compare(b.gap, a.gap, 0)),
        ("unfairness", _compare(b.unfairness, a.unfairness, 2)),
        ("deadhead km", _compare(b.deadhead_km, a.deadhead_km)),
        ("workload spread min", _compare(b.workload_spread_minutes, a.workload_spread_minutes)),
        ("lateness min", _compare(b.lateness_minutes, a.lateness_minutes)),
        ("violations", _compare(b.violations, a.violations, 0)),
        ("moves accepted / checked", f"{opt.moves_accepted} / {opt.moves_proposed}"),
        ("latency", f"{_num(opt.latency_ms)} ms"),
        ("service date", h(opt.service_date)),
    )
    dl = "".join(f"<div><dt>{k}</dt><dd>{v}</dd></div>" for k, v in items)
    return f'<dl id="summary">{dl}</dl>'


def _steps(audit: SwapAudit) -> str:
    return "<br>".join(
        f"{h(s.booking_id)}: {h(s.from_driver)} → {h(s.to_driver)}" for s in audit.steps
    )


def _trail(audits: Iterable[SwapAudit]) -> str:
    rows = []
    for a in audits:
        gap = "—" if a.gap_after is None else f"{a.gap_before} → {a.gap_after}"
        score = "—" if a.score is None else f"{a.score:.3f}"
        delta = "—" if a.delta is None else f"{a.delta:.3f}"
        rows.append(
            f'<tr class="move {h(a.decision)}" data-sequence="{a.sequence}">'
            f"<td>{a.sequence}</td><td>{h(a.kind)}</td><td>{_steps(a)}</td><td>{score}</td>"
            f"<td>{gap}</td><td>{delta}</td>"
            f'<td><span class="decision {h(a.decision)}">{h(a.decision)}</span></td>'
            f"<td>{h(a.reason)}</td><td>{h(a.detail)}</td></tr>"
        )
    if not rows:
        return (
            '<section id="trail"><h2>Swap trail</h2><p class="note">No move checked.</p></section>'
        )
    head = "".join(
        f"<th>{c}</th>"
        for c in ("#", "kind", "bookings", "score", "gap", "gain", "decision", "reason", "detail")
    )
    return f"""<section id="trail">
<h2>Swap trail</h2>
<table><thead><tr>{head}</tr></thead>
<tbody>
{chr(10).join(rows)}
</tbody></table>
</section>"""


def _verdict(verdict: Verdict | None) -> str:
    if verdict is None:
        return (
            '<section id="verdict" class="verdict unknown"><h2>Replay</h2><p>not run</p></section>'
        )
    if verdict.ok:
        text = (
            f"OK: the {verdict.accepted} accepted of {verdict.proposed} logged moves, replayed "
            "on the heuristic input, give exactly the published plan, with no added violation."
        )
        return f'<section id="verdict" class="verdict ok"><h2>Replay</h2><p>{h(text)}</p></section>'
    items = "".join(f"<li>{h(p)}</li>" for p in verdict.problems)
    return (
        '<section id="verdict" class="verdict failed"><h2>Replay</h2>'
        f"<p>FAILED</p><ul>{items}</ul></section>"
    )


def dispatch_page(
    dispatch_id: str,
    event: HeuristicDone | None,
    opt: Optimized | None,
    audits: Sequence[SwapAudit],
    verdict: Verdict | None,
) -> str:
    """One dispatch; a placeholder that fills itself in when the dispatch arrives."""
    title = f"Dispatch {dispatch_id}"
    if opt is None:
        body = (
            f"<h1>{h(title)}</h1>"
            f'<p id="waiting" class="note">Waiting for dispatch {h(dispatch_id)}: '
            "this page updates itself when its result arrives.</p>"
        )
        return _layout(title, "dispatch", body, dispatch_id)
    body = "\n".join(
        (
            f"<h1>{h(title)}</h1>",
            f'<p class="sub">company {h(opt.company_id)} · event {h(opt.event_id)}</p>',
            _summary(opt),
            _bars(event, opt),
            _verdict(verdict),
            _trail(audits),
        )
    )
    return _layout(title, "dispatch", body, dispatch_id)


def message_page(title: str, message: str) -> str:
    """A page that only says something (not signed in, not found)."""
    return _layout(title, "message", f"<h1>{h(title)}</h1><p>{message}</p>")
