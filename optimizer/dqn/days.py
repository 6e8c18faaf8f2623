"""Dispatch days for training and evaluation: generated, Cordeau-derived, recorded, the seed day.

A `Day` is a built `Problem` with its upstream assignment, ready for an episode or a pass.
Recorded days come from the dataset writer's JSON-lines files (`<dataset_dir>/*.jsonl`); they
are read defensively: a line is used when it holds a `heuristic_done` record (`{"kind":
"heuristic_done", "event": {...}}`), or is a bare `HeuristicDone`; anything else is counted and
skipped, never fatal.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from optimizer.objective import count_gap, gap_floor
from optimizer.problem import IntArray, Problem, Rules
from optimizer.travel import TravelModel
from schemas import HeuristicDone

TRAIN_CORDEAU: tuple[str, ...] = (
    "a2-16",
    "a2-20",
    "a2-24",
    "a3-18",
    "a3-24",
    "a3-30",
    "a3-36",
    "a4-16",
    "a4-24",
    "a4-32",
)
"""Cordeau a-series instances used in training; the others are held out (`optimizer.heldout`)."""


@dataclass(frozen=True, slots=True)
class Day:
    """One dispatch day: where it came from, its problem and the upstream plan."""

    name: str
    source: str
    """`generated`, `cordeau`, `dataset` or `seed`."""
    problem: Problem
    assignment: IntArray
    fingerprint: str
    """sha256 of the event's JSON: what the training-data fingerprint is made of."""

    @property
    def size(self) -> tuple[int, int]:
        return self.problem.n_bookings, self.problem.n_drivers

    @property
    def gap(self) -> int:
        a = self.assignment
        return count_gap(np.bincount(a[a >= 0], minlength=self.problem.n_drivers))

    @property
    def improvable(self) -> bool:
        """The upstream gap is above the structural floor (else there is nothing to learn)."""
        assigned = int((self.assignment >= 0).sum())
        return self.gap > gap_floor(assigned, self.problem.n_drivers)


def day_from_event(
    event: HeuristicDone,
    source: str,
    name: str | None = None,
    *,
    rules: Rules | None = None,
    travel: TravelModel | None = None,
) -> Day:
    problem, assignment = Problem.from_event(event, travel_model=travel, rules=rules)
    digest = hashlib.sha256(event.model_dump_json().encode()).hexdigest()
    return Day(name or event.dispatch_id, source, problem, assignment, digest)


def generated_days(
    sizes: Sequence[tuple[int, int]], seeds: Iterable[int], **kwargs: Any
) -> list[Day]:
    """`generate_day(n, k, seed)` for each seed, cycling through `sizes`."""
    from optimizer.generate import generate_day

    out = []
    for i, seed in enumerate(seeds):
        n, k = sizes[i % len(sizes)]
        event = generate_day(n, k, int(seed))
        out.append(day_from_event(event, "generated", f"gen-{n}x{k}-s{seed}", **kwargs))
    return out


def cordeau_days(names: Iterable[str] | None = None, **kwargs: Any) -> list[Day]:
    """The Cordeau-derived days (all instances found when `names` is None)."""
    from optimizer.darp import darp_day, list_instances

    chosen = list(names) if names is not None else list_instances()
    return [day_from_event(darp_day(n)[0], "cordeau", n, **kwargs) for n in chosen]


def seed_days(**kwargs: Any) -> list[Day]:
    """The original system's historical day (10 bookings, 3 drivers)."""
    from optimizer.seed import seed_day

    return [day_from_event(seed_day(), "seed", "seed-2025-10-22", **kwargs)]


@dataclass(frozen=True, slots=True)
class DatasetRead:
    days: list[Day]
    files: int
    skipped: int
    """Lines that were not a readable `heuristic_done` record (other kinds are not counted)."""


def dataset_days(directory: Path, **kwargs: Any) -> DatasetRead:
    """Every `heuristic_done` day recorded in `directory` (JSON lines), one per dispatch_id."""
    days: list[Day] = []
    seen: set[str] = set()
    skipped = 0
    files = sorted(Path(directory).glob("*.jsonl")) if Path(directory).is_dir() else []
    for path in files:
        for event in _events(path):
            if event is None:
                skipped += 1
                continue
            if event.dispatch_id in seen:
                continue
            seen.add(event.dispatch_id)
            try:
                days.append(day_from_event(event, "dataset", **kwargs))
            except Exception:  # a day the core cannot model is skipped, not fatal
                skipped += 1
    return DatasetRead(days, len(files), skipped)


def _events(path: Path) -> Iterator[HeuristicDone | None]:
    with path.open("rb") as f:
        for line in f:
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except ValueError:
                yield None
                continue
            doc = _heuristic_done_doc(rec)
            if doc is False:
                continue  # another kind of record (e.g. `optimized`): not ours
            try:
                yield HeuristicDone.model_validate(doc)
            except Exception:
                yield None


def _heuristic_done_doc(rec: Any) -> Any:
    """The HeuristicDone document a line holds; False when the line holds another kind."""
    if not isinstance(rec, dict):
        return None
    kind = rec.get("kind")
    if kind is not None:
        if kind != "heuristic_done":
            return False
        return rec.get("event", rec.get("heuristic_done"))
    if "heuristic_done" in rec:
        return rec["heuristic_done"]
    if "bookings" in rec and "drivers" in rec:
        return rec
    return None


def fingerprint(days: Iterable[Day], extra: str = "") -> str:
    """One sha256 over the days' content (order-independent) and any extra text."""
    h = hashlib.sha256()
    for digest in sorted(d.fingerprint for d in days):
        h.update(digest.encode())
    h.update(extra.encode())
    return h.hexdigest()
