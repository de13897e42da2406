#!/usr/bin/env bash
# Quickstart 1: set up what is missing, ingest demo footage on the embedded defaults
# (Ray on 127.0.0.1, a local Prefect server, embedded Qdrant), then show the catalog
# and search it. The demo footage is what rayflow is for: five short clips in which a
# sentence is spoken (espeak-ng) and a caption is shown (tests/catalog/spoken.py), a
# real 11 s speech (jfk.flac over a black picture), and ../shared/media when present.
# State goes to $RAYFLOW_HOME (default .rayflow-demo/ here).
set -euo pipefail
cd "$(dirname "$0")"
./scripts/setup.sh
export RAYFLOW_HOME="${RAYFLOW_HOME:-$PWD/.rayflow-demo}"
footage="$RAYFLOW_HOME/demo-footage"
.venv/bin/python -m tests.catalog.spoken "$footage"
inputs=("$footage")
[ -d ../shared/media ] && inputs+=(../shared/media)
set +e
.venv/bin/rayflow ingest "${inputs[@]}"
rc=$?
set -e
./scripts/demo_searches.sh
echo "Browse it in a web page: RAYFLOW_HOME=$RAYFLOW_HOME .venv/bin/rayflow serve --open"
exit $rc
