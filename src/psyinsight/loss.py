"""The one convention for labels and per-token loss weights, and the weighted loss.

Every encoded example (templates.py tags tokens PROMPT / TARGET / IGNORED) becomes
``input_ids``, ``labels`` and ``loss_weights`` here and nowhere else:

* target tokens weigh 1.0;
* prompt tokens weigh ``w_prompt`` (0 reproduces the release, which masked the prompt);
* ignored tokens (template text after the end of turn) and padding weigh 0 and carry
  ``IGNORE_INDEX`` as label.

The loss is ``sum(w * CE) / sum(w)`` over the *whole accumulated batch*: the trainer
computes ``sum(w)`` over all micro-batches of an optimizer step before the first
backward pass, and each micro-batch contributes ``sum(w * CE) / total``. So the gradient
does not depend on how a batch is split into micro-batches or padded (a test checks it),
unlike a mean per micro-batch, which over-weights short micro-batches.

Why ``w_prompt = 0.1`` by default: Huerta-Enochian & Ko (arXiv 2401.13586) find that a
small non-zero prompt loss weight (0.01 to 0.5) helps when completions are short relative
to prompts ("generation ratio" well below 1), acting as a regulariser; with long
completions it makes no difference. Our examples have long prompts (background plus the
whole history) and short replies (a median en turn is ~20 words), so the data is in the
regime where they saw a benefit; 0.1 sits mid-range on their log scale, keeps the
target-token gradient in charge (at a 10:1 prompt:target token ratio, prompt and target
tokens carry equal total weight), and costs nothing extra to compute.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psyinsight.errors import PsyInsightError
from psyinsight.templates import PROMPT, TARGET

IGNORE_INDEX = -100
"""The label of a token that is never predicted (padding, ignored template text)."""
DEFAULT_W_PROMPT = 0.1
"""Default prompt loss weight (see the module docstring for why)."""


def check_w_prompt(w_prompt: float) -> float:
    if not 0.0 <= float(w_prompt) <= 1.0:
        raise PsyInsightError(f"must be between 0 and 1, got {w_prompt}", where="w_prompt")
    return float(w_prompt)


def build_features(input_ids: Sequence[int], roles: Sequence[int], w_prompt: float) -> dict[str, list[Any]]:
    """``input_ids``, ``labels`` and ``loss_weights`` of one example (no padding)."""
    w_prompt = check_w_prompt(w_prompt)
    weights = [1.0 if r == TARGET else (w_prompt if r == PROMPT else 0.0) for r in roles]
    labels = [tok if w > 0 else IGNORE_INDEX for tok, w in zip(input_ids, weights)]
    return {"input_ids": list(input_ids), "labels": labels, "loss_weights": weights}


def total_weight(batches: Sequence[dict[str, Any]]) -> Any:
    """sum(w) over the predicted positions (all but the first) of all micro-batches of a step."""
    return sum(b["loss_weights"][..., 1:].sum() for b in batches)


def predicted_columns(loss_weights: Any) -> Any | None:
    """Columns whose *next* token has weight in some row (``logits_to_keep`` for the model).

    Logits at column j predict token j+1. Returns None when every column is needed, so
    the model computes all logits the usual way.
    """
    import torch

    needed = loss_weights[:, 1:].sum(dim=0) > 0
    if bool(needed.all()):
        return None
    return torch.nonzero(needed, as_tuple=False).flatten()


def weighted_loss_sum(logits: Any, labels: Any, loss_weights: Any, columns: Any | None = None) -> tuple[Any, Any]:
    """(sum(w * CE), sum(w)) of a micro-batch of a causal LM.

    ``logits`` are for all columns but the last (``columns=None``) or for ``columns`` only
    (see ``predicted_columns``); labels and weights are shifted by one to match.
    """
    import torch
    import torch.nn.functional as F

    if columns is None:
        logits = logits[:, :-1, :]
        target = labels[:, 1:]
        weights = loss_weights[:, 1:]
    else:
        target = labels[:, columns + 1]
        weights = loss_weights[:, columns + 1]
    flat_w = weights.reshape(-1)
    flat_logits = logits.reshape(-1, logits.shape[-1])
    flat_target = target.reshape(-1)
    keep = flat_w > 0
    if not bool(keep.all()):  # gather only weighted rows (no copy when every row counts)
        flat_logits, flat_target, flat_w = flat_logits[keep], flat_target[keep], flat_w[keep]
    ce = F.cross_entropy(flat_logits.float(), flat_target, reduction="none")
    w = flat_w.to(ce.dtype)
    return (ce * w).sum(), w.sum() if w.numel() else torch.zeros((), device=logits.device)


def forward_weighted(model: Any, batch: dict[str, Any], *, skip_unweighted_logits: bool = True) -> tuple[Any, Any]:
    """Run the model on a batch and return (sum(w * CE), sum(w)).

    With ``skip_unweighted_logits`` the vocabulary projection runs only on columns that
    some row predicts with a non-zero weight: with ``w_prompt = 0`` that skips the
    prompt, which is most of each example. The loss is the same either way.
    """
    columns = predicted_columns(batch["loss_weights"]) if skip_unweighted_logits else None
    kwargs: dict[str, Any] = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    if columns is not None:
        # Logits are computed only for columns some row predicts (e.g. target tokens when
        # w_prompt = 0), which skips most of the vocabulary projection on long prompts.
        kwargs["logits_to_keep"] = columns
    out = model(**kwargs)
    logits = out["logits"] if isinstance(out, dict) else out.logits
    if columns is not None and logits.shape[1] != columns.numel():
        columns = None  # the model ignored logits_to_keep and returned every column
    return weighted_loss_sum(logits, batch["labels"], batch["loss_weights"], columns)
