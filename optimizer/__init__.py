"""dispatch-rl's core: problem model, feasibility, objective, swap pass, baselines, DQN.

Pure and synchronous; knows nothing of Kafka. The learned policy lives in `optimizer.dqn`
and the model registry in `optimizer.registry` (training imports torch; serving does not).
The exact solver's names are imported on first use: CP-SAT (ortools, with pandas) costs
about 0.3 s and 60 MB, which the worker and `optimize` never need.
"""

from typing import Any

from optimizer.darp import darp_day, list_instances
from optimizer.dispatch import DispatchConfig, Outcome, fallback_outcome, optimize_event
from optimizer.feasibility import is_feasible_change, schedule_all, schedule_route, violations
from optimizer.generate import generate_day, generate_days
from optimizer.objective import Evaluation, Objective, evaluate, gap_floor
from optimizer.policy import GreedyPolicy
from optimizer.problem import Problem, Rules
from optimizer.seed import seed_day
from optimizer.serving import PolicyProvider, StaticPolicyProvider, default_provider
from optimizer.swap_pass import (
    MovePolicy,
    PassConfig,
    PassResult,
    SearchState,
    pass_candidates,
    replay,
    run_pass,
)
from optimizer.travel import TravelModel, TravelTimeModel

__all__ = [
    "DispatchConfig",
    "Evaluation",
    "ExactResult",
    "GreedyPolicy",
    "MovePolicy",
    "Objective",
    "Outcome",
    "PassConfig",
    "PassResult",
    "PolicyProvider",
    "Problem",
    "Rules",
    "SearchState",
    "StaticPolicyProvider",
    "TravelModel",
    "TravelTimeModel",
    "darp_day",
    "default_provider",
    "evaluate",
    "fallback_outcome",
    "gap_floor",
    "generate_day",
    "generate_days",
    "is_feasible_change",
    "list_instances",
    "optimize_event",
    "pass_candidates",
    "replay",
    "run_pass",
    "schedule_all",
    "schedule_route",
    "seed_day",
    "solve_min_gap",
    "violations",
]


def __getattr__(name: str) -> Any:
    if name in ("ExactResult", "solve_min_gap"):
        from optimizer import exact

        return getattr(exact, name)
    raise AttributeError(f"module 'optimizer' has no attribute {name!r}")
