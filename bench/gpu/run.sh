#!/usr/bin/env bash
# difflab on a GPU machine without internet, in one go: WebGPU (Dawn, through
# the `webgpu` package) on the NVIDIA Vulkan driver, the backend test suite on
# it, the image training benchmark with a webgpu row, and PyTorch on CUDA on
# the same U-Net when a CUDA build of torch is there. One JSON file holds every
# result and every part that did not run, with why (bench/gpu/run.ts).
#
# Usage: bench/gpu/run.sh [OUT_FILE] [--with-wasm]
#   OUT_FILE defaults to $OUT/gpu-results.json, else bench/results/gpu-results.json.
#
# What must travel with the working tree (the machine has no network):
#   - node_modules of this tree (`npm ci` where the npm registry is reachable;
#     about 1.2 GiB with the optional `webgpu` package, whose linux-x64 Dawn
#     build is inside it);
#   - for the PyTorch rows, a python whose torch is a CUDA build: set
#     DIFFLAB_TORCH_PYTHON, or put a venv at bench/.venv-cuda (the CPU venv
#     bench/.venv from the CPU benches is tried too and reported as CPU-only);
#   - on the machine: the NVIDIA driver with its Vulkan ICD (nvidia_icd.json)
#     and the Vulkan loader libvulkan.so.1, which Dawn loads.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
out=""
extra=()
for a in "$@"; do
  case "$a" in
    --with-wasm) extra+=("$a") ;;
    *) out="$a" ;;
  esac
done
[ -n "$out" ] || out="${OUT:-$root/bench/results}/gpu-results.json"
mkdir -p "$(dirname "$out")"
cd "$root"

# Without node or the tree's node_modules nothing else can run: still leave the JSON that says so.
fail_json() {
  printf '{"schema":"difflab-gpu-run/1","date":"%s","error":"%s","not_run":[{"part":"everything","why":"%s"}]}\n' \
    "$(date -u +%FT%TZ)" "$1" "$1" > "$out"
  echo "bench/gpu: $1 (wrote $out)" >&2
  exit 1
}
command -v node >/dev/null 2>&1 || fail_json "node is not on PATH"
for m in @tensorflow/tfjs @tensorflow/tfjs-backend-webgpu webgpu tsx vitest; do
  [ -f "node_modules/$m/package.json" ] || fail_json "node_modules/$m is missing: run npm ci where the registry is reachable and bring node_modules along"
done
exec node --import tsx bench/gpu/run.ts --out "$out" "${extra[@]}"
