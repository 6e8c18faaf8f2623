"""The numpy forward pass (what the worker serves) agrees with the torch network (training)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")  # the [train] extra; CI installs it

from optimizer.dqn.days import generated_days  # noqa: E402
from optimizer.dqn.features import N_FEATURES, candidate_features  # noqa: E402
from optimizer.dqn.inference import MlpWeights, WeightsError, build_weights, load_npz  # noqa: E402
from optimizer.dqn.network import QNetwork  # noqa: E402
from optimizer.registry import DEFAULT_MODEL_DIR, load_model  # noqa: E402
from optimizer.swap_pass import SearchState  # noqa: E402


@pytest.mark.parametrize("hidden", [(8,), (64, 64), (32, 16, 8)])
def test_numpy_and_torch_forward_passes_agree(hidden: tuple[int, ...]) -> None:
    """Same weights, same rows: Q-values equal to float32 rounding, on real feature rows."""
    torch.manual_seed(len(hidden))
    net = QNetwork(N_FEATURES, hidden)
    weights = net.weights()
    day = generated_days([(40, 6)], [3])[0]
    state = SearchState(day.problem, day.assignment)
    rows = candidate_features(state, state.candidates())
    rows = np.concatenate([rows, np.random.default_rng(0).normal(size=(64, N_FEATURES))])
    rows = rows.astype(np.float32)
    with torch.no_grad():
        expected = net(torch.from_numpy(rows)).numpy()
    np.testing.assert_allclose(weights(rows), expected, rtol=1e-5, atol=1e-5)
    assert weights.architecture() == net.architecture()


def test_export_round_trips_through_the_npz_bytes(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """`to_bytes` -> file -> `load_npz` gives the same arrays; back to torch gives the same net."""
    torch.manual_seed(1)
    net = QNetwork(N_FEATURES, (16, 8))
    path = tmp_path / "model.npz"
    path.write_bytes(net.weights().to_bytes())
    back = load_npz(path, net.architecture())
    assert back.to_bytes() == net.weights().to_bytes()  # deterministic bytes: stable sha256
    again = QNetwork.from_weights(back)
    for a, b in zip(again.parameters(), net.parameters(), strict=True):
        assert torch.equal(a, b)


def test_shipped_model_scores_like_its_torch_twin() -> None:
    """The shipped default, rebuilt in torch, ranks the candidates of a day identically."""
    loaded = load_model(DEFAULT_MODEL_DIR)
    net = QNetwork.from_weights(loaded.network)
    day = generated_days([(100, 12)], [8])[0]
    state = SearchState(day.problem, day.assignment)
    rows = candidate_features(state, state.candidates())
    with torch.no_grad():
        expected = net(torch.from_numpy(rows)).numpy()
    got = loaded.network(rows)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_arrays_that_do_not_fit_are_refused() -> None:
    """Wrong layer names, shapes, or non-finite numbers: `WeightsError`."""
    arch = {"kind": "candidate-mlp", "n_features": 3, "hidden": [2]}
    good = {
        "layer0.weight": np.ones((2, 3), np.float32),
        "layer0.bias": np.zeros(2, np.float32),
        "layer1.weight": np.ones((1, 2), np.float32),
        "layer1.bias": np.zeros(1, np.float32),
    }
    assert isinstance(build_weights(arch, good), MlpWeights)
    with pytest.raises(WeightsError, match="shapes"):
        build_weights(arch, {**good, "layer0.weight": np.ones((3, 3), np.float32)})
    with pytest.raises(WeightsError, match="not the layers"):
        build_weights(arch, {**good, "extra": np.ones(1, np.float32)})
    with pytest.raises(WeightsError, match="non-finite"):
        build_weights(arch, {**good, "layer1.bias": np.array([np.nan], np.float32)})
