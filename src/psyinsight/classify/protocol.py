"""The benchmark protocol: repeated session-grouped splits, mean ± sd of macro-F1.

Rows come from ``extract_examples`` with the protocol filter (first label; Unknown, Others
and lists longer than three labels dropped; empty labels dropped). Splits group rows by
case (``psyinsight.data.splits.case_groups``) so no case, and no shared utterance, is on both
sides. ``shuffle``: five GroupShuffleSplit 80/20 splits; ``kfold``: five-fold GroupKFold.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Literal

import numpy as np

from psyinsight import __version__
from psyinsight.classify.base import Classifier
from psyinsight.classify.metrics import ClassificationResult, score
from psyinsight.classify.tasks import ExtractConfig, LabelledText
from psyinsight.errors import PsyInsightError

Scheme = Literal["shuffle", "kfold"]
SCHEMES: tuple[str, ...] = ("shuffle", "kfold")


@dataclass(frozen=True)
class ProtocolConfig:
    """How the repeated grouped evaluation is run."""

    scheme: Scheme = "shuffle"
    """shuffle: n_splits random group splits of test_size; kfold: n_splits-fold grouped cross-validation."""
    n_splits: int = 5
    test_size: float = 0.2
    seed: int = 13

    def describe(self) -> str:
        if self.scheme == "kfold":
            return f"group-{self.n_splits}fold"
        return f"group-shuffle-{self.n_splits}x{round((1 - self.test_size) * 100)}/{round(self.test_size * 100)}"


def signature(task: str, language: str, model: str, extract: ExtractConfig, protocol: ProtocolConfig) -> str:
    """The recipe of a protocol number, printed with it."""
    dropped = "+".join(extract.drop_labels)
    return (
        f"macroF1|task:{task}|lang:{language}|target:{extract.label_mode}|drop:{dropped}|max:{extract.max_labels}"
        f"|ctx:{extract.context_turns}|splits:{protocol.describe()}|seed:{protocol.seed}|model:{model}|psyinsight:{__version__}"
    )


def group_splits(rows: Sequence[LabelledText], config: ProtocolConfig) -> list[tuple[np.ndarray, np.ndarray]]:
    """Train/test index pairs with no case group on both sides."""
    from sklearn.model_selection import GroupKFold, GroupShuffleSplit

    groups = np.array([r.group or r.session_uid for r in rows])
    n_groups = len(set(groups.tolist()))
    if n_groups < 2 or (config.scheme == "kfold" and n_groups < config.n_splits):
        raise ValueError(f"{n_groups} case groups are too few for {config.describe()}")
    index = np.arange(len(rows))
    if config.scheme == "kfold":
        splitter = GroupKFold(n_splits=config.n_splits, shuffle=True, random_state=config.seed)
    else:
        splitter = GroupShuffleSplit(n_splits=config.n_splits, test_size=config.test_size, random_state=config.seed)
    return list(splitter.split(index, groups=groups))


@dataclass
class FoldResult:
    fold: int
    n_train: int
    result: ClassificationResult
    fit_seconds: float
    predict_seconds: float


@dataclass
class ProtocolResult:
    """Per-fold scores and their mean ± sd for one model, task and language."""

    task: str
    language: str
    model: str
    n_rows: int
    n_labels: int
    folds: list[FoldResult] = field(default_factory=list)
    signature: str = ""

    def _values(self, key: str) -> np.ndarray:
        return np.array([getattr(f.result, key) for f in self.folds], dtype=float)

    def mean(self, key: str = "macro_f1") -> float:
        return float(self._values(key).mean())

    def sd(self, key: str = "macro_f1") -> float:
        """Sample standard deviation (ddof=1) over folds."""
        values = self._values(key)
        return float(values.std(ddof=1)) if len(values) > 1 else 0.0

    @property
    def seconds(self) -> float:
        return float(sum(f.fit_seconds + f.predict_seconds for f in self.folds))

    def summary(self) -> dict:
        return {
            "task": self.task,
            "language": self.language,
            "model": self.model,
            "rows": self.n_rows,
            "labels": self.n_labels,
            "macro_f1": self.mean("macro_f1"),
            "macro_f1_sd": self.sd("macro_f1"),
            "micro_f1": self.mean("micro_f1"),
            "accuracy": self.mean("accuracy"),
            "fold_macro_f1": [round(f.result.macro_f1, 4) for f in self.folds],
            "seconds": round(self.seconds, 2),
            "signature": self.signature,
        }

    def to_dict(self) -> dict:
        data = self.summary()
        data["folds"] = [asdict(f) for f in self.folds]
        return data


def run_protocol(
    rows: Sequence[LabelledText],
    make_model: Callable[[], Classifier],
    *,
    task: str,
    language: str,
    model_name: str,
    extract: ExtractConfig,
    config: ProtocolConfig | None = None,
    splits: list[tuple[np.ndarray, np.ndarray]] | None = None,
    progress: Callable[[str], None] | None = None,
) -> ProtocolResult:
    """Fit a fresh model on each training side and score it on the held-out side."""
    config = config or ProtocolConfig()
    splits = splits if splits is not None else group_splits(rows, config)
    texts = [r.text for r in rows]
    contexts = [r.context for r in rows]
    labels = [r.label for r in rows]
    result = ProtocolResult(task, language, model_name, len(rows), len(set(labels)), signature=signature(task, language, model_name, extract, config))
    for fold, (train, test) in enumerate(splits):
        start = time.perf_counter()
        model = make_model().fit([texts[i] for i in train], [labels[i] for i in train], [contexts[i] for i in train])
        fitted = time.perf_counter()
        predicted = model.predict([texts[i] for i in test], [contexts[i] for i in test])
        done = time.perf_counter()
        scored = score([labels[i] for i in test], predicted)
        scored.signature = result.signature
        result.folds.append(FoldResult(fold, len(train), scored, fitted - start, done - fitted))
        if progress:
            progress(f"{task}/{language}/{model_name} fold {fold + 1}/{len(splits)}: macro-F1 {scored.macro_f1:.3f}")
    return result


Candidate = Callable[[], Classifier] | tuple[Sequence[LabelledText], Callable[[], Classifier]]
"""A model factory, or (its own rows, factory): rows of the same sessions in the same order
with other inputs (session fields, context), so features and inputs are chosen like C."""


def _candidate(rows: Sequence[LabelledText], candidate: Candidate) -> tuple[Sequence[LabelledText], Callable[[], Classifier]]:
    if not isinstance(candidate, tuple):
        return rows, candidate
    own, make = candidate
    if [r.id for r in own] != [r.id for r in rows] or [r.label for r in own] != [r.label for r in rows]:
        raise ValueError("a candidate's rows must be the same rows (ids and labels, in order) with other inputs")
    return own, make


def run_nested(
    rows: Sequence[LabelledText],
    candidates: dict[str, Candidate],
    *,
    task: str,
    language: str,
    model_name: str,
    extract: ExtractConfig,
    config: ProtocolConfig | None = None,
    inner_folds: int = 3,
    splits: list[tuple[np.ndarray, np.ndarray]] | None = None,
    progress: Callable[[str], None] | None = None,
) -> ProtocolResult:
    """The protocol with model selection inside each training side (nested, grouped).

    For each outer split, every candidate (its features, inputs and C) is scored by grouped
    ``inner_folds``-fold cross-validation on the training side only; the best is refitted on
    the whole training side and scored once on the held-out side. The outer numbers are then
    free of selection bias; ``FoldResult.result.extra["chosen"]`` names the pick.
    """
    resolved = {name: _candidate(rows, c) for name, c in candidates.items()}
    config = config or ProtocolConfig()
    splits = splits if splits is not None else group_splits(rows, config)
    inner_config = ProtocolConfig(scheme="kfold", n_splits=inner_folds, seed=config.seed)
    result = ProtocolResult(
        task,
        language,
        model_name,
        len(rows),
        len({r.label for r in rows}),
        signature=signature(task, language, model_name, extract, config) + f"|nested:{inner_folds}fold",
    )
    for fold, (train, test) in enumerate(splits):
        start = time.perf_counter()
        train_groups = len({rows[i].group or rows[i].session_uid for i in train})
        if train_groups < 2:
            raise PsyInsightError(f"{task}/{language}: a training side holds {train_groups} case group; nested selection needs 2", where="--models")
        fold_config = replace(inner_config, n_splits=min(inner_folds, train_groups))  # a small set: fewer inner folds
        inner_splits = group_splits([rows[i] for i in train], fold_config)
        inner_scores = {
            name: run_protocol(
                [own[i] for i in train], make, task=task, language=language, model_name=name, extract=extract, config=fold_config, splits=inner_splits
            ).mean()
            for name, (own, make) in resolved.items()
        }
        chosen = max(inner_scores, key=lambda name: inner_scores[name])
        own, make = resolved[chosen]
        train_rows = [own[i] for i in train]
        model = make().fit([r.text for r in train_rows], [r.label for r in train_rows], [r.context for r in train_rows])
        fitted = time.perf_counter()
        test_rows = [own[i] for i in test]
        predicted = model.predict([r.text for r in test_rows], [r.context for r in test_rows])
        done = time.perf_counter()
        scored = score([r.label for r in test_rows], predicted)
        scored.signature = result.signature
        scored.extra = {"chosen": chosen, "inner_macro_f1": {k: round(v, 4) for k, v in inner_scores.items()}}
        result.folds.append(FoldResult(fold, len(train), scored, fitted - start, done - fitted))
        if progress:
            progress(f"{task}/{language}/{model_name} nested fold {fold + 1}/{len(splits)}: chose {chosen}, macro-F1 {scored.macro_f1:.3f}")
    return result
