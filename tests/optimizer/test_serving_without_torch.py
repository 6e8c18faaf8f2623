"""The serving path never imports torch: the worker, the provider and `optimize` run on numpy.

Each check runs in a fresh interpreter (this test process may have torch loaded already).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]

_SERVE = """
import sys
from pathlib import Path
import streams.app, streams.worker, streams.cli  # the worker's and the CLI's import graph
from optimizer.generate import generate_day
from optimizer.dispatch import optimize_event
from optimizer.serving import default_provider
provider = default_provider(Path(sys.argv[1]))
policy = provider.policy()
assert provider.status()["source"] == "default", provider.status()
assert policy.version.startswith("dqn-"), policy.version
# Loading runs the quality check on built-in days; it must not pull in CP-SAT (and pandas):
# that import alone costs a CLI call over a second and the worker ~100 MB.
assert "ortools.sat.python.cp_model" not in sys.modules, "model load imported CP-SAT"
outcome = optimize_event(generate_day(30, 5, seed=4), policy)
assert outcome.optimized.status in ("optimized", "unchanged"), outcome.optimized.status
code = streams.cli.main(["optimize", sys.argv[2], "--json"])
assert code == 0, code
print("TORCH" if "torch" in sys.modules else "NO-TORCH")
"""


def test_worker_and_optimize_serve_the_dqn_without_importing_torch(tmp_path: Path) -> None:
    """Provider + DQN pass + `dispatch-rl optimize` in one process: torch never loaded, and
    loading the model does not import CP-SAT."""
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            _SERVE,
            str(tmp_path / "models"),
            str(ROOT / "examples" / "seed-day.json"),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "NO-TORCH"
