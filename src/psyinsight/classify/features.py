"""TF-IDF features for short counseling texts in English and Chinese.

Blocks stacked side by side: word n-grams (jieba words for Chinese), character n-grams
(robust to spelling and to Chinese without segmentation), words of the preceding turns
(context) and, when the context holds a ``[NEXT]`` line, words of the following turns; the
context blocks are scaled down so the utterance itself dominates. A function at
module level is the tokenizer so that a fitted featurizer pickles.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from psyinsight.classify.tasks import NEXT_MARKER

_WORD = re.compile(r"(?u)\b\w+\b")


def tokenize_en(text: str) -> list[str]:
    return _WORD.findall(text.lower())


@functools.lru_cache(maxsize=200_000)
def _jieba_words(text: str) -> tuple[str, ...]:
    import jieba

    jieba.setLogLevel(60)
    return tuple(w.lower() for w in jieba.lcut(text) if w.strip())


def tokenize_cn(text: str) -> list[str]:
    """jieba words (precise mode), spaces dropped; Latin words lower-cased.

    Segmentation is the slow part of Chinese features and cross-validation tokenizes the
    same texts once per fold, so words are memoised per text.
    """
    return list(_jieba_words(text))


TOKENIZERS = {"en": tokenize_en, "cn": tokenize_cn}


@dataclass
class FeatureConfig:
    """TF-IDF feature blocks. Tuned by grouped cross-validation on training folds."""

    word_ngrams: tuple[int, int] = (1, 2)
    """Word n-gram range (jieba words for cn). (0, 0) turns the block off."""
    char_ngrams: tuple[int, int] = (1, 4)
    """Character n-gram range within word boundaries. (0, 0) turns the block off."""
    context_weight: float = 0.5
    """Scale of the context block (preceding turns) against the utterance; 0 ignores context."""
    next_weight: float = 0.5
    """Scale of the following-turns block (context after a ``[NEXT]`` line); 0 ignores it."""
    min_df: int = 1
    """Drop n-grams seen in fewer training rows (char n-grams use at least 2)."""
    max_features: int | None = 200000
    """Cap per block, keeps models small on large corpora."""
    sublinear_tf: bool = True
    """1 + log(tf): long session texts do not drown short ones."""

    def to_dict(self) -> dict:
        return asdict(self)


def split_contexts(contexts: Sequence[str] | None, n: int) -> dict[str, list[str]]:
    """Preceding and following turns of each context (split at the ``[NEXT]`` line)."""
    if contexts is None:
        return {"context": [""] * n, "next": [""] * n}
    before, after = [], []
    for text in contexts:
        head, marker, tail = text.partition(NEXT_MARKER)
        before.append(head)
        after.append(tail if marker else "")
    return {"context": before, "next": after}


class TextFeaturizer:
    """Fits the TF-IDF blocks for one language; ``transform(texts, contexts)`` gives a sparse matrix."""

    def __init__(self, language: str, config: FeatureConfig | None = None):
        self.language = language
        self.config = config or FeatureConfig()
        self.blocks_: list[tuple[str, object, float]] = []

    def _tokenizer(self):
        return TOKENIZERS.get(self.language, tokenize_en)

    def _vectorizers(self) -> list[tuple[str, object, float]]:
        from sklearn.feature_extraction.text import TfidfVectorizer

        cfg = self.config
        blocks: list[tuple[str, object, float]] = []
        if cfg.word_ngrams[1] > 0:
            vec = TfidfVectorizer(
                tokenizer=self._tokenizer(),
                token_pattern=None,
                lowercase=False,
                ngram_range=tuple(cfg.word_ngrams),
                min_df=cfg.min_df,
                max_features=cfg.max_features,
                sublinear_tf=cfg.sublinear_tf,
                dtype=np.float32,
            )
            blocks.append(("text", vec, 1.0))
        if cfg.char_ngrams[1] > 0:
            vec = TfidfVectorizer(
                analyzer="char_wb",
                ngram_range=tuple(cfg.char_ngrams),
                min_df=max(2, cfg.min_df),
                max_features=cfg.max_features,
                sublinear_tf=cfg.sublinear_tf,
                dtype=np.float32,
            )
            blocks.append(("text", vec, 1.0))
        for source, weight in (("context", cfg.context_weight), ("next", cfg.next_weight)):
            if weight > 0:
                vec = TfidfVectorizer(
                    tokenizer=self._tokenizer(),
                    token_pattern=None,
                    lowercase=False,
                    ngram_range=(1, 1),
                    min_df=cfg.min_df,
                    max_features=cfg.max_features,
                    sublinear_tf=cfg.sublinear_tf,
                    dtype=np.float32,
                )
                blocks.append((source, vec, float(weight)))
        return blocks

    def fit_transform(self, texts: Sequence[str], contexts: Sequence[str] | None = None):
        """Fit each block and return the training matrix (one pass over the text per block)."""
        from scipy.sparse import hstack

        inputs = {"text": list(texts), **split_contexts(contexts, len(texts))}
        self.blocks_ = []
        mats = []
        for source, vec, weight in self._vectorizers():
            if source != "text" and not any(c.strip() for c in inputs[source]):
                continue
            mat = vec.fit_transform(inputs[source])
            self.blocks_.append((source, vec, weight))
            mats.append(mat * weight if weight != 1.0 else mat)
        if not self.blocks_:
            raise ValueError("every feature block is turned off")
        return hstack(mats).tocsr()

    def fit(self, texts: Sequence[str], contexts: Sequence[str] | None = None) -> TextFeaturizer:
        self.fit_transform(texts, contexts)
        return self

    def transform(self, texts: Sequence[str], contexts: Sequence[str] | None = None):
        from scipy.sparse import hstack

        if not self.blocks_:
            raise RuntimeError("TextFeaturizer.transform called before fit")
        inputs = {"text": list(texts), **split_contexts(contexts, len(texts))}
        mats = []
        for source, vec, weight in self.blocks_:
            mat = vec.transform(inputs[source])
            mats.append(mat * weight if weight != 1.0 else mat)
        return hstack(mats).tocsr()
