#!/usr/bin/env bash
# Quickstart 1: set up what is missing, ingest sample footage on the embedded
# defaults (Ray on 127.0.0.1, a local Prefect server, embedded Qdrant), then show
# the catalog and search it. State goes to $RAYFLOW_HOME (default .rayflow-demo/ here).
set -euo pipefail
cd "$(dirname "$0")"
./scripts/setup.sh
export RAYFLOW_HOME="${RAYFLOW_HOME:-$PWD/.rayflow-demo}"
footage="$RAYFLOW_HOME/sample-footage"
.venv/bin/python -m tests.media "$footage"
inputs=("$footage")
[ -d ../shared/media ] && inputs+=(../shared/media)
set +e
.venv/bin/rayflow ingest "${inputs[@]}"
rc=$?
set -e
.venv/bin/rayflow list --limit 8
# Search what was said and shown (hybrid: dense vectors + keywords, fused by RRF).
.venv/bin/rayflow search "person on screen" --in moments --limit 5
.venv/bin/rayflow search "HDR" --where "hdr=true" --limit 5
echo "Browse it in a web page: RAYFLOW_HOME=$RAYFLOW_HOME .venv/bin/rayflow serve --open"
exit $rc
