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

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from optimizer.dispatch import DispatchConfig
from optimizer.feasibility import is_feasible_change
from optimizer.moves import Move, Step
from optimizer.problem import Problem
from optimizer.swap_pass import replay
from schemas import HeuristicDone, Optimized, SwapAudit
from streams import codec
from streams.settings import Settings
from streams.topics import MAX_MESSAGE_BYTES, client_options


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
    from aiokafka import AIOKafkaConsumer, TopicPartition

    record = DispatchRecord(dispatch_id)
    sinks: dict[str, tuple[type[Any], list[Any]]] = {
        settings.topic_input: (HeuristicDone, record.inputs),
        settings.topic_optimized: (Optimized, record.outcomes),
        settings.topic_audit: (SwapAudit, record.audits),
    }
    # Subscribing (no group) makes start() fetch the topics' metadata; then read by hand.
    consumer = AIOKafkaConsumer(
        *sinks,
        enable_auto_commit=False,
        max_partition_fetch_bytes=MAX_MESSAGE_BYTES,
        **client_options(settings),
    )
    await consumer.start()
    try:
        partitions = [
            TopicPartition(topic, p)
            for topic in sinks
            for p in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        if not partitions:
            return record
        consumer.unsubscribe()
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        remaining = {tp for tp, end in ends.items() if end > 0}
        deadline = time.monotonic() + timeout
        while remaining and time.monotonic() < deadline:
            batches = await consumer.getmany(*remaining, timeout_ms=500)
            for tp, messages in batches.items():
                model, sink = sinks[tp.topic]
                for m in messages:
                    # The key is the dispatch id; any producer may have keyed it otherwise,
                    # so the value decides.
                    if m.offset < ends[tp]:
                        decoded = codec.decode(model, m.value)
                        if isinstance(decoded, model) and decoded.dispatch_id == dispatch_id:
                            sink.append(decoded)
                    if m.offset + 1 >= ends[tp]:
                        remaining.discard(tp)
        if remaining:
            raise TimeoutError(f"could not read {sorted(map(str, remaining))} in {timeout} s")
    finally:
        await consumer.stop()
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
    problem, upstream = Problem.from_event(source, travel_model=config.travel, rules=config.rules)
    drivers = {d: k for k, d in enumerate(problem.driver_ids)}
    bookings = {b: i for i, b in enumerate(problem.booking_ids)}
    moves = [
        Move(
            a.kind,
            tuple(
                Step(bookings[s.booking_id], drivers[s.from_driver], drivers[s.to_driver])
                for s in a.steps
            ),
        )
        for a in accepted
    ]
    try:
        replayed = replay(upstream, moves)
    except ValueError as exc:
        problems.append(f"the accepted moves do not replay: {exc}")
        return Verdict(False, tuple(problems), len(accepted), len(audits))
    published = np.full(problem.n_bookings, -1, dtype=np.int64)
    for a in outcome.assignments:
        published[bookings[a.booking_id]] = drivers[a.driver_id]
    if not np.array_equal(replayed, published):
        differ = [problem.booking_ids[i] for i in np.nonzero(replayed != published)[0]]
        problems.append(f"replay differs from the published assignment for {differ}")
    ok, added = is_feasible_change(problem, upstream, published)
    if not ok:
        problems.append(f"the published plan adds violations: {sorted(added)}")
    return Verdict(not problems, tuple(problems), len(accepted), len(audits))
