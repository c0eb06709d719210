#!/usr/bin/env bash
# The inference, stack and training benchmarks on one CUDA GPU: JSON + summary.md, under 8 minutes.
#
#   bash benchmarks/gpu.sh              # on a CUDA machine, from anywhere
#   bash benchmarks/gpu.sh --dry-run    # print the steps and their time limits, run nothing
#   bash benchmarks/gpu.sh --cpu-smoke  # the same steps on the CPU with the tiny model (tests the script)
#
# No network: the torch (and transformers) already installed are used; the model is a random-weight
# full-architecture CLIPSeg written locally (speed does not depend on the weights), or MODEL=/folder.
# Training uses ../shared/data/kvasir when present, synthetic disks otherwise.
# Environment: PYTHON (default: the repository's .venv, else python3), MODEL, OUT (result folder,
# default benchmarks/results/gpu-<time>). Every step has its own time limit; their sum is 450 s, so
# the script ends within 8 minutes even if a step hangs (a timed-out step is reported, the rest run).
set -uo pipefail

MODE=gpu
case "${1:-}" in
  --dry-run) MODE=dry ;;
  --cpu-smoke) MODE=smoke ;;
  -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
  "") ;;
  *) echo "unknown option: $1 (use --dry-run, --cpu-smoke or nothing)" >&2; exit 2 ;;
esac

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 2
if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x "$ROOT/.venv/bin/python" ]]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON=python3; fi
fi
OUT="${OUT:-$ROOT/benchmarks/results/gpu-$(date +%Y%m%d-%H%M%S)}"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 NAPARI_VLSM_BENCH_RESULTS="$OUT"
export NAPARI_VLSM_RUNTIME_CACHE="$OUT/runtime-cache"
DATA="$ROOT/../shared/data/kvasir"
[[ -d "$DATA/images" ]] || DATA=synthetic

if [[ "$MODE" == smoke ]]; then
  DEVICE=cpu; ARCH=tiny; LOW=bf16; HALF=fp32; REPEATS=1; SLICES=4; BATCHES=(2 4); IMAGES=4; TBATCH=2
  SCALE=5  # a CPU shared with other jobs: the limits are for the GPU run
else
  DEVICE=cuda; ARCH=full; LOW=bf16; HALF=fp16; REPEATS=7; SLICES=128; BATCHES=(8 32); IMAGES=32; TBATCH=8
  SCALE=1
fi
MODEL="${MODEL:-${TMPDIR:-/tmp}/napari-vlsm-bench-$ARCH-clipseg}"

STEPS=()   # "limit_s|name|command" (the command is one string: run with bash -c)
add() { STEPS+=("$(( $1 * SCALE ))|$2|$3"); }
add 60 "model" "\"$PYTHON\" -c 'import sys; from pathlib import Path; from napari_vlsm.core.random_model import write_random_clipseg as w; p = Path(sys.argv[1]); (p / \"model.safetensors\").is_file() or w(p, arch=\"$ARCH\", seed=0)' \"$MODEL\""
add 75 "inference-$HALF" "\"$PYTHON\" benchmarks/bench_inference.py --model \"$MODEL\" --device $DEVICE --precision $HALF --repeats $REPEATS"
add 75 "inference-$LOW" "\"$PYTHON\" benchmarks/bench_inference.py --model \"$MODEL\" --device $DEVICE --precision $LOW --repeats $REPEATS"
for b in "${BATCHES[@]}"; do
  add 50 "stack-$HALF-batch$b" "\"$PYTHON\" benchmarks/bench_stack.py --model \"$MODEL\" --device $DEVICE --precision $HALF --slices $SLICES --batch-size $b"
done
add 140 "training-$LOW" "\"$PYTHON\" benchmarks/bench_training.py --model \"$MODEL\" --device $DEVICE --precision $LOW --data \"$DATA\" --images $IMAGES --batch-size $TBATCH --repeats 1 --sides fast,plain,reference,dense"

if [[ "$MODE" == dry ]]; then
  total=0
  for step in "${STEPS[@]}"; do
    IFS='|' read -r limit name cmd <<< "$step"
    total=$((total + limit))
    printf '%4ss  %-22s %s\n' "$limit" "$name" "$cmd"
  done
  echo "total time limit: ${total}s; results would go to $OUT"
  exit 0
fi

if [[ "$MODE" == gpu ]] && ! "$PYTHON" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)'; then
  echo "no CUDA GPU visible to $PYTHON (torch.cuda.is_available() is False); use --cpu-smoke to test the script" >&2
  exit 2
fi
mkdir -p "$OUT" || exit 2
"$PYTHON" -c 'import json, sys, torch; print(json.dumps({"torch": torch.__version__, "cuda": torch.version.cuda, "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}))' > "$OUT/environment.json"
command -v nvidia-smi > /dev/null && nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1

failed=0
: > "$OUT/steps.tsv"
for step in "${STEPS[@]}"; do
  IFS='|' read -r limit name cmd <<< "$step"
  echo "== $name (limit ${limit}s)"
  start=$(date +%s)
  timeout --kill-after=5 "$limit" bash -c "$cmd" > "$OUT/$name.log" 2>&1
  rc=$?
  printf '%s\t%s\t%ss\n' "$name" "$rc" "$(( $(date +%s) - start ))" >> "$OUT/steps.tsv"
  if [[ $rc -ne 0 ]]; then
    failed=$((failed + 1))
    echo "   FAILED (exit $rc; 124 = over its time limit): see $OUT/$name.log"
  else
    grep -E '^\(|^slices|^fast|^plain|^reference|^dense|^epoch' "$OUT/$name.log" | sed 's/^/   /'
  fi
done

"$PYTHON" - "$OUT" <<'PY'
import json, sys
from pathlib import Path

out = Path(sys.argv[1])
lines = [f"# GPU benchmarks ({out.name})", "", "```", (out / "environment.json").read_text().strip(), "```", ""]
for path in sorted(out.glob("*.json")):
    if path.name == "environment.json":
        continue
    data = json.loads(path.read_text())
    kind = data.get("benchmark") or ("training" if "summary" in data else path.stem)
    if kind == "inference":
        lines.append(f"- inference ({data['engine_precision']}, {data.get('device')}): " + ", ".join(
            f"({k}) plain {data['median_s']['plain'][k] * 1e3:.1f} ms / engine {data['median_s']['engine'][k] * 1e3:.1f} ms"
            f" = {data['speedup'][k]:.1f}x" for k in data["speedup"]))
    elif kind == "stack":
        lines.append(f"- stack {data['slices']} slices, batch {data['batch_size']} ({data['engine']['precision']}): plain "
                     f"{data['plain']['slices_per_s']:.1f} / engine {data['engine']['slices_per_s']:.1f} slices/s = {data['speedup']:.1f}x")
    elif kind == "training":
        per = data["summary"]["per_side"]
        lines.append("- training: " + ", ".join(f"{s} step {m['step_s_median'] * 1e3:.0f} ms" for s, m in per.items())
                     + "; " + ", ".join(f"epoch {k[3:]}/fast {v['epoch_ratio']:.1f}x" for k, v in data["summary"].items()
                                         if k.startswith("vs_")))
lines += ["", "Steps (name, exit code, seconds):", "```", (out / "steps.tsv").read_text().rstrip(), "```"]
(out / "summary.md").write_text("\n".join(lines) + "\n")
print("\n".join(lines))
PY
echo "results: $OUT (summary.md, one JSON per benchmark, logs)"
exit $(( failed > 0 ? 1 : 0 ))
