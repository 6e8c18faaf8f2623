"""The auditor's view of one dispatch: its input, its outcome, its swap log, and a replay check.

`fetch_dispatch` reads the three topics from the beginning up to their current end (a snapshot:
nothing published later is waited for) and keeps the records keyed by the dispatch id.
`verify` replays the accepted moves of the swap log, in sequence order, on the upstream
assignment and checks that they reproduce the published assignment exactly, that the plan they
give adds no hard-constraint violation, and that the log is complete (sequences 0..n-1, as many
as the outcome says were proposed). The swap log topic is kept indefinitely, so a dispatch can
be replayed long after the fact.

Reading whole topics is linear in their size; it is a tool for an auditor's question, not for
a hot path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from optimizer.adapter import EventKind, assignment_vector, moves_of, problem_from_event
from optimizer.dispatch import DispatchConfig
from optimizer.feasibility import is_feasible_change
from optimizer.swap_pass import replay
from schemas import HeuristicDone, Optimized, SwapAudit
from streams import codec
from streams.reader import TopicReader, topic_kinds
from streams.settings import Settings


@dataclass
class DispatchRecord:
    """Everything the topics hold for one dispatch id (duplicates from redelivery included)."""

    dispatch_id: str
    inputs: list[HeuristicDone] = field(default_factory=list)
    outcomes: list[Optimized] = field(default_factory=list)
    audits: list[SwapAudit] = field(default_factory=list)


@dataclass(frozen=True)
class Verdict:
    ok: bool
    problems: tuple[str, ...]
    accepted: int
    proposed: int


async def fetch_dispatch(
    settings: Settings, dispatch_id: str, *, timeout: float = 30.0
) -> DispatchRecord:
    """Snapshot read of the input, optimized and audit topics for one dispatch id."""
    record = DispatchRecord(dispatch_id)
    kinds = topic_kinds(settings)
    sinks: dict[EventKind, list[Any]] = {
        "heuristic_done": record.inputs,
        "optimized": record.outcomes,
        "swap_audit": record.audits,
    }
    async with TopicReader(settings, *kinds) as reader:
        async for m in reader.snapshot(timeout=timeout):
            # The key is the dispatch id; any producer may have keyed it otherwise, so the
            # value decides.
            decoded = codec.decode_kind(kinds[m.topic], m.value, settings.limits())
            if not isinstance(decoded, list) and decoded.dispatch_id == dispatch_id:
                sinks[kinds[m.topic]].append(decoded)
    record.audits.sort(key=lambda a: (a.source_event_id, a.sequence))
    return record


def verify(record: DispatchRecord, config: DispatchConfig | None = None) -> Verdict:
    """Replay the swap log on the input and compare with the published outcome."""
    config = config or DispatchConfig()
    problems: list[str] = []
    if not record.inputs:
        return Verdict(False, ("no HeuristicDone for this dispatch on the input topic",), 0, 0)
    if not record.outcomes:
        return Verdict(False, ("no Optimized for this dispatch on the output topic",), 0, 0)
    outcome = record.outcomes[-1]
    source = next((e for e in record.inputs if e.event_id == outcome.source_event_id), None)
    if source is None:
        return Verdict(False, (f"input event {outcome.source_event_id} not found",), 0, 0)
    # Redelivery may have published the same audits twice: the event id is the identity.
    audits = list(
        {a.event_id: a for a in record.audits if a.source_event_id == source.event_id}.values()
    )
    audits.sort(key=lambda a: a.sequence)
    if [a.sequence for a in audits] != list(range(len(audits))):
        problems.append("audit sequence numbers are not 0..n-1: the log is incomplete")
    if len(audits) != outcome.moves_proposed:
        problems.append(
            f"{len(audits)} audits but the outcome says {outcome.moves_proposed} proposed"
        )
    accepted = [a for a in audits if a.decision == "accepted"]
    if len(accepted) != outcome.moves_accepted:
        problems.append(
            f"{len(accepted)} accepted audits but the outcome says {outcome.moves_accepted}"
        )
    problem, upstream = problem_from_event(source, travel_model=config.travel, rules=config.rules)
    try:
        replayed = replay(upstream, moves_of(problem, accepted))
    except (KeyError, ValueError) as exc:
        problems.append(f"the accepted moves do not replay: {exc}")
        return Verdict(False, tuple(problems), len(accepted), len(audits))
    try:
        published = assignment_vector(problem, outcome.assignments)
    except KeyError as exc:
        problems.append(f"the published assignment names an unknown booking or driver: {exc}")
        return Verdict(False, tuple(problems), len(accepted), len(audits))
    if not np.array_equal(replayed, published):
        differ = [problem.booking_ids[i] for i in np.nonzero(replayed != published)[0]]
        problems.append(f"replay differs from the published assignment for {differ}")
    ok, added = is_feasible_change(problem, upstream, published)
    if not ok:
        problems.append(f"the published plan adds violations: {sorted(added)}")
    return Verdict(not problems, tuple(problems), len(accepted), len(audits))
