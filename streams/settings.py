"""The one settings object, read from the environment (prefix `DISPATCH_RL_`) at the edge.

Everything an operator may change without touching code lives here: Kafka connection and
security, topic names, the optimizer's switches and parameters, paths. The core receives plain
dataclasses built by `Settings.dispatch_config()`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from optimizer.dispatch import DispatchConfig
from optimizer.objective import Objective
from optimizer.problem import Rules
from optimizer.swap_pass import PassConfig
from optimizer.travel import TravelModel
from schemas import DEFAULT_MAX_BOOKINGS, DEFAULT_MAX_DRIVERS, Limits


class Settings(BaseSettings):
    """dispatch-rl's configuration. Each field is `DISPATCH_RL_<FIELD>` in the environment."""

    model_config = SettingsConfigDict(env_prefix="DISPATCH_RL_", env_file=None, frozen=True)

    # ---- Kafka
    bootstrap_servers: str | None = None
    """`host:port[,host:port]`. Unset: `run` starts a local broker (see `dispatch-rl kafka`)."""
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: str | None = None
    ssl_cafile: Path | None = None
    """CA bundle to verify the brokers (SSL and SASL_SSL)."""
    app_id: str = "dispatch-rl"
    """Faust application id: the consumer group of the optimizer agent."""
    dataset_group: str = "dispatch-rl-dataset"
    """Consumer group of the dataset writer (separate, so it sees every dispatch)."""
    topic_input: str = "dispatch.heuristic_done"
    topic_optimized: str = "dispatch.optimized"
    topic_audit: str = "dispatch.swap_audit"
    topic_dead_letter: str = "dispatch.dead_letter"
    topic_partitions: int = Field(default=3, ge=1)
    """Partitions for topics the service creates (keyed by dispatch_id)."""
    topic_replicas: int = Field(default=1, ge=1)

    # ---- optimizer
    enabled: bool = True
    """False: every dispatch passes through unchanged with status `disabled`."""
    modes: frozenset[Literal["auto", "semi_auto", "manual"]] = frozenset({"auto"})
    """Dispatch modes to optimize (JSON list in the environment, e.g. `["auto"]`)."""
    max_swaps: int = Field(default=10, ge=0)
    """Least number of steps of the swap pass."""
    swaps_per_booking: float = Field(default=0.5, ge=0.0)
    """Step budget grows with the day: max(max_swaps, ceil(swaps_per_booking * bookings))."""
    min_improvement: float = Field(default=0.5, ge=0.0)
    """Least objective gain for a move to be accepted."""
    max_checks: int = Field(default=40, ge=1)
    """Most candidates validated (and audited) per step."""
    chains: bool = True
    """Try two-step ejection chains when no single move or swap passes."""
    polish_steps: int = Field(default=0, ge=0)
    """Once the ride counts are as even as they can be, up to this many more steps that
    even out workload minutes (then deadhead, lateness) without changing any count. Measured
    (README): 10 steps cut the workload spread about in half, at 1.3-2x the pass latency."""
    max_pass_seconds: float = Field(default=30.0, ge=0.0)
    """Stop a pass that runs longer (0: never); the plan so far is published. Typical days
    take milliseconds; this bounds the largest (2,000 bookings x 300 drivers takes ~36 s)."""
    objective_mode: Literal["lexicographic", "weighted"] = "lexicographic"
    objective_weights: tuple[float, float, float, float, float] = (100.0, 10.0, 0.1, 0.5, 0.2)
    """gap, count squared deviation, workload spread (min), deadhead (km), lateness (min)."""
    late_tolerance_minutes: float = Field(default=10.0, ge=0.0)
    """How late a normal booking's pickup may be; high-priority bookings get none."""
    high_priority: int = Field(default=1, ge=0)
    """Priority from which a booking may never be late."""
    detour_factor: float = Field(default=1.3, gt=0.0)
    """Travel model without a router matrix: road km = haversine km x this."""
    speed_kmh: float = Field(default=30.0, gt=0.0)
    max_bookings: int = Field(default=DEFAULT_MAX_BOOKINGS, ge=1)
    """Events with more bookings go to the dead-letter topic."""
    max_drivers: int = Field(default=DEFAULT_MAX_DRIVERS, ge=1)

    # ---- learning loop and paths
    model_dir: Path = Path("var/models")
    """Model registry: versions, champion pointer. Empty: the shipped default model serves."""
    dataset_dir: Path = Path("var/dataset")
    """Dataset writer output: one JSON-lines file per service date."""
    state_dir: Path = Path("var")
    """Local broker state and other runtime files."""
    model_poll_seconds: float = Field(default=5.0, gt=0.0)
    """How often a worker checks the registry for a newly promoted model."""

    # ---- operations
    log_format: Literal["auto", "json", "console"] = "auto"
    """`auto`: readable in a terminal, JSON otherwise."""
    log_level: str = "INFO"
    web_port: int = Field(default=6066, ge=0)
    """Faust web server (health, metrics, audit query API)."""
    web_enabled: bool = True

    def limits(self) -> Limits:
        return Limits(max_bookings=self.max_bookings, max_drivers=self.max_drivers)

    def dispatch_config(self) -> DispatchConfig:
        return DispatchConfig(
            enabled=self.enabled,
            modes=frozenset(self.modes),
            pass_config=PassConfig(
                max_swaps=self.max_swaps,
                swaps_per_booking=self.swaps_per_booking,
                min_improvement=self.min_improvement,
                max_checks=self.max_checks,
                chains=self.chains,
                time_limit_s=self.max_pass_seconds,
                polish_steps=self.polish_steps,
                objective=Objective(mode=self.objective_mode, weights=self.objective_weights),
            ),
            rules=Rules(
                late_tolerance_minutes=self.late_tolerance_minutes,
                high_priority=self.high_priority,
            ),
            travel=TravelModel(detour_factor=self.detour_factor, speed_kmh=self.speed_kmh),
        )
