"""The LoRA training run: validate → setup → train → save (one recipe, one file).

``LoRARecipeRunner`` reads a ``Recipe`` (recipe.py) and

1. *validates* it before anything heavy is loaded (model path, data source, output);
2. *sets up*, in dependency order: the tokenizer (the data is tokenised with it), the
   data (examples of the task from the leak-free split, encoded with per-token weights),
   then the model (base, optional 4-bit, LoRA), then the transformers ``Trainer``;
3. *trains*, resuming from the last checkpoint in ``output_dir`` when there is one;
4. *saves* the adapter with ``psyinsight_adapter.json``: the recipe, the split checksum,
   the package version and the held-out target losses before and after.

``WeightedLossTrainer`` extends transformers' Trainer through its public hooks only:
``get_batch_samples`` sums the loss weights of all micro-batches of an optimizer step
first, and ``compute_loss`` divides each micro-batch's ``sum(w * CE)`` by that total, so
gradient accumulation and padding do not change the gradient (loss.py).
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from psyinsight import __version__
from psyinsight.errors import PsyInsightError
from psyinsight.train.recipe import Recipe

log = logging.getLogger(__name__)

ADAPTER_SUBDIR = "adapter"


def _trainer_class() -> type:
    from transformers import Trainer

    from psyinsight.train.loss import forward_weighted, total_weight

    class WeightedLossTrainer(Trainer):
        """Trainer whose loss is sum(w * CE) / sum(w) over the whole accumulated batch."""

        loss_is_scaled_for_ga = True  # compute_loss already divides by the step's total weight
        fused_loss = True  # see loss.forward_weighted
        skip_unweighted_logits = True
        prompt_loss_sample = 1.0
        _draws = (-1, 0)  # (optimizer step, micro-batch) of the last prompt sample

        def get_batch_samples(self, epoch_iterator: Any, num_batches: int, device: Any) -> tuple[list, Any]:
            batches, _ = super().get_batch_samples(epoch_iterator, num_batches, device)
            if not batches:
                return batches, None
            total = total_weight(batches).to(device)
            if self.args.world_size > 1:  # every process divides by the global total
                total = self.accelerator.gather(total.reshape(1)).sum()
            return batches, total

        def compute_loss(self, model: Any, inputs: dict[str, Any], return_outputs: bool = False, num_items_in_batch: Any = None) -> Any:
            sample = self.prompt_loss_sample if model.training else 1.0
            loss_sum, weight_sum = forward_weighted(
                model,
                inputs,
                fused=self.fused_loss,
                skip_unweighted_logits=self.skip_unweighted_logits,
                prompt_sample=sample,
                generator=self._prompt_generator(inputs["input_ids"].device) if sample < 1.0 else None,
            )
            if model.training and num_items_in_batch is not None:
                loss = loss_sum / num_items_in_batch.clamp_min(1e-8)
                if self.args.world_size > 1:  # DDP averages gradients over processes: undo it
                    loss = loss * self.args.world_size
            else:
                loss = loss_sum / weight_sum.clamp_min(1e-8)
            return (loss, {"loss": loss.detach()}) if return_outputs else loss

        def _prompt_generator(self, device: Any) -> Any:
            """A generator seeded by (seed, step, micro-batch): the same draws after a resume."""
            import torch

            step = self.state.global_step
            micro = self._draws[1] + 1 if self._draws[0] == step else 0
            self._draws = (step, micro)
            return torch.Generator(device=device).manual_seed(self.args.seed * 1_000_003 + step * 1_009 + micro)

    return WeightedLossTrainer


def weighted_trainer_class() -> type:
    """The ``Trainer`` subclass with the weighted loss (built lazily: transformers is heavy)."""
    return _trainer_class()


# ---------------------------------------------------------------- data


def load_recipe_sessions(recipe: Recipe) -> list[Any]:
    """All sessions of the recipe's source (every language: the split is computed on all)."""
    from psyinsight.data.release import load_release, load_sessions
    from psyinsight.data.sample import sample_sessions

    source = recipe.data.source
    if source == "sample":
        return sample_sessions()
    if source == "release":
        return load_release(recipe.data.data_dir)
    path = Path(source).expanduser()
    if not path.is_file():
        raise PsyInsightError(
            f"no such session file; use {'sample'!r}, {'release'!r} or a file in the release format", path=path, where="data.source"
        )
    return load_sessions(path)


@dataclass
class EncodedSet:
    """Features ready for the collator, and what happened on the way."""

    features: list[dict[str, Any]]
    examples: list[Any]
    skipped: Counter[str] = field(default_factory=Counter)
    split_checksum: str = ""

    @property
    def n_tokens(self) -> int:
        return sum(len(f["input_ids"]) for f in self.features)

    @property
    def n_target_tokens(self) -> int:
        return sum(sum(1 for w in f["loss_weights"] if w == 1.0) for f in self.features)


def encode_examples(
    examples: list[Any], tokenizer: Any, *, w_prompt: float, max_length: int, skipped: Counter[str] | None = None
) -> list[dict[str, Any]]:
    """Encode each example with the chat template and build labels and weights (loss.py)."""
    from psyinsight.train.loss import build_features
    from psyinsight.train.templates import TooLong, encode_example

    skipped = skipped if skipped is not None else Counter()
    out = []
    for ex in examples:
        try:
            enc = encode_example(tokenizer, ex.messages, ex.target, max_length=max_length, where=f"example {ex.id}")
        except TooLong:
            skipped["over_max_length"] += 1
            continue
        feats = build_features(enc.input_ids, enc.roles, w_prompt)
        feats["id"] = ex.id
        out.append(feats)
    return out


def build_split_examples(recipe: Recipe, split: str, tokenizer: Any, sessions: list[Any] | None = None) -> tuple[list[Any], Counter[str], str]:
    """Examples of the recipe's task for one split, budgeted with the real tokenizer."""
    import dataclasses

    from psyinsight.tasks.examples import build_examples, load_examples, select_split, tokenizer_counter

    prebuilt = recipe.data.examples_file if split == recipe.data.train_split else recipe.data.eval_examples_file
    if prebuilt:
        return load_examples(prebuilt), Counter(), ""
    sessions = sessions if sessions is not None else load_recipe_sessions(recipe)
    chosen, train, assignment = select_split(sessions, split, split_file=recipe.data.split_file, seed=recipe.data.split_seed)
    wanted = set(recipe.data.languages)
    chosen = [s for s in chosen if s.language in wanted]
    train = [s for s in train if s.language in wanted]
    if not chosen:
        raise PsyInsightError(f"the {split} split has no session in languages {sorted(wanted)}", where=f"data ({recipe.data.source})")
    budget = recipe.training.max_length
    task_cfg = dataclasses.replace(recipe.tasks, max_tokens=min(budget, recipe.tasks.max_tokens or budget))
    build = build_examples(
        chosen, task_cfg, split=split, retrieval_pool=train, groups=assignment.groups or None, count_tokens=tokenizer_counter(tokenizer)
    )
    return build.examples, Counter(build.skipped), assignment.checksum()


def _subset(items: list[Any], n: int | None, seed: int) -> list[Any]:
    """A seeded random subset of ``n`` items, in their original order."""
    if not n or n >= len(items):
        return items
    return [items[i] for i in sorted(random.Random(seed).sample(range(len(items)), n))]


def evaluate_target_loss(model: Any, features: list[dict[str, Any]], collator: Any, *, batch_size: int = 4, device: Any = None) -> float:
    """Mean cross-entropy per target token over a whole set (sum over tokens, not a mean of batch means)."""
    import torch

    from psyinsight.train.loss import forward_weighted

    if not features:
        return float("nan")
    was_training = model.training
    model.eval()
    device = device or next(model.parameters()).device
    total, weight = 0.0, 0.0
    order = sorted(range(len(features)), key=lambda i: len(features[i]["input_ids"]))
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            batch = collator([features[i] for i in order[start : start + batch_size]])
            batch = {k: v.to(device) for k, v in batch.items()}
            loss_sum, w_sum = forward_weighted(model, batch)
            total += float(loss_sum)
            weight += float(w_sum)
    if was_training:
        model.train()
    return total / max(weight, 1e-8)


# ---------------------------------------------------------------- the run


class LoRARecipeRunner:
    """One training run from a recipe: ``run()`` = setup → train → save."""

    def __init__(self, recipe: Recipe, *, resume: str | bool = "auto", recipe_path: str | None = None):
        # Validate everything cheap before loading anything heavy.
        from psyinsight.models import DEFAULT_ALIASES, resolve_model_path

        self.recipe = recipe
        self.recipe_path = recipe_path
        self.output_dir = Path(recipe.training.output_dir)
        self.resume = resume
        if recipe.model.quantization == "4bit":
            import torch

            if not torch.cuda.is_available():
                raise PsyInsightError(
                    "4-bit QLoRA needs a CUDA GPU and bitsandbytes; set model.quantization: none on a CPU", where="model.quantization"
                )
        if recipe.model.name.lower() not in DEFAULT_ALIASES:
            resolve_model_path(recipe.model.name)  # raises a clear error for a missing path
        if recipe.data.source not in ("sample", "release") and not Path(recipe.data.source).expanduser().is_file():
            raise PsyInsightError("no such session file", path=recipe.data.source, where="data.source")
        if recipe.data.split_file and not Path(recipe.data.split_file).is_file():
            raise PsyInsightError("no such split file (make one with `psyinsight data split`)", path=recipe.data.split_file, where="data.split_file")
        self.metrics: dict[str, Any] = {}

    # -- setup: tokenizer, then data (tokenised with it), then model, then trainer
    def setup(self) -> None:
        import torch

        from psyinsight.models import load_tokenizer
        from psyinsight.train.collate import PadCollator

        cfg = self.recipe
        if cfg.training.num_threads:
            torch.set_num_threads(cfg.training.num_threads)
        from transformers import set_seed

        set_seed(cfg.training.seed)
        self.tokenizer = load_tokenizer(cfg.model.name, padding_side="right")
        self.collator = PadCollator(self.tokenizer.pad_token_id)
        self.train_set = self._encoded(cfg.data.train_split, cfg.training.w_prompt, cfg.data.max_train_examples)
        self.eval_set = None
        if cfg.data.eval_split or cfg.data.eval_examples_file:
            # Held-out loss is on target tokens only (w_prompt = 0): comparable across w_prompt.
            self.eval_set = self._encoded(cfg.data.eval_split or "validation", 0.0, cfg.data.max_eval_examples)
        self.model = self._model()
        self.trainer = self._trainer()

    def _encoded(self, split: str, w_prompt: float, limit: int | None) -> EncodedSet:
        if not hasattr(self, "_sessions"):
            needs_sessions = not self.recipe.data.examples_file or (self.recipe.data.eval_split and not self.recipe.data.eval_examples_file)
            self._sessions = load_recipe_sessions(self.recipe) if needs_sessions else []
        examples, skipped, checksum = build_split_examples(self.recipe, split, self.tokenizer, self._sessions)
        examples = _subset(examples, limit, self.recipe.training.seed)  # order kept: a sequential mix stays a curriculum
        features = encode_examples(examples, self.tokenizer, w_prompt=w_prompt, max_length=self.recipe.training.max_length, skipped=skipped)
        if not features:
            raise PsyInsightError(f"no {split} example fits max_length {self.recipe.training.max_length}", where="training.max_length")
        return EncodedSet(features=features, examples=examples, skipped=skipped, split_checksum=checksum)

    def _model(self) -> Any:
        from peft import LoraConfig, get_peft_model

        from psyinsight.models import load_model_and_tokenizer

        cfg = self.recipe
        quant = None
        if cfg.model.quantization == "4bit":
            import torch
            from transformers import BitsAndBytesConfig

            quant = BitsAndBytesConfig(
                load_in_4bit=True,
                bnb_4bit_quant_type="nf4",
                bnb_4bit_use_double_quant=True,
                bnb_4bit_compute_dtype=torch.bfloat16,
            )
        dtype = None if cfg.model.dtype == "auto" else cfg.model.dtype
        model, _ = load_model_and_tokenizer(cfg.model.name, dtype=dtype, quantization_config=quant)
        if quant is not None:
            from peft import prepare_model_for_kbit_training

            model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=cfg.model.gradient_checkpointing)
        elif cfg.model.gradient_checkpointing:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
            model.enable_input_require_grads()
        targets: Any = cfg.lora.target_modules
        if targets == ["all-linear"]:
            targets = "all-linear"
        elif cfg.lora.lm_head:
            targets = [*targets, "lm_head"]
        lora = LoraConfig(r=cfg.lora.r, lora_alpha=cfg.lora.alpha, lora_dropout=cfg.lora.dropout, target_modules=targets, task_type="CAUSAL_LM")
        try:
            model = get_peft_model(model, lora)
        except ValueError as exc:
            raise PsyInsightError(f"{exc}", where="lora.target_modules") from None
        return model

    def training_arguments(self) -> Any:
        import torch
        from transformers import TrainingArguments

        t = self.recipe.training
        sequential = self.recipe.tasks.task == "mix" and self.recipe.tasks.mix_schedule == "sequential"
        strategy = "sequential" if sequential else ("group_by_length" if t.group_by_length else "random")
        cuda = torch.cuda.is_available()
        bf16 = cuda and torch.cuda.is_bf16_supported() and self.recipe.model.dtype in ("auto", "bfloat16")
        return TrainingArguments(
            output_dir=str(self.output_dir),
            per_device_train_batch_size=t.batch_size,
            gradient_accumulation_steps=t.grad_accum,
            learning_rate=t.learning_rate,
            lr_scheduler_type=t.lr_scheduler,
            warmup_steps=t.warmup_ratio,  # transformers>=5: a float below 1 is a share of the steps (4.x: a step count)
            weight_decay=t.weight_decay,
            num_train_epochs=t.epochs,
            max_steps=t.max_steps,
            logging_steps=t.logging_steps,
            save_steps=t.save_steps,
            save_total_limit=t.save_total_limit,
            seed=t.seed,
            data_seed=t.seed,
            optim=t.optim,
            max_grad_norm=t.max_grad_norm,
            bf16=bf16,
            use_cpu=not cuda,
            remove_unused_columns=False,
            report_to="none",
            train_sampling_strategy=strategy,  # transformers>=5.2 (before: group_by_length=, no sequential choice)
            eval_strategy="no",
            dataloader_num_workers=0,
            disable_tqdm=True,
            save_only_model=False,
        )

    def _trainer(self) -> Any:
        from psyinsight.train.consumed import consumed_tokens_callback
        from psyinsight.train.progress import TrainingProgress

        trainer_cls = weighted_trainer_class()
        trainer = trainer_cls(
            model=self.model,
            args=self.training_arguments(),
            train_dataset=self.train_set.features,
            data_collator=self.collator,
            processing_class=self.tokenizer,
            callbacks=[TrainingProgress()],
        )
        self.consumed = consumed_tokens_callback()
        trainer.add_callback(self.consumed)
        trainer.fused_loss = self.recipe.training.fused_loss
        trainer.prompt_loss_sample = self.recipe.training.prompt_loss_sample
        trainer.skip_unweighted_logits = self.recipe.training.skip_unweighted_logits
        return trainer

    def last_checkpoint(self) -> str | None:
        from transformers.trainer_utils import get_last_checkpoint

        if not self.output_dir.is_dir():
            return None
        return get_last_checkpoint(str(self.output_dir))

    # -- train
    def train(self) -> dict[str, Any]:
        import torch

        resume_from: str | None = None
        if self.resume == "auto" or self.resume is True:
            resume_from = self.last_checkpoint()
        elif self.resume and self.resume != "none":
            resume_from = str(self.resume)
            if not Path(resume_from).is_dir():
                raise PsyInsightError("no such checkpoint folder", path=resume_from, where="--resume")
        collator = self.collator
        if self.eval_set is not None and self.recipe.training.eval_base and not resume_from:
            with self.model.disable_adapter():
                self.metrics["base_eval_target_loss"] = round(evaluate_target_loss(self.model, self.eval_set.features, collator), 4)
        start = time.perf_counter()
        result = self.trainer.train(resume_from_checkpoint=resume_from)
        seconds = time.perf_counter() - start
        steps = self.trainer.state.global_step
        self.metrics.update(
            train_loss=round(float(result.training_loss), 4),
            steps=steps,
            train_seconds=round(seconds, 1),
            resumed_from=resume_from,
            train_examples=len(self.train_set.features),
            train_tokens=self.train_set.n_tokens,
            skipped=dict(self.train_set.skipped),
        )
        self.metrics["consumed_tokens"] = self.consumed.tokens
        self.metrics["tokens_per_second"] = round(self.consumed.tokens / max(self.consumed.seconds, 1e-6), 1)
        if self.eval_set is not None:
            self.metrics["eval_examples"] = len(self.eval_set.features)
            self.metrics["eval_target_loss"] = round(evaluate_target_loss(self.model, self.eval_set.features, collator), 4)
            if "base_eval_target_loss" in self.metrics:
                self.metrics["eval_target_perplexity_ratio"] = round(
                    math.exp(self.metrics["eval_target_loss"] - self.metrics["base_eval_target_loss"]), 4
                )
        if torch.cuda.is_available():
            self.metrics["peak_gpu_memory_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        return self.metrics

    # -- save
    def save(self) -> Path:
        from psyinsight.fileio import sha256_file, write_json
        from psyinsight.models import ADAPTER_META

        out = self.output_dir / ADAPTER_SUBDIR
        self.model.save_pretrained(str(out))
        self.tokenizer.save_pretrained(str(out))
        split_file = self.recipe.data.split_file
        meta = {
            "format": "psyinsight-adapter/1",
            "psyinsight": __version__,
            "base_model": self.recipe.model.name,
            "recipe": self.recipe.to_dict(),
            "recipe_path": self.recipe_path,
            "task": self.recipe.tasks.task,
            "w_prompt": self.recipe.training.w_prompt,
            "split_file": split_file,
            "split_file_sha256": sha256_file(split_file) if split_file else None,
            "split_checksum": self.train_set.split_checksum,
            "metrics": self.metrics,
            "saved_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        write_json(out / ADAPTER_META, meta)
        write_json(self.output_dir / "metrics.json", self.metrics)
        return out

    def run(self) -> Path:
        self.setup()
        self.train()
        return self.save()


def run_recipe(recipe: Recipe, *, resume: str | bool = "auto", recipe_path: str | None = None) -> tuple[Path, dict[str, Any]]:
    """Train a recipe end to end; returns the adapter folder and the metrics."""
    runner = LoRARecipeRunner(recipe, resume=resume, recipe_path=recipe_path)
    adapter = runner.run()
    return adapter, runner.metrics


def merge_adapter(adapter: str | Path, out: str | Path, *, base: str | None = None, dtype: str | None = None) -> Path:
    """Fold a LoRA adapter into its base model and save a plain model folder (+ tokenizer)."""
    from psyinsight.fileio import default_modes, write_json
    from psyinsight.models import load_model_and_tokenizer, read_adapter_meta

    model, tokenizer = load_model_and_tokenizer(base, adapter, dtype=dtype, device="cpu")
    merged = model.merge_and_unload()
    out = Path(out)
    merged.save_pretrained(str(out))
    tokenizer.padding_side = "left"
    tokenizer.save_pretrained(str(out))
    meta = read_adapter_meta(adapter)
    write_json(
        out / "psyinsight_merged.json",
        {"adapter": str(adapter), "psyinsight": __version__, "adapter_meta": meta, "base_model": base or meta.get("base_model")},
    )
    default_modes(out)
    return out
