"""Model resolution, pad tokens, and batched/seeded generation on a tiny random model."""

from __future__ import annotations

import pytest

from psyinsight.errors import PsyInsightError
from psyinsight.models import configure_tokenizer, load_model_and_tokenizer, resolve_model_path

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def test_missing_and_wrong_model_paths_are_clear_errors(tmp_path):
    with pytest.raises(PsyInsightError, match="no such model folder"):
        resolve_model_path(tmp_path / "missing")
    with pytest.raises(PsyInsightError, match="no config.json"):
        resolve_model_path(tmp_path)
    (tmp_path / "f.bin").write_bytes(b"x")
    with pytest.raises(PsyInsightError, match="expected a model folder"):
        resolve_model_path(tmp_path / "f.bin")
    with pytest.raises(PsyInsightError, match="empty model name"):
        resolve_model_path(" ")


def test_a_local_folder_passes_through(tiny_llama_dir):
    assert resolve_model_path(str(tiny_llama_dir)) == tiny_llama_dir.resolve()


@pytest.mark.parametrize(
    ("family", "pad"),
    [("chatml", "<|endoftext|>"), ("mistral", "<unk>"), ("llama3", "<|finetune_right_pad_id|>"), ("glm4", "<|endoftext|>")],
)
def test_pad_token_is_set_and_distinct_from_eos_when_possible(tiny_tokenizers, family, pad):
    import copy

    tok = configure_tokenizer(copy.deepcopy(tiny_tokenizers[family]), padding_side="left")
    assert tok.pad_token == pad and tok.padding_side == "left"
    if family != "glm4":  # GLM4's only spare token is its eos: padding is masked anyway
        assert tok.pad_token_id != tok.eos_token_id


def test_bad_adapter_folders_are_refused(tiny_llama_dir, tmp_path):
    with pytest.raises(PsyInsightError, match="no such adapter folder"):
        load_model_and_tokenizer(str(tiny_llama_dir), tmp_path / "nope")
    with pytest.raises(PsyInsightError, match="not a LoRA adapter folder"):
        load_model_and_tokenizer(str(tiny_llama_dir), tmp_path)
    with pytest.raises(PsyInsightError, match="give a model name"):
        load_model_and_tokenizer(None)


PROMPTS = [
    [{"role": "user", "content": "I feel anxious about my exams."}],
    [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "I cannot sleep at night and the thoughts keep coming back again and again."},
    ],
    [{"role": "user", "content": "我最近睡不好。"}],
]


def test_batched_generation_matches_one_at_a_time(tiny_llama_dir):
    from psyinsight.generate.generation import generate_replies

    model, tok = load_model_and_tokenizer(str(tiny_llama_dir), device="cpu")
    assert tok.padding_side == "left"
    batched = generate_replies(model, tok, PROMPTS, max_new_tokens=6, batch_size=3)
    single = [generate_replies(model, tok, [p], max_new_tokens=6, batch_size=1)[0] for p in PROMPTS]
    assert batched == single and all(batched)
    sampled = [generate_replies(model, tok, PROMPTS, max_new_tokens=6, do_sample=True, temperature=1.0, seed=s) for s in (1, 1, 2)]
    assert sampled[0] == sampled[1] and sampled[0] != sampled[2]


def test_predictions_resume_and_keep_parse_failures(tiny_llama_dir, tmp_path):
    from psyinsight.data.sample import sample_sessions
    from psyinsight.fileio import read_jsonl
    from psyinsight.generate.generation import GenerationConfig, generate_predictions
    from psyinsight.tasks.examples import TaskConfig, build_examples

    model, tok = load_model_and_tokenizer(str(tiny_llama_dir), device="cpu")
    examples = build_examples(sample_sessions(), TaskConfig(task="dialog")).examples[:5]
    out = tmp_path / "p.jsonl"
    cfg = GenerationConfig(max_new_tokens=4, batch_size=2)
    first = generate_predictions(examples[:3], out, model=model, tokenizer=tok, config=cfg)
    assert (first.generated, first.resumed) == (3, 0)
    second = generate_predictions(examples, out, model=model, tokenizer=tok, config=cfg)
    assert (second.generated, second.resumed, second.total) == (2, 3, 5)
    rows = read_jsonl(out)
    assert [r["id"] for r in rows] == [e.id for e in examples]
    assert [r["reference"] for r in rows] == [e.reference for e in examples]
    # A random model never writes "Therapist:": every row is a kept, counted failure.
    assert second.parse_failures == sum(not r["parse_ok"] for r in rows) == 5
    assert all("parse_error" in r["meta"] for r in rows)
    # the one row writer records the decoding, as it does for the API backend
    assert all(r["meta"]["decoding"] == {"backend": "transformers", "max_new_tokens": 4, "do_sample": False, "seed": 13} for r in rows)
