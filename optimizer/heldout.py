"""The held-out days: what `evaluate`, the promotion gate and `bench/heldout.py` measure on.

Training never sees them (tested in tests/optimizer/test_heldout.py):

* `generated`: `optimizer.generate` days at the size classes below, seeds from 1,000,000 up
  (training draws its seeds from `SeedSequence` streams and drops any word that falls in a
  held-out range: `is_heldout_seed`);
* `patient`: `optimizer.patient_transport` days (late tolerance 0) at the same size classes,
  seeds from 3,000,000 up (training's patient days use `SeedSequence` streams too);
* `cordeau`: the Cordeau instances training does not use (the b-series and the a-series
  beyond `TRAIN_CORDEAU`).

A day's *group* is its source and size class (`generated 40x6`, `patient 100x13`,
`cordeau`): the report, the gate and the bench give every figure per group.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from optimizer.dqn.days import TRAIN_CORDEAU, Day, cordeau_days, fingerprint, generated_days
from optimizer.problem import Rules
from optimizer.travel import TravelModel

SIZE_CLASSES: tuple[tuple[int, int], ...] = ((10, 3), (25, 4), (40, 6), (60, 8), (100, 13))
"""The classes the quality target covers (optimum rate >= 99 % in each, up to 100x13)."""
LARGE_CLASSES: tuple[tuple[int, int], ...] = ((150, 18), (300, 40))
"""Larger classes: measured (stop reasons, latency), outside the optimum-rate target."""
GENERATED_SEED_BASE = 1_000_000
PATIENT_SEED_BASE = 3_000_000
KINDS = ("generated", "patient", "cordeau")


@dataclass(frozen=True, slots=True)
class HeldOutSpec:
    """Which held-out days: per class and kind, the classes, the kinds."""

    per_class: int = 10
    classes: tuple[tuple[int, int], ...] = SIZE_CLASSES
    kinds: tuple[str, ...] = KINDS
    generated_base: int = GENERATED_SEED_BASE
    """First generated seed; class j uses `generated_base + 1000 j + i`. Another base gives
    fresh days of the same generator (for checks on days nobody has tuned on)."""
    patient_base: int = PATIENT_SEED_BASE
    """First patient-transport seed, likewise."""

    def describe(self) -> str:
        sizes = ", ".join(f"{n}x{k}" for n, k in self.classes)
        parts = []
        if "generated" in self.kinds:
            parts.append(
                f"generated ({self.per_class} per class, seeds {self.generated_base:,} + "
                f"1000 x class index + i)"
            )
        if "patient" in self.kinds:
            parts.append(
                f"patient transport, late tolerance 0 ({self.per_class} per class, seeds "
                f"{self.patient_base:,} + 1000 x class index + i)"
            )
        if "cordeau" in self.kinds:
            parts.append("Cordeau instances not used in training (b-series and a4-40 .. a8-96)")
        return f"classes {sizes}; " + "; ".join(parts)


def is_heldout_seed(seed: int) -> bool:
    """True for a seed the held-out set may use (any class, up to 100,000 days per class)."""
    return any(
        base <= seed < base + 1000 * (len(SIZE_CLASSES) + len(LARGE_CLASSES) + 100)
        for base in (GENERATED_SEED_BASE, PATIENT_SEED_BASE)
    )


def heldout_days(
    spec: HeldOutSpec | None = None,
    *,
    rules: Rules | None = None,
    travel: TravelModel | None = None,
) -> list[Day]:
    """The held-out days of `spec`, built with the operator's rules and travel model."""
    from optimizer.patient_transport import patient_days

    spec = spec or HeldOutSpec()
    days: list[Day] = []
    for j, size in enumerate(spec.classes):
        if "generated" in spec.kinds:
            start = spec.generated_base + 1000 * j
            seeds = range(start, start + spec.per_class)
            days += generated_days([size], seeds, rules=rules, travel=travel)
        if "patient" in spec.kinds:
            start = spec.patient_base + 1000 * j
            seeds = range(start, start + spec.per_class)
            days += patient_days([size], seeds, rules=rules, travel=travel)
    if "cordeau" in spec.kinds:
        days += cordeau_days(heldout_cordeau(), rules=rules, travel=travel)
    return days


def heldout_cordeau() -> list[str]:
    """The Cordeau instances training never uses."""
    from optimizer.darp import list_instances

    return [n for n in list_instances() if n not in TRAIN_CORDEAU]


def group_of(day: Day) -> str:
    """`<source> <n>x<k>` for generated and patient days, the source otherwise."""
    if day.source in ("generated", "patient"):
        n, k = day.size
        return f"{day.source} {n}x{k}"
    return day.source


def group_order(groups: Sequence[str]) -> list[str]:
    """Groups sorted by source, then by size."""

    def key(g: str) -> tuple[int, int, str]:
        source, _, size = g.partition(" ")
        n = int(size.split("x")[0]) if size else 0
        rank = KINDS.index(source) if source in KINDS else len(KINDS)
        return rank, n, g

    return sorted(set(groups), key=key)


def set_fingerprint(days: Sequence[Day]) -> str:
    return fingerprint(days, extra="heldout")
