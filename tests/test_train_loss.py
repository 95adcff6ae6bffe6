"""The weighted loss: sum(w * CE) / sum(w) over the whole accumulated batch."""

from __future__ import annotations

import pytest
import torch

from psyinsight.train.collate import PadCollator

pytestmark = pytest.mark.usefixtures("torch_one_thread")
from psyinsight.train import loss as loss_module
from psyinsight.train.loss import (
    IGNORE_INDEX,
    forward_weighted,
    fusable_head,
    predicted_columns,
    sample_prompt_weights,
    total_weight,
    weighted_loss_sum,
)


@pytest.fixture(scope="module")
def tiny(tiny_llama_dir):
    from psyinsight.data.sample import sample_sessions
    from psyinsight.models import load_model_and_tokenizer
    from psyinsight.tasks.examples import TaskConfig, build_examples
    from psyinsight.train.runner import encode_examples

    model, tok = load_model_and_tokenizer(str(tiny_llama_dir), device="cpu", padding_side="right")
    examples = build_examples(sample_sessions(), TaskConfig(task="reasoning", max_tokens=400)).examples
    feats = encode_examples(examples[:8], tok, w_prompt=0.1, max_length=1024)
    # Different lengths, so padding differs between micro-batch splits.
    assert len({len(f["input_ids"]) for f in feats}) > 1
    return model, tok, feats


def _grads(model):
    return torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])


@pytest.fixture(params=["logits", "fused"])
def loss_path(request, tiny):
    """Run a test on the unfused path (trainable head) and on the fused one (frozen head)."""
    head = tiny[0].get_output_embeddings().weight
    head.requires_grad_(request.param == "logits")
    assert (fusable_head(tiny[0]) is not None) == (request.param == "fused")
    yield request.param
    head.requires_grad_(True)


def test_micro_batches_give_the_whole_batch_gradient(tiny, loss_path):
    model, tok, feats = tiny
    collate = PadCollator(tok.pad_token_id)
    model.train()
    model.zero_grad()
    whole = collate(feats)
    loss_sum, w_sum = forward_weighted(model, whole)
    (loss_sum / w_sum).backward()
    reference = _grads(model).clone()

    for sizes in ([4, 4], [1, 3, 2, 2], [1] * 8):
        model.zero_grad()
        parts, start = [], 0
        for n in sizes:
            parts.append(collate(feats[start : start + n]))
            start += n
        total = total_weight(parts)  # what WeightedLossTrainer.get_batch_samples computes
        assert float(total) == pytest.approx(float(w_sum), rel=1e-6)
        for part in parts:
            s, _ = forward_weighted(model, part)
            (s / total).backward()
        assert torch.allclose(_grads(model), reference, rtol=1e-4, atol=1e-6), sizes

    # The usual mean per micro-batch, averaged over micro-batches, is a different gradient.
    model.zero_grad()
    for part in (collate(feats[:1]), collate(feats[1:])):
        s, w = forward_weighted(model, part)
        (s / w / 2).backward()
    assert not torch.allclose(_grads(model), reference, rtol=1e-3, atol=1e-5)


def test_logits_only_where_needed_give_the_same_loss(tiny):
    model, tok, feats = tiny
    from psyinsight.train.loss import build_features

    collate = PadCollator(tok.pad_token_id)
    zero = [build_features(f["input_ids"], [1 if w == 1.0 else (0 if w > 0 else 2) for w in f["loss_weights"]], 0.0) for f in feats[:3]]
    batch = collate(zero)
    columns = predicted_columns(batch["loss_weights"])
    assert columns is not None and columns.numel() < batch["input_ids"].shape[1] - 1
    with torch.no_grad():
        fast = forward_weighted(model, batch)
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        full = weighted_loss_sum(logits, batch["labels"], batch["loss_weights"])
    assert float(fast[0]) == pytest.approx(float(full[0]), rel=1e-5)
    assert float(fast[1]) == float(full[1])


@pytest.mark.parametrize("w_prompt", [0.0, 0.1, 1.0])
def test_fused_loss_equals_the_loss_over_logits_with_its_gradient(tiny, w_prompt, monkeypatch):
    model, tok, feats = tiny
    from psyinsight.train.loss import build_features

    collate = PadCollator(tok.pad_token_id)
    roles = [[1 if w == 1.0 else (0 if w > 0 else 2) for w in f["loss_weights"]] for f in feats[:3]]
    batch = collate([build_features(f["input_ids"], r, w_prompt) for f, r in zip(feats, roles)])
    monkeypatch.setattr(loss_module, "FUSED_CHUNK_BYTES", 4 * 64 * len(tok))  # 64 rows a chunk: several chunks
    head = model.get_output_embeddings().weight
    head.requires_grad_(False)
    try:
        results = []
        for fused in (True, False):
            model.zero_grad()
            s, w = forward_weighted(model, batch, fused=fused, skip_unweighted_logits=False)
            (s / w).backward()
            results.append((float(s.detach()), float(w), _grads(model).clone()))
    finally:
        head.requires_grad_(True)
    (fs, fw, fg), (us, uw, ug) = results
    assert fw == uw > 0
    assert fs == pytest.approx(us, rel=1e-5)
    assert torch.allclose(fg, ug, rtol=1e-4, atol=1e-7)


def test_the_fused_path_is_taken_under_lora_only_with_a_frozen_plain_head(tiny):
    from peft import LoraConfig, get_peft_model

    model = tiny[0]
    assert fusable_head(model) is None  # the whole model trains, the head included
    peft = get_peft_model(type(model).from_pretrained(model.name_or_path), LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    assert fusable_head(peft) is peft.get_output_embeddings().weight
    with_head = get_peft_model(type(model).from_pretrained(model.name_or_path), LoraConfig(r=4, target_modules=["q_proj", "lm_head"]))
    assert fusable_head(with_head) is None


def test_prompt_sampling_keeps_targets_and_is_unbiased_on_the_prompt():
    weights = torch.tensor([[0.0, 0.1, 0.1, 1.0, 1.0, 0.0], [0.1, 0.1, 0.1, 0.1, 1.0, 0.0]])
    generator = torch.Generator().manual_seed(0)
    draws = torch.stack([sample_prompt_weights(weights, 0.25, generator) for _ in range(4000)])
    target_or_none = (weights == 0) | (weights == 1)
    assert torch.equal(draws[:, target_or_none], weights[target_or_none].expand(4000, -1))  # untouched, every draw
    prompt_draws = draws[:, ~target_or_none]
    assert sorted(prompt_draws.unique().tolist()) == [0.0, pytest.approx(0.4)]  # dropped, or kept at w / rate
    assert torch.allclose(prompt_draws.mean(dim=0), torch.full((prompt_draws.shape[1],), 0.1), atol=0.01)


def test_sampled_prompt_loss_averages_to_the_exact_loss(tiny):
    model, tok, feats = tiny
    batch = PadCollator(tok.pad_token_id)(feats[:3])
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        exact_sum, exact_w = forward_weighted(model, batch)
        same = forward_weighted(model, batch, prompt_sample=1.0)
        draws = [forward_weighted(model, batch, prompt_sample=0.3, generator=generator) for _ in range(300)]
    assert float(same[0]) == float(exact_sum)
    assert all(float(w) == pytest.approx(float(exact_w)) for _, w in draws)  # the denominator stays exact
    sums = torch.tensor([float(s) for s, _ in draws])
    assert len(set(sums.tolist())) > 100  # the draws differ...
    assert float(sums.mean()) == pytest.approx(float(exact_sum), rel=0.02)  # ...and average to the exact loss


def test_loss_by_hand_on_a_known_case():
    # Two positions predicted, weights 0.5 and 1.0; uniform logits over 4 tokens: CE = ln 4 each.
    logits = torch.zeros(1, 3, 4)
    labels = torch.tensor([[IGNORE_INDEX, 2, 3]])
    weights = torch.tensor([[0.0, 0.5, 1.0]])
    s, w = weighted_loss_sum(logits, labels, weights)
    assert float(w) == 1.5
    assert float(s / w) == pytest.approx(float(torch.log(torch.tensor(4.0))))


def test_trainer_step_is_independent_of_the_micro_batch_split(tiny, tmp_path):
    """One optimizer step through WeightedLossTrainer: batch 4 x 1 == batch 2 x 2 == batch 1 x 4."""
    from transformers import AutoModelForCausalLM, TrainingArguments

    from psyinsight.train.runner import weighted_trainer_class

    _, tok, feats = tiny
    results = []
    for batch, accum in ((4, 1), (2, 2), (1, 4)):
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_pretrained(tiny_model_path(tiny))
        args = TrainingArguments(
            output_dir=str(tmp_path / f"b{batch}"),
            per_device_train_batch_size=batch,
            gradient_accumulation_steps=accum,
            max_steps=1,
            learning_rate=1.0,
            optim="sgd",
            lr_scheduler_type="constant",
            max_grad_norm=0.0,
            train_sampling_strategy="sequential",
            remove_unused_columns=False,
            report_to="none",
            use_cpu=True,
            save_strategy="no",
            disable_tqdm=True,
            weight_decay=0.0,
        )
        trainer = weighted_trainer_class()(model=model, args=args, train_dataset=feats[:4], data_collator=PadCollator(tok.pad_token_id))
        trainer.train()
        results.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    start = torch.cat([p.detach().flatten() for p in AutoModelForCausalLM.from_pretrained(tiny_model_path(tiny)).parameters()])
    assert not torch.allclose(results[0], start)  # the step did move the weights
    assert torch.allclose(results[0], results[1], rtol=1e-4, atol=1e-6)
    assert torch.allclose(results[0], results[2], rtol=1e-4, atol=1e-6)


def tiny_model_path(tiny):
    return tiny[0].name_or_path


@pytest.mark.parametrize("w_prompt", [0.0, 0.1])
def test_trainer_with_lora_and_accumulation_fused_equals_unfused(tiny, tmp_path, monkeypatch, w_prompt):
    """Two optimizer steps of 2 micro-batches x 2 through WeightedLossTrainer on a LoRA model with
    its head frozen: the fused path (taken: counted) moves the adapter exactly as the logits path."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, TrainingArguments

    from psyinsight.train.runner import weighted_trainer_class as trainer_class

    _, tok, feats = tiny
    feats = [dict(f, loss_weights=[w if w == 1.0 or w == 0.0 else w_prompt for w in f["loss_weights"]]) for f in feats]
    feats = [dict(f, labels=[t if w > 0 else IGNORE_INDEX for t, w in zip(f["input_ids"], f["loss_weights"])]) for f in feats]
    calls = {"fused": 0}
    real = loss_module.weighted_linear_cross_entropy

    def counted(*args):
        calls["fused"] += 1
        return real(*args)

    monkeypatch.setattr(loss_module, "weighted_linear_cross_entropy", counted)
    adapters = {}
    for fused in (True, False):
        torch.manual_seed(0)
        base = AutoModelForCausalLM.from_pretrained(tiny_model_path(tiny))
        model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=["q_proj", "v_proj", "down_proj"]))
        args = TrainingArguments(
            output_dir=str(tmp_path / f"f{fused}"),
            per_device_train_batch_size=2,
            gradient_accumulation_steps=2,
            max_steps=2,
            learning_rate=0.5,
            optim="sgd",
            lr_scheduler_type="constant",
            max_grad_norm=0.0,
            train_sampling_strategy="sequential",
            remove_unused_columns=False,
            report_to="none",
            use_cpu=True,
            save_strategy="no",
            disable_tqdm=True,
            weight_decay=0.0,
        )
        trainer = trainer_class()(model=model, args=args, train_dataset=feats, data_collator=PadCollator(tok.pad_token_id))
        trainer.fused_loss = fused
        before = calls["fused"]
        trainer.train()
        assert (calls["fused"] - before == 4) if fused else (calls["fused"] == before)  # 2 steps x 2 micro-batches
        assert fusable_head(model) is not None  # the head is frozen under LoRA: fusing was allowed
        adapters[fused] = torch.cat([p.detach().flatten() for n, p in model.named_parameters() if "lora_" in n])
    torch.manual_seed(0)
    fresh = get_peft_model(
        AutoModelForCausalLM.from_pretrained(tiny_model_path(tiny)),
        LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=["q_proj", "v_proj", "down_proj"]),
    )
    start = torch.cat([p.detach().flatten() for n, p in fresh.named_parameters() if "lora_" in n])
    assert not torch.allclose(adapters[True], start)  # the steps did move the adapter
    assert torch.allclose(adapters[True], adapters[False], rtol=1e-4, atol=1e-6)


def test_packed_rows_give_the_padded_loss_and_gradient(tiny):
    """PackCollator (one row, restarting position_ids, no mask): the same sum(w*CE), sum(w) and
    gradient as the padded batch, so attention did not cross from one example into the next."""
    from psyinsight.train.collate import PackCollator

    model, tok, feats = tiny
    model.train()
    results = []
    for collate in (PadCollator(tok.pad_token_id), PackCollator()):
        model.zero_grad()
        batch = collate(feats[:4])
        loss_sum, w_sum = forward_weighted(model, batch, fused=False, skip_unweighted_logits=False)
        (loss_sum / w_sum).backward()
        results.append((float(loss_sum), float(w_sum), _grads(model).clone()))
    (pad_sum, pad_w, pad_g), (pack_sum, pack_w, pack_g) = results
    assert pack_w == pytest.approx(pad_w)
    assert pack_sum == pytest.approx(pad_sum, rel=1e-4)
    assert torch.allclose(pad_g, pack_g, rtol=1e-3, atol=1e-6)


@pytest.mark.parametrize("packed", [False, True])
def test_consumed_tokens_are_the_real_tokens_of_the_batches_trained_on(tiny, tmp_path, packed):
    """ConsumedTokens counts what the decoder saw: no padding, whatever the batching."""
    from transformers import AutoModelForCausalLM, TrainingArguments

    from psyinsight.train.collate import PackCollator
    from psyinsight.train.consumed import consumed_tokens_callback
    from psyinsight.train.runner import weighted_trainer_class

    _, tok, feats = tiny
    counter = consumed_tokens_callback()
    args = TrainingArguments(
        output_dir=str(tmp_path),
        per_device_train_batch_size=3,
        max_steps=2,
        learning_rate=1e-3,
        optim="sgd",
        train_sampling_strategy="sequential",
        remove_unused_columns=False,
        report_to="none",
        use_cpu=True,
        save_strategy="no",
        disable_tqdm=True,
    )
    collator = PackCollator() if packed else PadCollator(tok.pad_token_id)
    trainer = weighted_trainer_class()(
        model=AutoModelForCausalLM.from_pretrained(tiny_model_path(tiny)), args=args, train_dataset=feats, data_collator=collator, callbacks=[counter]
    )
    trainer.train()
    padded = 3 * max(len(f["input_ids"]) for f in feats[:3]) + 3 * max(len(f["input_ids"]) for f in feats[3:6])
    real = sum(len(f["input_ids"]) for f in feats[:6])
    assert real < padded  # the batches were padded: a count of the tensors would differ
    assert counter.tokens == real and counter.forwards == 2
