"""The metric suite: which metrics to run, configured in one place.

``MetricConfig`` fields carry their help text (``metadata["help"]``), which the CLI
repeats; ``build_metrics`` turns a config into metric objects, ``score`` runs them on a
batch. Metric objects cache their heavy state (WordNet, BERTScore model), so build them
once and reuse them across batches.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from psyinsight.errors import PsyInsightError
from psyinsight.evaluate.metrics.base import Metric, MetricResult, ScoringBatch

FAMILIES = ("bleu", "sacrebleu", "meteor", "rouge", "bertscore", "distinct", "length")


@dataclass
class MetricConfig:
    """How to score predictions; every field is also a CLI flag of ``psyinsight evaluate``."""

    metrics: tuple[str, ...] = field(default=FAMILIES, metadata={"help": f"metric families to compute, from {', '.join(FAMILIES)}"})
    bertscore_model_en: str | None = field(
        default=None,
        metadata={
            "help": "English BERTScore encoder: hub name, local folder, or 'minilm' for the embedded all-MiniLM-L6-v2 (default roberta-large; env PSYINSIGHT_BERTSCORE_MODEL_EN)"
        },
    )
    bertscore_layer_en: int | None = field(
        default=None, metadata={"help": "layer for the English encoder (default 17 for roberta-large, the last layer for a local folder)"}
    )
    bertscore_model_zh: str | None = field(
        default=None,
        metadata={
            "help": "Chinese BERTScore encoder: hub name, local folder, or 'minilm' (English-only: a stand-in for offline demos) (default bert-base-chinese; env PSYINSIGHT_BERTSCORE_MODEL_ZH)"
        },
    )
    bertscore_layer_zh: int | None = field(default=None, metadata={"help": "layer for the Chinese encoder (default 8 for bert-base-chinese)"})
    bertscore_batch_size: int = field(default=64, metadata={"help": "sentences per BERTScore batch; larger is faster until memory runs out"})
    bertscore_rescale: bool = field(
        default=False, metadata={"help": "rescale BERTScore with bert-score's baseline where one exists (the paper did not rescale)"}
    )
    device: str | None = field(default=None, metadata={"help": "torch device for BERTScore (default: cuda if available, else cpu)"})
    zh_rouge_unit: str = field(default="word", metadata={"help": "Chinese ROUGE unit: 'word' (jieba) or 'char'"})
    wordnet_dir: str | None = field(default=None, metadata={"help": "WordNet folder for METEOR (default: nltk data, then /usr/share/wordnet)"})
    strip_speaker: bool = field(default=True, metadata={"help": "remove a leading 'Therapist:'/'咨询师：' marker from both sides before scoring"})

    def __post_init__(self) -> None:
        self.metrics = tuple(self.metrics)
        unknown = [m for m in self.metrics if m not in FAMILIES]
        if unknown:
            raise PsyInsightError(f"unknown metric(s) {', '.join(unknown)}; choose from {', '.join(FAMILIES)}", where="metrics")
        if self.zh_rouge_unit not in ("word", "char"):
            raise PsyInsightError(f"unknown unit {self.zh_rouge_unit!r}; use 'word' or 'char'", where="zh_rouge_unit")
        if self.bertscore_batch_size < 1:
            raise PsyInsightError("must be at least 1", where="bertscore_batch_size")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def build_metrics(config: MetricConfig) -> list[Metric]:
    """Metric objects for the configured families, in a stable order."""
    from psyinsight.evaluate.metrics.bertscore import BertScore
    from psyinsight.evaluate.metrics.bleu import PaperBLEU, SacreBLEU
    from psyinsight.evaluate.metrics.distinct import Distinct
    from psyinsight.evaluate.metrics.length import Length
    from psyinsight.evaluate.metrics.meteor import Meteor
    from psyinsight.evaluate.metrics.rouge import Rouge

    makers = {
        "bleu": PaperBLEU,
        "sacrebleu": SacreBLEU,
        "meteor": lambda: Meteor(config.wordnet_dir),
        "rouge": lambda: Rouge(config.zh_rouge_unit),  # type: ignore[arg-type]
        "bertscore": lambda: BertScore(
            {"en": config.bertscore_model_en, "cn": config.bertscore_model_zh},
            {"en": config.bertscore_layer_en, "cn": config.bertscore_layer_zh},
            batch_size=config.bertscore_batch_size,
            device=config.device,
            rescale=config.bertscore_rescale,
        ),
        "distinct": Distinct,
        "length": Length,
    }
    return [makers[name]() for name in FAMILIES if name in config.metrics]


def score(batch: ScoringBatch, metrics: list[Metric]) -> list[MetricResult]:
    """Run each metric on the batch."""
    return [metric.score(batch) for metric in metrics]
