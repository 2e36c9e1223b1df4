#!/usr/bin/env bash
# Creates bench/.venv-diffusers with a CPU build of PyTorch and Hugging Face
# diffusers, for `npm run bench:quality-image`. Idempotent: exits at once when
# the venv already imports both at the pinned versions.
#   - torch==2.13.0: the exact pin resolves to the local CPU wheel; a bare
#     `torch` or a range would pull multi-GB CUDA wheels from the index.
#   - diffusers==0.42.1: UNet2DModel, DDPMScheduler and EMAModel, the pieces
#     of diffusers' own examples/unconditional_image_generation recipe.
#     Nothing is downloaded at run time (the model is built from a config).
# Usage: bench/python/ensure-diffusers-venv.sh   (prints the venv's python on the last line; logs go to stderr)
# Env:   DIFFLAB_DIFFUSERS_VENV overrides the location, PYTHON the base interpreter.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${DIFFLAB_DIFFUSERS_VENV:-$here/../.venv-diffusers}"
py="${PYTHON:-python3}"
check='import sys, torch, diffusers
sys.exit(0 if torch.__version__.startswith("2.13.0") and diffusers.__version__ == "0.42.1" else 1)'

if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "$check" 2>/dev/null; then
  echo "$venv/bin/python"
  exit 0
fi
command -v "$py" >/dev/null 2>&1 || { echo "ensure-diffusers-venv: $py not found" >&2; exit 1; }
[ -x "$venv/bin/python" ] || "$py" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check 'torch==2.13.0' numpy 'diffusers==0.42.1' >&2
"$venv/bin/python" -c "$check" || { echo "ensure-diffusers-venv: torch 2.13.0 + diffusers 0.42.1 do not import in $venv" >&2; exit 1; }
"$venv/bin/python" -c 'import torch, diffusers, sys; print("ensure-diffusers-venv: torch", torch.__version__, "diffusers", diffusers.__version__, "in", sys.prefix, file=sys.stderr)'
echo "$venv/bin/python"
