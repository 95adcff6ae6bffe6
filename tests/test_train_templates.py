"""Prompt/target offsets and loss weights line up with every supported chat template."""

from __future__ import annotations

import pytest

from psyinsight.errors import PsyInsightError
from psyinsight.train.loss import IGNORE_INDEX, build_features
from psyinsight.train.templates import IGNORED, PROMPT, TARGET, encode_example, render_prompt

FAMILIES = ["chatml", "mistral", "glm4", "llama3"]
MESSAGES = [
    {"role": "system", "content": "You are a friendly and professional psychotherapist."},
    {"role": "user", "content": "Session background: exam stress.\nDialogue so far:\nClient: I feel anxious.\n\nWrite the therapist's next turn."},
]
TARGETS = {
    "en": "Reasoning: reflect the feeling.\nTherapist: That sounds hard. What worries you most?",
    "cn": "推理：先共情。\n咨询师：听起来压力很大。你最担心什么？",
}
# The token that must close the target (the model learns to stop) in each family.
CLOSER = {"chatml": "<|im_end|>", "mistral": "</s>", "glm4": "<|endoftext|>", "llama3": "<|eot_id|>"}


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("lang", ["en", "cn"])
def test_target_tokens_are_exactly_the_target_and_its_end_of_turn(tiny_tokenizers, family, lang):
    tok = tiny_tokenizers[family]
    target = TARGETS[lang]
    enc = encode_example(tok, MESSAGES, target)
    target_ids = [i for i, r in zip(enc.input_ids, enc.roles) if r == TARGET]
    prompt_ids = [i for i, r in zip(enc.input_ids, enc.roles) if r == PROMPT]
    # The target tokens decode to the target text followed by the end-of-turn token.
    assert tok.decode(target_ids) == target + CLOSER[family]
    # The prompt tokens decode to the text the model sees at generation time (up to the
    # template's whitespace after the generation header, e.g. GLM4's newline).
    assert tok.decode(prompt_ids).rstrip() == render_prompt(tok, MESSAGES).rstrip()
    # Roles come in order: all prompt, then the target, then (maybe) ignored template tail.
    first_target = enc.roles.index(TARGET)
    assert all(r == PROMPT for r in enc.roles[:first_target])
    last_target = len(enc.roles) - 1 - enc.roles[::-1].index(TARGET)
    assert all(r == TARGET for r in enc.roles[first_target : last_target + 1])
    assert all(r == IGNORED for r in enc.roles[last_target + 1 :])


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("w_prompt", [0.0, 0.1, 1.0])
def test_weights_and_labels_follow_roles(tiny_tokenizers, family, w_prompt):
    enc = encode_example(tiny_tokenizers[family], MESSAGES, TARGETS["en"])
    feats = build_features(enc.input_ids, enc.roles, w_prompt)
    for tok_id, role, w, label in zip(enc.input_ids, enc.roles, feats["loss_weights"], feats["labels"]):
        expected = {PROMPT: w_prompt, TARGET: 1.0, IGNORED: 0.0}[role]
        assert w == expected
        assert label == (tok_id if expected > 0 else IGNORE_INDEX)
    assert sum(feats["loss_weights"]) == pytest.approx(enc.n_target + w_prompt * enc.n_prompt)


def test_mistral_folds_the_system_message_into_the_first_user_turn(tiny_tokenizers):
    text = render_prompt(tiny_tokenizers["mistral"], MESSAGES)
    assert text.startswith("<s>[INST] You are a friendly")
    assert "Session background" in text and text.endswith("[/INST]")


def test_target_repeated_in_history_is_found_at_its_own_place(tiny_tokenizers):
    tok = tiny_tokenizers["chatml"]
    messages = [{"role": "user", "content": "Therapist: That sounds hard."}]
    enc = encode_example(tok, messages, "Therapist: That sounds hard.")
    assert enc.roles.index(TARGET) > len(tok(render_prompt(tok, messages), add_special_tokens=False)["input_ids"]) - 2


def test_a_template_that_rewrites_the_target_is_refused(tiny_tokenizers):
    tok = build_variant(tiny_tokenizers["chatml"], "{% for m in messages %}{{ m['role'] }}: {{ m['content'] | upper }}\n{% endfor %}")
    with pytest.raises(PsyInsightError, match="cannot be located"):
        encode_example(tok, MESSAGES, "Therapist: hello there")


def test_an_all_prompt_or_all_target_example_is_refused(tiny_tokenizers):
    # A template that drops the assistant turn: the target never appears.
    tok = build_variant(
        tiny_tokenizers["chatml"], "{% for m in messages %}{% if m['role'] != 'assistant' %}{{ m['content'] }}{% endif %}{% endfor %}"
    )
    with pytest.raises(PsyInsightError):
        encode_example(tok, MESSAGES, "Therapist: hello there")
    # A template that renders only the assistant turn: no prompt token.
    tok = build_variant(
        tiny_tokenizers["chatml"], "{% for m in messages %}{% if m['role'] == 'assistant' %}{{ m['content'] }}{% endif %}{% endfor %}"
    )
    with pytest.raises(PsyInsightError, match="all target"):
        encode_example(tok, MESSAGES, "Therapist: hello there")
    with pytest.raises(PsyInsightError, match="empty target"):
        encode_example(tiny_tokenizers["chatml"], MESSAGES, "   ")


def test_a_tokenizer_without_chat_template_is_a_clear_error(tiny_tokenizers):
    tok = build_variant(tiny_tokenizers["chatml"], None)
    with pytest.raises(PsyInsightError, match="no chat template"):
        encode_example(tok, MESSAGES, "Therapist: hi")


def test_too_long_is_reported_as_such(tiny_tokenizers):
    from psyinsight.train.templates import TooLong

    with pytest.raises(TooLong):
        encode_example(tiny_tokenizers["chatml"], MESSAGES, TARGETS["en"], max_length=10)


def build_variant(tokenizer, template):
    import copy

    tok = copy.deepcopy(tokenizer)
    tok.chat_template = template
    return tok
