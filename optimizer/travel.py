"""Travel times and distances between the places of a dispatch day.

Travel minutes come from the upstream router's matrix when the event carries one (OSRM),
else from a `TravelModel` (haversine distance x detour factor / speed). Kilometres (for the
deadhead metric) always come from the model, since a time matrix says nothing of distance.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
EARTH_RADIUS_KM = 6371.0088


class TravelTimeModel(Protocol):
    """Road distance and driving time between two sets of (lat, lon) points."""

    def km(self, a: FloatArray, b: FloatArray) -> FloatArray: ...

    def minutes(self, a: FloatArray, b: FloatArray) -> FloatArray: ...


@dataclass(frozen=True, slots=True)
class TravelModel:
    """Haversine great-circle distance, stretched by a detour factor, driven at a mean speed."""

    detour_factor: float = 1.3
    """Road distance / straight-line distance (1.3 is typical for a city and its suburbs)."""
    speed_kmh: float = 30.0
    """Mean door-to-door speed, including traffic lights and parking."""

    def km(self, a: FloatArray, b: FloatArray) -> FloatArray:
        """Road km from every point of `a` (M, 2) to every point of `b` (P, 2): (M, P)."""
        return haversine_km(a, b) * self.detour_factor

    def minutes(self, a: FloatArray, b: FloatArray) -> FloatArray:
        return self.km(a, b) / self.speed_kmh * 60.0


def haversine_km(a: FloatArray, b: FloatArray) -> FloatArray:
    """Great-circle km between each row of `a` (M, 2) and each row of `b` (P, 2), as (M, P)."""
    lat1, lon1 = np.radians(a[:, 0])[:, None], np.radians(a[:, 1])[:, None]
    lat2, lon2 = np.radians(b[:, 0])[None, :], np.radians(b[:, 1])[None, :]
    h = (
        np.sin((lat2 - lat1) / 2) ** 2
        + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    )
    result: FloatArray = 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0)))
    return result


def haversine_pairs_km(a: FloatArray, b: FloatArray) -> FloatArray:
    """Great-circle km from each row of `a` (M, 2) to the same row of `b`, as (M,): the
    diagonal of `haversine_km(a, b)`, with the same operations."""
    lat1, lon1 = np.radians(a[:, 0]), np.radians(a[:, 1])
    lat2, lon2 = np.radians(b[:, 0]), np.radians(b[:, 1])
    h = (
        np.sin((lat2 - lat1) / 2) ** 2
        + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    )
    result: FloatArray = 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0)))
    return result


@dataclass(frozen=True, slots=True)
class TravelTimes:
    """Everything the ride model needs, precomputed once per problem.

    Shapes: K drivers, N bookings. `empty_*` are deadhead legs (driving without a patient).
    """

    start_to_pickup: FloatArray  # (K, N) minutes
    ride: FloatArray  # (N,) minutes, pickup -> dropoff of the same booking
    dropoff_to_pickup: FloatArray  # (N, N) minutes, dropoff of a -> pickup of b
    start_to_pickup_km: FloatArray  # (K, N)
    ride_km: FloatArray  # (N,)
    dropoff_to_pickup_km: FloatArray  # (N, N)


def travel_times(
    *,
    starts: Sequence[tuple[float, float]],
    pickups: Sequence[tuple[float, float]],
    dropoffs: Sequence[tuple[float, float]],
    matrix_seconds: FloatArray | None,
    model: TravelTimeModel,
) -> TravelTimes:
    """Precompute the legs. `matrix_seconds` uses the event's node order (see `HeuristicDone`)."""
    s = np.asarray(starts, dtype=float).reshape(-1, 2)
    p = np.asarray(pickups, dtype=float).reshape(-1, 2)
    d = np.asarray(dropoffs, dtype=float).reshape(-1, 2)
    k, n = len(s), len(p)
    if type(model) is TravelModel:
        # The same numbers with fewer calls (a day's arrays are small; per-call cost dominates):
        # one haversine from starts and drop-offs together, the rides pair by pair instead of
        # the diagonal of a full matrix, and minutes from those km as `TravelModel.minutes` does.
        both = model.km(np.concatenate([s, d]), p)
        start_km, drop_km = both[:k], both[k:]
        ride_km = haversine_pairs_km(p, d) * model.detour_factor
        if matrix_seconds is None:
            start_min = start_km / model.speed_kmh * 60.0
            drop_min = drop_km / model.speed_kmh * 60.0
            ride_min = ride_km / model.speed_kmh * 60.0
    else:
        start_km, drop_km = model.km(s, p), model.km(d, p)
        ride_km = np.diag(model.km(p, d)).copy() if n else np.zeros(0)
        if matrix_seconds is None:
            start_min, drop_min = model.minutes(s, p), model.minutes(d, p)
            ride_min = np.diag(model.minutes(p, d)).copy() if n else np.zeros(0)
    if matrix_seconds is not None:
        minutes = matrix_seconds / 60.0
        pick_nodes = k + 2 * np.arange(n)
        drop_nodes = pick_nodes + 1
        start_min = minutes[np.ix_(np.arange(k), pick_nodes)]
        drop_min = minutes[np.ix_(drop_nodes, pick_nodes)]
        ride_min = minutes[pick_nodes, drop_nodes]
    return TravelTimes(
        start_to_pickup=np.ascontiguousarray(start_min),
        ride=np.ascontiguousarray(ride_min),
        dropoff_to_pickup=np.ascontiguousarray(drop_min),
        start_to_pickup_km=start_km,
        ride_km=ride_km,
        dropoff_to_pickup_km=drop_km,
    )
