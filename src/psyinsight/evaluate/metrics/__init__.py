"""Automatic metrics for generated counselor turns, each result with its signature.

See ``suite.MetricConfig`` for the options and each module for its definition:
``bleu`` (sacreBLEU corpus and the paper's sentence BLEU), ``meteor``, ``rouge``,
``bertscore``, ``distinct``, ``length``. Heavy libraries are imported on first use.
"""

from psyinsight.evaluate.metrics.base import Metric, MetricResult, ScoringBatch, Signature, strip_speaker
from psyinsight.evaluate.metrics.suite import FAMILIES, MetricConfig, build_metrics, score

__all__ = [
    "FAMILIES",
    "Metric",
    "MetricConfig",
    "MetricResult",
    "ScoringBatch",
    "Signature",
    "build_metrics",
    "score",
    "strip_speaker",
]
