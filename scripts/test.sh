#!/usr/bin/env bash
# Run the test suite (set up .venv with the test tools first if needed). Arguments go to pytest,
# e.g. `bash scripts/test.sh tests/test_packaging.py -x`.
#
# --quick (first argument): skip the tests marked `slow` (they build the full 150M-parameter
# architecture; minutes on a laptop). CI runs everything: `bash scripts/test.sh` without it.
# The static checks are separate: bash scripts/lint.sh (CI runs both).
#
# GUI tests need an X display: pytest-xvfb starts Xvfb by itself when the `Xvfb` program exists
# (Debian/Ubuntu: apt-get install xvfb libxcb-icccm4 libxcb-keysyms1 libxcb-cursor0 ...; see
# docs/install.md). napari needs Qt's xcb platform: QT_QPA_PLATFORM=offscreen crashes it.
set -euo pipefail

cd "$(dirname "$0")/.."
bash scripts/setup.sh testing
if [ "${QT_QPA_PLATFORM:-}" = "offscreen" ]; then
    echo "test.sh: unsetting QT_QPA_PLATFORM=offscreen (napari needs xcb on Xvfb)" >&2
    unset QT_QPA_PLATFORM
fi
if [ -z "${DISPLAY:-}" ] && ! command -v Xvfb >/dev/null; then
    echo "test.sh: WARNING: no DISPLAY and no Xvfb: the GUI tests will abort pytest." >&2
    echo "         Install Xvfb and the xcb libraries listed in docs/install.md." >&2
fi
quick=()
if [ "${1:-}" = "--quick" ]; then
    shift
    quick=(-m "not slow")
fi
exec "${VENV:-.venv}/bin/python" -m pytest "${quick[@]}" "$@"
