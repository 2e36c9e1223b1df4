#!/usr/bin/env bash
# Creates bench/.venv-kdiffusion with a CPU build of PyTorch and k-diffusion's
# samplers, for `npm run bench:samplers`. Idempotent: exits at once when the
# venv already imports everything bench/python/kdiffusion_samplers.py needs.
#
# What gets installed, and why:
#   - torch==2.13.0: the exact pin resolves to the local CPU wheel; a bare
#     `torch` or a range would pull multi-GB CUDA wheels from the index.
#   - k-diffusion with --no-deps: its metadata requires torchvision, clip,
#     wandb, kornia, accelerate, clean-fid... none of which the samplers use,
#     and torchvision from PyPI does not import beside this torch build.
#     kdiffusion_samplers.py therefore loads k_diffusion/sampling.py and
#     k_diffusion/utils.py by file path (never the package __init__), with a
#     stub for the one torchvision import in utils.py (image helpers only).
#   - only what those two files import at module level: numpy, scipy,
#     torchdiffeq, torchsde (Brownian-tree noise), tqdm, Pillow, safetensors.
#
# Usage: bench/python/ensure-kdiffusion-venv.sh   (prints the venv's python on the last line)
# Env:   DIFFLAB_KDIFF_VENV overrides the location, PYTHON the base interpreter.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${DIFFLAB_KDIFF_VENV:-$here/../.venv-kdiffusion}"
py="${PYTHON:-python3}"

check='import torch, sys, importlib.util
sys.exit(0 if torch.__version__.startswith("2.13.0") and all(importlib.util.find_spec(m) for m in ("k_diffusion","scipy","torchdiffeq","torchsde","tqdm","PIL","safetensors","numpy")) else 1)'

if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "$check" 2>/dev/null; then
  echo "$venv/bin/python"
  exit 0
fi
command -v "$py" >/dev/null 2>&1 || { echo "ensure-kdiffusion-venv: $py not found" >&2; exit 1; }
[ -x "$venv/bin/python" ] || "$py" -m venv "$venv"
pip=("$venv/bin/python" -m pip install --quiet --disable-pip-version-check)
"${pip[@]}" 'torch==2.13.0' numpy scipy torchdiffeq torchsde tqdm Pillow safetensors >&2
"${pip[@]}" --no-deps 'k-diffusion==0.1.1.post1' >&2
"$venv/bin/python" -c "$check" || { echo "ensure-kdiffusion-venv: venv at $venv is incomplete" >&2; exit 1; }
"$venv/bin/python" -c 'import torch, sys; print("ensure-kdiffusion-venv: torch", torch.__version__, "in", sys.prefix, file=sys.stderr)'
echo "$venv/bin/python"
