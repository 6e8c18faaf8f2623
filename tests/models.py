"""Small hand-made Q-networks for tests (numpy weights; no torch, no training).

`ranking_weights(sign)` scores a candidate by sign x (10 gain_gap + gain_sq): sign 1 ranks
like the greedy policy and passes the built-in quality check, sign -1 ranks backwards and
fails it. `seed` adds tiny noise on the other features, so two models differ in bytes (and
sha256) while ranking alike.
"""

from __future__ import annotations

import numpy as np

from optimizer.dqn.features import FEATURE_NAMES, N_FEATURES
from optimizer.dqn.inference import MlpWeights, weights_from_layers


def ranking_weights(sign: float = 1.0, seed: int | None = None) -> MlpWeights:
    w1 = np.zeros((2, N_FEATURES))
    w1[0, FEATURE_NAMES.index("gain_gap")] = 1.0
    w1[1, FEATURE_NAMES.index("gain_sq")] = 1.0
    if seed is not None:
        noise = np.random.default_rng(seed).normal(scale=1e-4, size=w1.shape)
        noise[:, [FEATURE_NAMES.index("gain_gap"), FEATURE_NAMES.index("gain_sq")]] = 0.0
        w1 += noise
    # bias 2 keeps both units active (gains are >= -2 after the feature clip)
    return weights_from_layers([(w1, [2.0, 2.0]), ([[10.0 * sign, 1.0 * sign]], [0.0])])


def random_weights(seed: int, hidden: int = 8) -> MlpWeights:
    """A random network: loads fine, ranks badly (fails the quality check)."""
    rng = np.random.default_rng(seed)
    return weights_from_layers(
        [
            (rng.normal(size=(hidden, N_FEATURES)), rng.normal(size=hidden)),
            (rng.normal(size=(1, hidden)), [0.0]),
        ]
    )
