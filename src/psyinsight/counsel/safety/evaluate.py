"""Recall and false-positive rate of the guard on a labelled set, overall and by language, category and kind.

The honest numbers, and where each comes from (``safety/data/README.md`` has all of them):

- the blind sets (``eval/blindset*.jsonl``), each written before the model it scores and
  scored once: the first scores are kept in ``data/first_scores.json``, each under its
  model, and printed by ``safety eval``;
- the cross-validated figure on the training rows, recorded in the model's card when it
  was fitted (``model.fit``);
- the external sets (text written outside the project) and the release's client turns.
A set the model was fitted or tuned on gives a development score, and says so.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from psyinsight.counsel.safety.corpus import load_examples
from psyinsight.counsel.safety.guard import SafetyGuard
from psyinsight.counsel.safety.model import NONE_LABEL
from psyinsight.counsel.safety.patterns import normalize

MAX_OVERLAP = 0.6


@dataclass
class Counts:
    tp: int = 0
    fn: int = 0
    fp: int = 0
    tn: int = 0

    def add(self, gold: bool, flagged: bool) -> None:
        if gold:
            self.tp, self.fn = self.tp + flagged, self.fn + (not flagged)
        else:
            self.fp, self.tn = self.fp + flagged, self.tn + (not flagged)

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else float("nan")

    @property
    def fpr(self) -> float:
        return self.fp / (self.fp + self.tn) if self.fp + self.tn else float("nan")

    def to_dict(self) -> dict[str, Any]:
        return {"recall": self.recall, "fpr": self.fpr, "tp": self.tp, "fn": self.fn, "fp": self.fp, "tn": self.tn}


@dataclass
class SafetyReport:
    """Recall / FPR overall, per language, per gold category and per kind, with the misclassified rows."""

    overall: Counts
    by_language: dict[str, Counts]
    by_category: dict[str, Counts]
    by_kind: dict[str, Counts]
    errors: list[dict[str, Any]] = field(default_factory=list)
    signature: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "signature": self.signature,
            "overall": self.overall.to_dict(),
            "by_language": {k: v.to_dict() for k, v in self.by_language.items()},
            "by_category": {k: v.to_dict() for k, v in self.by_category.items()},
            "by_kind": {k: v.to_dict() for k, v in self.by_kind.items()},
            "errors": self.errors,
        }


def evaluate_guard(guard: SafetyGuard, test_path: str | Path) -> SafetyReport:
    """Run ``guard.check_texts`` on every row of a labelled set and count hits against the gold labels."""
    path = Path(test_path)
    rows = load_examples(path)
    results = guard.check_texts([r["text"] for r in rows])
    overall = Counts()
    by_lang: dict[str, Counts] = defaultdict(Counts)
    by_cat: dict[str, Counts] = defaultdict(Counts)
    by_kind: dict[str, Counts] = defaultdict(Counts)
    errors = []
    for row, result in zip(rows, results):
        gold = row["label"] != NONE_LABEL
        for counts in (overall, by_lang[row.get("lang", "?")], by_cat[row["label"]], by_kind[str(row.get("kind", "?"))]):
            counts.add(gold, result.risk)
        if gold != result.risk:
            errors.append({"id": row.get("id"), "text": row["text"], "gold": row["label"], "reason": result.reason})
    card = guard.model.card
    signature = f"safety|set:{path.name}|n:{len(rows)}|model:{card.get('digest', '?')}|t:{guard.threshold:.3f}"
    return SafetyReport(overall, dict(by_lang), dict(by_cat), dict(by_kind), errors, signature)


def char_ngrams(text: str, n: int = 3) -> set[str]:
    norm = normalize(text)
    return {norm[i : i + n] for i in range(max(1, len(norm) - n + 1))}


def nearest_training_rows(test_rows: list[dict[str, Any]], train_rows: list[dict[str, Any]]) -> list[tuple[float, str]]:
    """For each test row, its most similar training text and their character 3-gram Jaccard similarity."""
    train = [(r["text"], char_ngrams(r["text"])) for r in train_rows]
    out = []
    for row in test_rows:
        grams = char_ngrams(row["text"])
        out.append(max(((len(grams & other) / len(grams | other), text) for text, other in train), default=(0.0, "")))
    return out
