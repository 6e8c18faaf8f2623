"""The published contract: the AsyncAPI 3 document and the JSON Schema files stay true."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from pydantic import BaseModel
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7, DRAFT202012

from optimizer.dispatch import optimize_event
from optimizer.policy import GreedyPolicy
from optimizer.seed import seed_day
from schemas import DeadLetter, ErrorDetail
from schemas.asyncapi import ASYNCAPI_PATH, asyncapi_document, render_asyncapi
from schemas.jsonschema import EVENT_MODELS, JSON_DIR, schema_id

OFFICIAL_SCHEMA = Path(__file__).parent / "data" / "asyncapi-3.0.0.schema.json"
DOC_URI = "urn:test:asyncapi"
TOPICS = {
    "dispatch.heuristic_done": ("receive", "HeuristicDone"),
    "dispatch.optimized": ("send", "Optimized"),
    "dispatch.swap_audit": ("send", "SwapAudit"),
    "dispatch.dead_letter": ("send", "DeadLetter"),
}


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    """The checked-in AsyncAPI document, parsed."""
    return dict(json.loads(ASYNCAPI_PATH.read_text()))


@pytest.fixture(scope="module")
def sample_events() -> dict[str, BaseModel]:
    """One real event of each kind: the seed day, its optimized result and an audit, a DLQ."""
    day = seed_day()
    outcome = optimize_event(day, GreedyPolicy())
    assert outcome.audits, "the seed day yields audits"
    dead = DeadLetter(
        event_id="dlq:dispatch.heuristic_done:0:7",
        source_topic="dispatch.heuristic_done",
        source_partition=0,
        source_offset=7,
        key_b64=base64.b64encode(b"d1").decode(),
        value_b64=base64.b64encode(b"{not json").decode(),
        errors=(ErrorDetail(loc=("drivers", 0), msg="Field required", type="missing"),),
        at=datetime(2026, 1, 5, tzinfo=UTC),
    )
    return {
        "HeuristicDone": day,
        "Optimized": outcome.optimized,
        "SwapAudit": outcome.audits[0],
        "DeadLetter": dead,
    }


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "$ref" and isinstance(v, str):
                yield v
            else:
                yield from _refs(v)
    elif isinstance(node, list):
        for v in node:
            yield from _refs(v)


def _pointer(doc: Any, ref: str) -> Any:
    assert ref.startswith("#/"), f"{ref}: not a local reference"
    node = doc
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    if isinstance(node, dict) and set(node) == {"$ref"}:  # a reference object: follow it
        return _pointer(doc, node["$ref"])
    return node


def _payload_validator(document: dict[str, Any], message: str) -> jsonschema.Draft7Validator:
    # AsyncAPI's default schema format is a superset of JSON Schema draft 7.
    registry: Registry[Any] = Registry().with_resource(
        DOC_URI, Resource.from_contents(document, default_specification=DRAFT7)
    )
    payload = document["components"]["messages"][message]["payload"]
    return jsonschema.Draft7Validator(
        {"$ref": DOC_URI + payload["$ref"]},
        registry=registry,
        format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER,
    )


def test_asyncapi_document_is_current() -> None:
    """schemas/asyncapi.json equals what the models give (run `python -m schemas.jsonschema`)."""
    assert ASYNCAPI_PATH.exists(), f"missing {ASYNCAPI_PATH}"
    assert ASYNCAPI_PATH.read_text() == render_asyncapi(), (
        f"{ASYNCAPI_PATH} is stale: run python -m schemas.jsonschema"
    )


def test_asyncapi_document_is_valid_asyncapi_3(document: dict[str, Any]) -> None:
    """The document validates against the official AsyncAPI 3.0.0 JSON Schema."""
    official = json.loads(OFFICIAL_SCHEMA.read_text())
    errors = sorted(
        jsonschema.Draft7Validator(official).iter_errors(document), key=lambda e: e.json_path
    )
    assert not errors, "\n".join(f"{e.json_path}: {e.message[:300]}" for e in errors[:10])


def test_official_schema_check_can_fail(document: dict[str, Any]) -> None:
    """The official-schema check rejects a broken operation (so the check above means something)."""
    official = json.loads(OFFICIAL_SCHEMA.read_text())
    broken = json.loads(json.dumps(document))
    next(iter(broken["operations"].values()))["action"] = "publish"  # AsyncAPI 2 wording
    assert list(jsonschema.Draft7Validator(official).iter_errors(broken))


def test_asyncapi_describes_the_four_topics(document: dict[str, Any]) -> None:
    """asyncapi 3.0.0; one channel per topic; the service receives the input, sends the rest."""
    assert document["asyncapi"] == "3.0.0"
    by_address = {ch["address"]: cid for cid, ch in document["channels"].items()}
    assert set(by_address) == set(TOPICS)
    seen = set()
    for op in document["operations"].values():
        channel = _pointer(document, op["channel"]["$ref"])
        action, message = TOPICS[channel["address"]]
        assert op["action"] == action, channel["address"]
        [msg_ref] = op["messages"]
        assert msg_ref["$ref"].startswith(op["channel"]["$ref"] + "/messages/")
        assert _pointer(document, msg_ref["$ref"])["name"] == message
        seen.add(channel["address"])
    assert seen == set(TOPICS)
    messages = document["components"]["messages"]
    assert set(messages) == {m for _, m in TOPICS.values()}
    for name, msg in messages.items():
        assert msg["contentType"] == "application/json"
        assert msg["bindings"]["kafka"]["key"]["type"] == "string"
        payload = _pointer(document, msg["payload"]["$ref"])
        assert payload["type"] == "object" and payload["properties"], name


def test_every_reference_resolves(document: dict[str, Any]) -> None:
    """Every $ref in the document points inside it, at something that exists."""
    refs = set(_refs(document))
    assert len(refs) > 20
    for ref in refs:
        _pointer(document, ref)


def test_payload_schemas_accept_real_events(
    document: dict[str, Any], sample_events: dict[str, BaseModel]
) -> None:
    """Events the service really produces validate against the document's payload schemas."""
    for message, event in sample_events.items():
        instance = json.loads(event.model_dump_json())
        errors = list(_payload_validator(document, message).iter_errors(instance))
        assert not errors, f"{message}: {[e.message for e in errors[:3]]}"


def test_payload_schemas_reject_what_the_models_reject(
    document: dict[str, Any], sample_events: dict[str, BaseModel]
) -> None:
    """An unknown field, a wrong enum value and a missing field fail the payload schemas."""
    opt = json.loads(sample_events["Optimized"].model_dump_json())
    validator = _payload_validator(document, "Optimized")
    assert not validator.is_valid(opt | {"surprise": 1})
    assert not validator.is_valid(opt | {"status": "maybe"})
    assert not validator.is_valid({k: v for k, v in opt.items() if k != "dispatch_id"})
    audit = json.loads(sample_events["SwapAudit"].model_dump_json())
    audit["steps"][0]["to_driver"] = "not an id!"
    assert not _payload_validator(document, "SwapAudit").is_valid(audit)


def test_asyncapi_schemas_are_draft7_compatible(document: dict[str, Any]) -> None:
    """No 2020-12-only keyword hides in the payloads (AsyncAPI schemas are draft 7 based)."""
    text = json.dumps(document["components"]["schemas"])
    for keyword in ("prefixItems", "$defs", "unevaluatedProperties", "$dynamicRef"):
        assert keyword not in text


def test_json_schema_files_carry_id_and_dialect(sample_events: dict[str, BaseModel]) -> None:
    """Each schemas/json file has $schema and a versioned $id, and accepts a real event."""
    names = {model.__name__: name for name, model in EVENT_MODELS.items()}
    for message, event in sample_events.items():
        name = names[message]
        schema = json.loads((JSON_DIR / f"{name}.schema.json").read_text())
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert schema["$id"] == schema_id(name) == f"urn:dispatch-rl:event:{name}:v1"
        registry: Registry[Any] = Registry().with_resource(
            schema["$id"], Resource.from_contents(schema, default_specification=DRAFT202012)
        )
        validator = jsonschema.Draft202012Validator(schema, registry=registry)
        instance = json.loads(event.model_dump_json())
        assert not list(validator.iter_errors(instance)), name
        assert not validator.is_valid(instance | {"surprise": 1}), name


def _object_schemas(node: Any, path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(node, dict):
        if isinstance(node.get("properties"), dict):
            yield path, node
        for k, v in node.items():
            yield from _object_schemas(v, f"{path}/{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _object_schemas(v, f"{path}/{i}")


def test_every_field_is_described(document: dict[str, Any]) -> None:
    """Every property of every event (nested objects included) has a description."""
    missing = [
        f"{path}.{prop}"
        for path, obj in _object_schemas(document["components"]["schemas"], "")
        for prop, sub in obj["properties"].items()
        if not str(sub.get("description", "")).strip()
    ]
    assert not missing, f"add Field(description=...) to: {missing}"
    undocumented = [
        name
        for name, schema in asyncapi_document()["components"]["schemas"].items()
        if not schema.get("description")
    ]
    assert not undocumented, f"add a docstring to: {undocumented}"
