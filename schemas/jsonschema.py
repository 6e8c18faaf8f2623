"""JSON Schema files for the upstream and downstream teams, generated from the models.

`python -m schemas.jsonschema` rewrites `schemas/json/`; a test fails when they are stale.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel

from schemas.events import DeadLetter, HeuristicDone, Optimized, SwapAudit

EVENT_MODELS: dict[str, type[BaseModel]] = {
    "heuristic_done": HeuristicDone,
    "optimized": Optimized,
    "swap_audit": SwapAudit,
    "dead_letter": DeadLetter,
}
JSON_DIR = Path(__file__).parent / "json"


def render_json_schemas() -> dict[str, str]:
    """File name -> JSON text of each event's schema (deterministic)."""
    return {
        f"{name}.schema.json": json.dumps(model.model_json_schema(), indent=2, sort_keys=True)
        + "\n"
        for name, model in EVENT_MODELS.items()
    }


def main() -> None:
    JSON_DIR.mkdir(exist_ok=True)
    for name, text in render_json_schemas().items():
        (JSON_DIR / name).write_text(text)
        print(f"wrote {JSON_DIR / name}")


if __name__ == "__main__":
    main()
