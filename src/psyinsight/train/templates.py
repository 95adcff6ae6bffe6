"""Rendering examples with the tokenizer's own chat template, and finding the target tokens.

Each model family writes a conversation its own way (Mistral ``[INST]``, GLM4
``<|user|>``, ChatML ``<|im_start|>``, Llama-3 ``<|start_header_id|>``). We never
hand-write those formats: we render with ``tokenizer.apply_chat_template`` and then find
the target inside the rendered text by *character offsets*, which works whatever the
template adds around it. Tokens overlapping the target, plus the end-of-turn token that
closes it, are target tokens; everything before is prompt; template text after the end of
turn is ignored. An example that is all prompt (target lost: truncated or rewritten by
the template) or all target is refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from psyinsight.errors import PsyInsightError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

PROMPT, TARGET, IGNORED = 0, 1, 2
"""Token roles in an encoded example (loss.py turns them into weights)."""


@dataclass
class EncodedExample:
    """Token ids and each token's role (PROMPT, TARGET or IGNORED)."""

    input_ids: list[int]
    roles: list[int]
    text: str

    @property
    def n_target(self) -> int:
        return sum(1 for r in self.roles if r == TARGET)

    @property
    def n_prompt(self) -> int:
        return sum(1 for r in self.roles if r == PROMPT)


def as_dicts(messages: Sequence[Any]) -> list[dict[str, str]]:
    """Messages as role/content dicts, from dicts or records.Message objects."""
    out = []
    for m in messages:
        if isinstance(m, dict):
            out.append({"role": str(m["role"]), "content": str(m["content"])})
        else:  # a records.Message or anything with role/content
            out.append({"role": m.role, "content": m.content})
    return out


def _fold_system(messages: list[dict[str, str]]) -> list[dict[str, str]]:
    """Merge a system message into the first user turn (for templates without a system role)."""
    if not messages or messages[0]["role"] != "system":
        return messages
    system, rest = messages[0]["content"], messages[1:]
    if rest and rest[0]["role"] == "user":
        return [{"role": "user", "content": f"{system}\n\n{rest[0]['content']}"}, *rest[1:]]
    return [{"role": "user", "content": system}, *rest]


def render_chat(tokenizer: PreTrainedTokenizerBase, messages: Sequence[Any], *, add_generation_prompt: bool) -> str:
    """The chat template's text for ``messages``.

    Templates that reject a system role (Mistral-7B-Instruct-v0.2 raises) get the system
    text folded into the first user message. A tokenizer without a chat template is a
    user error (a base model given where an instruct model is needed).
    """
    if not getattr(tokenizer, "chat_template", None):
        raise PsyInsightError(
            "the tokenizer has no chat template; use an instruction-tuned model or add a chat_template to its tokenizer_config.json",
            where="tokenizer",
        )
    msgs = as_dicts(messages)
    try:
        return tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=add_generation_prompt)
    except Exception as first:
        folded = _fold_system(msgs)
        if folded is msgs:
            raise PsyInsightError(f"the chat template failed: {first}", where="tokenizer chat template") from None
        try:
            return tokenizer.apply_chat_template(folded, tokenize=False, add_generation_prompt=add_generation_prompt)
        except Exception as exc:
            raise PsyInsightError(f"the chat template failed: {exc}", where="tokenizer chat template") from None


def render_prompt(tokenizer: PreTrainedTokenizerBase, messages: Sequence[Any]) -> str:
    """The text a model continues from to write the next assistant turn."""
    return render_chat(tokenizer, messages, add_generation_prompt=True)


def _special_ids(tokenizer: PreTrainedTokenizerBase) -> set[int]:
    ids = set(tokenizer.all_special_ids)
    for token_id, added in getattr(tokenizer, "added_tokens_decoder", {}).items():
        if getattr(added, "special", False):
            ids.add(int(token_id))
    return ids


def encode_example(
    tokenizer: PreTrainedTokenizerBase,
    messages: Sequence[Any],
    target: str,
    *,
    max_length: int | None = None,
    where: str = "example",
) -> EncodedExample:
    """Render prompt + target with the chat template; tag each token PROMPT, TARGET or IGNORED.

    Raises ``PsyInsightError`` when the target cannot be found in the rendered text, when
    the example has no prompt or no target token, or when it exceeds ``max_length``
    (callers that skip long examples catch ``TooLong``).
    """
    target_text = target.strip()
    if not target_text:
        raise PsyInsightError("empty target", where=where)
    msgs = as_dicts(messages)
    full = render_chat(tokenizer, [*msgs, {"role": "assistant", "content": target_text}], add_generation_prompt=False)
    # The target is the last message, so its last occurrence is its own place (the same
    # sentence may also occur in the history).
    start = full.rfind(target_text)
    if start < 0:
        raise PsyInsightError(
            "the chat template rewrote the target, so it cannot be located in the rendered text; "
            "use a template that keeps the assistant text verbatim",
            where=where,
        )
    end = start + len(target_text)
    special = _special_ids(tokenizer)
    eos_id = tokenizer.eos_token_id
    after = tokenizer(full[end:], add_special_tokens=False)["input_ids"] if full[end:] else []
    append_eos = eos_id is not None and not any(t in special for t in after)
    if append_eos:  # templates like GLM4's close an assistant turn with nothing: end it ourselves
        full = full[:end] + tokenizer.eos_token + full[end:]
    enc = tokenizer(full, add_special_tokens=False, return_offsets_mapping=True)
    ids: list[int] = list(enc["input_ids"])
    offsets = enc["offset_mapping"]
    roles: list[int] = []
    closed = False
    pending: list[int] = []  # whitespace between the target and its end-of-turn token
    for index, (token_id, (s, e)) in enumerate(zip(ids, offsets)):
        if s < end and e > start:
            roles.append(TARGET)
        elif s < start or (s == e and s <= start):
            roles.append(PROMPT)
        elif not closed and token_id in special:
            roles.append(TARGET)  # the end-of-turn token: the model must learn to stop
            for p in pending:
                roles[p] = TARGET
            closed = True
        else:
            if not closed and not full[s:e].strip():
                pending.append(index)
            else:
                closed = True
            roles.append(IGNORED)
    encoded = EncodedExample(input_ids=ids, roles=roles, text=full)
    if encoded.n_target == 0:
        raise PsyInsightError("no target token after tokenization (the template or tokenizer lost the target)", where=where)
    if encoded.n_prompt == 0:
        raise PsyInsightError("no prompt token: the example is all target", where=where)
    if max_length is not None and len(ids) > max_length:
        raise TooLong(f"{len(ids)} tokens > max_length {max_length}", where=where)
    return encoded


class TooLong(PsyInsightError):
    """An encoded example longer than the budget (callers skip and count these)."""
