#!/usr/bin/env bash
# The main job on the embedded defaults, end to end on a CPU:
#   data (stats, validation, leak-free split) -> the base SmolLM2-135M against a short LoRA run on the same
#   test turns (psyinsight experiment: train, generate both, metrics with CIs, the paper-style report),
#   plus label recognition, the safety layer and the construction pipeline (rules only).
# Uses the release when it is found ($PSYINSIGHT_DATA_DIR or ../shared/data/psy-insight),
# the bundled synthetic sample otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
PSY=.venv/bin/psyinsight
OUT=${OUT:-runs/demo}
STEPS=${DEMO_STEPS:-20}
mkdir -p "$OUT"

if .venv/bin/python -c "import sys; from psyinsight.paths import release_dir; sys.exit(release_dir() is None)"; then
  SOURCE=(); DATA=release; echo "== using the Psy-Insight release"
else
  SOURCE=(--sample); DATA=sample; echo "== release not found: using the bundled synthetic sample"
fi

echo "== statistics (the paper's table, label distributions, figures)"
$PSY data stats "${SOURCE[@]}" --out "$OUT/stats"

if [ "$DATA" = release ]; then
  echo "== validation of the files as released (exit 1: defects found, each named)"
  $PSY data validate --show 3 || [ $? -eq 1 ]
fi

echo "== leak-free split (grouped by case and shared utterances)"
$PSY data split "${SOURCE[@]}" --out "$OUT/splits.json"

echo "== the paper's comparison on the embedded defaults: SmolLM2 before and after $STEPS LoRA steps (dialog task),"
echo "   the same test turns for both, 95% confidence intervals and the paired difference to the base row"
$PSY experiment experiments/demo.yaml --output-dir "$OUT/experiment" \
  --set settings.data.source=$DATA --set settings.training.max_steps=$STEPS
cat "$OUT/experiment/report/experiment.md"

echo "== label recognition: the counselor-strategy classifier"
$PSY classify train --task strategy --language en "${SOURCE[@]}" --split train --out "$OUT/classify/strategy-en"
$PSY classify eval --model "$OUT/classify/strategy-en" "${SOURCE[@]}" --split test --out "$OUT/classify/strategy-en-eval"

echo "== safety layer: recall / false-positive rate on the bilingual crisis test set"
$PSY safety eval --json "$OUT/safety.json" --hide-errors

echo "== construction pipeline on the bundled raw excerpts (rules only; add --base-url for the LLM steps)"
$PSY build --out "$OUT/build" --no-llm
$PSY data validate "$OUT/build/en_data.json" "$OUT/build/cn_data.json" --show 3

cat <<TXT

Done. Outputs in $OUT/ (report: $OUT/experiment/report/experiment.md).
Talk to the model:   $PSY chat --adapter $OUT/experiment/en/dialog/adapter --show-reasoning
Serve it:            $PSY serve --adapter $OUT/experiment/en/dialog/adapter --counselor --port 8000
Web chat / rating:   $PSY ui chat --adapter $OUT/experiment/en/dialog/adapter   |   $PSY ui rate $OUT/experiment/predictions/en-dialog.jsonl --db $OUT/ratings.sqlite
TXT
