"""Retrieving similar training sessions for the RAG task (task 4).

The query is the dialogue history so far; the documents are training sessions (their
background, summary and utterances). Two scorers: BM25 (``rank-bm25``, the default) and
TF-IDF cosine (scikit-learn). English is tokenised into lower-case words, Chinese into
jieba words when jieba is installed, else character bigrams (no dependency needed).
Only the training split is ever indexed, so retrieval cannot leak test sessions.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from psyinsight.data.schema import Session
from psyinsight.errors import PsyInsightError
from psyinsight.language import CJK_RANGE

Method = Literal["bm25", "tfidf"]
METHODS: tuple[Method, ...] = ("bm25", "tfidf")

_WORD = re.compile(r"[a-z0-9']+")
_HAN = re.compile(f"[{CJK_RANGE}]+")


def tokenize(text: str, language: str) -> list[str]:
    """Words for English; jieba words (or character bigrams) for Chinese."""
    if language != "cn":
        return _WORD.findall(text.lower())
    try:
        import jieba  # type: ignore[import-untyped]

        jieba.setLogLevel(60)
        return [w for w in jieba.lcut(text) if w.strip() and not re.fullmatch(r"\W+", w)]
    except ImportError:
        tokens: list[str] = _WORD.findall(text.lower())
        for run in _HAN.findall(text):
            tokens += [run[i : i + 2] for i in range(max(1, len(run) - 1))]
        return tokens


def session_document(session: Session) -> str:
    """The text a session is indexed by."""
    parts = [session.background, session.summary, session.topic, session.psychotherapy]
    parts += [t.content for t in session.dialog]
    return "\n".join(p for p in parts if p)


@dataclass
class Retriever:
    """An index over sessions of one language; ``search`` returns the k best sessions."""

    sessions: list[Session]
    language: str
    method: Method = "bm25"

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise PsyInsightError(f"unknown retrieval method {self.method!r}; choose from {', '.join(METHODS)}", where="rag_method")
        docs = [tokenize(session_document(s), self.language) for s in self.sessions]
        self._bm25 = None
        self._tfidf = None
        if not self.sessions:
            return
        if self.method == "bm25":
            try:
                from rank_bm25 import BM25Okapi
            except ImportError:
                raise PsyInsightError("BM25 retrieval needs `pip install rank-bm25` (or use rag_method: tfidf)", where="rag_method") from None
            self._bm25 = BM25Okapi([d or ["<empty>"] for d in docs])
        else:
            try:
                from sklearn.feature_extraction.text import TfidfVectorizer
            except ImportError:
                raise PsyInsightError("TF-IDF retrieval needs `pip install scikit-learn` (or use rag_method: bm25)", where="rag_method") from None
            self._vectorizer = TfidfVectorizer(analyzer=lambda d: d, sublinear_tf=True)
            self._tfidf = self._vectorizer.fit_transform(docs)

    def scores(self, query: str) -> list[float]:
        tokens = tokenize(query, self.language)
        if not self.sessions or not tokens:
            return [0.0] * len(self.sessions)
        if self._bm25 is not None:
            return [float(x) for x in self._bm25.get_scores(tokens)]
        vec = self._vectorizer.transform([tokens])
        return [float(x) for x in (self._tfidf @ vec.T).toarray().ravel()]

    def search(self, query: str, k: int, *, exclude: set[str] = frozenset()) -> list[Session]:  # type: ignore[assignment]
        """The k highest-scoring sessions whose uid (or case group) is not excluded; ties by uid."""
        scored = sorted(zip(self.scores(query), (s.uid for s in self.sessions), self.sessions), key=lambda x: (-x[0], x[1]))
        return [s for _, uid, s in scored if uid not in exclude][:k]


def build_retrievers(sessions: Sequence[Session], method: Method = "bm25") -> dict[str, Retriever]:
    """One retriever per language present in ``sessions``."""
    by_language: dict[str, list[Session]] = {}
    for s in sessions:
        by_language.setdefault(s.language, []).append(s)
    return {lang: Retriever(group, lang, method) for lang, group in by_language.items()}
