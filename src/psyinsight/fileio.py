"""Reading and writing the project's plain files safely.

Writes are atomic (a temporary file in the same folder, then ``os.replace``), so an
interrupted run never leaves a half-written output. Reads turn every way a file can be
unusable (missing, not UTF-8, not JSON, empty) into a ``PsyInsightError`` naming the file
and the place. JSON has no NaN or infinity: the JSON writers write an undefined number
(a statistic of too few values) as null, so every output stays valid JSON.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from psyinsight.errors import PsyInsightError


def _default_file_mode() -> int:
    """What a plain ``open`` would give a new file (0o666 less the umask): mkstemp uses 0600."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


_FILE_MODE = _default_file_mode()


def check_writable(path: str | Path, *, folder: bool = False, option: str | None = None) -> Path:
    """Fail before any work when ``path`` cannot be written, creating nothing.

    Walks up to the nearest existing ancestor: it must be a folder this process may write
    into. An existing ``path`` must be a file (or, with ``folder``, a folder). Commands call
    this on their outputs first, so a typo in ``--out`` costs nothing.
    """
    path = Path(path)
    if path.exists():
        if folder and not path.is_dir():
            raise PsyInsightError("is a file, expected a folder", path=path, where=option)
        if not folder and path.is_dir():
            raise PsyInsightError("is a folder, expected a file", path=path, where=option)
        target = path if folder else path.parent  # an atomic write replaces the file from its folder
        if not os.access(target, os.W_OK | os.X_OK) or _read_only_mount(target):
            raise PsyInsightError("permission denied", path=path, where=option)
        return path
    ancestor = path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise PsyInsightError(f"cannot create it: {ancestor} is a file, not a folder", path=path, where=option)
    if not os.access(ancestor, os.W_OK | os.X_OK) or _read_only_mount(ancestor):
        raise PsyInsightError(f"cannot create it: no permission to write in {ancestor}", path=path, where=option)
    return path


def _read_only_mount(folder: Path) -> bool:
    """``os.access`` says yes to root everywhere; a read-only mount still refuses it."""
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def os_error_message(exc: OSError) -> str:
    """``error: <file>: <what>`` text for an OSError from writing or reading a file."""
    name = exc.filename
    if isinstance(name, str) and Path(name).name.startswith(".") and name.endswith(".tmp"):
        name = str(Path(name).parent)  # an atomic write's temporary sibling: name the folder
    what = exc.strerror or str(exc)
    return f"{name}: {what[0].lower() + what[1:]}" if name else what[0].lower() + what[1:]


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO[Any]]:
    """Open a temporary sibling of ``path`` for writing; rename it over ``path`` on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        binary = "b" in mode
        with os.fdopen(fd, mode, encoding=None if binary else encoding) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, _FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def default_modes(folder: str | Path) -> None:
    """Give files a library wrote privately (safetensors: 0600) the mode a plain ``open`` would."""
    for path in Path(folder).rglob("*"):
        if path.is_file() and path.stat().st_mode & 0o777 != _FILE_MODE:
            os.chmod(path, _FILE_MODE)


def write_text(path: str | Path, text: str) -> Path:
    with atomic_open(path) as handle:
        handle.write(text)
    return Path(path)


def write_bytes(path: str | Path, data: bytes) -> Path:
    with atomic_open(path, "wb") as handle:
        handle.write(data)
    return Path(path)


def finite_or_null(obj: Any) -> Any:
    """``obj`` with every NaN or infinite float (in dicts, lists and tuples) replaced by None."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite_or_null(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_or_null(v) for v in obj]
    return obj


def dumps(obj: Any, *, indent: int | None = None) -> str:
    """JSON text as the project writes it: UTF-8 characters kept, NaN and infinity as null.

    Most documents hold no such number, so they are dumped as they are; only one that does is
    walked and rewritten.
    """
    try:
        return json.dumps(obj, ensure_ascii=False, indent=indent, allow_nan=False)
    except ValueError:  # "Out of range float values are not JSON compliant"
        return json.dumps(finite_or_null(obj), ensure_ascii=False, indent=indent, allow_nan=False)


def write_json(path: str | Path, obj: Any, *, indent: int | None = 2) -> Path:
    return write_text(path, dumps(obj, indent=indent) + "\n")


def write_jsonl(path: str | Path, rows: Iterable[Any]) -> Path:
    with atomic_open(path) as handle:
        for row in rows:
            handle.write(dumps(row) + "\n")
    return Path(path)


def read_text(path: str | Path) -> str:
    """Read a UTF-8 text file, or raise a ``PsyInsightError`` saying why it cannot be read."""
    path = Path(path)
    if not path.exists():
        raise PsyInsightError("no such file", path=path)
    if path.is_dir():
        raise PsyInsightError("is a folder, expected a file", path=path)
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise PsyInsightError(
            f"not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})",
            path=path,
            where=f"line {line}",
        ) from None


def read_json(path: str | Path) -> Any:
    """Parse a JSON file; errors name the line and column."""
    text = read_text(path)
    if not text.strip():
        raise PsyInsightError("the file is empty", path=path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise PsyInsightError(f"invalid JSON: {exc.msg}", path=path, where=f"line {exc.lineno}, column {exc.colno}") from None


def read_yaml(path: str | Path) -> Any:
    """Parse a YAML file safely (no tags run code); errors name the line and column."""
    import yaml

    text = read_text(path)
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else None
        raise PsyInsightError(f"invalid YAML: {getattr(exc, 'problem', exc)}", path=path, where=where) from None


def read_jsonl(path: str | Path) -> list[Any]:
    """Parse a JSON-lines file (blank lines are skipped); errors name the line."""
    rows = []
    for lineno, line in enumerate(read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise PsyInsightError(f"invalid JSON: {exc.msg}", path=path, where=f"line {lineno}, column {exc.colno}") from None
    return rows


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()
