"""Consistency checks of turns: the marks narrated dialogue leaves when it was segmented wrongly.

When a narrated case book ("What brings you here?" I asked. "My sister," she said.) is
read as one utterance, a turn ends up holding several quoted utterances with the
narration's speech tags between them, and the counselor's questions sit inside a client
turn. Two rules find that in any release-format file:

- ``quotes_in_turn``: a turn whose content holds two or more quoted utterances joined by a
  speech tag ("…?" I asked. "…" / “……”我问道。“……”);
- ``other_role_question``: a client turn with a question the narration attributes to the
  first-person narrator (the counselor: `?" I asked`, ？”我问), a counselor turn whose
  question is tagged as the client's (`?" she asked`, ？”她问), or a client turn that asks
  "you" a question and answers it itself ("What made you come? My daughter." / 您最担心
  的是什么？我怕她考不好。): the counselor's question and the client's answer in one turn.

Both are ``suspect`` findings: not certain enough to call the data broken, too likely to be
corruption to pass silently (``validate`` exits 1 on them, the build lists them).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from psyinsight.data.findings import Finding

DESCRIPTIONS = {
    "quotes_in_turn": "a turn holding several quoted utterances joined by a speech tag (narrated dialogue merged into one turn)",
    "other_role_question": "a question the narration attributes to the other role (a counselor's question inside a client turn)",
}

_CLOSE = r"[\"”」』]"
_OPEN = r"[\"“「『]"
_EN_TAG = r"(?:said|asked|replied|answered|added|continued|explained)"
_CN_WHO = r"(?:我|你|她|他|咨询师|来访者|治疗师)"
_TAGGED_QUOTES = re.compile(
    rf"[,.?!]\s*{_CLOSE}\s*(?:(?:I|she|he|[A-Z][a-z]+)\s+{_EN_TAG}|{_EN_TAG}\s+(?:I|she|he|[A-Z][a-z]+))\b[^\"“”]{{0,60}}?[,.:]\s*{_OPEN}"
    rf"|[，。？！?!]\s*{_CLOSE}\s*{_CN_WHO}[^“”「」『』\"]{{0,6}}?(?:问|说|答)(?:道)?[，。：,:]\s*{_OPEN}"
)
_SENTENCE = re.compile(r"[^.!?。！？]*[.!?。！？]+[\"”」』]?|[^.!?。！？]+$")
_YOU = re.compile(r"\b(?:you|your)\b|你|您", re.IGNORECASE)
_NARRATOR_ASKS = re.compile(rf"[?？]\s*{_CLOSE}\s*(?:I\s+(?:asked|said|wondered)\b|我(?:问|说)(?:道)?)")
_CLIENT_ASKS = re.compile(rf"[?？]\s*{_CLOSE}\s*(?:(?:she|he)\s+(?:asked|said|wondered)\b|[她他](?:问|说)(?:道)?)")


def _asks_and_answers(content: str) -> bool:
    """A question to "you" followed, in the same turn, by a statement that answers it."""
    sentences = [m.group().strip() for m in _SENTENCE.finditer(content) if m.group().strip()]
    for i, sentence in enumerate(sentences[:-1]):
        if sentence.rstrip('"”」』').endswith(("?", "？")) and _YOU.search(sentence):
            nxt = sentences[i + 1]
            if not nxt.rstrip('"”」』').endswith(("?", "？")) and not _YOU.search(nxt):
                return True
    return False


def turn_findings(file: str, session: dict[str, Any]) -> Iterable[Finding]:
    """``suspect`` findings for the turns of one release-format session."""
    dialog_id = str(session.get("dialog_id"))
    for index, turn in enumerate(session.get("dialog") or []):
        content = str(turn.get("content") or "")
        ref = str(turn.get("id") or f"#{index}")
        tags = _TAGGED_QUOTES.findall(content)
        if tags:
            yield Finding("quotes_in_turn", "suspect", file, f"{len(tags) + 1} quoted utterances in one turn", dialog_id, ref, "content")
        speaker = turn.get("speaker")
        pattern = _NARRATOR_ASKS if speaker == "Seeker" else _CLIENT_ASKS if speaker == "Supporter" else None
        if pattern is not None and (pattern.search(content) or (speaker == "Seeker" and _asks_and_answers(content))):
            other = "counselor (the narrator)" if speaker == "Seeker" else "client"
            yield Finding(
                "other_role_question", "suspect", file, f"a {speaker} turn with a question tagged as the {other}'s", dialog_id, ref, "content"
            )


def source_findings(text: str, language: str, turns: Iterable[Any], people: set[str]) -> list[dict[str, Any]]:
    """Turns of a build whose source spans are tagged with different speakers ("…?" I asked. "…," she said.).

    The build knows where each turn came from; between two spans of one turn the narration
    should never name two different speakers.
    """
    from psyinsight.build.quotes import PAIRS, clauses, find_speaker

    def tags(start: int, end: int, first_only: bool = False) -> set[str]:
        names = set()
        for s, e in clauses(text, start, end)[: 1 if first_only else None]:
            who = find_speaker(text[s:e], language, people, set())  # type: ignore[arg-type]
            if who is not None and who.verb:
                names.add(who.who)
        return names

    found = []
    for index, turn in enumerate(turns):
        spans = sorted(turn.spans)
        speakers: set[str] = set()
        for (_, end), (start, _) in zip(spans, spans[1:]):
            speakers |= tags(end + 1, start - 1)
        tail = spans[-1][1] + 1 if spans else len(text)
        stop = min([i for i in (text.find("\n", tail), *(text.find(q, tail) for q in PAIRS)) if i >= 0] or [len(text)])
        speakers |= tags(tail, stop, first_only=True)
        named = speakers - {"I", "pronoun"}
        if ("I" in speakers and len(speakers) >= 2) or len(named) >= 2:
            found.append(
                {
                    "rule": "quotes_in_turn",
                    "turn": index,
                    "line": text.count("\n", 0, turn.start) + 1,
                    "start": turn.start,
                    "message": f"one turn holds quotes tagged with different speakers ({', '.join(sorted(speakers))})",
                }
            )
    return found
