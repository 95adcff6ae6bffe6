#!/usr/bin/env bash
# The main job on the embedded defaults, end to end on a CPU:
#   data (stats, validation, leak-free split) -> LoRA training of SmolLM2-135M (a few minutes)
#   -> generation on the test split -> metrics and the paper-style report,
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

echo "== LoRA training of the CPU default ($STEPS steps, dialog task, w_prompt 0.1)"
$PSY train cpu-default --output-dir "$OUT/train" --resume none \
  --set data.source=$DATA --set data.languages=[en] --set training.max_steps=$STEPS \
  --set data.max_eval_examples=8 --set training.max_length=384

echo "== generation on the test split (reasoning parsed where present)"
$PSY generate --adapter "$OUT/train/adapter" --split test --language en --limit 24 \
  --max-new-tokens 64 --out "$OUT/predictions.jsonl"

echo "== evaluation report of this run"
$PSY report "$OUT/predictions.jsonl" --out "$OUT/report" --bertscore-model-en minilm --bertscore-model-zh minilm

echo "== label recognition: the counselor-strategy classifier"
$PSY classify train --task strategy --language en "${SOURCE[@]}" --split train --out "$OUT/classify/strategy-en"
$PSY classify eval --model "$OUT/classify/strategy-en" "${SOURCE[@]}" --split test --out "$OUT/classify/strategy-en-eval"

echo "== safety layer: recall / false-positive rate on the bilingual crisis test set"
$PSY safety eval --json "$OUT/safety.json" --hide-errors

echo "== construction pipeline on the bundled raw excerpts (rules only; add --base-url for the LLM steps)"
$PSY build --out "$OUT/build" --no-llm
$PSY data validate "$OUT/build/en_data.json" "$OUT/build/cn_data.json" --show 3

cat <<TXT

Done. Outputs in $OUT/ (report: $OUT/report/report.md).
Talk to the model:   $PSY chat --adapter $OUT/train/adapter --show-reasoning
Serve it:            $PSY serve --adapter $OUT/train/adapter --counselor --port 8000
Web chat / rating:   $PSY ui chat --adapter $OUT/train/adapter   |   $PSY ui rate $OUT/predictions.jsonl --db $OUT/ratings.sqlite
TXT
