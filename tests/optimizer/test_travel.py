"""Travel tables: the fast path for `TravelModel` gives the generic path's numbers exactly."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from optimizer.travel import FloatArray, TravelModel, haversine_km, haversine_pairs_km, travel_times

_POINT = st.tuples(st.floats(45.8, 46.6), st.floats(5.8, 6.6))


class _SameFormulas:
    """Not a `TravelModel`, so `travel_times` takes the generic path (model.km / model.minutes)."""

    def __init__(self, model: TravelModel) -> None:
        self.model = model

    def km(self, a: FloatArray, b: FloatArray) -> FloatArray:
        return self.model.km(a, b)

    def minutes(self, a: FloatArray, b: FloatArray) -> FloatArray:
        return self.model.minutes(a, b)


@settings(max_examples=200, deadline=None)
@given(
    starts=st.lists(_POINT, min_size=1, max_size=12),
    rides=st.lists(st.tuples(_POINT, _POINT), min_size=1, max_size=40),
    detour=st.floats(1.0, 2.0),
    speed=st.floats(10.0, 80.0),
)
def test_travel_model_tables_equal_the_generic_path(
    starts: list[tuple[float, float]],
    rides: list[tuple[tuple[float, float], tuple[float, float]]],
    detour: float,
    speed: float,
) -> None:
    """Every table is bit-identical whichever path built it (the pass's decisions depend on it)."""
    model = TravelModel(detour_factor=detour, speed_kmh=speed)
    kwargs = {
        "starts": starts,
        "pickups": [p for p, _ in rides],
        "dropoffs": [d for _, d in rides],
        "matrix_seconds": None,
    }
    fast = travel_times(model=model, **kwargs)  # type: ignore[arg-type]
    generic = travel_times(model=_SameFormulas(model), **kwargs)  # type: ignore[arg-type]
    for name in fast.__dataclass_fields__:
        assert np.array_equal(getattr(fast, name), getattr(generic, name)), name


def test_pairs_are_the_diagonal() -> None:
    """`haversine_pairs_km` is the diagonal of the full matrix, to the last bit."""
    rng = np.random.default_rng(3)
    a = rng.uniform([46.0, 6.0], [46.4, 6.3], size=(257, 2))
    b = rng.uniform([46.0, 6.0], [46.4, 6.3], size=(257, 2))
    assert np.array_equal(haversine_pairs_km(a, b), np.diag(haversine_km(a, b)))
