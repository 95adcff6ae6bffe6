"""The bundled synthetic bilingual sample (eight sessions): every command runs on it."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from psyinsight.data.schema import Session

SAMPLE_FILES = {"en": "en_sample.json", "cn": "cn_sample.json"}


def sample_path(language: str = "en") -> Path:
    """The sample file of one language (``en`` or ``cn``)."""
    return Path(str(resources.files(__package__) / SAMPLE_FILES[language]))


def sample_dir() -> Path:
    return sample_path("en").parent


def sample_sessions(*, repair: bool = True) -> list[Session]:
    """All eight sample sessions, English first."""
    from psyinsight.data.release import load_sessions

    return [s for lang in SAMPLE_FILES for s in load_sessions(sample_path(lang), lang, repair=repair)]
