"""Which script and language a text is in: the one test for Chinese characters and the one detector.

The data checks, the builder, the classifier, the metrics and the counselor all ask "is this
Chinese?"; they ask it here so that every stage counts the same characters as Chinese:
the CJK Unified Ideographs, Extension A and the compatibility ideographs.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

CJK_RANGE = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
"""Chinese characters, for use inside a regex character class: ``f"[{CJK_RANGE}]"``."""

CJK = re.compile(f"[{CJK_RANGE}]")
CJK_SHARE = 0.3
"""The share of letters that are Chinese from which a text reads as Chinese (a few names or
quoted words in Chinese do not make an English text Chinese)."""
_LETTER = re.compile(r"[^\W\d_]")
_WORD = re.compile(r"[^\W\d_]+")
_MIN_WORDS_TO_IDENTIFY = 4


def _joined(text: str | Iterable[str]) -> str:
    return text if isinstance(text, str) else "".join(text)


def has_cjk(text: str) -> bool:
    """Whether ``text`` holds at least one Chinese character."""
    return bool(CJK.search(text))


def has_letters(text: str | Iterable[str]) -> bool:
    """Whether ``text`` (or the texts) hold a letter of any script; digits and symbols are not letters."""
    return bool(_LETTER.search(_joined(text)))


def cjk_ratio(text: str) -> float:
    """Share of the letters that are Chinese characters (0 for a text without letters)."""
    letters = _LETTER.findall(text)
    if not letters:
        return 0.0
    return sum(1 for ch in letters if CJK.match(ch)) / len(letters)


def detect_language(
    text: str | Iterable[str],
    default: str = "en",
    *,
    cjk_share: float = CJK_SHARE,
    identify: bool = False,
) -> str:
    """``cn`` when Chinese characters are at least ``cjk_share`` of the letters, else ``default``.

    ``cjk_share=0`` reads a text with any Chinese character as Chinese (the counselor answers
    in the script its user wrote in). With ``identify``, a non-Chinese text of four words or more
    is named by py3langid (an ISO 639-1 code: "en", "fr", ...); shorter ones ("ok", "kms") carry
    too little to identify and get ``default``. Several texts are read as one.
    """
    joined = _joined(text)
    ratio = cjk_ratio(joined)
    if ratio > 0 and ratio >= cjk_share:
        return "cn"
    if identify and len(_WORD.findall(joined)) >= _MIN_WORDS_TO_IDENTIFY:
        return _langid(joined)
    return default


@lru_cache(maxsize=2048)
def _langid(text: str) -> str:
    import py3langid

    return str(py3langid.classify(text)[0])
