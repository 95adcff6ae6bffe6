"""A small risk classifier: TF-IDF character n-grams + logistic regression.

Why this model: it catches paraphrases the patterns miss ("I'm not going to be around
much longer") in both languages with one set of features (character n-grams need no
word segmentation for Chinese), trains in well under a second on the bundled examples,
and has no weights to ship. It is trained at first use and kept in memory for the life
of the process; training is cheaper than a safe on-disk format for it would be.

Labels: ``none`` plus the risk categories; the risk score is ``1 - P(none)`` and the
category is the most probable risk label.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from importlib import resources as importlib_resources
from pathlib import Path
from typing import Any

from psyinsight.errors import PsyInsightError
from psyinsight.fileio import read_jsonl
from psyinsight.safety.patterns import CATEGORIES, mask_idioms, normalize

NONE_LABEL = "none"
LABELS: tuple[str, ...] = (NONE_LABEL, *CATEGORIES)


def data_path(name: str) -> Path:
    """A data file bundled with the safety package (train.jsonl, testset.jsonl, ...)."""
    return Path(str(importlib_resources.files("psyinsight.safety") / "data" / name))


def load_examples(path: str | Path) -> list[dict[str, Any]]:
    """Read a labelled JSONL file (text, lang, label, kind) and check every row."""
    rows = read_jsonl(path)
    for i, row in enumerate(rows, start=1):
        if not isinstance(row, dict) or not str(row.get("text", "")).strip():
            raise PsyInsightError("each row needs a non-empty 'text'", path=path, where=f"row {i}")
        if row.get("label") not in LABELS:
            raise PsyInsightError(f"label {row.get('label')!r} is not one of {', '.join(LABELS)}", path=path, where=f"row {i}")
    return rows


def features(text: str) -> str:
    """What the classifier reads: the normalised text with idioms masked ("累死我了" is not risk talk)."""
    return mask_idioms(normalize(text))


@dataclass(frozen=True)
class ClassifierConfig:
    """Settings of the risk classifier."""

    ngram_min: int = 1
    """Shortest character n-gram."""
    ngram_max: int = 4
    """Longest character n-gram (4 covers most Chinese risk words and English stems)."""
    c: float = 16.0
    """Inverse regularisation of the logistic regression; higher fits the examples more closely."""
    seed: int = 13


class RiskClassifier:
    """A fitted char n-gram classifier over ``LABELS``."""

    def __init__(self, pipeline: Any, config: ClassifierConfig):
        self.pipeline = pipeline
        self.config = config
        self.classes: list[str] = list(pipeline.classes_)

    @classmethod
    def train(cls, rows: list[dict[str, Any]], config: ClassifierConfig | None = None) -> RiskClassifier:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from threadpoolctl import threadpool_limits

        config = config or ClassifierConfig()
        pipeline = make_pipeline(
            TfidfVectorizer(analyzer="char_wb", ngram_range=(config.ngram_min, config.ngram_max), sublinear_tf=True),
            LogisticRegression(C=config.c, class_weight="balanced", max_iter=2000, random_state=config.seed),
        )
        # One thread: BLAS thread pools fighting a loaded CPU made this 60x slower (8 s vs 0.13 s).
        with threadpool_limits(limits=1):
            pipeline.fit([features(r["text"]) for r in rows], [r["label"] for r in rows])
        return cls(pipeline, config)

    def scores(self, texts: list[str]) -> list[tuple[float, str | None]]:
        """For each text: (risk probability, most probable risk category)."""
        if not texts:
            return []
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=1):
            probs = self.pipeline.predict_proba([features(t) for t in texts])
        none_i = self.classes.index(NONE_LABEL)
        out = []
        for row in probs:
            risk_labels = [(p, c) for p, c in zip(row, self.classes) if c != NONE_LABEL]
            best = max(risk_labels)[1] if risk_labels else None
            out.append((float(1.0 - row[none_i]), best))
        return out

    def score(self, text: str) -> tuple[float, str | None]:
        return self.scores([text])[0]


_LOCK = threading.Lock()
_DEFAULT: dict[str, RiskClassifier] = {}


def default_classifier(train_path: str | Path | None = None) -> RiskClassifier:
    """The classifier trained on the bundled training set (or ``train_path``), once per process."""
    path = str(train_path or data_path("train.jsonl"))
    with _LOCK:
        if path not in _DEFAULT:
            _DEFAULT[path] = RiskClassifier.train(load_examples(path))
        return _DEFAULT[path]
