#!/usr/bin/env bash
# Creates bench/.venv (git-ignored) with the CPU build of PyTorch that
# `npm run bench:backend` compares against. Idempotent: exits at once when
# the venv already imports torch 2.13.0.
#   torch==2.13.0: the exact pin resolves to the local CPU wheel; a bare
#   `torch` or a range would pull multi-GB CUDA wheels from the index.
#   numpy: torch warns without it.
# Usage: bench/torch/ensure-venv.sh   (prints the venv's python on the last line; logs go to stderr)
# Env:   DIFFLAB_BENCH_VENV overrides the location, PYTHON the base interpreter.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${DIFFLAB_BENCH_VENV:-$here/../.venv}"
py="${PYTHON:-python3}"
check='import torch, sys; sys.exit(0 if torch.__version__.startswith("2.13.0") else 1)'

if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "$check" 2>/dev/null; then
  echo "$venv/bin/python"
  exit 0
fi
command -v "$py" >/dev/null 2>&1 || { echo "ensure-venv: $py not found" >&2; exit 1; }
[ -x "$venv/bin/python" ] || "$py" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check 'torch==2.13.0' numpy >&2
"$venv/bin/python" -c "$check" || { echo "ensure-venv: torch 2.13.0 does not import in $venv" >&2; exit 1; }
"$venv/bin/python" -c 'import torch, sys; print("ensure-venv: torch", torch.__version__, "in", sys.prefix, file=sys.stderr)'
echo "$venv/bin/python"
