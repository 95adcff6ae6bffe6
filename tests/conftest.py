"""Shared fixtures: the release folder (skip when absent) and the bundled sample."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
HOW_TO_GET = (
    "the Psy-Insight release files were not found: set PSYINSIGHT_DATA_DIR to a folder holding "
    "en_data_version7.json and cn_data_version7.json, place them in ../shared/data/psy-insight, "
    "or run `psyinsight data fetch`"
)


def _find_release() -> Path | None:
    candidates = []
    if os.environ.get("PSYINSIGHT_DATA_DIR"):
        candidates.append(Path(os.environ["PSYINSIGHT_DATA_DIR"]))
    candidates += [REPO.parent / "shared" / "data" / "psy-insight", Path("../shared/data/psy-insight")]
    for folder in candidates:
        if (folder / "en_data_version7.json").is_file() and (folder / "cn_data_version7.json").is_file():
            return folder.resolve()
    return None


@pytest.fixture(scope="session")
def release_dir() -> Path:
    """The folder with the real release files; tests needing it skip with instructions."""
    folder = _find_release()
    if folder is None:
        pytest.skip(HOW_TO_GET)
    return folder
