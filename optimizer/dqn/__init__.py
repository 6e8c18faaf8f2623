"""The learned move policy: features, Q-network, replay buffer, Gymnasium env, training loop."""

from optimizer.dqn.days import Day
from optimizer.dqn.env import DispatchEnv, RewardConfig
from optimizer.dqn.features import FEATURE_NAMES, FEATURE_VERSION, N_FEATURES, candidate_features
from optimizer.dqn.network import QNetwork, parameter_count, polyak_update
from optimizer.dqn.policy import DQNPolicy
from optimizer.dqn.replay import ReplayBatch, ReplayBuffer
from optimizer.dqn.train import TrainConfig, TrainResult, linear_schedule, td_target, train

__all__ = [
    "FEATURE_NAMES",
    "FEATURE_VERSION",
    "N_FEATURES",
    "DQNPolicy",
    "Day",
    "DispatchEnv",
    "QNetwork",
    "ReplayBatch",
    "ReplayBuffer",
    "RewardConfig",
    "TrainConfig",
    "TrainResult",
    "candidate_features",
    "linear_schedule",
    "parameter_count",
    "polyak_update",
    "td_target",
    "train",
]
