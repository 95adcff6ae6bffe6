"""What the guard reads: a message with the usual ways of dodging a filter undone.

People who do not want a filter to see them write "k1ll mys3lf", "s u i c i d e",
"自 杀", put a zero-width space inside a word or swap Latin letters for Cyrillic ones that
look the same. ``canonical`` undoes each of these so that the patterns and the risk model
see the words a reader sees:

- NFKC (full-width to half-width), then format characters (zero-width spaces and joiners,
  bidi marks, soft hyphens) removed;
- look-alike letters from other scripts mapped to Latin inside Latin words (Unicode's
  confusables data, via ``confusable_homoglyphs``); a Russian message stays Russian;
- digits and symbols used as letters inside a word read as letters ("k1ll" → "kill");
- letters spelled out one by one ("k i l l", "k.i.l.l") joined;
- spaces and symbols between Chinese characters dropped ("自 杀", "自*杀" → "自杀");
- lower case, straight quotes, single spaces.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

from psyinsight.language import CJK_RANGE

_LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s", "!": "i", "|": "l", "+": "t"})
_LEET_WORD = re.compile(r"(?<![\w@$!|+])[\w@$!|+]*[a-z][\w@$!|+]*(?![\w@$!|+])")
_SPELLED = re.compile(r"(?<![a-z])(?:[a-z][ .\-_*·•]){2,}[a-z](?![a-z])")
_BETWEEN_CJK = re.compile(f"(?<=[{CJK_RANGE}])[\\s\\W_]+?(?=[{CJK_RANGE}])")
_CJK_PUNCT = set("，。！？、；：“”‘’（）《》「」『』…—～·,.!?;:()")


@lru_cache(maxsize=1)
def _homoglyphs() -> dict[str, str]:
    """Non-ASCII letters that look like an ASCII letter, mapped to it."""
    from confusable_homoglyphs import confusables

    table: dict[str, str] = {}
    for char, entries in confusables.confusables_data.items():
        if len(char) != 1 or char.isascii():
            continue
        for entry in entries:
            c = entry.get("c", "")
            if len(c) == 1 and c.isascii() and c.isalnum():
                table[char] = c.lower()
                break
    return table


def _latin_share(text: str) -> float:
    letters = [ch for ch in text if ch.isalpha()]
    return sum(ch.isascii() for ch in letters) / len(letters) if letters else 0.0


def _unconfuse(text: str) -> str:
    """Map look-alike letters to Latin in words that are Latin (mixed script) or in a mostly Latin text."""
    table = _homoglyphs()
    if not any(ch in table for ch in text):
        return text
    mostly_latin = _latin_share(text) >= 0.5

    def fix(word: re.Match[str]) -> str:
        w = word.group(0)
        if mostly_latin or any(ch.isascii() and ch.isalpha() for ch in w):
            return "".join(table.get(ch, ch) for ch in w)
        return w

    return re.sub(r"\S+", fix, text)


def _unleet(word: re.Match[str]) -> str:
    """A symbol or digit inside a word, or leading three or more letters, read as a letter.

    "k1ll", "su1c1de", "$uicide", "5uicidal" change; "mp3", "4am", "covid19", "2nd" do not.
    """
    w = word.group(0)
    inside = re.search(r"[a-z][0134571@$!|+]+[a-z]", w)
    leading = re.match(r"[0134571@$!|+]+[a-z]{3,}$", w)
    return w.translate(_LEET) if inside or leading else w


def canonical(text: str) -> str:
    """``text`` as the guard reads it (see the module docstring)."""
    text = unicodedata.normalize("NFKC", text)
    text = "".join(ch for ch in text if unicodedata.category(ch) != "Cf")
    text = _unconfuse(text)
    text = text.replace("\u2019", "'").replace("\u2018", "'").replace("`", "'").lower()
    text = re.sub(r"\s+", " ", text).strip()
    text = _LEET_WORD.sub(_unleet, text)
    text = _SPELLED.sub(lambda m: re.sub(r"[ .\-_*·•]", "", m.group(0)), text)
    text = _BETWEEN_CJK.sub(lambda m: m.group(0) if set(m.group(0).strip()) & _CJK_PUNCT else "", text)
    return text


def compact(text: str) -> str:
    """``canonical`` text with every space and symbol removed: "kill my self" and
    "k-i-l-l-m-y-s-e-l-f" both read "killmyself" (matched against ``patterns.COMPACT``)."""
    return re.sub(r"[\W_]+", "", canonical(text))
