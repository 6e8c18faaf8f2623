"""JSON Schema files for the upstream and downstream teams, generated from the models.

`python -m schemas.jsonschema` (`make schemas`) rewrites `schemas/json/` and the AsyncAPI
document `schemas/asyncapi.json`; a test fails when either is stale.

Each file carries `$schema` (pydantic writes draft 2020-12) and an `$id` naming the event and
the contract version: `urn:dispatch-rl:event:<name>:v<SCHEMA_VERSION>`. A URN, because the
contract has no home on the web; it is a stable name for registries and code generators, and a
new schema version gets a new id.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from schemas.events import SCHEMA_VERSION, HeuristicDone
from schemas.results import DeadLetter, Optimized, SwapAudit

EVENT_MODELS: dict[str, type[BaseModel]] = {
    "heuristic_done": HeuristicDone,
    "optimized": Optimized,
    "swap_audit": SwapAudit,
    "dead_letter": DeadLetter,
}
JSON_DIR = Path(__file__).parent / "json"
DIALECT = "https://json-schema.org/draft/2020-12/schema"


def schema_id(name: str) -> str:
    """The `$id` of event `name`'s schema (a key of `EVENT_MODELS`)."""
    return f"urn:dispatch-rl:event:{name}:v{SCHEMA_VERSION}"


def event_json_schema(name: str) -> dict[str, Any]:
    """The JSON Schema of event `name`, with `$schema` and `$id` first."""
    return {
        "$schema": DIALECT,
        "$id": schema_id(name),
        **EVENT_MODELS[name].model_json_schema(),
    }


def render_json_schemas() -> dict[str, str]:
    """File name -> JSON text of each event's schema (deterministic)."""
    return {
        f"{name}.schema.json": json.dumps(event_json_schema(name), indent=2, sort_keys=True) + "\n"
        for name in EVENT_MODELS
    }


def main() -> None:
    from schemas.asyncapi import ASYNCAPI_PATH, render_asyncapi

    JSON_DIR.mkdir(exist_ok=True)
    for name, text in render_json_schemas().items():
        (JSON_DIR / name).write_text(text)
        print(f"wrote {JSON_DIR / name}")
    ASYNCAPI_PATH.write_text(render_asyncapi())
    print(f"wrote {ASYNCAPI_PATH}")


if __name__ == "__main__":
    main()
