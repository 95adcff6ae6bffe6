"""Where psyinsight finds the release and keeps its caches."""

from __future__ import annotations

import os
from pathlib import Path

from platformdirs import user_cache_dir

DATA_DIR_ENV = "PSYINSIGHT_DATA_DIR"
CACHE_DIR_ENV = "PSYINSIGHT_CACHE_DIR"

RELEASE_FILES = {"en": "en_data_version7.json", "cn": "cn_data_version7.json"}


def cache_dir() -> Path:
    """The cache root: ``$PSYINSIGHT_CACHE_DIR`` or the XDG user cache folder."""
    root = os.environ.get(CACHE_DIR_ENV) or user_cache_dir("psyinsight")
    return Path(root)


def release_dir() -> Path | None:
    """The folder holding the release files, or None when none is found.

    Looks at ``$PSYINSIGHT_DATA_DIR``, then ``../shared/data/psy-insight`` from the current
    folder, then the download cache (``psyinsight data fetch``).
    """
    candidates = []
    if os.environ.get(DATA_DIR_ENV):
        candidates.append(Path(os.environ[DATA_DIR_ENV]))
    candidates += [Path("../shared/data/psy-insight"), cache_dir() / "release" / "v7"]
    for folder in candidates:
        if any((folder / name).is_file() for name in RELEASE_FILES.values()):
            return folder
    return None
