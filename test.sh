#!/usr/bin/env bash
# Quickstart 2: set up what is missing, then run the test suite (args go to pytest).
set -euo pipefail
cd "$(dirname "$0")"
./scripts/setup.sh
# Lint and type-check the package first (seconds; mypy's cache lives in .mypy_cache).
.venv/bin/ruff check rayflow tests benchmarks
.venv/bin/mypy
# Two workers, each taking whole files (module fixtures stay shared): most of the suite waits on
# real Ray/Prefect/model start-ups, so two overlap well even on 2 cores. `./test.sh -n 0` runs
# it in one process; RAYFLOW_TEST_WORKERS sets the count.
exec .venv/bin/python -m pytest -n "${RAYFLOW_TEST_WORKERS:-2}" --dist loadfile "$@"
