"""Label classifiers: the majority baseline and the embedded TF-IDF linear default.

Every classifier has the same small surface, used by evaluation, the CLI and the
construction pipeline's labeller: ``fit(texts, labels, contexts)``, ``predict(texts,
contexts) -> list[str]`` (the best label), ``predict_proba`` (one column per entry of
``labels_``) and ``predict_sets`` (multi-label: every label above a threshold).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Literal

import numpy as np

from psyinsight.classify.base import Classifier, as_label_sets
from psyinsight.classify.features import FeatureConfig, TextFeaturizer

ModelType = Literal["majority", "tfidf", "encoder"]
MODEL_TYPES: tuple[str, ...] = ("majority", "tfidf", "encoder")


class MajorityClassifier(Classifier):
    """Always the most frequent training label (multi-label: the label frequencies)."""

    model_type = "majority"

    def fit(self, texts, labels, contexts=None):
        sets = as_label_sets(labels)
        if not sets:
            raise ValueError("no training rows")
        self.multi_label = any(len(s) > 1 for s in sets)
        counts = Counter(lab for s in sets for lab in s)
        self.labels_ = sorted(counts)
        total = len(sets) if self.multi_label else sum(counts.values())
        self.prior_ = np.array([counts[lab] / total for lab in self.labels_], dtype=np.float64)
        return self

    def predict_proba(self, texts, contexts=None):
        return np.tile(self.prior_, (len(texts), 1))


@dataclass
class LinearConfig:
    """The embedded default: a linear model over TF-IDF features."""

    estimator: Literal["logreg", "svm"] = "logreg"
    """logreg: calibrated-ish probabilities; svm: LinearSVC, probabilities by softmax of margins."""
    C: float = 4.0
    """Inverse regularisation strength: larger fits the training rows more closely."""
    class_weight: Literal["balanced", "none"] = "balanced"
    """balanced: weight classes inversely to their frequency (macro-F1 rewards rare classes)."""
    max_iter: int = 3000
    features: FeatureConfig = field(default_factory=FeatureConfig)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> LinearConfig:
        data = dict(data)
        feats = data.pop("features", {}) or {}
        feats = {k: tuple(v) if isinstance(v, list) else v for k, v in feats.items()}
        return cls(features=FeatureConfig(**feats), **data)


def _softmax(scores: np.ndarray) -> np.ndarray:
    scores = scores - scores.max(axis=1, keepdims=True)
    exp = np.exp(scores)
    return exp / exp.sum(axis=1, keepdims=True)


class TfidfLinearClassifier(Classifier):
    """TF-IDF word + character n-grams (+ context) into logistic regression or a linear SVM."""

    model_type = "tfidf"

    def __init__(self, language: str, config: LinearConfig | None = None):
        self.language = language
        self.config = config or LinearConfig()

    def config_dict(self) -> dict:
        return self.config.to_dict()

    def _estimator(self):
        from sklearn.linear_model import LogisticRegression
        from sklearn.svm import LinearSVC

        cfg = self.config
        weight = "balanced" if cfg.class_weight == "balanced" else None
        if cfg.estimator == "svm":
            return LinearSVC(C=cfg.C, class_weight=weight, max_iter=cfg.max_iter)
        return LogisticRegression(C=cfg.C, class_weight=weight, max_iter=cfg.max_iter)

    def fit(self, texts, labels, contexts=None):
        from sklearn.multiclass import OneVsRestClassifier
        from sklearn.preprocessing import MultiLabelBinarizer

        sets = as_label_sets(labels)
        if not sets:
            raise ValueError("no training rows")
        self.multi_label = any(len(s) > 1 for s in sets)
        self.featurizer_ = TextFeaturizer(self.language, self.config.features)
        features = self.featurizer_.fit_transform(list(texts), None if contexts is None else list(contexts))
        if self.multi_label:
            self.binarizer_ = MultiLabelBinarizer()
            target = self.binarizer_.fit_transform(sets)
            self.labels_ = list(self.binarizer_.classes_)
            self.estimator_ = OneVsRestClassifier(self._estimator()).fit(features, target)
        else:
            target = [s[0] for s in sets]
            self.labels_ = sorted(set(target))
            if len(self.labels_) == 1:
                self.estimator_ = None
            else:
                self.estimator_ = self._estimator().fit(features, target)
        return self

    def predict_proba(self, texts, contexts=None):
        if self.estimator_ is None:
            return np.ones((len(texts), 1))
        features = self.featurizer_.transform(list(texts), None if contexts is None else list(contexts))
        est = self.estimator_
        if self.multi_label:
            if hasattr(est, "predict_proba") and self.config.estimator == "logreg":
                return est.predict_proba(features)
            return 1.0 / (1.0 + np.exp(-est.decision_function(features)))
        if self.config.estimator == "logreg":
            proba = est.predict_proba(features)
        else:
            scores = est.decision_function(features)
            if scores.ndim == 1:
                scores = np.stack([-scores, scores], axis=1)
            proba = _softmax(scores)
        order = [list(est.classes_).index(lab) for lab in self.labels_]
        return proba[:, order]


def build_classifier(model_type: str, language: str, config: dict | None = None) -> Classifier:
    """A fresh, unfitted classifier of ``model_type`` for ``language``."""
    if model_type == "majority":
        return MajorityClassifier()
    if model_type == "tfidf":
        return TfidfLinearClassifier(language, LinearConfig.from_dict(config) if config else None)
    if model_type == "encoder":
        from psyinsight.classify.encoder import EncoderClassifier, EncoderConfig

        return EncoderClassifier(language, EncoderConfig.from_dict(config) if config else None)
    raise ValueError(f"unknown model type {model_type!r}")
