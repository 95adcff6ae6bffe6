"""Shared fixtures: the release folder (skip when absent) and the bundled sample."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
HOW_TO_GET = (
    "the Psy-Insight release files were not found: set PSYINSIGHT_DATA_DIR to a folder holding "
    "en_data_version7.json and cn_data_version7.json, place them in ../shared/data/psy-insight, "
    "or run `psyinsight data fetch`"
)


def _find_release() -> Path | None:
    candidates = []
    if os.environ.get("PSYINSIGHT_DATA_DIR"):
        candidates.append(Path(os.environ["PSYINSIGHT_DATA_DIR"]))
    candidates += [REPO.parent / "shared" / "data" / "psy-insight", Path("../shared/data/psy-insight")]
    for folder in candidates:
        if (folder / "en_data_version7.json").is_file() and (folder / "cn_data_version7.json").is_file():
            return folder.resolve()
    return None


@pytest.fixture(scope="session")
def release_dir() -> Path:
    """The folder with the real release files; tests needing it skip with instructions."""
    folder = _find_release()
    if folder is None:
        pytest.skip(HOW_TO_GET)
    return folder


@pytest.fixture(scope="session")
def tiny_chat_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer random Llama with a byte-level BPE tokenizer trained in-process and a
    ChatML chat template, saved as a model folder: loads and generates in well under a
    second, in English and Chinese, with no download."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-chat-model")
    specials = ["<pad>", "<unk>", "<|im_start|>", "<|im_end|>"]
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    corpus = [
        "Therapist: How are you feeling today? Client: I feel anxious about my exams.",
        "Observation: the client is worried. Reasoning: reflect the feeling. Therapist: That sounds hard.",
        "咨询师：你今天感觉怎么样？来访者：我最近睡不好，压力很大。观察：推理：",
        "system user assistant You are a friendly and professional psychotherapist.",
    ] * 20
    trainer = trainers.BpeTrainer(vocab_size=600, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(corpus, trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>", eos_token="<|im_end|>")
    tokenizer.chat_template = (
        "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\n' + m['content'] + '<|im_end|>\n' }}{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
    )
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=2, max_position_embeddings=4096, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, bos_token_id=None, tie_word_embeddings=False, initializer_range=0.5,
    )  # fmt: skip
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
