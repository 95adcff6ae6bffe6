"""Score a blind set once and record its first score (refuses to record a second time).

A blind set is written before the model it scores; its first score is the honest estimate
for text the model's authors never saw. This scores the bundled model on it, writes the
result to ``safety/data/first_scores.json`` under the set's name, and prints it. If the set
already has a first score, it prints that and records nothing.

Usage: python scripts/safety_first_score.py blindset4
"""

from __future__ import annotations

import datetime as dt
import json
import sys

from psyinsight.counsel.safety import SafetyGuard
from psyinsight.counsel.safety.corpus import data_dir, named_sets
from psyinsight.counsel.safety.evaluate import evaluate_guard
from psyinsight.counsel.safety.scores import first_scores
from psyinsight.fileio import write_json


def main(name: str) -> None:
    recorded = first_scores()
    if name in recorded:
        print(f"{name} already has its first score; nothing recorded:\n{json.dumps(recorded[name], indent=1)}")
        return
    guard = SafetyGuard()
    report = evaluate_guard(guard, named_sets()[name])
    o = report.overall
    entry = {
        "n": o.tp + o.fn + o.fp + o.tn,
        "tp": o.tp,
        "fn": o.fn,
        "fp": o.fp,
        "tn": o.tn,
        "recall": o.recall,
        "fpr": o.fpr,
        "by_language": {k: {"recall": v.recall, "fpr": v.fpr} for k, v in sorted(report.by_language.items())},
        "recall_by_category": {k: v.recall for k, v in sorted(report.by_category.items()) if k != "none"},
        "when": dt.date.today().isoformat(),
        "model": guard.model.card["digest"],
        "threshold": guard.threshold,
    }
    write_json(data_dir() / "first_scores.json", {**recorded, name: entry})
    print(json.dumps(entry, indent=1))


if __name__ == "__main__":
    main(sys.argv[1])
