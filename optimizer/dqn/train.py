"""Double DQN over dispatch days, in CleanRL's order: seed, env, networks, buffer, loop, log, save.

The pieces a test must reach are importable on their own: `linear_schedule`, `td_target`,
`polyak_update` (in `network`), `QNetwork`, `ReplayBuffer`. SB3's correctness details: Huber
loss, gradient-norm clipping, target computed under `torch.no_grad()`, a NamedTuple batch,
`terminated` kept apart from `truncated` (a budget cut is bootstrapped).

The action is an index into the current candidate rows, so Q(s, a) is the network applied to
row a, and max over a' is a masked max over the next state's rows.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch
import torch.nn.functional as F

from optimizer.dqn.days import TRAIN_CORDEAU, Day, cordeau_days, fingerprint, generated_days
from optimizer.dqn.env import DispatchEnv, RewardConfig
from optimizer.dqn.features import FEATURE_VERSION, N_FEATURES
from optimizer.dqn.network import QNetwork, parameter_count, polyak_update
from optimizer.dqn.replay import ReplayBatch, ReplayBuffer
from optimizer.problem import Rules
from optimizer.swap_pass import PassConfig
from optimizer.travel import TravelModel

TRAIN_SIZES: tuple[tuple[int, int], ...] = ((10, 3), (14, 3), (20, 4), (26, 5), (30, 5))
"""Generated training day sizes (evaluation uses other sizes)."""
TRAIN_SEED_BASE = 0
"""Generated training days take seeds from `SeedSequence(TRAIN_SEED_BASE + seed)`; evaluation
uses seeds from 1_000_000 up, so the two never meet."""


@dataclass(frozen=True, slots=True)
class TrainConfig:
    """Hyper-parameters of one training run (stored in the model metadata)."""

    episodes: int = 5000
    seed: int = 1
    hidden: tuple[int, ...] = (64, 64)
    learning_rate: float = 1e-3
    gamma: float = 0.5
    """Short horizon: in the pass's action set every accepted move improves, so what the
    ranking can still win is mostly the next few checks (0.95 ended with higher gaps than
    chance in the tiny-training test; 0.5 and 0.0 with fewer proposals at the same gap)."""
    buffer_size: int = 20_000
    batch_size: int = 64
    learning_starts: int = 500
    """Transitions collected before the first gradient step."""
    train_frequency: int = 4
    """One gradient step every this many environment steps."""
    target_network_frequency: int = 100
    """Gradient steps between target updates."""
    tau: float = 1.0
    """Polyak coefficient of a target update (1.0: hard copy, as in CleanRL's DQN)."""
    start_e: float = 1.0
    end_e: float = 0.05
    exploration_fraction: float = 0.2
    """Share of the episodes over which epsilon decays linearly from start_e to end_e."""
    max_grad_norm: float = 10.0
    max_actions: int = 64
    max_proposals: int = 60
    """Episode cut (truncation) after this many proposals, whatever the budget."""
    swaps_per_booking: float = 1.0
    """The move budget of a training episode (see `PassConfig.budget`); the only pass setting
    training sets itself."""
    pass_config: PassConfig = field(default_factory=PassConfig)
    """The operator's pass settings (objective, min_improvement, max_checks, chains, ...), as
    `settings.dispatch_config().pass_config`: episodes validate and score moves exactly as the
    served pass does. Passed whole; only the budget is replaced."""
    threads: int = 1
    """Torch threads. One: the network is tiny, and on a shared 2-core machine a second OpenMP
    thread spins against other processes (measured: 2 threads ran 1.7x slower than 1)."""
    log_every: int = 100
    """Episodes per metrics line."""
    checkpoint_every: int = 1000
    rewards: RewardConfig = field(default_factory=RewardConfig)


@dataclass(frozen=True, slots=True)
class TrainResult:
    network: QNetwork
    config: TrainConfig
    episodes: int
    global_steps: int
    gradient_steps: int
    elapsed_s: float
    data_fingerprint: str
    days: int
    sources: dict[str, int]
    final_metrics: dict[str, float]

    @property
    def parameters(self) -> int:
        return parameter_count(self.network)


# ------------------------------------------------------------------ importable pieces


def linear_schedule(start_e: float, end_e: float, duration: float, t: float) -> float:
    """CleanRL's epsilon: linear from start_e to end_e over `duration`, then flat."""
    if duration <= 0:
        return end_e
    slope = (end_e - start_e) / duration
    return max(slope * t + start_e, end_e)


def td_target(
    q_network: QNetwork, target_network: QNetwork, batch: ReplayBatch, gamma: float
) -> torch.Tensor:
    """Double DQN: the online network picks a', the target network values it.

    A next state without any legal candidate contributes 0 (it is terminal in effect).
    """
    with torch.no_grad():
        mask = batch.next_mask
        # Only the legal rows go through the networks (most of the padding is empty).
        rows = batch.next_candidates[mask]
        online = torch.full(mask.shape, -torch.inf)
        online[mask] = q_network(rows)
        target = torch.zeros(mask.shape)
        target[mask] = target_network(rows)
        best = online.argmax(dim=1, keepdim=True)
        value = target.gather(1, best).squeeze(1)
        value = torch.where(mask.any(dim=1), value, torch.zeros_like(value))
        return batch.rewards + gamma * (1.0 - batch.terminated) * value


def training_days(
    seed: int,
    *,
    generated: int = 1000,
    patient: int = 500,
    sizes: Sequence[tuple[int, int]] = TRAIN_SIZES,
    cordeau: Sequence[str] = TRAIN_CORDEAU,
    extra: Sequence[Day] = (),
    rules: Rules | None = None,
    travel: TravelModel | None = None,
) -> list[Day]:
    """The training pool: generated days, patient-transport days, the training Cordeau days,
    and `extra` (recorded).

    Seeds come from `SeedSequence` streams (one per generator); any that would fall in the
    held-out seed ranges (`optimizer.heldout`) is dropped, so the two sets never meet. `rules`
    and `travel` are the operator's (`DispatchConfig`): days are built as the worker would
    build them (patient days keep their late tolerance of 0). Days whose upstream gap is
    already at the floor are left out: they have nothing to teach.
    """
    from optimizer.heldout import is_heldout_seed
    from optimizer.patient_transport import patient_days

    kw: dict[str, Any] = {"rules": rules, "travel": travel}
    days: list[Day] = []
    if generated:
        words = np.random.SeedSequence(TRAIN_SEED_BASE + seed).generate_state(generated)
        seeds = [int(w) for w in words if not is_heldout_seed(int(w))]
        days += generated_days(sizes, seeds, **kw)
    if patient:
        words = np.random.SeedSequence([TRAIN_SEED_BASE + seed, 1]).generate_state(patient)
        seeds = [int(w) for w in words if not is_heldout_seed(int(w))]
        days += patient_days(sizes, seeds, **kw)
    days += cordeau_days(cordeau, **kw) if cordeau else []
    days += list(extra)
    return [d for d in days if d.improvable]


# ------------------------------------------------------------------ the loop


def train(
    days: Sequence[Day],
    config: TrainConfig | None = None,
    *,
    run_dir: Path | None = None,
    progress: bool = False,
) -> TrainResult:
    """Train a Q-network on `days`; metrics and checkpoints go to `run_dir` when given."""
    cfg = config or TrainConfig()
    if not days:
        raise ValueError("no training days")
    started = time.perf_counter()

    # seed
    rng = np.random.default_rng(cfg.seed)
    torch.manual_seed(cfg.seed)

    with _torch_settings(cfg.threads):
        # env
        env = DispatchEnv(
            days,
            pass_config=replace(cfg.pass_config, swaps_per_booking=cfg.swaps_per_booking),
            max_actions=cfg.max_actions,
            rewards=cfg.rewards,
            max_proposals=cfg.max_proposals,
        )

        # networks
        q_network = QNetwork(N_FEATURES, cfg.hidden)
        target_network = QNetwork(N_FEATURES, cfg.hidden)
        target_network.load_state_dict(q_network.state_dict())
        optimizer = torch.optim.Adam(q_network.parameters(), lr=cfg.learning_rate)

        # buffer
        rb = ReplayBuffer(cfg.buffer_size, cfg.max_actions, N_FEATURES)

        # loop
        metrics_file = _open_metrics(run_dir)
        window: deque[dict[str, float]] = deque(maxlen=cfg.log_every)
        losses: deque[float] = deque(maxlen=200)
        q_seen: deque[float] = deque(maxlen=200)
        global_step = gradient_steps = 0
        final: dict[str, float] = {}
        obs, info = env.reset(seed=cfg.seed)
        with _progress(progress, cfg.episodes) as advance:
            for episode in range(1, cfg.episodes + 1):
                epsilon = linear_schedule(
                    cfg.start_e, cfg.end_e, cfg.exploration_fraction * cfg.episodes, episode - 1
                )
                start_gap, episodic_return, length = info["gap"], 0.0, 0
                done = not obs["action_mask"].any()
                while not done:
                    valid = np.flatnonzero(obs["action_mask"])
                    if rng.random() < epsilon:
                        action = int(valid[rng.integers(len(valid))])
                    else:
                        with torch.no_grad():
                            q = q_network(torch.from_numpy(obs["candidates"][valid]))
                        action = int(valid[int(q.argmax())])
                    next_obs, reward, terminated, truncated, info = env.step(action)
                    rb.add(
                        obs["candidates"][action],
                        reward,
                        next_obs["candidates"],
                        next_obs["action_mask"],
                        terminated,
                    )
                    obs = next_obs
                    episodic_return += reward
                    length += 1
                    global_step += 1
                    if global_step > cfg.learning_starts and global_step % cfg.train_frequency == 0:
                        batch = rb.sample(cfg.batch_size, rng)
                        y = td_target(q_network, target_network, batch, cfg.gamma)
                        q_sa = q_network(batch.features)
                        loss = F.smooth_l1_loss(q_sa, y)
                        optimizer.zero_grad()
                        loss.backward()  # type: ignore[no-untyped-call]
                        torch.nn.utils.clip_grad_norm_(q_network.parameters(), cfg.max_grad_norm)
                        optimizer.step()
                        gradient_steps += 1
                        losses.append(float(loss.detach()))
                        q_seen.append(float(q_sa.detach().mean()))
                        if gradient_steps % cfg.target_network_frequency == 0:
                            polyak_update(
                                q_network.parameters(), target_network.parameters(), cfg.tau
                            )
                    done = terminated or truncated
                window.append(
                    {
                        "gap": float(info["gap"]),
                        "initial_gap": float(start_gap),
                        "at_floor": float(info["gap"] <= info["floor"]),
                        "return": episodic_return,
                        "length": float(length),
                    }
                )
                if episode % cfg.log_every == 0 or episode == cfg.episodes:
                    elapsed = time.perf_counter() - started
                    final = _metrics_line(
                        episode,
                        global_step,
                        gradient_steps,
                        epsilon,
                        elapsed,
                        window,
                        losses,
                        q_seen,
                    )
                    if metrics_file is not None:
                        metrics_file.write(json.dumps(final) + "\n")
                        metrics_file.flush()
                if (
                    run_dir is not None
                    and cfg.checkpoint_every
                    and (episode % cfg.checkpoint_every == 0)
                ):
                    _checkpoint(run_dir, episode, q_network, target_network, optimizer, cfg)
                advance()
                obs, info = env.reset()
        if metrics_file is not None:
            metrics_file.close()

    # save: the caller registers the model (`optimizer.registry`)
    sources: dict[str, int] = {}
    for d in days:
        sources[d.source] = sources.get(d.source, 0) + 1
    return TrainResult(
        network=q_network,
        config=cfg,
        episodes=cfg.episodes,
        global_steps=global_step,
        gradient_steps=gradient_steps,
        elapsed_s=time.perf_counter() - started,
        data_fingerprint=fingerprint(days, extra=FEATURE_VERSION),
        days=len(days),
        sources=sources,
        final_metrics=final,
    )


def config_dict(cfg: TrainConfig) -> dict[str, Any]:
    """The config as plain JSON-able values (for the model metadata)."""
    out = asdict(cfg)
    out["hidden"] = list(cfg.hidden)
    # tuples -> lists, anything unusual -> its text: the metadata must stay plain JSON
    doc: dict[str, Any] = json.loads(json.dumps(out, default=str))
    return doc


# ------------------------------------------------------------------ helpers


def _metrics_line(
    episode: int,
    global_step: int,
    gradient_steps: int,
    epsilon: float,
    elapsed: float,
    window: deque[dict[str, float]],
    losses: deque[float],
    q_seen: deque[float],
) -> dict[str, float]:
    def mean(key: str) -> float:
        return float(np.mean([w[key] for w in window])) if window else math.nan

    return {
        "episode": episode,
        "global_step": global_step,
        "charts/mean_gap": round(mean("gap"), 4),
        "charts/mean_initial_gap": round(mean("initial_gap"), 4),
        "charts/at_floor": round(mean("at_floor"), 4),
        "charts/episodic_return": round(mean("return"), 4),
        "charts/episodic_length": round(mean("length"), 3),
        "charts/epsilon": round(epsilon, 4),
        "charts/SPS": round(global_step / max(elapsed, 1e-9), 1),
        "losses/td_loss": round(float(np.mean(losses)), 6) if losses else math.nan,
        "losses/q_values": round(float(np.mean(q_seen)), 4) if q_seen else math.nan,
        "losses/gradient_steps": gradient_steps,
        "time/elapsed_s": round(elapsed, 2),
    }


def _open_metrics(run_dir: Path | None) -> IO[str] | None:
    if run_dir is None:
        return None
    run_dir.mkdir(parents=True, exist_ok=True)
    return (run_dir / "metrics.jsonl").open("w")


def _checkpoint(
    run_dir: Path,
    episode: int,
    q_network: QNetwork,
    target_network: QNetwork,
    optimizer: torch.optim.Optimizer,
    cfg: TrainConfig,
) -> None:
    folder = run_dir / "checkpoints"
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(
        {
            "episode": episode,
            "q_network": q_network.state_dict(),
            "target_network": target_network.state_dict(),
            "optimizer": optimizer.state_dict(),
            "config": config_dict(cfg),
        },
        folder / f"episode-{episode:06d}.pt",
    )


@contextlib.contextmanager
def _torch_settings(threads: int) -> Iterator[None]:
    """Deterministic algorithms and a fixed thread count for the run, restored afterwards."""
    old_threads = torch.get_num_threads()
    old_det = torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(max(1, threads))
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(old_det)
        torch.set_num_threads(old_threads)


@contextlib.contextmanager
def _progress(enabled: bool, total: int) -> Iterator[Any]:
    if not enabled:
        yield lambda: None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (
        TextColumn("training"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, transient=False) as bar:
        task = bar.add_task("episodes", total=total)
        yield lambda: bar.advance(task)
