"""The surface every label classifier implements, apart from the classifiers themselves.

The TF-IDF models (``estimators``) and the fine-tuned encoder (``encoder``) both build on it;
keeping it here lets ``estimators`` build an encoder without the encoder importing ``estimators``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

LabelSets = Sequence[Sequence[str]]


def as_label_sets(labels: Sequence[str] | LabelSets) -> list[list[str]]:
    """Labels as one list per text: a single label becomes a one-item list (multi-label input stays)."""
    return [[lab] if isinstance(lab, str) else list(lab) for lab in labels]


class Classifier:
    """Shared surface; subclasses set ``labels_`` and implement ``fit``/``predict_proba``."""

    model_type: str = ""
    labels_: list[str]
    multi_label: bool = False

    def fit(self, texts: Sequence[str], labels: Sequence[str] | LabelSets, contexts: Sequence[str] | None = None):
        raise NotImplementedError

    def predict_proba(self, texts: Sequence[str], contexts: Sequence[str] | None = None) -> np.ndarray:
        raise NotImplementedError

    def predict(self, texts: Sequence[str], contexts: Sequence[str] | None = None) -> list[str]:
        """The most likely label of each text."""
        if len(texts) == 0:
            return []
        proba = self.predict_proba(texts, contexts)
        return [self.labels_[i] for i in proba.argmax(axis=1)]

    def predict_sets(self, texts: Sequence[str], contexts: Sequence[str] | None = None, threshold: float = 0.5) -> list[list[str]]:
        """Every label whose probability reaches ``threshold`` (at least the best one)."""
        if len(texts) == 0:
            return []
        proba = self.predict_proba(texts, contexts)
        if not self.multi_label:
            return [[self.labels_[i]] for i in proba.argmax(axis=1)]
        out = []
        for row in proba:
            picked = [self.labels_[i] for i in np.argsort(-row) if row[i] >= threshold]
            out.append(picked or [self.labels_[int(row.argmax())]])
        return out

    def config_dict(self) -> dict:
        return {}
