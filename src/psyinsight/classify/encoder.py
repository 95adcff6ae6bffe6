"""A fine-tuned transformer encoder classifier (any local Hugging Face encoder folder).

For people with a GPU: the embedded default is the TF-IDF model. The utterance and its
preceding turns go in as a sentence pair (context second, truncated first), the [CLS]
head is trained with class-weighted cross-entropy (macro-F1 rewards rare classes), or with
binary cross-entropy per label for multi-label data. A plain torch loop: the data are
small and the loop is short enough to read whole.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from psyinsight.classify.base import Classifier, as_label_sets
from psyinsight.errors import PsyInsightError
from psyinsight.models import check_folder_with


@dataclass
class EncoderConfig:
    """Fine-tuning settings for the encoder classifier."""

    model_path: str = ""
    """A local Hugging Face encoder folder (config, weights, tokenizer), e.g. bert-base-chinese."""
    max_length: int = 256
    """Tokens per example (utterance + context); the context is truncated first."""
    epochs: int = 3
    learning_rate: float = 3e-5
    batch_size: int = 16
    weight_decay: float = 0.01
    warmup_ratio: float = 0.06
    class_weight: str = "balanced"
    """balanced: weight the loss by inverse class frequency; none: plain loss."""
    seed: int = 13
    device: str = "auto"
    """auto (cuda when available, else cpu), cpu, cuda, cuda:1..."""

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> EncoderConfig:
        return cls(**data)


def _device(name: str):
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def check_model_folder(path: str) -> Path:
    folder = Path(path)
    if not path:
        raise PsyInsightError("the encoder model needs a local Hugging Face model folder", where="--encoder-path")
    hint = "give a local encoder such as a bert-base-chinese download"
    return check_folder_with(folder, "config.json", "a Hugging Face model folder", hint, where="--encoder-path")


class EncoderClassifier(Classifier):
    """AutoModelForSequenceClassification fine-tuned on (utterance, context) pairs."""

    model_type = "encoder"

    def __init__(self, language: str, config: EncoderConfig | None = None):
        self.language = language
        self.config = config or EncoderConfig()
        self.losses_: list[float] = []

    def config_dict(self) -> dict:
        return self.config.to_dict()

    def _encode(self, texts: Sequence[str], contexts: Sequence[str] | None):
        pairs = list(contexts) if contexts is not None and any(c for c in contexts) else None
        return self.tokenizer_(
            list(texts),
            pairs,
            truncation="only_second" if pairs else True,
            max_length=self.config.max_length,
            padding=True,
            return_tensors="pt",
        )

    def fit(self, texts, labels, contexts=None):
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer, get_linear_schedule_with_warmup

        cfg = self.config
        folder = check_model_folder(cfg.model_path)
        sets = as_label_sets(labels)
        if not sets:
            raise ValueError("no training rows")
        self.multi_label = any(len(s) > 1 for s in sets)
        self.labels_ = sorted({lab for s in sets for lab in s})
        index = {lab: i for i, lab in enumerate(self.labels_)}
        torch.manual_seed(cfg.seed)
        random.seed(cfg.seed)
        self.tokenizer_ = AutoTokenizer.from_pretrained(folder)
        self.model_ = AutoModelForSequenceClassification.from_pretrained(
            folder,
            num_labels=len(self.labels_),
            id2label=dict(enumerate(self.labels_)),
            label2id=index,
            problem_type="multi_label_classification" if self.multi_label else "single_label_classification",
            ignore_mismatched_sizes=True,
        )
        device = _device(cfg.device)
        self.model_.to(device).train()
        if self.multi_label:
            target = torch.zeros(len(sets), len(self.labels_))
            for row, s in enumerate(sets):
                target[row, [index[lab] for lab in s]] = 1.0
        else:
            target = torch.tensor([index[s[0]] for s in sets])
        counts = np.bincount(target.numpy().astype(int), minlength=len(self.labels_)) if not self.multi_label else None
        weight = None
        if cfg.class_weight == "balanced" and counts is not None:
            weight = torch.tensor(len(sets) / (len(self.labels_) * np.maximum(counts, 1)), dtype=torch.float32).to(device)
        loss_fn = torch.nn.BCEWithLogitsLoss() if self.multi_label else torch.nn.CrossEntropyLoss(weight=weight)
        contexts = list(contexts) if contexts is not None else None
        order = list(range(len(sets)))
        steps = cfg.epochs * math.ceil(len(order) / cfg.batch_size)
        optimizer = torch.optim.AdamW(self.model_.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
        schedule = get_linear_schedule_with_warmup(optimizer, int(cfg.warmup_ratio * steps), steps)
        self.losses_ = []
        for _ in range(cfg.epochs):
            random.shuffle(order)
            for start in range(0, len(order), cfg.batch_size):
                batch = order[start : start + cfg.batch_size]
                enc = self._encode([texts[i] for i in batch], [contexts[i] for i in batch] if contexts else None).to(device)
                logits = self.model_(**enc).logits
                loss = loss_fn(logits, target[batch].to(device))
                loss.backward()
                torch.nn.utils.clip_grad_norm_(self.model_.parameters(), 1.0)
                optimizer.step()
                schedule.step()
                optimizer.zero_grad()
                self.losses_.append(float(loss.detach().cpu()))
        self.model_.eval()
        return self

    def predict_proba(self, texts, contexts=None):
        import torch

        device = next(self.model_.parameters()).device
        out = []
        contexts = list(contexts) if contexts is not None else None
        with torch.no_grad():
            for start in range(0, len(texts), 64):
                part = list(texts[start : start + 64])
                ctx = contexts[start : start + 64] if contexts else None
                logits = self.model_(**self._encode(part, ctx).to(device)).logits.float()
                probs = torch.sigmoid(logits) if self.multi_label else torch.softmax(logits, dim=-1)
                out.append(probs.cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, len(self.labels_)))

    def save_pretrained(self, folder: Path) -> Path:
        """Save weights and tokenizer; returns the weights file (hashed into the manifest)."""
        folder.mkdir(parents=True, exist_ok=True)
        self.model_.save_pretrained(folder, safe_serialization=True)
        self.tokenizer_.save_pretrained(folder)
        return folder / "model.safetensors"

    @classmethod
    def load_pretrained(cls, folder: Path, manifest: dict[str, Any], *, expected_sha256: str) -> EncoderClassifier:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        from psyinsight.fileio import sha256_file

        weights = folder / "model.safetensors"
        if not weights.is_file():
            raise PsyInsightError("the encoder weights named by the manifest are missing", path=weights)
        if sha256_file(weights) != expected_sha256:
            raise PsyInsightError("the encoder weights do not match the manifest's SHA-256; refusing to load them", path=weights)
        config = EncoderConfig.from_dict(manifest.get("config", {}))
        self = cls(manifest["language"], config)
        self.labels_ = list(manifest["labels"])
        self.multi_label = bool(manifest.get("multi_label"))
        self.tokenizer_ = AutoTokenizer.from_pretrained(folder)
        self.model_ = AutoModelForSequenceClassification.from_pretrained(folder).to(_device(config.device)).eval()
        return self
