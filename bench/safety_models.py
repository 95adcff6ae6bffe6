"""Which risk model: each reading alone and stacked, fitted on the training rows, judged on the validation set.

    .venv/bin/python bench/safety_models.py [--cache emb.npz] [--max-fpr 0.04]

Candidates, all fitted on ``safety/data/train`` with the same seed and scored on
``eval/valid.jsonl`` (a separate author) and XSTest's safe prompts (written outside the
project): a logistic regression on the e5 embedding, the MLP on it (the meaning reading),
character 1-4-gram TF-IDF (the wording reading), the previous guard's classifier settings
(char_wb 1-4-grams, C=16), and the stack of meaning + wording + pattern flags that ships.
Each is compared at its own threshold: the lowest whose validation FPR stays <= --max-fpr.
``--cache`` keeps the embeddings between runs (keys: SHA-1 of the text as the model reads it).
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import numpy as np

from psyinsight.counsel.safety import model as M
from psyinsight.counsel.safety.corpus import load_examples, named_sets, training_rows
from psyinsight.counsel.safety.encoder import default_encoder
from psyinsight.counsel.safety.text import canonical


def embed(texts: list[str], cache: Path | None) -> np.ndarray:
    stored = dict(np.load(cache)) if cache and cache.exists() else {}
    keys = [hashlib.sha1(t.encode()).hexdigest() for t in texts]
    todo = [t for t, k in zip(texts, keys) if k not in stored]
    for t, v in zip(todo, default_encoder().embed(todo) if todo else []):
        stored[hashlib.sha1(t.encode()).hexdigest()] = v
    if cache and todo:
        np.savez(cache, **stored)
    return np.vstack([stored[k] for k in keys])


def main() -> None:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", type=Path, default=None, help="An .npz file keeping the embeddings between runs.")
    ap.add_argument("--max-fpr", type=float, default=0.04, help="Validation FPR budget each candidate's threshold is set to.")
    args = ap.parse_args()
    rows, valid, xs = training_rows(), load_examples(named_sets()["valid"]), load_examples(named_sets()["xstest_safe"])
    text = {k: [canonical(r["text"]) for r in v] for k, v in {"train": rows, "valid": valid, "xs": xs}.items()}
    emb = {k: embed(v, args.cache) for k, v in text.items()}
    y, yv = np.array([r["label"] != "none" for r in rows]), np.array([r["label"] != "none" for r in valid])

    def sk(estimator, kind: str):  # noqa: ANN001, ANN202
        fitted = estimator.fit(emb["train"] if kind == "emb" else text["train"], y)
        return lambda split: fitted.predict_proba(emb[split] if kind == "emb" else text[split])[:, 1]

    shipped, _ = M.fit(rows, emb["train"])
    flags = {k: M.pattern_flags(v) for k, v in text.items()}
    candidates = {
        "e5 + logistic regression": sk(make_pipeline(StandardScaler(), LogisticRegression(C=0.05, class_weight="balanced", max_iter=5000)), "emb"),
        "e5 + MLP (meaning)": lambda split: shipped.meaning(emb[split]),
        "char n-grams (wording)": lambda split: shipped.wording(text[split]),
        "previous classifier (char_wb 1-4, C=16)": sk(
            make_pipeline(
                TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 4), sublinear_tf=True),
                LogisticRegression(C=16, class_weight="balanced", max_iter=2000),
            ),
            "text",
        ),
        "stack: meaning + wording + patterns (ships)": lambda split: shipped.stack(
            shipped.meaning(emb[split]), shipped.wording(text[split]), flags[split]
        ),
    }
    print(f"train {len(rows)} rows, valid {len(valid)}, XSTest safe {len(xs)}; thresholds at validation FPR <= {args.max_fpr}")
    print(f"{'candidate':46} {'valid AUC':>9} {'recall':>7} {'FPR':>6} {'XSTest FPR':>10}")
    for name, score in candidates.items():
        sv, sx = score("valid"), score("xs")
        t = M.calibrate(valid, sv, args.max_fpr)
        print(f"{name:46} {roc_auc_score(yv, sv):9.4f} {(sv >= t)[yv].mean():7.3f} {(sv >= t)[~yv].mean():6.3f} {(sx >= t).mean():10.3f}")


if __name__ == "__main__":
    main()
