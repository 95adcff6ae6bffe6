"""BLEU-1..4, two ways that must not be confused.

- ``SacreBLEU``: corpus BLEU from summed n-gram statistics (sacrebleu; tokenize 13a for
  English, zh for Chinese), 0-100 as sacrebleu prints it. Comparable across papers.
- ``PaperBLEU``: the release's convention, kept for comparison with its table: nltk
  sentence BLEU with uniform weights up to n, smoothing method1, jieba tokens, averaged
  over sentences, 0-1.
"""

from __future__ import annotations

import warnings

from psyinsight.data.schema import Language
from psyinsight.evaluate.metrics.base import Metric, MetricResult, ScoringBatch, Signature, lib_version, mean
from psyinsight.evaluate.metrics.tokenizers import words, words_signature

ORDERS = (1, 2, 3, 4)


class SacreBLEU(Metric):
    """sacrebleu corpus BLEU-n for n = 1..4 (``sacreBLEU-n``, 0-100)."""

    family = "sacrebleu"

    @staticmethod
    def tokenize_name(language: Language) -> str:
        return "zh" if language == "cn" else "13a"

    def signature(self, language: Language) -> Signature:
        return Signature.of(
            "sacreBLEU",
            nrefs=1,
            case="mixed",
            eff="no",
            tok=self.tokenize_name(language),
            smooth="exp",
            orders="1-4",
            scale="0-100",
            version=lib_version("sacrebleu"),
        )

    def score(self, batch: ScoringBatch) -> MetricResult:
        from sacrebleu.metrics import BLEU

        scores: dict[str, float] = {}
        statistics: dict[str, dict] = {}
        for n in ORDERS:
            if len(batch) == 0:
                scores[f"sacreBLEU-{n}"] = float("nan")
                continue
            bleu = BLEU(tokenize=self.tokenize_name(batch.language), max_ngram_order=n)
            # corpus_score() is these two steps; the per-sentence statistics are kept for the bootstrap
            stats = bleu._extract_corpus_statistics(batch.hypotheses, [batch.references])
            scores[f"sacreBLEU-{n}"] = float(bleu._aggregate_and_compute(stats).score)
            statistics[f"sacreBLEU-{n}"] = {"kind": "sacrebleu", "order": n, "rows": [[int(v) for v in row] for row in stats]}
        return MetricResult(self.family, scores, self.signature(batch.language), len(batch), statistics=statistics)


class PaperBLEU(Metric):
    """The release's BLEU-n: mean nltk sentence BLEU, uniform weights, smoothing method1, jieba tokens."""

    family = "bleu"

    def signature(self, language: Language) -> Signature:
        return Signature.of(
            "BLEU(paper)",
            level="sentence-mean",
            weights="uniform",
            smooth="method1",
            tok=words_signature(),
            orders="1-4",
            scale="0-1",
            nltk=lib_version("nltk"),
        )

    def score(self, batch: ScoringBatch) -> MetricResult:
        from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

        smooth = SmoothingFunction().method1
        segments: dict[str, list[float]] = {f"BLEU-{n}": [] for n in ORDERS}
        for hyp, ref in zip(batch.hypotheses, batch.references):
            hyp_tokens, ref_tokens = words(hyp), words(ref)
            for n in ORDERS:
                segments[f"BLEU-{n}"].append(sentence_bleu_safe(sentence_bleu, ref_tokens, hyp_tokens, n, smooth))
        scores = {name: mean(values) for name, values in segments.items()}
        return MetricResult(self.family, scores, self.signature(batch.language), len(batch), segments)


def sentence_bleu_safe(sentence_bleu, ref_tokens: list[str], hyp_tokens: list[str], n: int, smooth) -> float:
    """nltk sentence BLEU-n; 0 for an empty side (nltk warns and may divide by zero there)."""
    if not hyp_tokens or not ref_tokens:
        return 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(sentence_bleu([ref_tokens], hyp_tokens, weights=tuple([1.0 / n] * n), smoothing_function=smooth))
