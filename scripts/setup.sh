#!/usr/bin/env bash
# Create .venv (if missing) and install napari-vlsm into it, torch first.
#
#   bash scripts/setup.sh            # the app: napari-vlsm + PyQt6          (extra "all")
#   bash scripts/setup.sh testing    # the app + the test tools             (extras "all,testing")
#
# Environment: PYTHON (default python3, must be >= 3.11), VENV (default .venv),
# TORCH_SPEC (default torch==2.13.0: the CPU build; a bare "torch" may pull a multi-GB CUDA build).
# Installing again is skipped while pyproject.toml is unchanged and the extras asked for are installed.
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

# The stamp holds what is installed: the pyproject's hash and torch (line 1), the extras (line 2).
# Extras only grow: launch.sh ("all") after test.sh ("all,testing") finds all it needs and installs
# nothing, and test.sh after launch.sh installs the union once, not one set in place of the other.
stamp="$VENV/.napari-vlsm-installed"
project="pyproject=$("$VENV/bin/python" -c 'import hashlib; print(hashlib.sha256(open("pyproject.toml", "rb").read()).hexdigest())') torch=$TORCH_SPEC"
have=""
if [ -f "$stamp" ] && [ "$(sed -n 1p "$stamp")" = "$project" ]; then
    have="$(sed -n 2p "$stamp")"
fi
union="$(printf '%s,%s' "$have" "$extras" | tr ',' '\n' | grep -v '^$' | sort -u | paste -sd, -)"
if [ -n "$have" ] && [ "$union" = "$have" ]; then
    echo "== $VENV is up to date (extras: $have)"
    exit 0
fi

pip=("$VENV/bin/python" -m pip install --disable-pip-version-check)
echo "== installing $TORCH_SPEC first"
"${pip[@]}" "$TORCH_SPEC"
echo "== installing napari-vlsm (editable) with extras: $union"
"${pip[@]}" -e ".[$union]"
printf '%s\n%s\n' "$project" "$union" > "$stamp"
