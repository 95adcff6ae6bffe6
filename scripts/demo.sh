#!/usr/bin/env bash
# The main job on the embedded defaults: describe and split the data, then the model path.
# Uses the release when it is found (../shared/data/psy-insight or $PSYINSIGHT_DATA_DIR),
# the bundled synthetic sample otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
PSY=.venv/bin/psyinsight
OUT=${OUT:-runs/demo}
mkdir -p "$OUT"

if $PSY data validate --show 0 >/dev/null 2>&1 || [ $? -eq 1 ]; then
  SOURCE=(); echo "== using the Psy-Insight release"
else
  SOURCE=(--sample); echo "== release not found: using the bundled synthetic sample"
fi

echo "== statistics"
$PSY data stats "${SOURCE[@]}" --out "$OUT/stats"
echo "== validation of the files as released (exit 1 = defects found and named)"
if [ ${#SOURCE[@]} -eq 0 ]; then $PSY data validate --show 5 || true; fi
echo "== leak-free split"
$PSY data split "${SOURCE[@]}" --out "$OUT/splits.json"
