"""The one settings object, read from the environment (prefix `DISPATCH_RL_`) at the edge.

Everything an operator may change without touching code lives here: Kafka connection and
security, topic names, the optimizer's switches and parameters, paths. The core receives plain
dataclasses built by `Settings.dispatch_config()`.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    Field,
    SecretStr,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

from optimizer.dispatch import DispatchConfig
from optimizer.objective import Objective
from optimizer.problem import Rules
from optimizer.swap_pass import PassConfig
from optimizer.travel import TravelModel
from schemas import (
    DEFAULT_MAX_BOOKINGS,
    DEFAULT_MAX_DRIVERS,
    DEFAULT_MAX_RADIUS_KM,
    DEFAULT_WINDOW_DAYS,
    Limits,
)
from streams.cpu_quota import usable_cpus
from streams.local_kafka.state import DEFAULT_CONTROLLER_PORT, DEFAULT_PORT, default_data_dir

DAY_MS = 24 * 60 * 60 * 1000

# Paths that default to a place under `data_dir` (see `Settings._paths_under_data_dir`).
_UNDER_DATA_DIR = {"dataset_dir": "dataset", "state_dir": "state"}


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
    """Consumer group of the dataset writer (separate, so it sees every dispatch). Unset: one
    group per dataset directory, `dispatch-rl-dataset-<dataset id>` (a random id kept in the
    directory), so each directory records every dispatch, whichever host it is on. Set: used
    as is."""
    topic_input: str = "dispatch.heuristic_done"
    topic_optimized: str = "dispatch.optimized"
    topic_audit: str = "dispatch.swap_audit"
    topic_dead_letter: str = "dispatch.dead_letter"
    topic_partitions: int = Field(default=3, ge=1)
    """Partitions for topics the service creates (keyed by dispatch_id). Existing topics keep
    theirs; a worker that finds a different count says so in its `topic_configs_differ` line."""
    topic_replicas: int = Field(default=1, ge=1)
    topic_retention_ms: int = Field(default=-1, ge=-1)
    """Retention of the input, optimized and swap-audit topics (-1: forever). One value for the
    three, so an audit replay always finds the input day its swap log refers to."""
    dead_letter_retention_ms: int = Field(default=365 * DAY_MS, ge=-1)
    """Retention of the dead-letter topic (-1: forever); default one year. At most
    `topic_retention_ms`: a dead letter may refer to its input by topic/partition/offset."""
    local_broker_port: int = Field(default=DEFAULT_PORT, ge=0, le=65535)
    """Port of the local broker `run` starts when no bootstrap is set (stable across restarts,
    so clients keep their address; 0: a free port)."""
    local_controller_port: int = Field(default=DEFAULT_CONTROLLER_PORT, ge=0, le=65535)
    """KRaft controller port of that local broker."""
    session_timeout_seconds: float = Field(default=10.0, ge=1.0, le=1800.0)
    """Consumer-group session timeout: a worker silent this long is declared dead and its
    partitions go to the survivors. Lower: faster failover, but a long GC or CPU stall can
    evict a live worker (a needless rebalance). The broker accepts 6-1800 s by default."""
    heartbeat_interval_seconds: float = Field(default=2.0, gt=0.0)
    """How often a consumer tells the group coordinator it lives (well under the session
    timeout; Kafka advises at most a third). Survivors also learn of a rebalance through it."""
    rebalance_timeout_seconds: float = Field(default=60.0, gt=0.0)
    """How long the coordinator waits for live members to rejoin during a rebalance. A member
    finishes its in-flight dispatch first, so keep it above `max_pass_seconds`; it does not
    delay noticing a dead member."""

    # ---- optimizer
    enabled: bool = True
    """False: every dispatch passes through unchanged with status `disabled`."""
    modes: frozenset[Literal["auto", "semi_auto", "manual"]] = frozenset({"auto"})
    """Dispatch modes to optimize (JSON list in the environment, e.g. `["auto"]`)."""
    max_swaps: int = Field(default=10, ge=0)
    """Least number of steps of the swap pass."""
    swaps_per_booking: float = Field(default=1.0, ge=0.0)
    """Step budget grows with the day: max(max_swaps, ceil(swaps_per_booking * bookings))."""
    min_improvement: float = Field(default=0.5, ge=0.0)
    """Least objective gain for a move to be accepted."""
    max_checks: int = Field(default=40, ge=1)
    """Most candidates validated (and audited) per step."""
    chains: bool = True
    """Try two-step ejection chains when no single move or swap passes."""
    exchanges: bool = True
    """When no move, swap or chain improves the ride counts, try segment exchanges (two
    drivers trade a stretch of rides) and then a lookahead over count-neutral steps."""
    lookahead_depth: int = Field(default=2, ge=0)
    """Most count-neutral steps the lookahead takes before an improving one (0: off)."""
    cost_phase: bool = True
    """After fairness, cut empty driving and lateness at the same ride counts."""
    cost_km_weight: float = Field(default=1.0, ge=0.0)
    """Operating cost of one km of empty driving (lexicographic mode's third term)."""
    cost_late_weight: float = Field(default=2.0, ge=0.0)
    """Operating cost of one minute of lateness, in km."""
    cost_spread_weight: float = Field(default=0.2, ge=0.0)
    """Operating cost of one minute of workload spread beyond the band, in km."""
    workload_band_minutes: float = Field(default=60.0, ge=0.0)
    """Workload spread (max - min driving + boarding minutes) that costs nothing."""
    km_replan_work: float = Field(default=1500.0, ge=0.0)
    """Work budget per booking of the cost phase's km re-plans of driver subsets
    (`PassConfig.km_replan_work`; 0: off, the pass is then several times cheaper on days of
    25-150 bookings and leaves more empty km)."""
    ruin_recreate_work: float = Field(default=PassConfig().rr_work, ge=0.0)
    """Beam work of the cost phase's ruin and recreate on days of 50-150 bookings and 10+ drivers
    (`PassConfig.rr_work`, 4,000,000 work units: a 100x13 day's whole pass then takes ~250-330 ms
    of one core on average; 0: off, and those days keep 7-14 % more empty km)."""
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
    sane_window_days: float = Field(default=DEFAULT_WINDOW_DAYS, gt=0.0)
    """Pickup windows and shifts further than this from the service date: dead letter
    (`window_out_of_range` / `shift_out_of_range`)."""
    sane_radius_km: float = Field(default=DEFAULT_MAX_RADIUS_KM, gt=0.0)
    """A place further than this from the day's median place: dead letter
    (`coordinates_too_spread`)."""

    # ---- learning loop and paths
    data_dir: Path = Field(default_factory=default_data_dir)
    """Root of everything that must survive a restart: the local broker (`kafka/`), the
    dataset (`dataset/`), the audit store, runtime state (`state/`). Default
    `$XDG_DATA_HOME/dispatch-rl`, else `~/.local/share/dispatch-rl`."""
    model_dir: Path = Path("var/models")
    """Model registry: versions, champion pointer. Empty: the shipped default model serves."""
    dataset_dir: Path = Path("dataset")
    """Dataset writer output: one JSON-lines file per service date; default
    `<data_dir>/dataset`."""
    state_dir: Path = Path("state")
    """Runtime files (Faust's data dir, the generated API token); default `<data_dir>/state`."""
    model_poll_seconds: float = Field(default=5.0, gt=0.0)
    """How often a worker checks the registry for a newly promoted model."""

    # ---- operations
    log_format: Literal["auto", "json", "console"] = "auto"
    """`auto`: readable in a terminal, JSON otherwise."""
    log_level: str = "INFO"
    """DEBUG, INFO, WARNING, ERROR or CRITICAL."""
    web_port: int = Field(default=6066, ge=0, le=65535)
    """The worker's web server (audit API, dashboard, /metrics, health); 0: any free port."""
    web_host: str = "127.0.0.1"
    """Interface the web server binds; loopback by default (set 0.0.0.0 deliberately)."""
    web_enabled: bool = True
    api_token: SecretStr | None = None
    """Bearer token for reads of /api/*. Unset: one is generated once and kept in
    `<state_dir>/api-token` (mode 0600); the worker logs that path at start."""

    # ---- audit store
    store_url: str | None = None
    """SQLAlchemy URL of the audit store, e.g. `postgresql+psycopg://user:pw@host/db`. Unset:
    an embedded SQLite file, `<data_dir>/audit.sqlite3`."""
    store_group: str = "dispatch-rl-store"
    """Consumer group of the audit store consumer (separate from the optimizer's: it sees every
    event). Unset: one group per store, `dispatch-rl-store-<store id>` (a random id the store
    keeps), so every store gets every event: two hosts with their own SQLite stores each hold the
    whole swap log, workers sharing one database share the work. Set: used as is."""
    store_enabled: bool = True
    """False: the worker runs no audit store consumer (and the API has nothing to serve)."""
    pipelined: bool = True
    """Per-partition pipelines with batched sends (see streams/pipeline.py). False: one message
    at a time, each waiting for its acknowledgements (the old path, ~5x slower on small days;
    kept for bench/stream_throughput.py's comparison)."""
    pipeline_batch_max: int = Field(default=64, ge=1)
    """Most input messages a partition optimizes (and then publishes) as one batch."""
    prepare_processes: int = Field(default=1, ge=0)
    """Child processes that run the pass (decode, optimize, encode) for the pipelined worker.
    N >= 1: the event loop (fetches, sends, acks) no longer waits for the GIL behind the pass,
    and one worker uses up to N cores for it. A batch that finds every child held for 0.5 s (a
    large day) starts one extra child, so a large day does not hold other partitions' small
    days; under a burst the pool grows up to `prepare_processes_max` and shrinks again when
    idle. Each child loads the model and CP-SAT: ~100 MB resident, 1-3 s to start; the
    default 1 keeps a worker near 230 MB idle (2: ~330 MB). Do not run more workers x
    processes than cores on a host. 0: a thread of the worker (another while a large day
    holds it)."""
    prepare_processes_max: int | None = Field(default=None, ge=0)
    """Most prepare processes the pool grows to under load (see `prepare_grow_seconds`);
    None: 2 where the worker may use 2 cores or more (its CPU affinity, and its cgroup's CPU
    quota in a container: `streams.cpu_quota`), else `prepare_processes` (no growth).
    Each one more costs ~100 MB while it runs; with several workers on one host, 1 keeps
    them from taking more cores than the host has."""
    prepare_grow_seconds: float = Field(default=2.0, gt=0)
    """When batches waited for a prepare process during 90 % of this many seconds (every
    child busy: a burst) and the host's CPUs left a quarter of a core idle meanwhile, one more
    starts (1-3 s of CPU), up to `prepare_processes_max`."""
    prepare_shrink_seconds: float = Field(default=30.0, gt=0)
    """A prepare process beyond `prepare_processes` that stays idle this long stops."""
    prepare_own_process_bytes: int = Field(default=256 * 1024, ge=0)
    """An input of at least this many bytes (256 KiB: a day of ~750 bookings, seconds of pass)
    is prepared in a prepare process started for it alone and stopped after it (one at a
    time), so the children serving small days are never held by it: the large day pays the
    start (1-3 s of CPU), not the other partitions' small days. 0: off (such a day holds a
    child, and an extra one starts after 0.5 s)."""

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        if value.upper() not in _LOG_LEVELS:
            raise ValueError(f"must be one of {', '.join(_LOG_LEVELS)}")
        return value.upper()

    @model_validator(mode="before")
    @classmethod
    def _paths_under_data_dir(cls, data: Any) -> Any:
        """Unset `dataset_dir`/`state_dir` default to their place under `data_dir`."""
        if not isinstance(data, dict):
            return data
        root = data.get("data_dir")
        root = Path(root).expanduser() if root not in (None, "") else default_data_dir()
        data = {**data, "data_dir": root}
        for name, sub in _UNDER_DATA_DIR.items():
            if data.get(name) in (None, ""):
                data[name] = root / sub
        return data

    @model_validator(mode="after")
    def _heartbeat_below_session(self) -> Settings:
        if self.heartbeat_interval_seconds >= self.session_timeout_seconds:
            raise ValueError(
                f"heartbeat_interval_seconds ({self.heartbeat_interval_seconds:g}) must be below "
                f"session_timeout_seconds ({self.session_timeout_seconds:g})"
            )
        return self

    @model_validator(mode="after")
    def _inputs_outlive_dead_letters(self) -> Settings:
        # A dead letter too large to carry its input refers to it by topic/partition/offset.
        kept, dead = self.topic_retention_ms, self.dead_letter_retention_ms
        if kept != -1 and (dead == -1 or dead > kept):
            raise ValueError(
                f"dead_letter_retention_ms ({dead}) must not exceed topic_retention_ms ({kept}): "
                "a dead letter refers to its input on the input topic"
            )
        return self

    @property
    def local_broker_dir(self) -> Path:
        """`<data_dir>/kafka`: the local broker's state file, data and logs."""
        return self.data_dir / "kafka"

    def with_data_dir(self, root: Path) -> Settings:
        """These settings with `data_dir` moved to `root`, and the paths that were at their
        default place under the old `data_dir` moved along (used by `--ephemeral`)."""
        update: dict[str, Any] = {"data_dir": root}
        for name, sub in _UNDER_DATA_DIR.items():
            if getattr(self, name) == self.data_dir / sub:
                update[name] = root / sub
        return self.model_copy(update=update)

    def sink_group(
        self, field: Literal["store_group", "dataset_group"], sink_id: Callable[[], str]
    ) -> str:
        """The consumer group of a sink that must see every event (the audit store, the dataset
        writer): the setting as given when set, else one group per sink, `<default>-<its id>`,
        so two sinks (two hosts' SQLite files or dataset directories) never split the
        partitions between them, and a re-created sink reads the topics from the start.
        `sink_id` is called only then (the store's reads its database)."""
        if field in self.model_fields_set:
            return str(getattr(self, field))
        return f"{getattr(self, field)}-{sink_id()[:12]}"

    def prepare_processes_limit(self) -> int:
        """`prepare_processes_max`, or its default: 2 prepare processes where this process
        may use 2 cores or more, else no growth."""
        if self.prepare_processes_max is not None:
            return max(self.prepare_processes, self.prepare_processes_max)
        cores = usable_cpus()  # the affinity, lowered to a container's CPU quota
        return max(self.prepare_processes, 2 if cores >= 2 else 1)

    def limits(self) -> Limits:
        return Limits(
            max_bookings=self.max_bookings,
            max_drivers=self.max_drivers,
            window_days=self.sane_window_days,
            max_radius_km=self.sane_radius_km,
        )

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
                exchanges=self.exchanges,
                lookahead_depth=self.lookahead_depth,
                cost_phase=self.cost_phase,
                km_replan_work=self.km_replan_work,
                rr_work=self.ruin_recreate_work,
                time_limit_s=self.max_pass_seconds,
                polish_steps=self.polish_steps,
                objective=Objective(
                    mode=self.objective_mode,
                    weights=self.objective_weights,
                    km_weight=self.cost_km_weight,
                    late_weight=self.cost_late_weight,
                    spread_weight=self.cost_spread_weight,
                    spread_band_minutes=self.workload_band_minutes,
                ),
            ),
            rules=Rules(
                late_tolerance_minutes=self.late_tolerance_minutes,
                high_priority=self.high_priority,
            ),
            travel=TravelModel(detour_factor=self.detour_factor, speed_kmh=self.speed_kmh),
        )


_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
ENV_PREFIX = "DISPATCH_RL_"


class SettingsInputError(ValueError):
    """An environment setting that cannot be used; the message is one line naming it."""


def load_settings(**overrides: Any) -> Settings:
    """`Settings()` from the environment, or `SettingsInputError` with one line saying which
    variable is wrong, its value, and what is expected (the CLI prints it and exits 2).

    pydantic-settings parses list and tuple settings as JSON and raises its own `SettingsError`
    (no field message) when that fails, e.g. `DISPATCH_RL_MODES=auto`: that case names the
    variable and shows the JSON form of its default as an example.
    """
    try:
        return Settings(**overrides)
    except SettingsError as exc:
        raise SettingsInputError(_describe_settings_error(exc)) from None
    except ValidationError as exc:
        raise SettingsInputError(_describe_validation_error(exc)) from None


def _env_value(field: str) -> str | None:
    wanted = (ENV_PREFIX + field).upper()
    return next((v for k, v in os.environ.items() if k.upper() == wanted), None)


def _shown(field: str) -> str:
    value = _env_value(field)
    if value is None:
        return f"{ENV_PREFIX}{field.upper()}"
    if "password" in field:
        value = "***"
    elif len(value) > 60:
        value = value[:57] + "..."
    return f"{ENV_PREFIX}{field.upper()}={value!r}"


def _describe_settings_error(exc: SettingsError) -> str:
    match = re.search(r'field "([^"]+)"', str(exc))
    if match is None or match.group(1) not in Settings.model_fields:
        return f"invalid {ENV_PREFIX}* setting: {exc}"
    name = match.group(1)
    info = Settings.model_fields[name]
    annotation: Any = info.annotation
    example = json.dumps(TypeAdapter(annotation).dump_python(info.default, mode="json"))
    return (
        f"invalid setting {_shown(name)}: not valid JSON; this setting is a list, written as "
        f"JSON, e.g. {ENV_PREFIX}{name.upper()}='{example}'"
    )


def _describe_validation_error(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False, include_input=False):
        loc = err["loc"]
        field = str(loc[0]) if loc else ""
        where = _shown(field) if field in Settings.model_fields else f"{ENV_PREFIX}*"
        item = f" (item {'.'.join(map(str, loc[1:]))})" if len(loc) > 1 else ""
        msg = str(err["msg"]).removeprefix("Value error, ")
        parts.append(f"{where}{item}: {msg}")
    return "invalid setting " + "; ".join(parts)
