"""A preallocated circular replay buffer for candidate-scoring DQN.

A transition keeps what the TD update needs and nothing more: the feature row of the action
taken (Q(s, a) is the network applied to it), the reward, the next state's padded candidate
matrix with its mask (for max over a' in the Double-DQN target) and `terminated`. `truncated`
is not stored: a transition cut by the move budget is bootstrapped like any other (SB3's
timeout handling), since the budget is not part of the observation.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import numpy.typing as npt
import torch


class ReplayBatch(NamedTuple):
    features: torch.Tensor  # (B, F) the chosen candidate's row
    rewards: torch.Tensor  # (B,)
    next_candidates: torch.Tensor  # (B, A, F)
    next_mask: torch.Tensor  # (B, A) bool
    terminated: torch.Tensor  # (B,) float 0/1


class ReplayBuffer:
    """Fixed-size ring of transitions; the oldest is overwritten when full."""

    def __init__(self, capacity: int, max_actions: int, n_features: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self.capacity = int(capacity)
        self.features = np.zeros((capacity, n_features), dtype=np.float32)
        self.rewards = np.zeros(capacity, dtype=np.float32)
        self.next_candidates = np.zeros((capacity, max_actions, n_features), dtype=np.float32)
        self.next_mask = np.zeros((capacity, max_actions), dtype=bool)
        self.terminated = np.zeros(capacity, dtype=np.float32)
        self.pos = 0
        self.full = False

    def __len__(self) -> int:
        return self.capacity if self.full else self.pos

    def add(
        self,
        features: npt.NDArray[np.float32],
        reward: float,
        next_candidates: npt.NDArray[np.float32],
        next_mask: npt.NDArray[np.bool_] | npt.NDArray[np.int8],
        terminated: bool,
    ) -> None:
        i = self.pos
        self.features[i] = features
        self.rewards[i] = reward
        self.next_candidates[i] = next_candidates
        self.next_mask[i] = next_mask.astype(bool)
        self.terminated[i] = float(terminated)
        self.pos = (i + 1) % self.capacity
        self.full = self.full or self.pos == 0

    def sample(self, batch_size: int, rng: np.random.Generator) -> ReplayBatch:
        idx = rng.integers(0, len(self), size=batch_size)
        return ReplayBatch(
            features=torch.from_numpy(self.features[idx]),
            rewards=torch.from_numpy(self.rewards[idx]),
            next_candidates=torch.from_numpy(self.next_candidates[idx]),
            next_mask=torch.from_numpy(self.next_mask[idx]),
            terminated=torch.from_numpy(self.terminated[idx]),
        )
