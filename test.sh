#!/usr/bin/env bash
# Quickstart 2: set up what is missing, then run the test suite (args go to pytest).
set -euo pipefail
cd "$(dirname "$0")"
./scripts/setup.sh
exec .venv/bin/python -m pytest "$@"
