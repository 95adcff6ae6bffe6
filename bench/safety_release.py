"""Flag rate of the safety guard on every client turn of the Psy-Insight release.

Prints, per language, how many client (Seeker) turns the guard flags and by what (pattern,
model), with the previous guard (regex patterns + a TF-IDF classifier gated by risk-cue
words, from the commit named by ``--baseline``) run in the same process tree for comparison,
and the wall time. ``--flagged FILE`` writes the flagged turns (JSONL) for reading: some
sessions really discuss suicide, so a flag is not automatically a false alarm.

    .venv/bin/python bench/safety_release.py [--data-dir DIR] [--flagged /tmp/flagged.jsonl] [--baseline COMMIT]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

from baseline_guard import BASELINE_COMMIT, baseline_src

from psyinsight.counsel.safety import SafetyGuard
from psyinsight.counsel.safety.release_check import client_turns, flag_release
from psyinsight.data.release import load_release
from psyinsight.fileio import write_jsonl

BASELINE_CODE = """
import json, sys
from psyinsight.safety import SafetyGuard  # the baseline commit's layout
texts = json.load(sys.stdin)
g = SafetyGuard(); g.warm_up()
print(json.dumps([r.risk for r in g.check_texts(texts)]))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=None, help="Release folder (default: found as load_release finds it).")
    ap.add_argument("--flagged", default=None, help="Write the flagged turns of the guard here (JSONL).")
    ap.add_argument("--baseline", default=BASELINE_COMMIT, help="Commit whose guard is the baseline ('none' to skip).")
    args = ap.parse_args()

    sessions = load_release(args.data_dir)
    guard = SafetyGuard()
    guard.warm_up()
    t0 = time.perf_counter()
    report = flag_release(guard, sessions)
    wall = time.perf_counter() - t0
    n = sum(report.turns.values())
    print(
        f"{'guard':10} turns {n:5d}  flagged {sum(report.flagged.values()):4d} ({report.rate():.4f})  "
        + "  ".join(f"{lang} {report.flagged[lang]}/{report.turns[lang]} ({report.rate(lang):.4f})" for lang in sorted(report.turns))
        + f"  by {dict(report.by_source)}  wall {wall:.2f}s ({1000 * wall / max(n, 1):.2f} ms/turn)"
    )
    if args.baseline != "none":
        texts = [t for _, _, t in client_turns(sessions)]
        with baseline_src(args.baseline) as src:
            proc = subprocess.run(
                [sys.executable, "-c", BASELINE_CODE],
                input=json.dumps(texts),
                capture_output=True,
                text=True,
                env={"PYTHONPATH": str(src), "PATH": ""},
                check=True,
            )
        flags = json.loads(proc.stdout)
        print(f"{'baseline':10} turns {len(texts):5d}  flagged {sum(flags):4d} ({sum(flags) / len(texts):.4f})  (guard of {args.baseline})")
    if args.flagged:
        write_jsonl(args.flagged, report.rows)
        print(f"flagged turns written to {args.flagged}")


if __name__ == "__main__":
    main()
