"""ROUGE-1/2/L F-measure (rouge-score) with a tokenizer that keeps Chinese.

rouge-score's default tokenizer deletes every character outside [a-z0-9], so Chinese
scores ~0 (the release's bug). ``RougeTokenizer`` keeps the default rule for everything
else and segments Chinese into jieba words (``zh_unit="word"``, default) or characters.
"""

from __future__ import annotations

from psyinsight.data.schema import Language
from psyinsight.evaluate.metrics.base import Metric, MetricResult, ScoringBatch, Signature, lib_version, mean
from psyinsight.evaluate.metrics.tokenizers import RougeTokenizer, ZhUnit

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")
NAMES = {"rouge1": "ROUGE-1", "rouge2": "ROUGE-2", "rougeL": "ROUGE-L"}


class Rouge(Metric):
    """Mean sentence ROUGE F-measure, no stemming."""

    family = "rouge"

    def __init__(self, zh_unit: ZhUnit = "word"):
        self.tokenizer = RougeTokenizer(zh_unit)
        self._scorer = None

    def signature(self, language: Language) -> Signature:
        return Signature.of(
            "ROUGE",
            measure="F",
            level="sentence-mean",
            tok=self.tokenizer.signature,
            stem="no",
            version=lib_version("rouge-score"),
        )

    def score(self, batch: ScoringBatch) -> MetricResult:
        if self._scorer is None:
            from rouge_score.rouge_scorer import RougeScorer

            self._scorer = RougeScorer(list(ROUGE_TYPES), use_stemmer=False, tokenizer=self.tokenizer)
        segments: dict[str, list[float]] = {NAMES[t]: [] for t in ROUGE_TYPES}
        for hyp, ref in zip(batch.hypotheses, batch.references):
            result = self._scorer.score(target=ref, prediction=hyp)
            for rouge_type in ROUGE_TYPES:
                segments[NAMES[rouge_type]].append(float(result[rouge_type].fmeasure))
        scores = {name: mean(values) for name, values in segments.items()}
        return MetricResult(self.family, scores, self.signature(batch.language), len(batch), segments)
