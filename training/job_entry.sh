#!/usr/bin/env bash
# The entrypoint of a fine-tuning job without a training image (JOB_RUN_ENTRYPOINT of the job artifact),
# on an OCI Data Science service conda environment. The service packs are Python 3.10 with torch 2.4;
# the entrypoint is pinned to Python 3.11 and torch 2.13, so this makes the project's own environment first
# (uv: a standalone CPython 3.11 and the pinned train extra, CUDA 12.6 torch), then runs the job's command
# (torchrun ..., or python -m training.multinode ...) with it. Needs internet egress (PyPI, PyTorch's index,
# GitHub for the Python build); a rerun on the same node reuses the environment.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${LLMSTACK_TRAIN_VENV:-$HOME/llmstack-train}"
if [ ! -x "$venv/bin/python" ] || [ ! -f "$venv/.installed" ]; then
  echo "job_entry: installing Python 3.11 and the pinned train extra into $venv"
  python -m pip install --quiet --no-cache-dir --user "uv==0.13.8"
  python -m uv venv --quiet --python 3.11 "$venv"
  python -m uv pip install --quiet --python "$venv/bin/python" --index-strategy unsafe-best-match \
    --extra-index-url https://download.pytorch.org/whl/cu126 -r "$here/requirements-train.txt"
  touch "$venv/.installed"
fi
export PATH="$venv/bin:$PATH"
export PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}"
cd "$here"
echo "job_entry: $(python --version), running: $*"
exec "$@"
