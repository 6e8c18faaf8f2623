"""The event contract as an AsyncAPI 3.0 document, generated from the pydantic models.

`render_asyncapi()` describes the dispatch-rl service as AsyncAPI sees an application: the four
topics (channels), what the service does on each (operations: it receives
`dispatch.heuristic_done` and sends the other three), and each message with its Kafka key and
its payload schema. The payload schemas are the models' JSON Schemas, the same as the files in
`schemas/json/`, gathered under `components.schemas` so that every `$ref` resolves inside the one
document. `python -m schemas.jsonschema` writes it to `schemas/asyncapi.json`; a test fails when
the checked-in file is stale and validates it against the official AsyncAPI 3.0.0 JSON Schema.

The topic names are the defaults; a deployment may rename them (`DISPATCH_RL_TOPIC_*`).
"""

from __future__ import annotations

import inspect
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from schemas.events import SCHEMA_VERSION
from schemas.jsonschema import EVENT_MODELS, schema_id

ASYNCAPI_PATH = Path(__file__).parent / "asyncapi.json"
ASYNCAPI_VERSION = "3.0.0"
KAFKA_BINDING_VERSION = "0.5.0"
_SCHEMAS = "#/components/schemas/"


@dataclass(frozen=True, slots=True)
class _Channel:
    name: str
    """Key of `EVENT_MODELS`."""
    address: str
    action: str
    """What the service does on the topic: `receive` or `send`."""
    summary: str


_CHANNELS = (
    _Channel(
        "heuristic_done",
        "dispatch.heuristic_done",
        "receive",
        "The upstream dispatch system's plan for one company and service date. The optimizer "
        "agent, the dataset writer and the audit store each read it in their own consumer group.",
    ),
    _Channel(
        "optimized",
        "dispatch.optimized",
        "send",
        "The optimized plan of every input dispatch (or the input's own plan, with a status "
        "saying why): always feasible, never worse on the objective. Sent only after every "
        "swap audit of the dispatch is acknowledged by the broker.",
    ),
    _Channel(
        "swap_audit",
        "dispatch.swap_audit",
        "send",
        "One event per move the optimizer checked, accepted or rejected, with a "
        "machine-readable reason. Kept indefinitely for auditors.",
    ),
    _Channel(
        "dead_letter",
        "dispatch.dead_letter",
        "send",
        "Input the service could not decode or validate: the original bytes verbatim, where "
        "they came from, and every validation error. Bad input never stops the agent.",
    ),
)

_DESCRIPTION = """\
dispatch-rl improves a transport company's daily dispatch (bookings assigned to drivers) for
fairness without ever making it infeasible. It reads the upstream heuristic's plan, runs a
validated reassignment pass, and publishes the optimized plan and one audit event per checked
move.

Every message is JSON (UTF-8), keyed by `dispatch_id` (so one dispatch stays on one
partition, in order), and carries `schema_version`. Delivery is at-least-once: the ids of the
events the service sends are deterministic from the input's `event_id`, so a redelivered input
yields the same ids and consumers can drop duplicates. Unknown fields are rejected.

Topic names are the defaults (settings `DISPATCH_RL_TOPIC_INPUT`, `_OPTIMIZED`, `_AUDIT`,
`_DEAD_LETTER`). The same payload schemas are published one per file in `schemas/json/`.
"""


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _summary(model: type[BaseModel]) -> str:
    doc = inspect.getdoc(model) or model.__name__
    return doc.split("\n\n")[0].replace("\n", " ")


def _components() -> tuple[dict[str, Any], dict[str, Any]]:
    """(messages, schemas): one message per event, schemas shared by all of them."""
    models = list(EVENT_MODELS.values())
    _, defs = models_json_schema(
        [(m, "validation") for m in models], ref_template=_SCHEMAS + "{model}"
    )
    schemas = dict(sorted(defs.get("$defs", {}).items()))
    messages: dict[str, Any] = {}
    for name, model in EVENT_MODELS.items():
        title = model.__name__
        message: dict[str, Any] = {
            "name": title,
            "title": title,
            "summary": _summary(model),
            "contentType": "application/json",
        }
        if "dispatch_id" in model.model_fields:
            message["correlationId"] = {
                "description": "All events of one dispatch share its dispatch_id.",
                "location": "$message.payload#/dispatch_id",
            }
        messages[title] = message | {
            "payload": {"$ref": _SCHEMAS + title},
            "bindings": {
                "kafka": {
                    "key": {
                        "type": "string",
                        "description": "dispatch_id (dead letters: the original key, if any)",
                    },
                    "bindingVersion": KAFKA_BINDING_VERSION,
                }
            },
            "x-json-schema-id": schema_id(name),
        }
    return messages, schemas


def asyncapi_document() -> dict[str, Any]:
    """The AsyncAPI 3.0 document as a JSON-ready dict (deterministic)."""
    messages, schemas = _components()
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for ch in _CHANNELS:
        cid = _camel(ch.name)
        message = EVENT_MODELS[ch.name].__name__
        channels[cid] = {
            "address": ch.address,
            "title": ch.address,
            "summary": ch.summary,
            "messages": {message: {"$ref": f"#/components/messages/{message}"}},
            "bindings": {"kafka": {"topic": ch.address, "bindingVersion": KAFKA_BINDING_VERSION}},
        }
        operations[f"{ch.action}{message}"] = {
            "action": ch.action,
            "channel": {"$ref": f"#/channels/{cid}"},
            "summary": ch.summary.split(". ")[0].rstrip(".") + ".",
            "messages": [{"$ref": f"#/channels/{cid}/messages/{message}"}],
        }
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "id": "urn:dispatch-rl",
        "info": {
            "title": "dispatch-rl events",
            "version": str(SCHEMA_VERSION),
            "description": _DESCRIPTION,
        },
        "defaultContentType": "application/json",
        "servers": {
            "kafka": {
                "host": "{bootstrap}",
                "protocol": "kafka",
                "description": "Any Kafka broker (DISPATCH_RL_BOOTSTRAP_SERVERS); unset, "
                "`dispatch-rl run` starts a local one.",
                "variables": {"bootstrap": {"default": "127.0.0.1:9092"}},
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": schemas},
    }


def render_asyncapi() -> str:
    """The document as the JSON text checked in at `schemas/asyncapi.json`."""
    return json.dumps(asyncapi_document(), indent=2) + "\n"
