"""Getting the Psy-Insight v7 release files: download (or copy) and verify SHA-256.

Files land in ``cache_dir()/release/v7`` (or ``--dest``) only after their checksum matched,
through a temporary file and a rename: a corrupted or interrupted download caches nothing.
"""

from __future__ import annotations

import hashlib
import shutil
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from psyinsight.errors import PsyInsightError
from psyinsight.fileio import atomic_open, sha256_file
from psyinsight.paths import cache_dir

RELEASE_COMMIT = "da55aec6d73f4cd0076fbf5fbb9b6d90673e2790"
DEFAULT_BASE_URL = f"https://raw.githubusercontent.com/ckqqqq/Psy-Insight/{RELEASE_COMMIT}/data"


@dataclass(frozen=True)
class ReleaseFile:
    name: str
    sha256: str


RELEASE_V7 = (
    ReleaseFile("en_data_version7.json", "ebbbb482ec19973ab45e76df2192fc8fa84958085534cbd72e30f1af3ce33481"),
    ReleaseFile("cn_data_version7.json", "1cc0f35f928e3f8bbfd281264b0c59933a5d449f003ade2bb736e95533429e14"),
)


def default_dest() -> Path:
    return cache_dir() / "release" / "v7"


def _already_there(path: Path, expected: str) -> bool:
    return path.is_file() and sha256_file(path) == expected


def _download(url: str, target: Path, expected: str, timeout: float) -> None:
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, atomic_open(target, "wb") as out:
            while block := response.read(1 << 16):
                digest.update(block)
                out.write(block)
            if digest.hexdigest() != expected:
                raise PsyInsightError(
                    f"checksum mismatch: got sha256 {digest.hexdigest()}, expected {expected}; nothing was cached",
                    path=url,
                )
    except urllib.error.HTTPError as exc:
        raise PsyInsightError(f"download failed: HTTP {exc.code} {exc.reason}", path=url) from None
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise PsyInsightError(
            f"download failed: {reason}. Offline? Copy the files with `psyinsight data fetch --source DIR`, "
            "point PSYINSIGHT_DATA_DIR at them, or add --sample to any data command",
            path=url,
        ) from None


def _copy(source: Path, target: Path, expected: str) -> None:
    if not source.is_file():
        raise PsyInsightError("missing in the source folder", path=source)
    actual = sha256_file(source)
    if actual != expected:
        raise PsyInsightError(f"checksum mismatch: got sha256 {actual}, expected {expected}; nothing was cached", path=source)
    with open(source, "rb") as src, atomic_open(target, "wb") as out:
        shutil.copyfileobj(src, out)


def fetch_release(
    dest: str | Path | None = None,
    *,
    source: str | Path | None = None,
    base_url: str = DEFAULT_BASE_URL,
    timeout: float = 60.0,
    files: tuple[ReleaseFile, ...] = RELEASE_V7,
) -> list[Path]:
    """Download (or copy from ``source``) each release file, verified, into ``dest``."""
    folder = Path(dest) if dest else default_dest()
    written = []
    for item in files:
        target = folder / item.name
        if not _already_there(target, item.sha256):
            if source is not None:
                _copy(Path(source) / item.name, target, item.sha256)
            else:
                _download(f"{base_url.rstrip('/')}/{item.name}", target, item.sha256, timeout)
        written.append(target)
    return written
