"""Response length and the generation parse-failure rate.

Length is reported in jieba tokens and characters for both the hypotheses and the
references, so a model that writes too much or too little is visible next to the overlap
metrics. The parse-failure rate is the share of predictions whose output could not be
parsed into observation/reasoning/response (scored on the raw text, never dropped).
"""

from __future__ import annotations

from psyinsight.data.schema import Language
from psyinsight.evaluate.metrics.base import Metric, MetricResult, ScoringBatch, Signature, mean
from psyinsight.evaluate.metrics.tokenizers import words, words_signature


class Length(Metric):
    family = "length"

    def signature(self, language: Language) -> Signature:
        return Signature.of("Length", tok=words_signature(), chars="unicode", parse="Prediction.parse_ok")

    def score(self, batch: ScoringBatch) -> MetricResult:
        segments = {
            "Length": [float(len(words(h))) for h in batch.hypotheses],
            "Length(chars)": [float(len(h)) for h in batch.hypotheses],
            "RefLength": [float(len(words(r))) for r in batch.references],
        }
        if batch.parse_ok is not None:
            segments["ParseFailure"] = [0.0 if ok else 1.0 for ok in batch.parse_ok]
        scores = {name: mean(values) for name, values in segments.items()}
        return MetricResult(self.family, scores, self.signature(batch.language), len(batch), segments)
