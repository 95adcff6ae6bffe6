"""Recall and false-positive rate of the guard on the bundled bilingual test set.

The development test set (``data/testset.jsonl``) was written separately from the training examples
(``data/train.jsonl``): different sentences, and hard negatives of the same kinds (idioms,
the past, other people, fiction, everyday distress) but not the same idioms. A test
checks that no test sentence appears in the training file and that no pair is a near
duplicate (character 3-gram Jaccard similarity under ``MAX_OVERLAP``). Its score is a
development score: patterns were revised after reading its misses. ``data/blindset3.jsonl``
was written before the current decision rule and scored once: that first score is the honest
estimate (data/README.md has every set's first and current scores).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from psyinsight.safety.classifier import NONE_LABEL, data_path, load_examples
from psyinsight.safety.guard import SafetyGuard
from psyinsight.safety.patterns import normalize

MAX_OVERLAP = 0.6


@dataclass
class Counts:
    tp: int = 0
    fn: int = 0
    fp: int = 0
    tn: int = 0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else float("nan")

    @property
    def fpr(self) -> float:
        return self.fp / (self.fp + self.tn) if self.fp + self.tn else float("nan")


@dataclass
class SafetyReport:
    """Recall / FPR overall and per language, plus the misclassified rows."""

    overall: Counts
    by_language: dict[str, Counts]
    by_kind: dict[str, Counts]
    errors: list[dict[str, Any]] = field(default_factory=list)
    signature: str = ""

    def to_dict(self) -> dict[str, Any]:
        def d(c: Counts) -> dict[str, Any]:
            return {"recall": c.recall, "fpr": c.fpr, "tp": c.tp, "fn": c.fn, "fp": c.fp, "tn": c.tn}

        return {
            "signature": self.signature,
            "overall": d(self.overall),
            "by_language": {k: d(v) for k, v in self.by_language.items()},
            "by_kind": {k: d(v) for k, v in self.by_kind.items()},
            "errors": self.errors,
        }


def evaluate_guard(guard: SafetyGuard, test_path: str | Path | None = None) -> SafetyReport:
    """Run ``guard.check_text`` on every test row and count hits against the gold labels."""
    path = Path(test_path) if test_path else data_path("testset.jsonl")
    rows = load_examples(path)
    overall = Counts()
    by_lang: dict[str, Counts] = defaultdict(Counts)
    by_kind: dict[str, Counts] = defaultdict(Counts)
    errors = []
    for row in rows:
        result = guard.check_text(row["text"])
        gold = row["label"] != NONE_LABEL
        for counts in (overall, by_lang[row.get("lang", "?")], by_kind[row.get("kind", "?")]):
            if gold and result.risk:
                counts.tp += 1
            elif gold:
                counts.fn += 1
            elif result.risk:
                counts.fp += 1
            else:
                counts.tn += 1
        if gold != result.risk:
            errors.append({"id": row.get("id"), "text": row["text"], "gold": row["label"], "source": result.source, "score": round(result.score, 3)})
    cfg = guard.config
    signature = (
        f"safety|test:{path.name}|n:{len(rows)}|classifier:{'on' if cfg.use_classifier else 'off'}"
        f"|t:{cfg.classifier_threshold}|t_disc:{cfg.discounted_threshold}"
    )
    return SafetyReport(overall, dict(by_lang), dict(by_kind), errors, signature)


def char_ngrams(text: str, n: int = 3) -> set[str]:
    norm = normalize(text)
    return {norm[i : i + n] for i in range(max(1, len(norm) - n + 1))}


def max_overlap(test_rows: list[dict[str, Any]], train_rows: list[dict[str, Any]]) -> tuple[float, str, str]:
    """The most similar (test, train) pair by character 3-gram Jaccard similarity."""
    train = [(r["text"], char_ngrams(r["text"])) for r in train_rows]
    best = (0.0, "", "")
    for row in test_rows:
        grams = char_ngrams(row["text"])
        for text, other in train:
            sim = len(grams & other) / len(grams | other)
            if sim > best[0]:
                best = (sim, row["text"], text)
    return best


def cross_validate_thresholds(
    rows: list[dict[str, Any]], thresholds: tuple[float, ...] = (0.5, 0.6, 0.7, 0.8, 0.9), *, folds: int = 5, seed: int = 13
) -> dict[float, Counts]:
    """Out-of-fold counts of the guard's decision rule at each classifier threshold.

    Each row is scored by a classifier that did not see it; patterns and the risk-cue gate
    apply as in ``SafetyGuard``. Why: the threshold is chosen on this table, never on a
    test set. (The patterns were written with the training rows in view, so their share of
    the recall is optimistic; the classifier's share is honest.)
    """
    import random

    from psyinsight.safety.classifier import RiskClassifier
    from psyinsight.safety.guard import SafetyConfig

    order = list(rows)
    random.Random(seed).shuffle(order)
    out = {t: Counts() for t in thresholds}
    for fold in range(folds):
        train = [r for i, r in enumerate(order) if i % folds != fold]
        held = [r for i, r in enumerate(order) if i % folds == fold]
        clf = RiskClassifier.train(train)
        scores = clf.scores([r["text"] for r in held])
        for t in thresholds:
            guard = SafetyGuard(SafetyConfig(classifier_threshold=t), classifier=clf)
            for row, (score, category) in zip(held, scores):
                risk = guard.decide(row["text"], score, category).risk
                gold = row["label"] != NONE_LABEL
                c = out[t]
                if gold and risk:
                    c.tp += 1
                elif gold:
                    c.fn += 1
                elif risk:
                    c.fp += 1
                else:
                    c.tn += 1
    return out
