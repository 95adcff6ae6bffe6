"""Latency of the safety guard per message, against earlier guards, and its share of a chat turn.

    .venv/bin/python bench/safety_latency.py [--messages 200] [--turns 8] [--max-new-tokens 64] [--baseline COMMIT ...]

1. Per message: ``check_text`` on distinct messages from the validation set (both languages,
   each seen once, so no cache helps), p50 / p95 / max in ms. Earlier guards, taken from git
   (by default the patterns-and-TF-IDF guard and the guard on the full twelve-layer e5), run
   on the same messages in a subprocess with the same thread settings; the ratio of the p95s
   is printed.
2. Per chat turn: the counselor with the embedded SmolLM2 answers ``--turns`` ordinary
   messages; the guard's part (reading the conversation before the model, screening the reply
   after) is timed apart from generation, and its share of the turn is printed.

Both run on one core for the guard (its encoder uses one thread); generation uses torch's default.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import numpy as np
from baseline_guard import BASELINES, baseline_src

from psyinsight.counsel.safety import SafetyGuard
from psyinsight.counsel.safety.corpus import load_examples, named_sets
from psyinsight.paths import cache_dir

TIMING = """
import json, sys, time
try:
    from psyinsight.counsel.safety import SafetyGuard
except ImportError:
    from psyinsight.safety import SafetyGuard  # the layout before the counsel package
texts = json.load(sys.stdin)
g = SafetyGuard(); g.warm_up()
out = []
for t in texts:
    s = time.perf_counter(); g.check_text(t); out.append((time.perf_counter() - s) * 1000)
print(json.dumps(out))
"""


def percentiles(ms: list[float]) -> str:
    a = np.array(ms)
    return f"p50 {np.percentile(a, 50):6.2f} ms  p95 {np.percentile(a, 95):6.2f} ms  max {a.max():7.2f} ms  (n={len(a)})"


def per_message(texts: list[str], baselines: list[str]) -> None:
    guard = SafetyGuard()
    guard.warm_up()
    ours = []
    for t in texts:
        s = time.perf_counter()
        guard.check_text(t)
        ours.append((time.perf_counter() - s) * 1000)
    print(f"guard            {percentiles(ours)}")
    for commit in baselines:
        with baseline_src(commit) as src:
            proc = subprocess.run(
                [sys.executable, "-c", TIMING],
                input=json.dumps(texts),
                capture_output=True,
                text=True,
                env={"PYTHONPATH": str(src), "PATH": "", "OMP_NUM_THREADS": "1", "PSYINSIGHT_CACHE_DIR": str(cache_dir())},
                check=True,
            )
        base = json.loads(proc.stdout)
        print(f"guard at {commit:7} {percentiles(base)}  ({BASELINES.get(commit, 'an earlier guard')})")
        print(f"p95 ratio guard / guard at {commit}: {np.percentile(ours, 95) / np.percentile(base, 95):.2f}x")


def per_turn(texts: list[str], turns: int, max_new_tokens: int) -> None:
    from psyinsight.counsel.counselor import Counselor
    from psyinsight.counsel.engine import GenParams

    counselor = Counselor(params=GenParams(max_new_tokens=max_new_tokens))
    counselor.engine.load()
    counselor.guard.warm_up()
    guard_ms, gen_ms = [], []
    history: list[dict[str, str]] = []
    for text in texts[:turns]:
        history = [*history, {"role": "user", "content": text}][-7:]
        s = time.perf_counter()
        risk = counselor.check(history)
        guard_ms.append((time.perf_counter() - s) * 1000)
        if risk.risk:
            history.append({"role": "assistant", "content": counselor.crisis_reply(risk, "en").response})
            continue
        lang = counselor.resolve_language(history, None)
        s = time.perf_counter()
        generation = counselor.engine.generate([counselor.prompt(history, lang)], counselor.params)[0]
        gen_ms.append((time.perf_counter() - s) * 1000)
        s = time.perf_counter()
        counselor.screen(generation.text, risk)
        guard_ms[-1] += (time.perf_counter() - s) * 1000
        history.append({"role": "assistant", "content": generation.text or "..."})
    share = sum(guard_ms) / max(sum(gen_ms), 1e-9)
    print(
        f"chat turn        guard {np.mean(guard_ms):.1f} ms/turn, generation {np.mean(gen_ms):.0f} ms/turn "
        f"({max_new_tokens} new tokens): guard overhead {100 * share:.2f}% of generation time"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=200, help="Distinct messages timed per guard.")
    ap.add_argument("--turns", type=int, default=8, help="Chat turns for the overhead measurement (0 skips it).")
    ap.add_argument("--max-new-tokens", type=int, default=64, help="Reply length of the counselor in the chat turns.")
    ap.add_argument(
        "--baseline",
        nargs="*",
        default=list(BASELINES),
        help="Commits of earlier guards to time in the same run (the option alone, with none, skips them).",
    )
    args = ap.parse_args()
    rows = load_examples(named_sets()["valid"])
    texts = [r["text"] for r in rows][:: max(1, len(rows) // args.messages)][: args.messages]
    per_message(texts, args.baseline)
    if args.turns:
        ordinary = [r["text"] for r in rows if r["label"] == "none" and r["lang"] == "en"]
        per_turn(ordinary, args.turns, args.max_new_tokens)


if __name__ == "__main__":
    main()
