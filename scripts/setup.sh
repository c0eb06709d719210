#!/usr/bin/env bash
# Create .venv (if missing) and install napari-vlsm into it, torch first.
#
#   bash scripts/setup.sh            # the app: napari-vlsm + PyQt6          (extra "all")
#   bash scripts/setup.sh testing    # the app + the test tools             (extras "all,testing")
#
# Environment: PYTHON (default python3, must be >= 3.11), VENV (default .venv),
# TORCH_SPEC (default torch==2.13.0: the CPU build; a bare "torch" may pull a multi-GB CUDA build).
# Installing again is skipped while pyproject.toml and the extras are unchanged.
set -euo pipefail

cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
VENV="${VENV:-.venv}"
TORCH_SPEC="${TORCH_SPEC:-torch==2.13.0}"
extras="all"
for arg in "$@"; do
    case "$arg" in
        testing) extras="all,testing" ;;
        *) echo "setup.sh: unknown argument '$arg' (use: testing)" >&2; exit 2 ;;
    esac
done

if [ ! -x "$VENV/bin/python" ]; then
    if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
        echo "setup.sh: '$PYTHON' is missing or older than Python 3.11; set PYTHON=/path/to/python3.11" >&2
        exit 1
    fi
    echo "== creating $VENV with $("$PYTHON" --version)"
    if ! "$PYTHON" -m venv "$VENV"; then
        echo "setup.sh: '$PYTHON -m venv' failed; on Debian/Ubuntu: apt-get install python3-venv" >&2
        exit 1
    fi
fi

stamp="$VENV/.napari-vlsm-installed"
want="$(cat pyproject.toml; echo "extras=$extras torch=$TORCH_SPEC")"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    echo "== $VENV is up to date (extras: $extras)"
    exit 0
fi

pip=("$VENV/bin/python" -m pip install --disable-pip-version-check)
echo "== installing $TORCH_SPEC first"
"${pip[@]}" "$TORCH_SPEC"
echo "== installing napari-vlsm (editable) with extras: $extras"
"${pip[@]}" -e ".[$extras]"
printf '%s' "$want" > "$stamp"
