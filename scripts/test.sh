#!/usr/bin/env bash
# README command 2: set up on a fresh machine and run the test suite.
# The tests use real MNIST and Fashion-MNIST; offline they come from packages (see zskd_plugin/app/real_data.py).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ ! -d /usr/share/datasets/fashion-mnist ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    (apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist) >/dev/null || echo "could not apt-get dataset-fashion-mnist"
fi
.venv/bin/zskd prepare-data mnist --root ./data --log-level WARNING
.venv/bin/zskd prepare-data fashion-mnist --root ./data --log-level WARNING
.venv/bin/python -m pytest "$@"
