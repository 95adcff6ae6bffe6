"""Time to load + repair + validate both release files, against a bare ``json.load``.

    python bench/load.py [--data-dir DIR] [--repeat 5]

Prints the best of N runs for each stage and the ratio to ``json.load`` of the same files,
measured in the same process. Target: the whole path under 1.5 s on a 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from psyinsight.data.release import release_files, to_sessions
from psyinsight.data.validate import validate_data


def best_of(repeat: int, fn) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    files = release_files(args.data_dir)

    def bare() -> None:
        for path in files.values():
            with open(path, encoding="utf-8") as handle:
                json.load(handle)

    def load_repair() -> None:
        for lang, path in files.items():
            with open(path, encoding="utf-8") as handle:
                to_sessions(json.load(handle), lang, path)

    def load_repair_validate() -> None:
        for lang, path in files.items():
            with open(path, encoding="utf-8") as handle:
                data = json.load(handle)
            to_sessions(data, lang, path)
            validate_data(data, path)

    base = best_of(args.repeat, bare)
    rows = [("json.load (baseline)", base), ("load + repair (typed sessions)", best_of(args.repeat, load_repair))]
    rows.append(("load + repair + validate", best_of(args.repeat, load_repair_validate)))
    print(f"{'stage':34} {'seconds':>8} {'x json.load':>12}")
    for name, seconds in rows:
        print(f"{name:34} {seconds:8.3f} {seconds / base:12.1f}")
    total = rows[-1][1]
    print(f"target < 1.5 s: {'met' if total < 1.5 else 'MISSED'} ({total:.2f} s)")


if __name__ == "__main__":
    main()
