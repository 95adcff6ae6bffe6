"""Counting the tokens a training run actually consumed, whatever its batching.

Throughput from a dataset's mean length is wrong whenever the order, the padding or the
packing changes what a step sees. ``ConsumedTokens`` is a ``TrainerCallback`` that hooks
the decoder's forward pass for the length of ``train()`` and adds up, for every training
forward: the sum of the ``attention_mask`` (padded batches), or the number of tokens
(packed, padding-free rows without a mask). Any trainer built on transformers' Trainer
(ours, TRL's) is counted the same way.
"""

from __future__ import annotations

import time
from typing import Any


def decoder_of(model: Any) -> Any:
    """The module that runs the transformer layers (under LoRA and the LM head)."""
    getter = getattr(model, "get_decoder", None)
    decoder = getter() if getter is not None else None
    return decoder if decoder is not None else model


def count_tokens(kwargs: dict[str, Any], args: tuple[Any, ...]) -> int:
    """Real (non-padding) tokens of one forward call's inputs."""
    mask = kwargs.get("attention_mask")
    if mask is not None and getattr(mask, "ndim", 0) == 2:
        return int(mask.sum())
    ids = kwargs.get("input_ids", args[0] if args else None)
    if ids is None:
        ids = kwargs["inputs_embeds"][..., 0]
    return int(ids.numel())


def consumed_tokens_callback() -> Any:
    """A fresh ``ConsumedTokens`` callback (transformers is imported lazily)."""
    from transformers import TrainerCallback

    class ConsumedTokens(TrainerCallback):
        """``tokens``, ``forwards`` and ``seconds`` (wall time of ``train()``) after training."""

        def __init__(self) -> None:
            self.tokens = 0
            self.forwards = 0
            self.seconds = 0.0
            self._handle: Any = None
            self._start = 0.0

        def _hook(self, module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            if module.training:
                self.tokens += count_tokens(kwargs, args)
                self.forwards += 1

        def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kw: Any) -> None:
            if self._handle is None and model is not None:
                self._handle = decoder_of(model).register_forward_pre_hook(self._hook, with_kwargs=True)
            self._start = time.perf_counter()

        def on_train_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            self.seconds += time.perf_counter() - self._start
            if self._handle is not None:
                self._handle.remove()
                self._handle = None

    return ConsumedTokens()
