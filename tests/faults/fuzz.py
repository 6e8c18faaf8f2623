"""Fuzzed worker input: hypothesis mutations of valid days, raw bytes, size edges, absurd dates.

`fuzz_inputs(n)` builds a deterministic list of `FuzzInput`s. Each says what the worker must
do with it: `expect="optimized"` (a valid day: one Optimized) or `expect="dead_letter"` (one
DeadLetter), judged by the service's own validator (`codec.decode_heuristic_done` with the
default limits) except for the absurd dates, which the issue requires to be dead-lettered
whatever the schema says today, and for inputs over the topic's size limit, which the broker
must refuse at produce time (`expect="refused"`).
"""

from __future__ import annotations

import itertools
import json
import random
from dataclasses import dataclass
from typing import Any, Literal

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from optimizer.generate import generate_days
from schemas import HeuristicDone
from streams import codec
from streams.topics import MAX_MESSAGE_BYTES

Expect = Literal["optimized", "dead_letter", "refused"]
_IDS = itertools.count()


@dataclass(frozen=True, slots=True)
class FuzzInput:
    kind: str
    """Which generator made it (for the report)."""
    key: bytes | None
    value: bytes | None
    expect: Expect


# ------------------------------------------------------------------ hypothesis mutations

_JSON_LEAF = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
    | st.sampled_from(["", "auto", "2026-01-05", "0001-01-01T00:00:00Z", "9999-12-31", "NaN"])
)
_JSON = st.recursive(
    _JSON_LEAF,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=8,
)


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a value inside `doc` (dict keys and list indexes)."""
    out = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += _paths(v, (*prefix, i))
    return out


def _set(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    parent = doc
    for p in path[:-1]:
        parent = parent[p]
    parent[path[-1]] = value
    return doc


def _delete(doc: Any, path: tuple[Any, ...]) -> Any:
    if not path:
        return {}
    parent = doc
    for p in path[:-1]:
        parent = parent[p]
    del parent[path[-1]]
    return doc


@st.composite
def mutated_day(draw: st.DrawFn, templates: list[dict[str, Any]]) -> bytes:
    """A valid day's JSON with one to three mutations: a value replaced by arbitrary JSON, a
    key or list item deleted, an unknown key added, a list item duplicated, a string
    lengthened."""
    doc = json.loads(json.dumps(draw(st.sampled_from(templates))))
    # fresh ids first, so a mutation that stays valid is still its own dispatch
    doc["event_id"] = doc["dispatch_id"] = f"fz-{next(_IDS)}"
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(doc)
        path = draw(st.sampled_from(paths))
        op = draw(st.sampled_from(["replace", "delete", "add_key", "duplicate", "long_string"]))
        target: Any = doc
        for p in path:
            target = target[p]
        if op == "replace":
            doc = _set(doc, path, draw(_JSON))
        elif op == "delete" and path:
            doc = _delete(doc, path)
        elif op == "add_key" and isinstance(target, dict):
            target[draw(st.text(min_size=1, max_size=10))] = draw(_JSON_LEAF)
        elif op == "duplicate" and isinstance(target, list) and target:
            target.append(json.loads(json.dumps(target[0])))
        elif op == "long_string" and isinstance(target, str):
            doc = _set(doc, path, target * draw(st.integers(2, 200)))
        if not isinstance(doc, dict | list):
            break
    return json.dumps(doc).encode()


def _draw_all(strategy: st.SearchStrategy[bytes], n: int, seed: int) -> list[bytes]:
    """`n` examples of `strategy`, deterministic for `seed` (hypothesis as a generator: the
    inner test only collects, it never fails)."""
    out: list[bytes] = []

    @settings(
        max_examples=n,
        database=None,
        derandomize=True,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def collect(value: bytes) -> None:
        out.append(value)

    random.seed(seed)
    collect()
    return out[:n]


# ------------------------------------------------------------------ raw bytes


def _raw_bytes(
    rng: random.Random, templates: list[bytes], n: int
) -> list[tuple[str, bytes | None]]:
    out: list[tuple[str, bytes | None]] = []
    makers = [
        ("random_bytes", lambda: rng.randbytes(rng.randint(0, 3000))),
        ("truncated_json", lambda: (t := rng.choice(templates))[: rng.randint(0, len(t) - 1)]),
        ("bit_flip", lambda: _flip(rng, rng.choice(templates))),
        ("trailing_garbage", lambda: rng.choice(templates) + rng.randbytes(rng.randint(1, 20))),
        ("deep_nesting", lambda: b"[" * rng.randint(1000, 200000) + b"]" * rng.randint(0, 10)),
        ("huge_number", lambda: b'{"event_id": ' + b"9" * rng.randint(100, 100000) + b"}"),
        ("bom_prefixed", lambda: b"\xef\xbb\xbf" + rng.choice(templates)),
        ("utf16", lambda: rng.choice(templates).decode().encode("utf-16")),
        ("empty", lambda: b""),
        ("tombstone", lambda: None),
        ("json_scalar", lambda: rng.choice([b"null", b"0", b"true", b'"x"', b"[]", b"{}"])),
    ]
    for i in range(n):
        kind, make = makers[i % len(makers)]
        out.append((kind, make()))
    return out


def _flip(rng: random.Random, data: bytes) -> bytes:
    b = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        i = rng.randrange(len(b))
        b[i] ^= 1 << rng.randrange(8)
    return bytes(b)


# ------------------------------------------------------------------ edges


def _absurd_dates(day: HeuristicDone, i: int) -> list[bytes]:
    """Schema-valid days whose dates are absurd: year 1 and year 9999."""
    doc = json.loads(day.model_dump_json())
    out = []
    for year, tag in ((1, "y0001"), (9999, "y9999")):
        d = json.loads(json.dumps(doc))
        d["event_id"] = d["dispatch_id"] = f"absurd-{tag}-{i}"
        d["service_date"] = f"{year:04d}-06-15"
        for b in d["bookings"]:
            b["pickup_earliest"] = f"{year:04d}-06-15T08:00:00Z"
            b["pickup_latest"] = f"{year:04d}-06-15T08:30:00Z"
        for drv in d["drivers"]:
            drv["shift_start"] = f"{year:04d}-06-15T06:00:00Z"
            drv["shift_end"] = f"{year:04d}-06-15T20:00:00Z"
        out.append(json.dumps(d).encode())
    return out


def size_edges(record_overhead: int = 200) -> list[tuple[str, bytes, Expect]]:
    """Values 1 KiB under the topic limit, at it (the largest the broker takes, less the
    record's own overhead), and over it (the broker must refuse that one at produce)."""

    def blob(size: int, tag: str) -> bytes:
        head = f'{{"event_id": "size-{tag}", "padding": "'.encode()
        return head + b"x" * (size - len(head) - 2) + b'"}'

    return [
        ("size_limit_minus_1k", blob(MAX_MESSAGE_BYTES - 1024, "minus-1k"), "dead_letter"),
        ("size_at_limit", blob(MAX_MESSAGE_BYTES - record_overhead, "at-limit"), "dead_letter"),
        ("size_over_limit", blob(MAX_MESSAGE_BYTES + 1024, "over"), "refused"),
    ]


# ------------------------------------------------------------------ the whole set


def fuzz_inputs(
    total: int = 10_050, valid: int = 1_000, *, seed: int = 9, absurd: int = 20
) -> list[FuzzInput]:
    """`total` inputs: `valid` generated days interleaved with malformed ones (hypothesis
    mutations, hypothesis binaries, raw-byte kinds, absurd dates, size edges)."""
    rng = random.Random(seed)
    days = generate_days(valid + absurd, [(10, 3), (6, 2), (20, 4)], seed=seed)
    good, spare = days[:valid], days[valid:]
    templates = [json.loads(d.model_dump_json()) for d in good[:20]]
    template_bytes = [json.dumps(t).encode() for t in templates]

    bad: list[tuple[str, bytes | None, Expect | None]] = []
    for i, d in enumerate(spare[: absurd // 2]):
        bad += [("absurd_date", v, "dead_letter") for v in _absurd_dates(d, i)]
    bad += [(k, v, e) for k, v, e in size_edges()]
    remaining = total - valid - len(bad)
    # hypothesis mutations cost ~5-10 ms each (path enumeration on a whole day); the raw
    # kinds are cheap, so they make up the bulk
    n_mut = remaining * 20 // 100
    n_bin = remaining * 10 // 100
    n_raw = remaining - n_mut - n_bin
    for v in _draw_all(mutated_day(templates), n_mut, seed):
        bad.append(("hypothesis_mutation", v, None))
    bad += [
        ("hypothesis_binary", v, None) for v in _draw_all(st.binary(max_size=4000), n_bin, seed)
    ]
    bad += [(k, v, None) for k, v in _raw_bytes(rng, template_bytes, n_raw)]
    rng.shuffle(bad)

    out: list[FuzzInput] = []
    seen_ids = {d.dispatch_id for d in good}
    step = max(1, len(bad) // max(1, valid))
    gi = iter(good)
    for i, (kind, value, expect) in enumerate(bad):
        if i % step == 0:
            day = next(gi, None)
            if day is not None:
                out.append(
                    FuzzInput("valid_day", day.dispatch_id.encode(), codec.encode(day), "optimized")
                )
        if expect is None:
            decoded = codec.decode_heuristic_done(value)
            if isinstance(decoded, HeuristicDone):
                if decoded.dispatch_id in seen_ids:
                    continue  # a mutation that collides with another dispatch: not a test case
                seen_ids.add(decoded.dispatch_id)
                expect = "optimized"
            else:
                expect = "dead_letter"
        out.append(FuzzInput(kind, f"fuzz-{i}".encode(), value, expect))
    out += [
        FuzzInput("valid_day", d.dispatch_id.encode(), codec.encode(d), "optimized") for d in gi
    ]
    return out
