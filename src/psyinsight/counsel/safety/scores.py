"""The blind sets' first scores, recorded once and never recomputed.

A blind set is written before the model it scores and scored once; that first score is the
honest estimate for new text. Later runs on the same set are development scores (the set
has been seen), so ``safety eval`` prints the recorded first score, not a fresh one.
"""

from __future__ import annotations

from typing import Any

from psyinsight.counsel.safety.corpus import data_dir
from psyinsight.fileio import read_json


def first_scores() -> dict[str, dict[str, Any]]:
    """Set name -> its first score (n, recall, fpr, per language and category, when, model digest)."""
    path = data_dir() / "first_scores.json"
    return read_json(path) if path.exists() else {}
