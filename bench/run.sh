#!/usr/bin/env bash
# Runs the pipeline benchmarks: weir (release build) against KFP's local runner.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv && .venv/bin/pip install --quiet -r tests/sdk/requirements.txt
fi
cargo build --release -p weir
exec .venv/bin/python bench/run.py "$@"
