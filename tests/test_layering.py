"""Data flows one way: schemas <- optimizer <- streams (DESIGN.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
FORBIDDEN = {
    "schemas": {"optimizer", "streams", "faust", "aiokafka", "torch", "numpy"},
    "optimizer": {"streams", "faust", "aiokafka"},
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_does_not_import_outer_layers(package: str) -> None:
    """No module of an inner package imports an outer one (or Kafka, for the core)."""
    offenders = {
        str(p.relative_to(ROOT)): sorted(_imports(p) & FORBIDDEN[package])
        for p in (ROOT / package).rglob("*.py")
        if _imports(p) & FORBIDDEN[package]
    }
    assert not offenders, offenders


def test_core_public_api_is_sorted_exact_and_torch_free() -> None:
    """`optimizer.__all__` is sorted, names only real attributes, and importing the core does
    not load torch (the learned policy is opt-in)."""
    import subprocess
    import sys

    import optimizer

    assert optimizer.__all__ == sorted(optimizer.__all__, key=lambda n: (not n.isupper(), n))
    assert all(hasattr(optimizer, name) for name in optimizer.__all__)
    code = "import optimizer, sys; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
