"""scripts/check_cycles.py: CI fails on an import cycle, imports inside functions included."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "check_cycles.py"


def _package(root: Path, name: str, files: dict[str, str]) -> None:
    (root / name).mkdir()
    (root / name / "__init__.py").write_text('"""A planted package."""\n')
    for module, text in files.items():
        (root / name / f"{module}.py").write_text(text)


def _check(root: Path, package: str):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, str(SCRIPT), package], capture_output=True, text=True, env=env,
                          cwd=root, timeout=120)


def test_a_cycle_through_a_function_level_import_fails(tmp_path):
    _package(tmp_path, "planted", {
        "a": "from . import b\n",
        "b": "def later():\n    from .c import x\n    return x\n",  # inside a function: contracts miss it
        "c": "x = 1\n\ndef back():\n    from . import a\n    return a\n",
        "d": "from . import a\n",  # imports into the cycle, is not part of it
    })
    proc = _check(tmp_path, "planted")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "import cycle among 3 modules: planted.a -> planted.b -> planted.c -> planted.a" in proc.stdout
    assert "planted.b imports planted.c (line 2)" in proc.stdout
    assert "planted.d" not in proc.stdout


def test_a_package_without_cycles_passes(tmp_path):
    _package(tmp_path, "layered", {"a": "from . import b\n", "b": "def f():\n    from . import c\n", "c": "\n"})
    proc = _check(tmp_path, "layered")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "no import cycles in layered" in proc.stdout
