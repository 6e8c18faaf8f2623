"""The Gymnasium environment: one dispatch day is an episode of the swap pass.

It replays the pass's own decision process, proposal by proposal, with the pass's own parts:
candidates come from `SearchState.candidates` (the generator the pass uses), a proposal is
validated by `SearchState.trial` and scored by `Objective.gain` (the validator and objective
the pass uses), and an accepted move is applied with `SearchState.apply`. Nothing here decides
feasibility or compares plans on its own.

* Observation: `{"candidates": (max_actions, N_FEATURES) float32, "action_mask": (max_actions,)
  int8}`: one feature row per candidate (the plan, the move, its bookings, hour and weekday;
  see `optimizer.dqn.features`), zero-padded; the mask marks the structurally legal candidates
  not yet rejected in this plan.
* Action: an index into the candidate rows.
* Reward: for an accepted move, the decrease of the ride-count gap plus `sq_weight` times half the
  decrease of the squared deviation of ride counts (so every balancing move pays), minus
  `step_cost`, plus `target_bonus` when the gap reaches its floor; `-reject_penalty` for a
  proposal the validator rejects (a broken constraint or no improvement), and for a masked one.
* The candidates are those the pass's fairness phase ranks (`pass_candidates(...,
  improving_only=True)`: each lowers a ride-count term), unless `improving_only=False`.
* Like the pass: plain moves and swaps first; after `max_checks` rejections in one plan (or
  when none is left) the ejection chains; the episode *terminates* when the gap reaches its
  floor or no candidate is left, and is *truncated* at the move budget
  (`PassConfig.budget`) or after `max_proposals` proposals.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import numpy.typing as npt
from gymnasium import spaces

from optimizer.dqn.days import Day
from optimizer.dqn.features import (
    FEATURE_BOUND,
    N_FEATURES,
    Float32Array,
    candidate_features,
    shortlist,
)
from optimizer.moves import Candidates
from optimizer.objective import gap_floor
from optimizer.problem import IntArray
from optimizer.swap_pass import PassConfig, SearchState, pass_candidates

Observation = dict[str, npt.NDArray[Any]]


@dataclass(frozen=True, slots=True)
class RewardConfig:
    """How an episode pays (see the module docstring)."""

    sq_weight: float = 0.3
    step_cost: float = 0.05
    reject_penalty: float = 0.3
    """A check the validator rejects costs a third of a gap unit: it is what the served
    ranking can save (the candidates offered all improve the ride counts)."""
    target_bonus: float = 1.0


class DispatchEnv(gym.Env[Observation, np.int64]):
    """One dispatch day per episode; actions are candidate moves (see the module docstring)."""

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(
        self,
        days: Sequence[Day],
        *,
        pass_config: PassConfig | None = None,
        max_actions: int = 64,
        rewards: RewardConfig | None = None,
        max_proposals: int | None = None,
        improving_only: bool = True,
    ) -> None:
        """`improving_only`: offer what the pass's fairness phase ranks (candidates that lower
        a ride-count term), not also the count-neutral ones."""
        if not days:
            raise ValueError("need at least one day")
        self.days = list(days)
        self.config = pass_config or PassConfig()
        self.max_actions = int(max_actions)
        self.rewards = rewards or RewardConfig()
        self.max_proposals = max_proposals
        self.improving_only = improving_only
        self.observation_space = spaces.Dict(  # type: ignore[assignment]
            {
                "candidates": spaces.Box(
                    -FEATURE_BOUND, FEATURE_BOUND, (self.max_actions, N_FEATURES), np.float32
                ),
                "action_mask": spaces.MultiBinary(self.max_actions),
            }
        )
        self.action_space = spaces.Discrete(self.max_actions)
        # Episode state, set by reset().
        self.day: Day = self.days[0]
        self.state = SearchState(self.day.problem, self.day.assignment)
        self.floor = 0
        self.budget = 0
        self.steps = 0
        self.proposals = 0
        self.checks = 0
        self.chains = False
        self.cands = Candidates(*(np.zeros(0, dtype=np.int64),) * 7, np.zeros(0))
        self.features: Float32Array = np.zeros((self.max_actions, N_FEATURES), dtype=np.float32)
        self.mask = np.zeros(self.max_actions, dtype=np.int8)

    # ---------------------------------------------------------------- gymnasium API

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Observation, dict[str, Any]]:
        super().reset(seed=seed)
        if options and "day" in options:
            index = int(options["day"])
        else:
            index = int(self.np_random.integers(len(self.days)))
        self.day = self.days[index]
        self.state = SearchState(self.day.problem, self.day.assignment)
        assigned = int((self.day.assignment >= 0).sum())
        self.floor = gap_floor(int(self.state.counts.sum()), self.day.problem.n_drivers)
        self.budget = self.config.budget(assigned)
        self.steps = self.proposals = 0
        self._load(chains=False)
        return self._obs(), self._info()

    def step(self, action: np.int64 | int) -> tuple[Observation, float, bool, bool, dict[str, Any]]:
        a = int(action)
        self.proposals += 1
        r = self.rewards
        decision = "invalid"
        reward = -r.reject_penalty
        if 0 <= a < self.max_actions and self.mask[a]:
            trial = self.state.trial(self.cands.move(a))
            gain = (
                None
                if trial.value is None
                else self.config.objective.gain(self.state.value, trial.value)
            )
            if gain is None or gain <= 0 or gain < self.config.min_improvement:
                decision = "rejected"
                self.mask[a] = 0
                self.checks += 1
            else:
                decision = "accepted"
                before = self.state.value
                self.state.apply(trial)
                after = self.state.value
                self.steps += 1
                reward = (
                    (before[0] - after[0])
                    + r.sq_weight * (before[1] - after[1]) / 2.0
                    - r.step_cost
                )
        terminated = False
        if decision == "accepted":
            if self.config.stop_at_target and self.state.gap <= self.floor:
                reward += r.target_bonus
                terminated = True
                self._clear()
            else:
                self._load(chains=False)
        elif decision == "rejected" and (
            self.checks >= self.config.max_checks or not self.mask.any()
        ):
            if not self.chains and self.config.chains:
                self._load(chains=True)
            else:
                self._clear()
        if not terminated and not self.mask.any():
            terminated = True  # a local optimum: nothing left to propose
        cap = self.max_proposals
        truncated = not terminated and (
            self.steps >= self.budget or (cap is not None and self.proposals >= cap)
        )
        info = self._info()
        info["decision"] = decision
        return self._obs(), float(reward), terminated, truncated, info

    # ---------------------------------------------------------------- internals

    def _load(self, *, chains: bool) -> None:
        """Fresh candidates for the current plan and phase (plain first, then chains)."""
        self.chains = chains
        self.checks = 0
        cands = pass_candidates(
            self.state, self.config, chains=chains, improving_only=self.improving_only
        )
        if not chains and not len(cands) and self.config.chains:
            self._load(chains=True)
            return
        idx = shortlist(self.state, cands, self.max_actions)
        self.cands = cands.take(idx)
        n = len(self.cands)
        self.features = np.zeros((self.max_actions, N_FEATURES), dtype=np.float32)
        self.features[:n] = candidate_features(self.state, self.cands)
        self.mask = np.zeros(self.max_actions, dtype=np.int8)
        self.mask[:n] = 1

    def _clear(self) -> None:
        self.mask = np.zeros(self.max_actions, dtype=np.int8)

    def _obs(self) -> Observation:
        return {"candidates": self.features.copy(), "action_mask": self.mask.copy()}

    def _info(self) -> dict[str, Any]:
        return {
            "day": self.day.name,
            "gap": self.state.gap,
            "floor": self.floor,
            "steps": self.steps,
            "budget": self.budget,
            "proposals": self.proposals,
            "phase": "chain" if self.chains else "plain",
        }

    @property
    def assignment(self) -> IntArray:
        """The plan as it stands (a copy)."""
        return self.state.assignment.copy()
