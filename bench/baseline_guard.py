"""Earlier safety guards, for benchmarks that compare against them in the same run.

An earlier guard is taken from git at its commit into a temporary folder, and run in a
subprocess with that folder on ``PYTHONPATH``.
"""

from __future__ import annotations

import contextlib
import io
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

BASELINE_COMMIT = "202f604"
"""The last commit with the guard before the semantic risk model (the blind set was added, nothing else changed)."""
BASELINES = {
    BASELINE_COMMIT: "patterns + TF-IDF classifier gated by risk-cue words",
    "ece65b5": "the risk model on the full twelve-layer e5",
}
"""Earlier guards worth timing beside the current one, by commit."""


@contextlib.contextmanager
def baseline_src(commit: str = BASELINE_COMMIT) -> Iterator[Path]:
    """A temporary ``src`` folder holding the package as it was at ``commit``."""
    root = Path(__file__).resolve().parent.parent
    archive = subprocess.run(["git", "-C", str(root), "archive", commit, "src"], capture_output=True, check=True).stdout
    with tempfile.TemporaryDirectory(prefix="psyinsight-baseline-") as tmp:
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(tmp, filter="data")
        yield Path(tmp) / "src"
