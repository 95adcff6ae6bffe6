"""Drop training rows that repeat or nearly repeat a held-out row (run after adding training data).

Writers working apart still converge on the same sentence now and then ("What's the
difference between non-suicidal self-injury and a suicide attempt?"). A held-out number is
honest only if no training row is the same sentence or a near copy (character 3-gram
Jaccard >= ``evaluate.MAX_OVERLAP``); this removes such rows from the training files and
prints each removal (the held-out row by id only: its text stays unread). The held-out files are never changed.

Usage: python scripts/safety_decontaminate.py
"""

from __future__ import annotations

import json

from psyinsight.counsel.safety.corpus import data_dir, load_examples, named_sets
from psyinsight.counsel.safety.evaluate import MAX_OVERLAP, char_ngrams

HELD_OUT = ("blindset4", "valid")


def main() -> None:
    held = [(r["id"], char_ngrams(r["text"])) for name in HELD_OUT for r in load_examples(named_sets()[name])]
    for path in sorted((data_dir() / "train").glob("*.jsonl")):
        kept, dropped = [], 0
        for row in load_examples(path):
            grams = char_ngrams(row["text"])
            twin = next((t for t, g in held if len(grams & g) / len(grams | g) >= MAX_OVERLAP), None)
            if twin is None:
                kept.append(row)
            else:
                dropped += 1
                print(f"{path.name}: dropped {row['text'][:70]!r} (near copy of held-out row {twin})")
        if dropped:
            path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in kept), encoding="utf-8")


if __name__ == "__main__":
    main()
