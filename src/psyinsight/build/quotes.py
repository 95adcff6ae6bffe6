"""Narrated dialogue: quoted speech in a paragraph, grouped into utterances with the speaker the narration names.

Case books quote both sides inside narration ("What brings you here?" I asked. "My
sister," Daniel said.). One paragraph can hold several speakers, so each quote is read
with the words around it:

- quote marks: ``"…"``, ``“…”``, ``‘…’`` (a ``’`` followed by a letter is an apostrophe),
  ``「…」``, ``『…』``; the Chinese ``我问他：“…”`` form is a lead clause ending in a colon;
- a clause right after a quote that holds a speech verb ("she replied", "said Helen",
  他说, 我问道, 咨询师说) names that quote's speaker; a clause ending in ``,``/``:``/``：``
  before a quote ("I said," / 他回答道：) names the next one; an action beat with no
  speech verb ("He shrugged.", 他想了想，) names the next quote, or the last one at the
  end of the paragraph;
- an unattributed quote after narration continues the same speaker; two quotes with
  nothing between them are two speakers (the caller alternates roles);
- the narration between quotes is kept as note spans with their offsets.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from psyinsight.data.schema import Language

PAIRS = {'"': '"', "“": "”", "‘": "’", "「": "」", "『": "』"}

EN_SPEECH_VERBS = (
    "said|says|asked|asks|replied|replies|answered|answers|added|adds|whispered|told|tells|continued|explained|admitted|"
    "muttered|murmured|shouted|cried|sighed|repeated|insisted|agreed|suggested|wondered|responded|offered|went on|began|"
    "began again|conceded|protested|interrupted|prompted|pressed|ventured|confessed|snapped|mumbled|called|recalled|"
    "observed|noted|remarked|reflected|echoed"
)
_EN_VERB = re.compile(rf"\b(?:{EN_SPEECH_VERBS})\b", re.IGNORECASE)
_CN_VERB = re.compile(r"说|问|答|讲|喊|补充|表示|嘀咕|叹道|笑道|接着道|[^知难]道[：:，,]?$")
_EN_PRONOUN = re.compile(r"\b(?:she|he|her|his)\b", re.IGNORECASE)
_EN_I = re.compile(r"(?<![\w'’])I(?![\w'’])")
_EN_NAME_VERB = re.compile(rf"\b([A-Z][a-z]+(?:\s[A-Z][a-z]+)?)\s+(?:{EN_SPEECH_VERBS})\b")
_EN_VERB_NAME = re.compile(rf"\b(?:{EN_SPEECH_VERBS})\s+([A-Z][a-z]+(?:\s[A-Z][a-z]+)?)\b")
_EN_ROLE = re.compile(r"\bthe\s+(therapist|counsell?or|psychologist|doctor|client|patient)\b", re.IGNORECASE)
_NOT_NAMES = {"I", "She", "He", "Her", "His", "They", "We", "You", "It", "Then", "And", "But", "So", "After", "When"}
_CLAUSE_END = re.compile(r"[.!?。！？…]+[\"”’」』]?\s*|\n")
INTRO_END = (",", ":", "：", "，", "—", "-")


@dataclass
class Speaker:
    """Who a clause names: ``I`` (the narrator), ``pronoun``, a role word or a name; and whether a speech verb says so."""

    who: str
    verb: bool
    at: int


@dataclass
class Group:
    """Consecutive quotes by one speaker inside a paragraph."""

    spans: list[tuple[int, int]]
    speaker: str = ""
    by: str = ""
    """Why: ``verb`` (a speech tag), ``beat`` (an action beat), ``continued`` (same speaker as the quote before)."""
    notes: list[tuple[int, int]] = field(default_factory=list)


def _single_closes(text: str, j: int) -> bool:
    nxt = text[j + 1 : j + 2]
    return not (nxt.isalpha() and text[j - 1 : j].isalpha())


def find_quotes(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """The spans between quote marks in ``text[start:end]`` (absolute offsets of the quoted words)."""
    found: list[tuple[int, int]] = []
    i = start
    while i < end:
        ch = text[i]
        if ch in PAIRS and not (ch == "‘" and text[i - 1 : i].isalpha()):
            close = PAIRS[ch]
            j = i + 1
            while j < end and not (text[j] == close and (close != "’" or _single_closes(text, j))):
                j += 1
            if j >= end:
                break
            if text[i + 1 : j].strip():
                found.append((i + 1, j))
            i = j + 1
            continue
        i += 1
    return found


def clauses(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """Sentence-sized pieces of narration between two quotes (absolute spans, stripped)."""
    out: list[tuple[int, int]] = []
    pos = start
    for m in _CLAUSE_END.finditer(text, start, end):
        out.append((pos, m.end()))
        pos = m.end()
    out.append((pos, end))
    spans = []
    for s, e in out:
        while s < e and (text[s].isspace() or text[s] in ",，"):
            s += 1
        while e > s and text[e - 1].isspace():
            e -= 1
        if s < e:
            spans.append((s, e))
    return spans


def find_speaker(clause: str, language: Language, people: set[str], role_words: set[str]) -> Speaker | None:
    """The person a narration clause is about (its first mention) and whether it tags speech."""
    found: list[tuple[int, str]] = []
    if language == "cn":
        for name in people | role_words:
            at = clause.find(name)
            if at >= 0 and name:
                found.append((at, name))
        for mark, who in (("我", "I"), ("她", "pronoun"), ("他", "pronoun")):
            at = clause.find(mark)
            if at >= 0:
                found.append((at, who))
        verb = bool(_CN_VERB.search(clause))
    else:
        for pattern in (_EN_NAME_VERB, _EN_VERB_NAME):
            for m in pattern.finditer(clause):
                if m.group(1).split()[0] not in _NOT_NAMES:
                    found.append((m.start(1), m.group(1)))
        for name in people:
            m = re.search(rf"(?<![\w]){re.escape(name)}(?![\w])", clause)
            if m:
                found.append((m.start(), name))
        m = _EN_I.search(clause)
        if m:
            found.append((m.start(), "I"))
        m = _EN_PRONOUN.search(clause)
        if m:
            found.append((m.start(), "pronoun"))
        m = _EN_ROLE.search(clause)
        if m:
            found.append((m.start(), m.group(1).lower()))
        verb = bool(_EN_VERB.search(clause))
    if not found:
        return None
    at, who = min(found, key=lambda f: (f[0], -len(f[1])))
    return Speaker(who, verb, at)


def _ends_intro(text: str) -> bool:
    return text.rstrip().endswith(INTRO_END)


def _interrupted(quoted: str) -> bool:
    """A quote cut mid-sentence by its tag: "I feel," she said, "stuck." / “我怕，”她说，“……”"""
    return quoted.rstrip().endswith((",", "，", "—", "-", "…", "——"))


def group_quotes(
    text: str, start: int, end: int, quotes: list[tuple[int, int]], language: Language, people: set[str], role_words: set[str]
) -> list[Group]:
    """The paragraph's quotes grouped by speaker, each group with the speaker the narration names ('' when none)."""
    n = len(quotes)
    # gap k lies before quote k (gap 0: the lead; gap n: the tail); quote marks are one character
    bounds = [start] + [e + 1 for _, e in quotes]
    ends = [s - 1 for s, _ in quotes] + [end]
    back: list[Speaker | None] = [None] * (n + 1)
    tagged = [False] * (n + 1)
    forward: list[Speaker | None] = [None] * (n + 1)
    gap_clauses: list[list[tuple[int, int]]] = []
    for k in range(n + 1):
        parts = clauses(text, bounds[k], ends[k])
        gap_clauses.append(parts)
        named = [(s, e, find_speaker(text[s:e], language, people, role_words)) for s, e in parts]
        if not named:
            continue
        first_s, first_e, first = named[0]
        used_first = False
        if k > 0 and first is not None:
            lowercase_tag = language == "en" and text[first_s : first_s + 1].islower()
            quoted = text[quotes[k - 1][0] : quotes[k - 1][1]]
            tag = first.verb and (not _ends_intro(text[first_s:first_e]) or _interrupted(quoted) or lowercase_tag or k == n)
            if tag or (k == n and len(named) == 1):
                back[k] = first
                used_first = tagged[k] = True
        if k < n:
            last_s, last_e, last = named[-1]
            if last is not None and not (used_first and len(named) == 1 and not _ends_intro(text[last_s:last_e])):
                forward[k] = last
    groups: list[Group] = []
    for k, span in enumerate(quotes):
        own, by = None, ""
        if back[k + 1] is not None:
            own, by = back[k + 1], "verb" if back[k + 1].verb else "beat"  # type: ignore[union-attr]
        if forward[k] is not None and (own is None or (forward[k].verb and not own.verb)):  # type: ignore[union-attr]
            own, by = forward[k], "verb" if forward[k].verb else "beat"  # type: ignore[union-attr]
        empty_gap = k > 0 and not gap_clauses[k]
        notes = gap_clauses[k]
        if groups and tagged[k]:  # the speech tag after the previous quote is that quote's narration
            groups[-1].notes.append(notes[0])
            notes = notes[1:]
        if groups and own is None and not empty_gap:
            groups[-1].spans.append(span)
            groups[-1].notes += notes
            continue
        if groups and own is not None and groups[-1].speaker == own.who and not empty_gap:
            groups[-1].spans.append(span)
            groups[-1].notes += notes
            continue
        groups.append(Group([span], own.who if own else "", by, list(notes)))
    if groups:
        groups[-1].notes += gap_clauses[n]
    return groups
