"""The optional compiled loops of the swap pass (`optimizer/_kernels.c`), or None.

Built by `pip install` (setup.py; optional: a machine without a C compiler installs without
it) or in a checkout by `python setup.py build_ext --inplace`. Each compiled function repeats
the arithmetic of the pure-Python/numpy code it stands in for, in the same order on the same
IEEE doubles, so the pass decides the same with or without it (`tests/optimizer/
test_kernels.py` compares both on generated days; `bench/pass_equivalence.py` the whole pass).
`DISPATCH_RL_PURE_PYTHON=1` in the environment turns it off (to compare, or to rule it out).
`describe()` says which serves (the worker's health shows it, `optimizer.serving`).
"""

from __future__ import annotations

import importlib.util
import os
from types import ModuleType

__all__ = ["compiled", "describe"]

_why_not = ""


def _load() -> ModuleType | None:
    global _why_not
    if os.environ.get("DISPATCH_RL_PURE_PYTHON", "").strip().lower() in ("1", "true", "yes"):
        _why_not = "turned off by DISPATCH_RL_PURE_PYTHON"
        return None
    # Looked up first: importing a submodule that does not exist while `optimizer` is still
    # importing reports a "circular import", which would send a reader the wrong way.
    if importlib.util.find_spec("optimizer._kernels") is None:
        _why_not = (
            "not built (no C compiler at install; `python setup.py build_ext --inplace` "
            "builds it in a checkout)"
        )
        return None
    try:
        from optimizer import _kernels
    except ImportError as exc:  # built for another Python, or a broken build
        _why_not = f"not loadable ({exc})"
        return None
    return _kernels


compiled: ModuleType | None = _load()
"""The compiled module (functions `beam`, `candidates`, `features`, `flatten`,
`forward_slack`, `grid`, `insert`, `schedule`), or None: use the Python code."""


def describe() -> str:
    """`compiled`, or `python: <why>` (the same decisions either way; compiled is faster)."""
    return "compiled" if compiled is not None else f"python: {_why_not}"
