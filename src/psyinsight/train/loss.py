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
regime where they saw a benefit; 0.1 sits mid-range on their log scale and keeps the
target-token gradient in charge (at a 10:1 prompt:target token ratio, prompt and target
tokens carry equal total weight).

What it costs: every prompt position needs its vocabulary projection, which ``w_prompt
= 0`` skips. That is a few percent of a 7B model's compute but about a fifth of
SmolLM2-135M's (a 49k vocabulary on a 576-wide model); ``prompt_sample`` in
``forward_weighted`` trades it for an unbiased estimate.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from psyinsight.errors import PsyInsightError
from psyinsight.train.templates import PROMPT, TARGET

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


FUSED_MODEL_TYPES = frozenset({"llama", "mistral", "mixtral", "qwen2", "qwen3", "glm", "glm4", "phi3"})
"""Model types whose logits are exactly ``lm_head(last_hidden_state)`` (no soft-capping or
scaling), so the fused loss below may take the hidden states and the head's weight."""
FUSED_CHUNK_BYTES = 16 * 2**20
"""Logits of one fused chunk (float32): small enough to stay in cache, big enough for a fast matmul."""


def weighted_linear_cross_entropy(hidden: Any, weight: Any, target: Any, token_weight: Any) -> Any:
    """sum(w * CE(hidden @ weight.T, target)) over rows, without materialising the logits.

    The forward pass walks over chunks of rows: logits of the chunk, their log-sum-exp,
    the weighted CE and, when a gradient is wanted, the gradient w.r.t. ``hidden``,
    ``w * (softmax - onehot) @ weight``, computed at once while the chunk is in cache; the
    backward pass only scales that saved gradient. Compared with logits over the whole
    batch, each logit is read once instead of several times and [rows, vocab] never sits
    in memory: that is what keeps ``w_prompt > 0`` (every position predicted) cheap.
    ``weight`` (the frozen output embedding) gets no gradient.
    """
    return _linear_cross_entropy_function().apply(hidden, weight, target, token_weight)


def _chunk_rows(vocab_size: int) -> int:
    return max(8, FUSED_CHUNK_BYTES // (4 * vocab_size))


@functools.cache
def _linear_cross_entropy_function() -> type:
    """The torch.autograd.Function behind ``weighted_linear_cross_entropy`` (torch loads lazily)."""
    import torch

    class WeightedLinearCrossEntropy(torch.autograd.Function):
        @staticmethod
        def forward(ctx: Any, hidden: Any, weight: Any, target: Any, token_weight: Any) -> Any:
            want_grad = ctx.needs_input_grad[0]
            grad_hidden = torch.empty_like(hidden) if want_grad else None
            total = torch.zeros((), dtype=torch.float32, device=hidden.device)
            step = _chunk_rows(weight.shape[0])
            for start in range(0, hidden.shape[0], step):
                h = hidden[start : start + step]
                t = target[start : start + step].unsqueeze(1)
                w = token_weight[start : start + step].float()
                logits = (h @ weight.t()).float()
                lse = torch.logsumexp(logits, dim=-1)
                total += ((lse - logits.gather(1, t).squeeze(1)) * w).sum()
                if want_grad:  # reuse the logits' memory: (softmax - onehot) * w
                    probs = logits.sub_(lse.unsqueeze(1)).exp_()
                    probs.scatter_add_(1, t, torch.full(t.shape, -1.0, device=probs.device))
                    probs.mul_(w.unsqueeze(1))
                    grad_hidden[start : start + step] = probs.to(h.dtype) @ weight
            ctx.save_for_backward(grad_hidden)
            return total

        @staticmethod
        def backward(ctx: Any, grad_total: Any) -> tuple[Any, None, None, None]:
            (grad_hidden,) = ctx.saved_tensors
            return grad_hidden * grad_total.to(grad_hidden.dtype), None, None, None

    return WeightedLinearCrossEntropy


def fusable_head(model: Any) -> Any | None:
    """The output embedding's weight when the fused loss applies to ``model``, else None.

    It applies when the logits are a plain, bias-free, frozen linear map of the decoder's
    last hidden state: the model type is listed in ``FUSED_MODEL_TYPES`` and LoRA does
    not train the head. Anything else takes the unfused path, and so does a model wrapped
    for distributed training (no ``config``): calling its decoder directly would bypass
    the wrapper's gradient synchronisation.
    """
    import torch

    config = getattr(model, "config", None)
    if getattr(config, "model_type", None) not in FUSED_MODEL_TYPES:
        return None
    try:
        head = model.get_output_embeddings()
    except (AttributeError, NotImplementedError):
        return None
    if type(head) is not torch.nn.Linear or head.bias is not None or head.weight.requires_grad:
        return None
    return head.weight


def sample_prompt_weights(loss_weights: Any, rate: float, generator: Any) -> Any:
    """Keep each prompt position (0 < w < 1) with probability ``rate`` at weight ``w / rate``.

    An unbiased estimate of the prompt term: E[sum(w' * CE)] = sum(w * CE) for any CE, so
    with the exact sum(w) as denominator the expected loss and gradient are those of the
    full weighted loss, while the vocabulary projection runs on ``rate`` of the prompt
    (that projection is what ``w_prompt > 0`` costs over ``w_prompt = 0``). Target
    positions (w = 1) and unweighted ones are untouched.
    """
    import torch

    prompt = (loss_weights > 0) & (loss_weights < 1)
    drawn = torch.rand(loss_weights.shape, generator=generator, device=loss_weights.device) < rate
    return torch.where(prompt, torch.where(drawn, loss_weights / rate, torch.zeros_like(loss_weights)), loss_weights)


def check_prompt_sample(rate: float, w_prompt: float) -> float:
    if not 0.0 < float(rate) <= 1.0:
        raise PsyInsightError(f"must be in (0, 1], got {rate}", where="prompt_loss_sample")
    if rate < 1.0 and not 0.0 < w_prompt < 1.0:
        raise PsyInsightError(f"samples prompt tokens, which needs 0 < w_prompt < 1 (w_prompt is {w_prompt})", where="prompt_loss_sample")
    return float(rate)


def forward_weighted(
    model: Any,
    batch: dict[str, Any],
    *,
    fused: bool = True,
    skip_unweighted_logits: bool = True,
    prompt_sample: float = 1.0,
    generator: Any = None,
) -> tuple[Any, Any]:
    """Run the model on a batch and return (sum(w * CE), sum(w)).

    ``fused`` (where ``fusable_head`` allows it): the decoder's hidden states at the
    weighted positions go through ``weighted_linear_cross_entropy``; no logits tensor exists.
    Otherwise the model computes logits, with ``skip_unweighted_logits`` only for columns
    that some row predicts with a non-zero weight (``w_prompt = 0``: the target columns).
    The loss is the same on every path (tests compare them). ``prompt_sample < 1``
    scores a random share of the prompt positions instead (``sample_prompt_weights``);
    sum(w) stays the exact one.
    """
    if prompt_sample < 1.0:
        exact_total = batch["loss_weights"][:, 1:].sum()
        batch = dict(batch, loss_weights=sample_prompt_weights(batch["loss_weights"], prompt_sample, generator))
        loss_sum, _ = forward_weighted(model, batch, fused=fused, skip_unweighted_logits=skip_unweighted_logits)
        return loss_sum, exact_total.to(loss_sum.dtype)
    head_weight = fusable_head(model) if fused else None
    if head_weight is not None:
        return _fused_weighted(model, batch, head_weight)
    columns = predicted_columns(batch["loss_weights"]) if skip_unweighted_logits else None
    kwargs = dict(model_inputs(batch), use_cache=False)  # a cache would also hide packed rows from the mask
    if columns is not None:
        kwargs["logits_to_keep"] = columns
    out = model(**kwargs)
    logits = out["logits"] if isinstance(out, dict) else out.logits
    if columns is not None and logits.shape[1] != columns.numel():
        columns = None  # the model ignored logits_to_keep and returned every column
    return weighted_loss_sum(logits, batch["labels"], batch["loss_weights"], columns)


def model_inputs(batch: dict[str, Any]) -> dict[str, Any]:
    """What the model reads from a batch: ``input_ids`` and, where present, ``attention_mask``
    (padded batches) or ``position_ids`` (packed rows, collate.PackCollator: the positions
    restart at each example, so attention never crosses from one example into the next)."""
    return {k: batch[k] for k in ("input_ids", "attention_mask", "position_ids") if k in batch}


def _fused_weighted(model: Any, batch: dict[str, Any], head_weight: Any) -> tuple[Any, Any]:
    decoder = model.get_decoder()
    hidden = decoder(**model_inputs(batch), use_cache=False).last_hidden_state
    weights = batch["loss_weights"][:, 1:]
    keep = weights > 0
    rows = hidden[:, :-1][keep]
    target = batch["labels"][:, 1:][keep]
    w = weights[keep]
    loss_sum = weighted_linear_cross_entropy(rows, head_weight, target, w)
    return loss_sum, w.sum(dtype=loss_sum.dtype)
