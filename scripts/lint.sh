#!/usr/bin/env bash
# The static checks CI runs before the tests (configured in pyproject.toml, docs/development.md):
#   ruff check .   pyflakes, import order, bugbear, pyupgrade, no print() in napari_vlsm/core
#   lint-imports   the layers: the core imports neither napari, Qt, the CLI nor the dock;
#                  the CLI does not import the dock; the CLI's and the dock's layers
#   check_cycles   no import cycle among napari_vlsm's modules, imports inside functions included
# All run even when one fails, so one run lists everything. Extra arguments go to ruff,
# e.g. `bash scripts/lint.sh --fix`.
set -uo pipefail

cd "$(dirname "$0")/.."
bin="${VENV:-.venv}/bin"
[ -x "$bin/ruff" ] || bin="$(dirname "$(command -v ruff || echo /usr/bin/ruff)")"
rc=0
echo "== ruff check ."
"$bin/ruff" check . "$@" || rc=1
echo "== lint-imports"
"$bin/lint-imports" || rc=1
echo "== scripts/check_cycles.py"
python="$bin/python"
[ -x "$python" ] || python="$(command -v python3)"
"$python" scripts/check_cycles.py || rc=1
exit "$rc"
