#!/usr/bin/env bash
# Set up .venv if needed (scripts/setup.sh), then open napari with the napari-vlsm dock and a
# sample image. Arguments go to the launcher, e.g.
#   bash scripts/launch.sh --sample ct_slice
#   bash scripts/launch.sh --model /path/to/clipseg-rd64-refined --image scan.dcm
#   bash scripts/launch.sh --demo-model          # no internet, no model folder: untrained demo
#   xvfb-run -a bash scripts/launch.sh           # no display (SSH, server): a virtual one
# Without --model the dock uses the model it remembers (first time: the hub's CLIPSeg; offline, the
# dock says what to do).
set -euo pipefail

cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec "${VENV:-.venv}/bin/python" -m napari_vlsm._napari.launch "$@"
