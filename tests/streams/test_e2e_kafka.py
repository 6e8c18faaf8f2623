"""End to end against a real Kafka broker: the worker (optimizer agent + dataset writer) in
process, fed with aiokafka, its outputs read back from the topics.

Each test (or module fixture) has its own topics, app id and consumer groups.
"""

from __future__ import annotations

import base64
import json
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from optimizer.dispatch import optimize_event
from optimizer.generate import generate_days
from optimizer.moves import Candidates
from optimizer.policy import GreedyPolicy
from optimizer.serving import StaticPolicyProvider
from optimizer.swap_pass import SearchState
from schemas import DeadLetter, HeuristicDone, Optimized, SwapAudit
from streams.dataset import dataset_stats, iter_records
from streams.settings import Settings
from streams.topics import ensure_topics
from streams.worker import keyed, publish_events, running_worker
from tests.streams.conftest import cli_env, dataset_caught_up, read_topic, run_cli, unique_settings

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(300)]

SIZES = [(10, 3), (20, 4), (40, 6)]
ROOT = Path(__file__).resolve().parents[2]


def _unique(records: list[Any], model: type[Any]) -> dict[str, Any]:
    """Decoded events by event id (the first of any duplicates)."""
    out: dict[str, Any] = {}
    for r in records:
        ev = model.model_validate_json(r.value)
        out.setdefault(ev.event_id, ev)
    return out


def _distinct_ids(n: int) -> Callable[[list[Any]], bool]:
    def done(records: list[Any]) -> bool:
        return len({json.loads(r.value)["event_id"] for r in records}) >= n

    return done


def _malformed(template: HeuristicDone) -> list[bytes]:
    """20 bad inputs, 4 of each kind: not JSON, wrong types, unknown booking, NaN, oversize."""
    doc = json.loads(template.model_dump_json())
    out: list[bytes] = [
        b"this is not json",
        b"\xff\xfe\x00binary",
        b'{"event_id": "truncated", "drivers": [',
        b"<xml>nope</xml>",
    ]
    for field, value in [
        ("drivers", "three"),
        ("service_date", 12),
        ("produced_at", True),
        ("mode", ["auto"]),
    ]:
        bad = {**doc, field: value}
        out.append(json.dumps(bad).encode())
    for i in range(4):
        bad = json.loads(json.dumps(doc))
        bad["event_id"] = bad["dispatch_id"] = f"ghost-{i}"
        bad["assignments"][i]["booking_id"] = f"no-such-booking-{i}"
        out.append(json.dumps(bad).encode())
    for i in range(4):
        bad = json.loads(json.dumps(doc))
        bad["event_id"] = bad["dispatch_id"] = f"nan-{i}"
        bad["bookings"][i]["pickup"]["lat"] = float("nan")
        out.append(json.dumps(bad).encode())  # json.dumps writes the NaN literal
    for i in range(4):
        bad = json.loads(json.dumps(doc))
        bad["event_id"] = bad["dispatch_id"] = f"huge-{i}"
        base = bad["bookings"][0]
        bad["bookings"] = [{**base, "booking_id": f"b{j}"} for j in range(2001)]
        bad["assignments"] = []
        out.append(json.dumps(bad).encode())
    assert len(set(out)) == 20
    return out


def _replay(day: HeuristicDone, audits: list[SwapAudit]) -> dict[str, str]:
    """The heuristic assignment with the accepted audits applied in sequence order."""
    assignment = {a.booking_id: a.driver_id for a in day.assignments}
    for audit in sorted(audits, key=lambda a: a.sequence):
        if audit.decision != "accepted":
            continue
        for step in audit.steps:
            assert assignment.get(step.booking_id) == step.from_driver, (day.dispatch_id, step)
            assignment[step.booking_id] = step.to_driver
    return assignment


# ------------------------------------------------------------------ 200 valid + 20 malformed


@dataclass
class BigRun:
    days: list[HeuristicDone]
    malformed: list[bytes]
    optimized_records: list[Any]
    dead_letter_records: list[Any]
    audit_records: list[Any]
    after_bad_input: Optimized | None
    failure: BaseException | None
    dataset_dir: Path


@pytest.fixture(scope="module")
async def big_run(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> BigRun:
    """200 valid days and 20 malformed ones published in one go through one worker."""
    settings = unique_settings(kafka_bootstrap, tmp_path_factory.mktemp("big"))
    days = generate_days(200, SIZES, seed=20251022)
    malformed = _malformed(days[0])
    payloads: list[tuple[bytes | None, bytes]] = []
    good = keyed(days)
    for i in range(200):
        payloads.append(good[i])
        if i % 10 == 9:
            payloads.append((f"bad-{i // 10}".encode(), malformed[i // 10]))

    async with running_worker(settings) as worker:
        await publish_events(settings, payloads)
        optimized = await read_topic(
            settings, settings.topic_optimized, done=_distinct_ids(200), timeout=180, linger=3
        )
        dead = await read_topic(
            settings, settings.topic_dead_letter, done=lambda r: len(r) >= 20, timeout=60, linger=1
        )
        # The agent still serves after all that bad input.
        probe = generate_days(1, [(12, 3)], seed=99)[0]
        probe = probe.model_copy(update={"event_id": "evt-probe", "dispatch_id": "dsp-probe"})
        await publish_events(settings, keyed([probe]))
        more = await read_topic(
            settings,
            settings.topic_optimized,
            done=lambda rs: any(r.key == b"dsp-probe" for r in rs),
            timeout=60,
        )
        after = next(
            (Optimized.model_validate_json(r.value) for r in more if r.key == b"dsp-probe"), None
        )
        unique = _unique(optimized, Optimized)
        n_audits = sum(o.moves_proposed for o in unique.values())
        audits = await read_topic(
            settings, settings.topic_audit, done=_distinct_ids(n_audits), timeout=60
        )
        await dataset_caught_up(settings)
        failure = worker.failed()
    return BigRun(days, malformed, optimized, dead, audits, after, failure, settings.dataset_dir)


def test_every_valid_day_yields_exactly_one_optimized(big_run: BigRun) -> None:
    """200 valid days -> 200 distinct Optimized, one per dispatch (after de-dup by event id)."""
    unique = _unique(big_run.optimized_records, Optimized)
    per_dispatch = Counter(o.dispatch_id for o in unique.values())
    assert set(per_dispatch) == {d.dispatch_id for d in big_run.days}
    assert set(per_dispatch.values()) == {1}
    duplicates = len(big_run.optimized_records) - len(unique)
    print(
        f"\n[e2e] Optimized records: {len(big_run.optimized_records)}, distinct: "
        f"{len(unique)}, duplicates seen: {duplicates}; statuses: "
        f"{dict(Counter(o.status for o in unique.values()))}"
    )
    for r in big_run.optimized_records:
        assert r.key == json.loads(r.value)["dispatch_id"].encode()


def test_every_malformed_day_yields_one_dead_letter_with_its_bytes(big_run: BigRun) -> None:
    """20 malformed inputs -> 20 DeadLetters, each carrying its original bytes and errors."""
    letters = [DeadLetter.model_validate_json(r.value) for r in big_run.dead_letter_records]
    originals = Counter(base64.b64decode(d.value_b64) for d in letters)
    assert originals == Counter(big_run.malformed)
    kinds = Counter(e.type for d in letters for e in d.errors[:1])
    assert kinds["json_invalid"] >= 4
    assert all(d.errors for d in letters)
    assert all(d.source_offset >= 0 for d in letters)


def test_agent_keeps_running_after_bad_input(big_run: BigRun) -> None:
    """A day published after all the bad input is still optimized; nothing crashed."""
    assert big_run.failure is None
    assert big_run.after_bad_input is not None
    assert big_run.after_bad_input.status in {"optimized", "unchanged"}


def test_replaying_accepted_audits_reproduces_the_assignment(big_run: BigRun) -> None:
    """For every Optimized, its accepted SwapAudits applied to the input give its assignments."""
    by_id = {d.dispatch_id: d for d in big_run.days}
    audits: dict[str, list[SwapAudit]] = {}
    for a in _unique(big_run.audit_records, SwapAudit).values():
        audits.setdefault(a.dispatch_id, []).append(a)
    improved = 0
    for opt in _unique(big_run.optimized_records, Optimized).values():
        mine = audits.get(opt.dispatch_id, [])
        assert len(mine) == opt.moves_proposed
        assert sum(a.decision == "accepted" for a in mine) == opt.moves_accepted
        replayed = _replay(by_id[opt.dispatch_id], mine)
        assert replayed == {a.booking_id: a.driver_id for a in opt.assignments}
        improved += opt.moves_accepted > 0
    assert improved > 100  # the generated days are unbalanced: most get moves


def test_dataset_holds_every_dispatch_and_outcome_once(big_run: BigRun) -> None:
    """The dataset writer recorded each valid day and its outcome once; bad input is skipped."""
    stats = dataset_stats(big_run.dataset_dir)
    assert stats.dispatches == stats.outcomes == stats.matched == 201
    assert stats.duplicate_records == 0


# ------------------------------------------------------------------ restart and re-publish


async def test_dataset_is_idempotent_across_restart_and_republish(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """After a worker restart and a re-publish of the same days, each dispatch_id is in the
    dataset once (one input record and one outcome record)."""
    settings = unique_settings(kafka_bootstrap, tmp_path)
    days = generate_days(30, SIZES, seed=7)
    async with running_worker(settings):
        await publish_events(settings, keyed(days))
        await read_topic(settings, settings.topic_optimized, done=_distinct_ids(30))
        await dataset_caught_up(settings)
    async with running_worker(settings) as worker:  # same groups: a restart
        await publish_events(settings, keyed(days))
        records = await read_topic(
            settings, settings.topic_optimized, done=lambda rs: len(rs) >= 60
        )
        await dataset_caught_up(settings)
        assert worker.writer is not None and worker.writer.duplicates == 60
    assert len(records) == 60  # every re-published day optimized again, same event id
    assert len(_unique(records, Optimized)) == 30
    kinds = Counter((r["kind"], r["dispatch_id"]) for r in iter_records(settings.dataset_dir))
    assert set(kinds.values()) == {1}
    assert len(kinds) == 60


# ------------------------------------------------------------------ fallback and disabled


class FailingPolicy:
    version = "failing-test"

    def score(self, state: SearchState, candidates: Candidates) -> Any:
        raise RuntimeError("forced failure")


async def _run_days(settings: Settings, days: list[HeuristicDone], **kw: Any) -> list[Optimized]:
    async with running_worker(settings, dataset=False, **kw) as worker:
        await publish_events(settings, keyed(days))
        records = await read_topic(
            settings, settings.topic_optimized, done=_distinct_ids(len(days))
        )
        assert worker.failed() is None
    return list(_unique(records, Optimized).values())


async def test_failing_optimizer_still_yields_fallback_for_every_day(
    kafka_bootstrap: str, tmp_path: Path, plain_tracebacks: None
) -> None:
    """With the policy raising, every day gets status fallback and the heuristic assignment.

    Only days whose ride counts the pass must balance: a day already at the fairness target
    never consults the policy (its cost phase ranks moves on its own), so it is (rightly) not a
    fallback even with a broken policy.
    """
    settings = unique_settings(kafka_bootstrap, tmp_path)

    def balanced_by_policy(day: HeuristicDone) -> bool:
        result = optimize_event(day, GreedyPolicy()).result
        return result is not None and result.steps > 0  # fairness steps: the policy ranked

    days = [d for d in generate_days(24, SIZES, seed=11) if balanced_by_policy(d)][:20]
    assert len(days) >= 15
    outs = await _run_days(settings, days, provider=StaticPolicyProvider(FailingPolicy()))
    by_id = {d.dispatch_id: d for d in days}
    assert {o.dispatch_id for o in outs} == set(by_id)
    for o in outs:
        assert o.status == "fallback", o.reason
        assert set(o.assignments) == set(by_id[o.dispatch_id].assignments)


async def test_disabled_passes_every_dispatch_through(kafka_bootstrap: str, tmp_path: Path) -> None:
    """enabled=false: every dispatch comes out with status disabled and its own assignment."""
    settings = unique_settings(kafka_bootstrap, tmp_path, enabled=False)
    days = generate_days(20, SIZES, seed=12)
    outs = await _run_days(settings, days)
    by_id = {d.dispatch_id: d for d in days}
    assert {o.dispatch_id for o in outs} == set(by_id)
    for o in outs:
        assert o.status == "disabled"
        assert set(o.assignments) == set(by_id[o.dispatch_id].assignments)
        assert o.moves_proposed == 0


# ------------------------------------------------------------------ the CLI entry points


async def test_cli_run_publish_and_dataset_stats(
    kafka_bootstrap: str, tmp_path: Path, seed_day: HeuristicDone
) -> None:
    """`run` serves what `publish` sends, logs each accepted move with its dispatch_id, stops
    cleanly on SIGTERM; `dataset stats` then counts the day."""
    settings = unique_settings(kafka_bootstrap, tmp_path)
    env = cli_env(settings)
    day_file = tmp_path / "day.json"
    day_file.write_bytes(seed_day.model_dump_json().encode())
    log_file = (tmp_path / "run.log").open("wb")
    run = subprocess.Popen(
        [sys.executable, "-m", "streams.cli", "run"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=log_file,
    )
    try:
        await ensure_topics(settings)
        code, out, err = await run_cli(env, "publish", str(day_file))
        assert code == 0, err
        assert "published 1 day" in out
        records = await read_topic(
            settings, settings.topic_optimized, done=lambda rs: len(rs) >= 1, timeout=90
        )
        assert Optimized.model_validate_json(records[0].value).status == "optimized"
        await dataset_caught_up(settings, timeout=90)
    finally:
        run.send_signal(signal.SIGTERM)
        assert run.wait(60) == 0
        log_file.close()
    events = [
        json.loads(line)
        for line in (tmp_path / "run.log").read_text().splitlines()
        if line.startswith("{")
    ]
    moves = [e for e in events if e.get("event") == "move_accepted"]
    assert moves and all(e["dispatch_id"] == seed_day.dispatch_id for e in moves)
    assert {"gap_before", "gap_after", "delta"} <= moves[0].keys()
    assert any(e.get("event") == "pass_started" and "initial_gap" in e for e in events)

    code, out, err = await run_cli(env, "dataset", "stats")
    assert code == 0, err
    assert "dispatches (heuristic_done): 1" in out
    assert "matched to a dispatch: 1" in out


async def test_cli_demo_prints_each_result_with_bars(kafka_bootstrap: str, tmp_path: Path) -> None:
    """`demo` runs the worker, publishes the seed day and generated days, prints the bars."""
    env = cli_env(unique_settings(kafka_bootstrap, tmp_path))
    code, out, err = await run_cli(env, "demo", "--days", "1")
    assert code == 0, err
    assert "dsp-seed-2025-10-22" in out and "gap 3 -> 1" in out
    assert out.count(": optimized (") == 2
    assert "driver-a :   5 rides █████" in out
