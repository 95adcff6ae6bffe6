"""Tokenizers for the metrics, each with a signature.

- ``words``: jieba segmentation (the release's tokenizer for BLEU), whitespace tokens
  dropped. jieba splits English on spaces and punctuation and Chinese into words, so one
  tokenizer serves both languages. Used by paper BLEU, METEOR, Distinct and length.
- ``RougeTokenizer``: rouge-score's default rule (lowercase, keep [a-z0-9] runs) extended
  to keep Chinese, segmented into jieba words (default) or single characters. On text
  without Chinese it gives exactly rouge-score's default tokens.

jieba is imported and initialised once per process, quietly.
"""

from __future__ import annotations

import functools
import logging
import re
from typing import Literal

from psyinsight.evaluate.metrics.base import lib_version
from psyinsight.language import CJK_RANGE, has_cjk

_CJK_RUN = re.compile(f"([{CJK_RANGE}]+)")
_NOT_KEPT = re.compile(f"[^a-z0-9{CJK_RANGE}]+")

ZhUnit = Literal["word", "char"]


@functools.lru_cache(maxsize=1)
def _jieba():
    """jieba, initialised once with its log quiet (it prints the dictionary build otherwise)."""
    import jieba

    jieba.setLogLevel(logging.WARNING)
    logging.getLogger("jieba").setLevel(logging.WARNING)
    jieba.initialize()
    return jieba


def words(text: str) -> list[str]:
    """jieba tokens with whitespace tokens removed (the release kept spaces as tokens)."""
    return [tok for tok in _jieba().lcut(text) if tok.strip()]


def words_signature() -> str:
    return f"jieba-{lib_version('jieba')}-nospace"


class RougeTokenizer:
    """rouge-score's default tokenization that keeps Chinese (jieba words or characters)."""

    def __init__(self, zh_unit: ZhUnit = "word"):
        if zh_unit not in ("word", "char"):
            from psyinsight.errors import PsyInsightError

            raise PsyInsightError(f"unknown unit {zh_unit!r}; use 'word' (jieba) or 'char'", where="ROUGE zh_unit")
        self.zh_unit = zh_unit

    def tokenize(self, text: str) -> list[str]:
        tokens: list[str] = []
        for piece in _NOT_KEPT.sub(" ", text.lower()).split():
            if not has_cjk(piece):
                tokens.append(piece)
                continue
            for run in _CJK_RUN.split(piece):
                if not run:
                    continue
                if not has_cjk(run):
                    tokens.append(run)
                elif self.zh_unit == "char":
                    tokens.extend(run)
                else:
                    tokens.extend(tok for tok in _jieba().lcut(run) if tok.strip())
        return tokens

    @property
    def signature(self) -> str:
        zh = f"jieba-{lib_version('jieba')}" if self.zh_unit == "word" else "char"
        return f"rouge-default+zh-{zh}"
