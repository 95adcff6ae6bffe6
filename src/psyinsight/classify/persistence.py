"""Saving and loading classifiers: a model file plus a versioned JSON manifest.

The manifest says what the model is (task, language, label set, label mode, model type,
feature and input settings) and what made it (psyinsight, scikit-learn and Python
versions, the model file's SHA-256). Loading refuses a manifest of another format, task
or package version with a message saying what to do, and checks the hash before
unpickling so a swapped file is never executed.
"""

from __future__ import annotations

import platform
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from psyinsight import __version__
from psyinsight.classify.base import Classifier
from psyinsight.classify.tasks import ExtractConfig, get_task
from psyinsight.errors import PsyInsightError
from psyinsight.fileio import read_json, sha256_file, write_json
from psyinsight.language import detect_language, has_letters

MANIFEST = "manifest.json"
FORMAT = "psyinsight-classifier"
FORMAT_VERSION = 1
MODEL_FILE = "model.joblib"
ENCODER_DIR = "encoder"


class LanguageMismatchWarning(UserWarning):
    """Texts given to a classifier look like another language than it was trained on."""


OLD_MODULE_PATHS = {"psyinsight.classify.models": "psyinsight.classify.estimators"}
"""Module paths that earlier versions pickled classifiers under, and where those classes live now."""


def _alias_old_module_paths() -> None:
    """Let models pickled under an earlier layout unpickle: pickles name a class by its module path."""
    import importlib
    import sys

    for old, new in OLD_MODULE_PATHS.items():
        sys.modules.setdefault(old, importlib.import_module(new))


def _sklearn_version() -> str:
    import sklearn

    return sklearn.__version__


def extract_config_from_dict(data: dict[str, Any]) -> ExtractConfig:
    data = {"mask_label_names": False, **data}  # manifests older than the mask read their inputs unmasked
    return ExtractConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


@dataclass
class SavedClassifier:
    """A loaded classifier with its manifest: what the CLI and the construction pipeline use."""

    model: Classifier
    manifest: dict[str, Any]
    path: Path

    @property
    def task(self) -> str:
        return self.manifest["task"]

    @property
    def language(self) -> str:
        return self.manifest["language"]

    @property
    def labels(self) -> list[str]:
        return list(self.manifest["labels"])

    @property
    def extract_config(self) -> ExtractConfig:
        return extract_config_from_dict(self.manifest.get("extract", {}))

    def check_language(self, texts: Sequence[str], *, strict: bool = False) -> str | None:
        """Warn (or raise, when ``strict``) if ``texts`` look like another language than the model's."""
        found = detect_language(texts) if has_letters(texts) else None
        if found is None or found == self.language:
            return found
        message = (
            f"the model was trained on {self.language!r} text but the input looks {found!r}; "
            f"its predictions will be meaningless: use a model trained on {found!r}"
        )
        if strict:
            raise PsyInsightError(message, path=self.path)
        warnings.warn(f"{self.path}: {message}", LanguageMismatchWarning, stacklevel=2)
        return found

    def predict(self, texts: Sequence[str], contexts: Sequence[str] | None = None) -> list[str]:
        """The best label per text (contexts: the preceding turns, ``Speaker: text`` lines)."""
        self.check_language(texts)
        return self.model.predict(list(texts), None if contexts is None else list(contexts))

    def predict_proba(self, texts: Sequence[str], contexts: Sequence[str] | None = None) -> np.ndarray:
        """One column per entry of ``labels``."""
        self.check_language(texts)
        return self.model.predict_proba(list(texts), None if contexts is None else list(contexts))

    def predict_sets(self, texts: Sequence[str], contexts: Sequence[str] | None = None, threshold: float = 0.5) -> list[list[str]]:
        self.check_language(texts)
        return self.model.predict_sets(list(texts), None if contexts is None else list(contexts), threshold)


def save_classifier(
    model: Classifier,
    folder: str | Path,
    *,
    task: str,
    language: str,
    extract: ExtractConfig,
    training: dict[str, Any] | None = None,
) -> Path:
    """Write ``model`` and its manifest into ``folder``; the manifest is written last."""
    import joblib

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if model.model_type == "encoder":
        weights = model.save_pretrained(folder / ENCODER_DIR)  # type: ignore[attr-defined]
        model_file, digest = ENCODER_DIR, sha256_file(weights)
    else:
        from psyinsight.fileio import atomic_open

        with atomic_open(folder / MODEL_FILE, "wb") as handle:
            joblib.dump(model, handle, compress=3)
        model_file, digest = MODEL_FILE, sha256_file(folder / MODEL_FILE)
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "task": get_task(task).name,
        "language": language,
        "model_type": model.model_type,
        "labels": list(model.labels_),
        "multi_label": bool(model.multi_label),
        "label_mode": extract.label_mode,
        "config": model.config_dict(),
        "extract": asdict(extract),
        "model_file": model_file,
        "model_sha256": digest,
        "psyinsight_version": __version__,
        "sklearn_version": _sklearn_version(),
        "python_version": platform.python_version(),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "training": training or {},
    }
    write_json(folder / MANIFEST, manifest)
    return folder


def read_manifest(folder: str | Path) -> dict[str, Any]:
    """The manifest of a saved classifier, checked for format; errors say what is wrong."""
    folder = Path(folder)
    if folder.is_file() and folder.name == MANIFEST:
        folder = folder.parent
    path = folder / MANIFEST
    if not path.is_file():
        raise PsyInsightError(f"not a saved classifier: no {MANIFEST} here (train one with `psyinsight classify train`)", path=folder)
    manifest = read_json(path)
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise PsyInsightError(f"not a psyinsight classifier manifest (format must be {FORMAT!r})", path=path)
    if manifest.get("format_version") != FORMAT_VERSION:
        raise PsyInsightError(
            f"manifest format version {manifest.get('format_version')!r}, this psyinsight reads {FORMAT_VERSION}: "
            "retrain the model with this version",
            path=path,
            where="format_version",
        )
    for key in ("task", "language", "model_type", "labels", "model_file", "model_sha256"):
        if key not in manifest:
            raise PsyInsightError(f"manifest lacks {key!r}", path=path)
    return manifest


def load_classifier(
    path: str | Path,
    *,
    task: str | None = None,
    language: str | None = None,
    allow_version_mismatch: bool = False,
) -> SavedClassifier:
    """Load a saved classifier, refusing one made for another task, language or version.

    ``task``/``language``: what the caller needs (None: anything). A model saved by another
    psyinsight or scikit-learn version is refused (pickles are not portable across
    versions) unless ``allow_version_mismatch``, which only warns.
    """
    folder = Path(path)
    if folder.is_file():
        folder = folder.parent
    manifest = read_manifest(folder)
    where = str(folder / MANIFEST)
    if task is not None and manifest["task"] != get_task(task).name:
        raise PsyInsightError(
            f"this model was trained for task {manifest['task']!r}, not {get_task(task).name!r}: pass a {get_task(task).name} model",
            path=where,
            where="task",
        )
    if language is not None and manifest["language"] != language:
        raise PsyInsightError(f"this model was trained on {manifest['language']!r} data, not {language!r}", path=where, where="language")
    mismatches = []
    if manifest.get("psyinsight_version") != __version__:
        mismatches.append(f"psyinsight {manifest.get('psyinsight_version')} (running {__version__})")
    if manifest["model_type"] != "encoder" and manifest.get("sklearn_version") != _sklearn_version():
        mismatches.append(f"scikit-learn {manifest.get('sklearn_version')} (running {_sklearn_version()})")
    if mismatches:
        message = "saved by " + " and ".join(mismatches) + ": retrain it with `psyinsight classify train`"
        if not allow_version_mismatch:
            raise PsyInsightError(message + " (or allow the mismatch at your own risk)", path=where, where="version")
        warnings.warn(f"{where}: {message}", UserWarning, stacklevel=2)
    model_path = folder / manifest["model_file"]
    if manifest["model_type"] == "encoder":
        from psyinsight.classify.encoder import EncoderClassifier

        model: Classifier = EncoderClassifier.load_pretrained(model_path, manifest, expected_sha256=manifest["model_sha256"])
    else:
        import joblib

        if not model_path.is_file():
            raise PsyInsightError("the model file named by the manifest is missing", path=model_path)
        if sha256_file(model_path) != manifest["model_sha256"]:
            raise PsyInsightError(
                "the model file does not match the manifest's SHA-256 (changed or from another model); refusing to load it",
                path=model_path,
            )
        _alias_old_module_paths()
        model = joblib.load(model_path)
    if list(model.labels_) != list(manifest["labels"]):
        raise PsyInsightError("the model's label set differs from its manifest", path=where, where="labels")
    return SavedClassifier(model=model, manifest=manifest, path=folder)
