"""Schema-valid share and tokens/s of the build's annotation questions with the embedded SmolLM2, before/after constrained decoding.

before: what `psyinsight serve` did for response_format json_object (a JSON instruction, the reply opened with "{",
        the first object pulled out of the text); after: the question's JSON Schema enforced by xgrammar.
Valid = the build's own checker accepts the answer (parse + schema + taxonomy), first answer, no repair retry.
"""

import json
import random
import sys
import time
from pathlib import Path

import torch

torch.set_num_threads(1)

from psyinsight.build.annotate import AnnotateConfig, _judge, load_prompts, unit_jobs
from psyinsight.build.ingest import sample_raw_dir
from psyinsight.build.pipeline import Build, BuildConfig
from psyinsight.counsel.engine import GenParams, LocalEngine
from psyinsight.llm import ChatResult
from psyinsight.serve.app import _with_json_instruction
from psyinsight.serve.replies import extract_json_object
from psyinsight.serve.structured import ResponseFormat, StructuredEngine, constrained

N = int(sys.argv[1]) if len(sys.argv) > 1 else 6
MAX = int(sys.argv[2]) if len(sys.argv) > 2 else 64
ONLY = sys.argv[3].split(",") if len(sys.argv) > 3 else None  # e.g. "window"
MODES = sys.argv[4].split(",") if len(sys.argv) > 4 else ["before", "after"]
cfg = AnnotateConfig(window=2, max_context_chars=300)
cfg.max_tokens = dict.fromkeys(cfg.max_tokens, MAX)
b = Build(BuildConfig(raw_dir=sample_raw_dir(), out_dir=Path("/tmp/m15/jobs"), llm=None))
states = b.ingest()
b.segment(states)
b.turns(states)
b.anonymise(states)
jobs = []
for s in states:
    prev = None
    for u in s.anonymised:
        jobs += unit_jobs(u, prev, load_prompts(u.language), cfg)
        prev = u
print("annotation questions in a build of the bundled raw samples:", len(jobs), flush=True)
rng = random.Random(15)
by_task = {}
for j in jobs:
    by_task.setdefault((j.task, "cn" if "cn/" in j.where else "en"), []).append(j)
picked = []
keys = sorted(by_task)
wanted = [k for k in keys if ONLY is None or k[0] in ONLY]
for _ in range(N):  # the same draw whatever is kept afterwards, so a subset run repeats the questions of a full run
    for k in keys:
        if by_task[k] and len(picked) < N:
            picked.append(by_task[k].pop(rng.randrange(len(by_task[k]))))
picked = [j for j in picked if ONLY is None or j.task in ONLY]
engine = StructuredEngine(LocalEngine("default", threads=1))
engine.load()
rows = []
for mode in MODES:
    tokens = seconds = valid = 0
    for j in picked:
        prompt = _with_json_instruction(j.request.messages)
        if mode == "before":
            params = GenParams(max_new_tokens=j.request.params["max_tokens"], prefix="{")
        else:
            fmt = ResponseFormat("json_schema", json.dumps(j.request.schema, sort_keys=True), j.request.schema_name)
            engine.check(fmt)  # compile outside the timing (cached per schema in the server)
            params = constrained(GenParams(max_new_tokens=j.request.params["max_tokens"]), fmt)
        t = time.perf_counter()
        (g,) = engine.generate([prompt], params)
        dt = time.perf_counter() - t
        text = g.text if mode == "after" else (extract_json_object(g.text) or g.text)
        value, error = _judge(j, ChatResult(text=text, finish_reason=g.finish_reason))
        ok = error is None
        tokens += g.completion_tokens
        seconds += dt
        valid += ok
        print(
            f"{mode:6s} {j.task:8s} {j.where[:28]:28s} tokens {g.completion_tokens:3d} {dt:6.1f}s valid {ok} {'' if ok else error[:70]}", flush=True
        )
    rows.append((mode, valid, len(picked), tokens, seconds))
    print(f"== {mode}: schema-valid {valid}/{len(picked)}, {tokens} tokens in {seconds:.1f}s = {tokens / seconds:.2f} tok/s", flush=True)
if len(rows) == 2:
    (b_, a_) = rows
    print(f"== tokens/s ratio after/before: {(a_[3] / a_[4]) / (b_[3] / b_[4]):.2f}")
