"""Turning a list of features into a batch: padded, or packed into one row.

Labels and weights are built upstream (loss.py), where the data is understood.
``PadCollator`` only pads: ``input_ids`` with the pad token, ``attention_mask`` with 0,
``labels`` with ``IGNORE_INDEX`` and ``loss_weights`` with 0, on the right (training).
``PackCollator`` concatenates the examples into one row with ``position_ids`` that restart
at every example: no padding at all, and the model keeps attention inside each example.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from psyinsight.train.loss import IGNORE_INDEX


@dataclass
class PadCollator:
    """Right-pads features to the longest in the batch (rounded up to ``pad_to_multiple_of``)."""

    pad_token_id: int
    pad_to_multiple_of: int | None = None

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        longest = max(len(f["input_ids"]) for f in features)
        if self.pad_to_multiple_of:
            m = self.pad_to_multiple_of
            longest = (longest + m - 1) // m * m
        n = len(features)
        input_ids = torch.full((n, longest), self.pad_token_id, dtype=torch.long)
        attention = torch.zeros((n, longest), dtype=torch.long)
        labels = torch.full((n, longest), IGNORE_INDEX, dtype=torch.long)
        weights = torch.zeros((n, longest), dtype=torch.float32)
        for row, f in enumerate(features):
            length = len(f["input_ids"])
            input_ids[row, :length] = torch.as_tensor(f["input_ids"], dtype=torch.long)
            attention[row, :length] = 1
            labels[row, :length] = torch.as_tensor(f["labels"], dtype=torch.long)
            weights[row, :length] = torch.as_tensor(f["loss_weights"], dtype=torch.float32)
        return {"input_ids": input_ids, "attention_mask": attention, "labels": labels, "loss_weights": weights}


@dataclass
class PackCollator:
    """Concatenates features into one row of shape [1, total length], with ``position_ids``.

    Without an ``attention_mask``, transformers reads the restarts of ``position_ids`` as
    example boundaries and masks attention across them (``find_packed_sequence_indices``).
    The first token of every example gets weight 0 and ``IGNORE_INDEX``: it would be
    predicted from the previous example's last token, which an unpacked batch never does.
    So the loss, ``sum(w * CE)`` and ``sum(w)``, equals that of the padded batch.
    """

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        ids, positions, labels, weights = [], [], [], []
        for f in features:
            n = len(f["input_ids"])
            ids.append(torch.as_tensor(f["input_ids"], dtype=torch.long))
            positions.append(torch.arange(n, dtype=torch.long))
            lab = torch.as_tensor(f["labels"], dtype=torch.long).clone()
            w = torch.as_tensor(f["loss_weights"], dtype=torch.float32).clone()
            lab[0], w[0] = IGNORE_INDEX, 0.0
            labels.append(lab)
            weights.append(w)
        return {
            "input_ids": torch.cat(ids)[None],
            "position_ids": torch.cat(positions)[None],
            "labels": torch.cat(labels)[None],
            "loss_weights": torch.cat(weights)[None],
        }
