#!/usr/bin/env bash
# The quickstart's searches (run.sh ends with them; runnable alone on any home):
# each lands on the clip and moment that says or shows it; a topic no clip holds
# answers "no good match"; filters alone browse. Uses $RAYFLOW_HOME.
set -uo pipefail
cd "$(dirname "$0")/.."
rf=.venv/bin/rayflow
$rf list --limit 10
for query in "ferry departing from the port early" "counting the votes tonight" "weather alert" \
             "my fellow americans" "a rocket launch into space"; do
  echo
  echo "\$ rayflow search \"$query\" --limit 3"
  $rf search "$query" --limit 3
done
echo
echo "\$ rayflow search \"*\" --where has_speech=true     # filters alone"
$rf search "*" --where has_speech=true --limit 10
exit 0
