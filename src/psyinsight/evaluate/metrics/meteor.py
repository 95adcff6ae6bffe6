"""METEOR (nltk), with hypothesis and reference in their right places.

nltk's ``meteor_score(references, hypothesis)`` takes the references first; the release
passed them the other way round, and tokenised with spaces kept as tokens. Here both sides
are jieba tokens without whitespace, and WordNet comes from ``psyinsight.evaluate.wordnet``.
"""

from __future__ import annotations

from psyinsight.data.schema import Language
from psyinsight.evaluate.metrics.base import Metric, MetricResult, ScoringBatch, Signature, lib_version, mean
from psyinsight.evaluate.metrics.tokenizers import words, words_signature


class Meteor(Metric):
    """Mean sentence METEOR (alpha 0.9, beta 3, gamma 0.5; exact, Porter stem, WordNet synonyms)."""

    family = "meteor"

    def __init__(self, wordnet_dir: str | None = None):
        self.wordnet_dir = wordnet_dir
        self._wordnet = None

    def wordnet(self):
        if self._wordnet is None:
            from psyinsight.evaluate.wordnet import load_wordnet

            self._wordnet = load_wordnet(self.wordnet_dir)
        return self._wordnet

    def signature(self, language: Language) -> Signature:
        return Signature.of(
            "METEOR",
            level="sentence-mean",
            tok=words_signature(),
            alpha=0.9,
            beta=3.0,
            gamma=0.5,
            stem="porter",
            wordnet="3.0",
            nltk=lib_version("nltk"),
        )

    def score(self, batch: ScoringBatch) -> MetricResult:
        from nltk.translate.meteor_score import meteor_score

        wordnet = self.wordnet()
        values: list[float] = []
        for hyp, ref in zip(batch.hypotheses, batch.references):
            hyp_tokens, ref_tokens = words(hyp), words(ref)
            if not hyp_tokens or not ref_tokens:
                values.append(0.0)
                continue
            values.append(float(meteor_score([ref_tokens], hyp_tokens, wordnet=wordnet)))
        return MetricResult(self.family, {"METEOR": mean(values)}, self.signature(batch.language), len(batch), {"METEOR": values})
