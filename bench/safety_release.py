"""Flag rate of the safety guard on every client turn of the Psy-Insight release.

Prints, per language, how many client (Seeker) turns the guard flags and by what
(pattern / classifier / ...), against a patterns-only baseline run in the same process,
and the wall time. ``--flagged FILE`` writes the flagged turns (JSONL) for reading: some
sessions really discuss suicide, so a flag is not automatically a false alarm.

    .venv/bin/python bench/safety_release.py [--data-dir DIR] [--flagged /tmp/flagged.jsonl] [--cv]

``--cv`` also prints the 5-fold cross-validated recall / FPR on train.jsonl at each classifier
threshold, with the release flag count at that threshold: the table the default was chosen on.
"""

from __future__ import annotations

import argparse
import time

from psyinsight.fileio import write_jsonl
from psyinsight.release import load_release
from psyinsight.safety import SafetyConfig, SafetyGuard
from psyinsight.safety.release_check import flag_release


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=None, help="Release folder (default: found as load_release finds it).")
    ap.add_argument("--flagged", default=None, help="Write the flagged turns of the full guard here (JSONL).")
    ap.add_argument("--threshold", type=float, default=None, help="Classifier threshold (default: SafetyConfig's).")
    ap.add_argument("--cv", action="store_true", help="Also print the cross-validated threshold table.")
    args = ap.parse_args()

    sessions = load_release(args.data_dir)
    cfg = SafetyConfig()
    if args.threshold is not None:
        cfg.classifier_threshold = args.threshold
    runs = {"patterns-only": SafetyGuard(SafetyConfig(use_classifier=False)), "guard": SafetyGuard(cfg)}
    reports = {}
    for name, guard in runs.items():
        guard.warm_up()
        t0 = time.perf_counter()
        reports[name] = flag_release(guard, sessions)
        wall = time.perf_counter() - t0
        r = reports[name]
        n = sum(r.turns.values())
        print(f"{name:14} turns {n:5d}  flagged {sum(r.flagged.values()):4d} ({r.rate():.4f})  "
              + "  ".join(f"{lang} {r.flagged[lang]}/{r.turns[lang]} ({r.rate(lang):.4f})" for lang in sorted(r.turns))
              + f"  by {dict(r.by_source)}  wall {wall:.2f}s ({1000 * wall / max(n, 1):.2f} ms/turn)")
    base, full = reports["patterns-only"], reports["guard"]
    ratio = full.rate() / base.rate() if base.rate() else float("inf")
    print(f"guard / patterns-only flag rate: {ratio:.2f}x")
    if args.cv:
        from psyinsight.safety.classifier import data_path, load_examples
        from psyinsight.safety.evaluate import cross_validate_thresholds

        table = cross_validate_thresholds(load_examples(data_path("train.jsonl")))
        clf = runs["guard"].classifier
        for t, c in table.items():
            rel = flag_release(SafetyGuard(SafetyConfig(classifier_threshold=t), classifier=clf), sessions)
            print(f"threshold {t:.1f}: cv recall {c.recall:.3f}  cv FPR {c.fpr:.3f}  release flags {sum(rel.flagged.values())}")
    if args.flagged:
        write_jsonl(args.flagged, full.rows)
        print(f"flagged turns written to {args.flagged}")


if __name__ == "__main__":
    main()
