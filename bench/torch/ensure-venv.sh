#!/usr/bin/env bash
# Creates bench/.venv (git-ignored) with the CPU build of PyTorch used by
# `npm run bench:backend`. Idempotent: exits at once when torch already imports.
# The exact pin matters: torch==2.13.0 resolves to the local CPU wheel; a bare
# `torch` or a range would pull multi-GB CUDA wheels from the index.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${DIFFLAB_BENCH_VENV:-$here/../.venv}"
py="${PYTHON:-python3}"

if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c 'import torch, sys; sys.exit(0 if torch.__version__.startswith("2.13.0") else 1)' 2>/dev/null; then
  exit 0
fi
command -v "$py" >/dev/null 2>&1 || { echo "ensure-venv: $py not found" >&2; exit 1; }
"$py" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check 'torch==2.13.0' numpy
"$venv/bin/python" -c 'import torch; print("ensure-venv: torch", torch.__version__, "in", __import__("sys").prefix)'
