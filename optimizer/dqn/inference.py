"""The Q-network's forward pass in numpy: what a worker needs to serve, without torch.

Training builds a `QNetwork` (torch); `QNetwork.weights()` exports it as `MlpWeights`, plain
float32 arrays that `save_npz` writes and `load_npz` reads back (`allow_pickle=False`: a model
file is data, never code). The worker only ever imports this module, so torch stays a training
dependency (`pip install 'dispatch-rl[train]'`). `tests/optimizer/test_dqn_inference.py` pins
that both forward passes agree.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

ARCHITECTURE = "candidate-mlp"

F32 = npt.NDArray[np.float32]
_SINGLE_THREAD_MACS = 1 << 16


class WeightsError(ValueError):
    """Arrays that do not make the network the architecture describes."""


@dataclass(frozen=True, slots=True)
class MlpWeights:
    """Linear layers `(weight (out, in), bias (out,))`, ReLU between them, one output unit.

    The same layout as torch's `nn.Linear`, so an export is a plain copy.
    """

    layers: tuple[tuple[F32, F32], ...]

    @property
    def n_features(self) -> int:
        return int(self.layers[0][0].shape[1])

    @property
    def hidden(self) -> tuple[int, ...]:
        return tuple(int(w.shape[0]) for w, _ in self.layers[:-1])

    @property
    def parameters(self) -> int:
        return sum(int(w.size + b.size) for w, b in self.layers)

    def architecture(self) -> dict[str, Any]:
        """What the model metadata records (the same document `QNetwork.architecture` gives)."""
        return {"kind": ARCHITECTURE, "n_features": self.n_features, "hidden": list(self.hidden)}

    def __call__(self, x: F32) -> F32:
        """Q-values of the rows of `x` (shape (..., n_features)) -> shape (...)."""
        h = np.asarray(x, dtype=np.float32)
        shape = h.shape[:-1]
        h = h.reshape(-1, h.shape[-1])
        # Row blocks small enough that OpenBLAS stays on one thread: above ~64k multiply-adds
        # per product it starts a thread per core, and on a loaded 2-core machine those threads
        # wait on each other (measured: 256 rows in one product 10-30 ms, in blocks 0.3 ms).
        block = max(8, _SINGLE_THREAD_MACS // max(w.size for w, _ in self.layers))
        if len(h) <= block:  # one block (a day's candidates): no copy into `out`
            return self._forward(h).reshape(shape)
        out = np.empty(len(h), dtype=np.float32)
        for start in range(0, len(h), block):
            out[start : start + block] = self._forward(h[start : start + block])
        return out.reshape(shape)

    def _forward(self, h: F32) -> F32:
        last = len(self.layers) - 1
        for i, (w, b) in enumerate(self.layers):
            h = h @ w.T + b
            if i < last:
                np.maximum(h, 0.0, out=h)
        out: F32 = h[:, 0]
        return out

    def to_bytes(self) -> bytes:
        """The `.npz` file content (deterministic: same weights, same bytes)."""
        buf = io.BytesIO()
        arrays: dict[str, Any] = {}
        for i, (w, b) in enumerate(self.layers):
            arrays[f"layer{i}.weight"] = w
            arrays[f"layer{i}.bias"] = b
        np.savez(buf, **arrays)
        return buf.getvalue()


def build_weights(architecture: dict[str, Any], arrays: dict[str, F32]) -> MlpWeights:
    """Check `arrays` (`layer<i>.weight`, `layer<i>.bias`) against `architecture`."""
    if architecture.get("kind") != ARCHITECTURE:
        raise WeightsError(f"unknown architecture {architecture.get('kind')!r}")
    widths = [int(architecture["n_features"]), *(int(h) for h in architecture["hidden"]), 1]
    expected = {f"layer{i}.{part}" for i in range(len(widths) - 1) for part in ("weight", "bias")}
    if set(arrays) != expected:
        raise WeightsError(f"arrays {sorted(arrays)} are not the layers {sorted(expected)}")
    layers = []
    for i in range(len(widths) - 1):
        w, b = arrays[f"layer{i}.weight"], arrays[f"layer{i}.bias"]
        if w.shape != (widths[i + 1], widths[i]) or b.shape != (widths[i + 1],):
            raise WeightsError(
                f"layer {i}: shapes {w.shape} and {b.shape}, the architecture needs "
                f"{(widths[i + 1], widths[i])} and {(widths[i + 1],)}"
            )
        if not (np.isfinite(w).all() and np.isfinite(b).all()):
            raise WeightsError(f"layer {i} holds non-finite numbers")
        layers.append((w.astype(np.float32), b.astype(np.float32)))
    return MlpWeights(tuple(layers))


def load_npz(path: Path, architecture: dict[str, Any]) -> MlpWeights:
    """Read an `.npz` written by `MlpWeights.to_bytes` (never unpickles)."""
    with np.load(path, allow_pickle=False) as data:
        arrays = {name: np.asarray(data[name]) for name in data.files}
    return build_weights(architecture, arrays)


def weights_from_layers(layers: Sequence[tuple[npt.ArrayLike, npt.ArrayLike]]) -> MlpWeights:
    """`MlpWeights` from any (weight, bias) pairs (tests build small hand-made networks)."""
    return MlpWeights(
        tuple((np.asarray(w, dtype=np.float32), np.asarray(b, dtype=np.float32)) for w, b in layers)
    )
