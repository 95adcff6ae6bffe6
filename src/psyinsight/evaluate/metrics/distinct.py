"""Distinct-n: lexical diversity of the generated responses.

Two numbers, named apart: ``Distinct-n`` is corpus level (unique n-grams over all
responses / all n-grams), the usual definition; ``Distinct-n(mean)`` is the mean over
responses of each response's own ratio (responses with no n-gram are left out). The
release further divided the corpus number by the number of samples; we do not.
"""

from __future__ import annotations

from psyinsight.data.schema import Language
from psyinsight.evaluate.metrics.base import Metric, MetricResult, ScoringBatch, Signature, mean
from psyinsight.evaluate.metrics.tokenizers import words, words_signature

ORDERS = (1, 2, 3)


def ngrams(tokens: list[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


def distinct_corpus(token_lists: list[list[str]], n: int) -> float:
    """Unique n-grams / all n-grams over the whole corpus (0 when there is no n-gram)."""
    grams = [gram for tokens in token_lists for gram in ngrams(tokens, n)]
    return len(set(grams)) / len(grams) if grams else 0.0


def distinct_per_response(tokens: list[str], n: int) -> float | None:
    grams = ngrams(tokens, n)
    return len(set(grams)) / len(grams) if grams else None


class Distinct(Metric):
    """Distinct-1/2/3 at corpus level and as a per-response mean, over jieba tokens."""

    family = "distinct"

    def signature(self, language: Language) -> Signature:
        return Signature.of("Distinct", of="hypotheses", tok=words_signature(), corpus="unique/total", mean="per-response")

    def score(self, batch: ScoringBatch) -> MetricResult:
        token_lists = [words(h) for h in batch.hypotheses]
        scores: dict[str, float] = {}
        segments: dict[str, list[float]] = {}
        statistics: dict[str, dict] = {}
        for n in ORDERS:
            scores[f"Distinct-{n}"] = distinct_corpus(token_lists, n) if token_lists else float("nan")
            per = [distinct_per_response(t, n) for t in token_lists]
            scores[f"Distinct-{n}(mean)"] = mean([d for d in per if d is not None])
            segments[f"Distinct-{n}(mean)"] = [float("nan") if d is None else d for d in per]
            # unique/total of any resample is recomputed from the responses' tokens (the same list for every n)
            statistics[f"Distinct-{n}"] = {"kind": "distinct", "order": n, "rows": token_lists}
        return MetricResult(self.family, scores, self.signature(batch.language), len(batch), segments, statistics)
