#!/usr/bin/env bash
# Quickstart 2: set up what is missing, then run the test suite (args go to pytest).
set -euo pipefail
cd "$(dirname "$0")"
./scripts/setup.sh
# Lint and type-check the package first (seconds; mypy's cache lives in .mypy_cache).
.venv/bin/ruff check rayflow tests benchmarks
.venv/bin/mypy
exec .venv/bin/python -m pytest "$@"
