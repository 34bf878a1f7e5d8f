#!/usr/bin/env bash
# Create .venv and install the plugin with its test extras. torch is pinned here (and only here): the CPU
# machines this project is developed on carry torch 2.14.1 / torchvision 0.29.1; pyproject.toml declares ranges.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check torch==2.14.1 torchvision==0.29.1
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'
.venv/bin/python -c "import torch, zskd_plugin; print('zskd_plugin', zskd_plugin.__version__, 'torch', torch.__version__)"
