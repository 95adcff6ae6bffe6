"""BERTScore P/R/F (bert-score), one model load per process, batched.

The release scored Chinese with the English model and reloaded roberta-large for every
sample. Here each language has its own default (the library's: roberta-large layer 17 for
English, bert-base-chinese layer 8 for Chinese), any local folder can replace it, the
scorer is built once and cached, and sentences are scored in batches. Rescaling with a
baseline is applied only where bert-score ships a baseline for that model and language.
"""

from __future__ import annotations

import os
import socket
import warnings
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from psyinsight.errors import PsyInsightError
from psyinsight.metrics.base import Metric, MetricResult, ScoringBatch, Signature, lib_version, mean
from psyinsight.schema import Language

DEFAULT_MODELS: dict[str, tuple[str, int]] = {"en": ("roberta-large", 17), "cn": ("bert-base-chinese", 8)}
MODEL_ENV = {"en": "PSYINSIGHT_BERTSCORE_MODEL_EN", "cn": "PSYINSIGHT_BERTSCORE_MODEL_ZH"}
LAYER_ENV = {"en": "PSYINSIGHT_BERTSCORE_LAYER_EN", "cn": "PSYINSIGHT_BERTSCORE_LAYER_ZH"}
LIB_LANG = {"en": "en", "cn": "zh"}
FLAG = {"en": "--bertscore-model-en", "cn": "--bertscore-model-zh"}

_SCORERS: dict[tuple, object] = {}


@dataclass(frozen=True)
class BertScoreModel:
    """The encoder for one language: a hub name or a local folder, and the layer to read."""

    name: str
    layer: int
    local: bool

    @property
    def label(self) -> str:
        """A short name for signatures: the hub name, or the folder's last two parts."""
        if not self.local:
            return self.name
        parts = Path(self.name).parts
        return "/".join(parts[-2:]) if len(parts) >= 2 else self.name


def resolve_model(language: Language, model: str | None = None, layer: int | None = None) -> BertScoreModel:
    """Pick the model for a language: argument, then environment, then the library default."""
    default_name, default_layer = DEFAULT_MODELS[language]
    name = model or os.environ.get(MODEL_ENV[language]) or default_name
    if layer is None and os.environ.get(LAYER_ENV[language]):
        try:
            layer = int(os.environ[LAYER_ENV[language]])
        except ValueError:
            raise PsyInsightError(f"not an integer: {os.environ[LAYER_ENV[language]]!r}", where=LAYER_ENV[language]) from None
    path = Path(name).expanduser()
    if path.is_dir():
        if layer is None:
            layer = _layers_of(path)
        return BertScoreModel(str(path.resolve()), int(layer), True)
    if any(sep in name for sep in ("/", "\\")) and name.startswith((".", "/", "~")):
        raise PsyInsightError(f"no such model folder; give a local encoder folder or a hub name with {FLAG[language]}", path=name, where=f"BERTScore model ({language})")
    if layer is None:
        from bert_score.utils import model2layers

        layer = model2layers.get(name, default_layer if name == default_name else None)
        if layer is None:
            raise PsyInsightError(f"no default layer known for {name!r}; give one with --bertscore-layer-{'en' if language == 'en' else 'zh'}", where="BERTScore")
    return BertScoreModel(name, int(layer), False)


def _layers_of(path: Path) -> int:
    """The last layer of a local encoder (its config's num_hidden_layers)."""
    import json

    config = path / "config.json"
    try:
        return int(json.loads(config.read_text(encoding="utf-8"))["num_hidden_layers"])
    except (OSError, ValueError, KeyError):
        raise PsyInsightError("cannot read num_hidden_layers; give the layer explicitly", path=config, where="BERTScore model") from None


def _hub_reachable(timeout: float = 3.0) -> bool:
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes"}:
        return False
    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname or "huggingface.co"
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


def _cached_on_disk(name: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(name, "config.json"), str)
    except Exception:
        return False


def _unavailable(model: BertScoreModel, language: Language, why: str) -> PsyInsightError:
    return PsyInsightError(
        f"BERTScore model {model.name!r} is not available ({why}). Download it where the hub is reachable "
        f"and pass its local folder with {FLAG[language]} PATH (and the layer with --bertscore-layer-"
        f"{'en' if language == 'en' else 'zh'}), or set {MODEL_ENV[language]}",
        where=f"BERTScore ({language})",
    )


def has_baseline(model: BertScoreModel, language: Language) -> bool:
    """bert-score ships rescaling baselines for hub models only (rescale_baseline/<lang>/<model>.tsv)."""
    if model.local:
        return False
    import bert_score

    folder = Path(bert_score.__file__).parent / "rescale_baseline" / LIB_LANG[language]
    return (folder / f"{model.name}.tsv").is_file()


def get_scorer(model: BertScoreModel, language: Language, *, rescale: bool, device: str | None):
    """The cached ``BERTScorer`` for this model/layer/device (built on first use only)."""
    key = (model.name, model.layer, language, rescale, device)
    if key in _SCORERS:
        return _SCORERS[key]
    if not model.local and not _cached_on_disk(model.name) and not _hub_reachable():
        raise _unavailable(model, language, "not in the local Hugging Face cache and the hub cannot be reached")
    from bert_score import BERTScorer

    try:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    except Exception:  # pragma: no cover - cosmetic only
        pass
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            scorer = BERTScorer(
                model_type=model.name, num_layers=model.layer, lang=LIB_LANG[language],
                rescale_with_baseline=rescale, device=device,
            )
    except PsyInsightError:
        raise
    except Exception as exc:
        raise _unavailable(model, language, f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}") from None
    _SCORERS[key] = scorer
    return scorer


class BertScore(Metric):
    """BERTScore-P/R/F means; per-language model, layer, batch size and device."""

    family = "bertscore"

    def __init__(
        self,
        models: dict[str, str | None] | None = None,
        layers: dict[str, int | None] | None = None,
        *,
        batch_size: int = 64,
        device: str | None = None,
        rescale: bool = False,
    ):
        self.models = models or {}
        self.layers = layers or {}
        self.batch_size = batch_size
        self.device = device
        self.rescale = rescale

    def model_for(self, language: Language) -> BertScoreModel:
        return resolve_model(language, self.models.get(language), self.layers.get(language))

    def _rescaled(self, model: BertScoreModel, language: Language) -> bool:
        if self.rescale and not has_baseline(model, language):
            warnings.warn(f"BERTScore: no rescaling baseline for {model.label} ({language}); scores are not rescaled", stacklevel=2)
            return False
        return self.rescale

    def signature(self, language: Language) -> Signature:
        model = self.model_for(language)
        return Signature.of(
            "BERTScore", model=model.label, layer=model.layer, idf="no",
            rescale="yes" if self.rescale and has_baseline(model, language) else "no",
            bert_score=lib_version("bert-score"), transformers=lib_version("transformers"),
        )

    def score(self, batch: ScoringBatch) -> MetricResult:
        model = self.model_for(batch.language)
        rescale = self._rescaled(model, batch.language)
        names = ("BERTScore-P", "BERTScore-R", "BERTScore-F")
        if len(batch) == 0:
            return MetricResult(self.family, {n: float("nan") for n in names}, self.signature(batch.language), 0)
        scorer = get_scorer(model, batch.language, rescale=rescale, device=self.device)
        # An empty side scores 0 (bert-score's own rule for empty candidates). They are kept
        # out of the batch: bert-score's empty-sentence path fails on transformers >= 5.
        keep = [i for i, (h, r) in enumerate(zip(batch.hypotheses, batch.references)) if h.strip() and r.strip()]
        segments = {name: [0.0] * len(batch) for name in names}
        if keep:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                p, r, f = scorer.score([batch.hypotheses[i] for i in keep], [batch.references[i] for i in keep], batch_size=self.batch_size)
            for name, values in zip(names, (p.tolist(), r.tolist(), f.tolist())):
                for i, value in zip(keep, values):
                    segments[name][i] = float(value)
        scores = {name: mean(values) for name, values in segments.items()}
        return MetricResult(self.family, scores, self.signature(batch.language), len(batch), segments)
