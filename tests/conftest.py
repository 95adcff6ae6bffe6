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
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
        tie_word_embeddings=False,
        initializer_range=0.5,
    )
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


# ---- tiny chat models for the training tests: one tokenizer per chat-template family ----

TINY_CHAT_TEMPLATES = {
    # SmolLM2 / ChatML
    "chatml": (
        "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
        "{{ '<|im_start|>system\nYou are a helpful AI assistant.<|im_end|>\n' }}{% endif %}"
        "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
    ),
    # Mistral-7B-Instruct-v0.2: no system role (it raises), eos closes the assistant turn
    "mistral": (
        "{{ bos_token }}{% for message in messages %}"
        "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
        "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
        "{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
        "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token }}"
        "{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}"
    ),
    # GLM-4-9b-chat: nothing closes an assistant turn
    "glm4": (
        "[gMASK]<sop>{% for item in messages %}{% if item['role'] == 'user' %}<|user|>\n{{ item['content'] }}"
        "{% elif item['role'] == 'assistant' %}<|assistant|>\n{{ item['content'] }}"
        "{% elif item['role'] == 'system' %}<|system|>\n{{ item['content'] }}{% endif %}{% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>{% endif %}"
    ),
    # Llama-3-Instruct: contents are trimmed, <|eot_id|> closes every turn
    "llama3": (
        "{% set loop_messages = messages %}{% for message in loop_messages %}"
        "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + message['content'] | trim + '<|eot_id|>' %}"
        "{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
    ),
}
TINY_SPECIALS = {
    "chatml": {"tokens": ["<|endoftext|>", "<|im_start|>", "<|im_end|>"], "bos": None, "eos": "<|im_end|>", "unk": "<|endoftext|>"},
    "mistral": {"tokens": ["<unk>", "<s>", "</s>"], "bos": "<s>", "eos": "</s>", "unk": "<unk>"},
    "glm4": {
        "tokens": ["<|endoftext|>", "[gMASK]", "<sop>", "<|user|>", "<|assistant|>", "<|system|>"],
        "bos": None,
        "eos": "<|endoftext|>",
        "unk": None,
    },
    "llama3": {
        "tokens": ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", "<|finetune_right_pad_id|>"],
        "bos": "<|begin_of_text|>",
        "eos": "<|eot_id|>",
        "unk": None,
    },
}


def build_tiny_tokenizer(family: str):
    """A byte-level BPE tokenizer trained in-process on the sample's text, with a family's chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from psyinsight.data.sample import sample_sessions

    spec = TINY_SPECIALS[family]
    texts = [t.content for s in sample_sessions() for t in s.dialog]
    texts += [s.background for s in sample_sessions()]
    texts += ["Therapist: Reasoning: Observation: Strategy: Client:", "咨询师：推理：观察：策略：来访者：", "system user assistant [INST] [/INST]"]
    tok = Tokenizer(models.BPE(unk_token=spec["unk"]) if spec["unk"] else models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=800, special_tokens=spec["tokens"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts * 3, trainer)
    kwargs = {k + "_token": spec[k] for k in ("bos", "eos", "unk") if spec[k]}
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, **kwargs)
    tokenizer.chat_template = TINY_CHAT_TEMPLATES[family]
    return tokenizer


@pytest.fixture(scope="session")
def tiny_tokenizers() -> dict:
    """family name → tiny tokenizer with that family's chat template (chatml, mistral, glm4, llama3)."""
    return {family: build_tiny_tokenizer(family) for family in TINY_CHAT_TEMPLATES}


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory: pytest.TempPathFactory, tiny_tokenizers: dict) -> Path:
    """A saved 2-layer random Llama with the ChatML tiny tokenizer (loads through models.py)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    folder = tmp_path_factory.mktemp("tiny-llama")
    tokenizer = tiny_tokenizers["chatml"]
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"),
        bos_token_id=None,
        tie_word_embeddings=False,
    )
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


ENDLESS_MAX_TOKENS = 60_000
"""max_tokens the endless tiny Llama is made for: minutes of generation on a CPU."""


@pytest.fixture(scope="session")
def endless_model_dir(tiny_llama_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny random Llama with no end-of-sequence token: it writes until max_tokens."""
    import json
    import shutil

    folder = tmp_path_factory.mktemp("endless") / "endless"
    shutil.copytree(tiny_llama_dir, folder)
    for name in ("config.json", "generation_config.json"):
        path = folder / name
        if path.exists():
            data = json.loads(path.read_text(encoding="utf-8"))
            data["eos_token_id"] = None
            if name == "config.json":  # positions past the limit would only add warnings
                data["max_position_embeddings"] = 2 * ENDLESS_MAX_TOKENS
            path.write_text(json.dumps(data), encoding="utf-8")
    return folder


@pytest.fixture
def torch_one_thread():
    """Run a test's torch work on one thread (small tensors: threads only add contention)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def guard():
    """The bundled safety guard, loaded once (its encoder and model are read-only)."""
    from psyinsight.counsel.safety import SafetyGuard

    g = SafetyGuard()
    g.warm_up()
    return g
