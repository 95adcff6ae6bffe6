"""Padding a list of features into a batch, and nothing else.

Labels and weights are built upstream (loss.py), where the data is understood; this
collator only pads: ``input_ids`` with the pad token, ``attention_mask`` with 0,
``labels`` with ``IGNORE_INDEX`` and ``loss_weights`` with 0, on the right (training).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from psyinsight.loss import IGNORE_INDEX


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
