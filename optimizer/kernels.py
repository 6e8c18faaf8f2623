"""The optional compiled loops of the swap pass (`optimizer/_kernels.c`), or None.

Built by `pip install` (setup.py; optional: a machine without a C compiler installs without
it) or in a checkout by `python setup.py build_ext --inplace`. Each compiled function repeats
the arithmetic of the pure-Python/numpy code it stands in for, in the same order on the same
IEEE doubles, so the pass decides the same with or without it (`tests/optimizer/
test_kernels.py` compares both on generated days; `bench/pass_equivalence.py` the whole pass).
`DISPATCH_RL_PURE_PYTHON=1` in the environment turns it off (to compare, or to rule it out).
"""

from __future__ import annotations

import os
from types import ModuleType

__all__ = ["compiled"]


def _load() -> ModuleType | None:
    if os.environ.get("DISPATCH_RL_PURE_PYTHON", "").strip().lower() in ("1", "true", "yes"):
        return None
    try:
        from optimizer import _kernels
    except ImportError:
        return None
    return _kernels


compiled: ModuleType | None = _load()
"""The compiled module (functions `grid`, `forward_slack`), or None: use the Python code."""
