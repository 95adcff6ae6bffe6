"""CPU speed of constrained-decoding libraries plugged into transformers generate(), with the embedded SmolLM2 (ratios in one run matter)."""

import json
import sys
import time

import torch

torch.set_num_threads(1)
from transformers import LogitsProcessor, LogitsProcessorList

from psyinsight.models import load_model_and_tokenizer
from psyinsight.train.templates import render_prompt

model, tok = load_model_and_tokenizer("default")
print("tokenizer", type(tok).__name__, "vocab", len(tok), "model vocab", model.config.vocab_size, flush=True)
SCHEMA = {
    "type": "object",
    "properties": {
        "psychotherapy": {
            "type": "string",
            "enum": [
                "Cognitive Behavioral Therapy",
                "Person-Centered Therapy",
                "Solution-Focused Brief Therapy",
                "Psychoanalytic Therapy",
                "Unknown",
            ],
        },
        "topic": {"type": "string", "enum": ["Anxiety", "Depression", "Family", "Work", "Relationship", "Unknown"]},
        "summary": {"type": "string", "maxLength": 200},
    },
    "required": ["psychotherapy", "topic", "summary"],
    "additionalProperties": False,
}
msgs = [
    {"role": "system", "content": "You annotate counseling sessions. Answer in JSON."},
    {
        "role": "user",
        "content": "Client: I can't sleep before exams, my heart races.\nTherapist: What goes through your mind at night?\nGive psychotherapy, topic and a short summary.",
    },
]
text = render_prompt(tok, msgs)
batch = tok([text], return_tensors="pt", add_special_tokens=False)
N = 64


def run(name, **kw):
    torch.manual_seed(0)
    t = time.perf_counter()
    out = model.generate(**batch, max_new_tokens=N, do_sample=False, pad_token_id=tok.pad_token_id, temperature=None, top_p=None, top_k=None, **kw)
    dt = time.perf_counter() - t
    gen = out[0, batch["input_ids"].shape[1] :]
    s = tok.decode(gen, skip_special_tokens=True)
    try:
        json.loads(s)
        ok = True
    except Exception:
        ok = False
    print(f"{name:22s} tokens {len(gen):3d} seconds {dt:6.2f} tok/s {len(gen) / dt:6.1f} valid_json {ok} :: {s[:90]!r}", flush=True)
    return len(gen) / dt


base = run("unconstrained")
base = run("unconstrained (again)")
which = sys.argv[1:] or ["llguidance", "xgrammar", "outlines", "lmfe"]
if "llguidance" in which:
    import llguidance
    import llguidance.hf
    import llguidance.torch as lt

    t = time.perf_counter()
    lltok = llguidance.hf.from_tokenizer(tok, n_vocab=model.config.vocab_size)
    setup = time.perf_counter() - t
    grammar = llguidance.LLMatcher.grammar_from_json_schema(SCHEMA, defaults={"whitespace_flexible": False})

    class LLG(LogitsProcessor):
        def __init__(self):
            self.m = llguidance.LLMatcher(lltok, grammar)
            self.mask = lt.allocate_token_bitmask(1, lltok.vocab_size)
            self.start = None

        def __call__(self, input_ids, scores):
            if self.start is None:
                self.start = input_ids.shape[1]
            else:
                self.m.consume_token(int(input_ids[0, -1]))
            lt.fill_next_token_bitmask(self.m, self.mask, 0)
            lt.apply_token_bitmask_inplace(scores, self.mask.to(scores.device))
            return scores

    print(f"llguidance tokenizer setup {setup:.2f}s")
    run("llguidance", logits_processor=LogitsProcessorList([LLG()]))
if "xgrammar" in which:
    try:
        import xgrammar as xgr
        from xgrammar.contrib.hf import LogitsProcessor as XLP

        t = time.perf_counter()
        info = xgr.TokenizerInfo.from_huggingface(tok, vocab_size=model.config.vocab_size)
        comp = xgr.GrammarCompiler(info).compile_json_schema(json.dumps(SCHEMA), any_whitespace=False)
        setup = time.perf_counter() - t
        print(f"xgrammar setup {setup:.2f}s")
        run("xgrammar", logits_processor=LogitsProcessorList([XLP(comp)]))
    except Exception as e:
        print("xgrammar failed:", type(e).__name__, str(e)[:200])
if "outlines" in which:
    try:
        from outlines.processors import JSONLogitsProcessor
    except Exception:
        JSONLogitsProcessor = None
    try:
        import outlines
        from outlines.backends import get_json_schema_logits_processor

        om = outlines.from_transformers(model, tok)
        t = time.perf_counter()
        lp = get_json_schema_logits_processor("outlines_core", om, json.dumps(SCHEMA))
        setup = time.perf_counter() - t
        print(f"outlines(outlines_core) setup {setup:.2f}s")
        run("outlines/outlines_core", logits_processor=LogitsProcessorList([lp]))
    except Exception as e:
        print("outlines failed:", type(e).__name__, str(e)[:300])
if "lmfe" in which:
    try:
        from lmformatenforcer import JsonSchemaParser
        from lmformatenforcer.integrations.transformers import build_transformers_prefix_allowed_tokens_fn

        t = time.perf_counter()
        fn = build_transformers_prefix_allowed_tokens_fn(tok, JsonSchemaParser(SCHEMA))
        setup = time.perf_counter() - t
        print(f"lm-format-enforcer setup {setup:.2f}s")
        run("lm-format-enforcer", prefix_allowed_tokens_fn=fn)
    except Exception as e:
        print("lm-format-enforcer failed:", type(e).__name__, str(e)[:300])
