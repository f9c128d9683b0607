#!/usr/bin/env bash
# Install chromtune editable with its test extras into the Python given as $1 (a venv's python for
# `make`, the current `python` for CI). torch comes first, pinned, so the project install does not
# pull another build: on a machine with no NVIDIA GPU the CPU build from PyTorch's CPU index (a plain
# Linux `pip install torch` pulls the CUDA build, several GB) when that index answers, else torch
# from the configured index (machines that reach no other index serve a CPU build there). Any failed
# install fails the script.
set -euo pipefail
python="${1:?usage: scripts/install.sh PYTHON}"
cd "$(dirname "$0")/.."
torch="torch==2.13.0"
cpu_index="https://download.pytorch.org/whl/cpu"
"$python" -m pip install --upgrade pip
if command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; then
    "$python" -m pip install "$torch"
elif "$python" -c "import urllib.request as u; u.urlopen('$cpu_index/torch/', timeout=10)" 2>/dev/null; then
    "$python" -m pip install "$torch" --index-url "$cpu_index"
else
    echo "install.sh: $cpu_index unreachable: torch from the configured index" >&2
    "$python" -m pip install "$torch"
fi
"$python" -m pip install -e ".[dev]"
