"""The weighted loss: sum(w * CE) / sum(w) over the whole accumulated batch."""

from __future__ import annotations

import pytest
import torch

from psyinsight.collate import PadCollator

pytestmark = pytest.mark.usefixtures("torch_one_thread")
from psyinsight.loss import IGNORE_INDEX, forward_weighted, predicted_columns, total_weight, weighted_loss_sum


@pytest.fixture(scope="module")
def tiny(tiny_llama_dir):
    from psyinsight.models import load_model_and_tokenizer
    from psyinsight.sample import sample_sessions
    from psyinsight.tasks import TaskConfig, build_examples
    from psyinsight.train import encode_examples

    model, tok = load_model_and_tokenizer(str(tiny_llama_dir), device="cpu", padding_side="right")
    examples = build_examples(sample_sessions(), TaskConfig(task="reasoning", max_tokens=400)).examples
    feats = encode_examples(examples[:8], tok, w_prompt=0.1, max_length=1024)
    # Different lengths, so padding differs between micro-batch splits.
    assert len({len(f["input_ids"]) for f in feats}) > 1
    return model, tok, feats


def _grads(model):
    return torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])


def test_micro_batches_give_the_whole_batch_gradient(tiny):
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
    from psyinsight.loss import build_features

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

    from psyinsight.train import weighted_trainer_class

    _, tok, feats = tiny
    results = []
    for batch, accum in ((4, 1), (2, 2), (1, 4)):
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_pretrained(tiny_model_path(tiny))
        args = TrainingArguments(
            output_dir=str(tmp_path / f"b{batch}"), per_device_train_batch_size=batch, gradient_accumulation_steps=accum,
            max_steps=1, learning_rate=1.0, optim="sgd", lr_scheduler_type="constant", max_grad_norm=0.0,
            train_sampling_strategy="sequential", remove_unused_columns=False, report_to="none", use_cpu=True,
            save_strategy="no", disable_tqdm=True, weight_decay=0.0,
        )  # fmt: skip
        trainer = weighted_trainer_class()(model=model, args=args, train_dataset=feats[:4], data_collator=PadCollator(tok.pad_token_id))
        trainer.train()
        results.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    start = torch.cat([p.detach().flatten() for p in AutoModelForCausalLM.from_pretrained(tiny_model_path(tiny)).parameters()])
    assert not torch.allclose(results[0], start)  # the step did move the weights
    assert torch.allclose(results[0], results[1], rtol=1e-4, atol=1e-6)
    assert torch.allclose(results[0], results[2], rtol=1e-4, atol=1e-6)


def tiny_model_path(tiny):
    return tiny[0].name_or_path
