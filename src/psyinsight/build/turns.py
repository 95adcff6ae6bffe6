"""Step 3: utterance pieces become turns, and runs of turns become session units.

- Bracketed stage directions and notes ("[Pause.]", "(laughs)", "（沉默）", "【哭泣】") are
  cut out of the text and kept with their source offsets and their index in the cleaned
  text (en ``reference_labels``, cn ``labels`` in the output).
- Consecutive utterances by one speaker are merged; turns left empty are dropped (counted).
- A unit is a run of dialogue between narrative paragraphs, with the narrative before and
  after it; a unit where only one side speaks is merged into its neighbour.
"""

from __future__ import annotations

import re

from psyinsight.build.records import Document, Note, Piece, Turn, Unit
from psyinsight.data.schema import Language

_EN_NOTE = re.compile(r"\[[^\]\n]{1,80}\]|\((?:[a-z][a-z' ,.-]{1,40})\)")
_CN_NOTE = re.compile(r"（[^）\n]{1,16}）|【[^】\n]{1,16}】|\[[^\]\n]{1,40}\]|\([^)\n]{1,16}\)")


def note_pattern(language: Language) -> re.Pattern[str]:
    return _CN_NOTE if language == "cn" else _EN_NOTE


def _clean(text: str, spans: list[tuple[int, int]], language: Language) -> tuple[str, list[Note], int | None]:
    """Cleaned content, the notes cut out, and the source offset of the first kept character."""
    pattern = note_pattern(language)
    content = ""
    notes: list[Note] = []
    first: int | None = None
    for span_start, span_end in spans:
        pos = span_start
        part = ""
        chunks: list[tuple[int, str]] = []
        for m in pattern.finditer(text, span_start, span_end):
            chunks.append((pos, text[pos : m.start()]))
            notes.append(Note(text=m.group(), start=m.start(), end=m.end()))
            pos = m.end()
        chunks.append((pos, text[pos:span_end]))
        note_iter = iter(notes[len(notes) - (len(chunks) - 1) :])
        for i, (offset, chunk) in enumerate(chunks):
            if first is None and chunk.strip():
                first = offset + (len(chunk) - len(chunk.lstrip()))
            piece = re.sub(r"\s+", " ", chunk) if language == "en" else re.sub(r"\s+", "", chunk)
            if part and language == "en" and part.endswith(" ") and piece.startswith(" "):
                piece = piece[1:]
            part += piece
            if i < len(chunks) - 1:
                note = next(note_iter)
                note.index = len(_join(content, part.strip() if language == "en" else part, language))
        part = part.strip()
        if part:
            content = _join(content, part, language)
    if content.endswith((",", "，")):  # a quote cut before its attribution: "I feel stuck," she said.
        content = content[:-1] + ("." if content.endswith(",") else "。")
    return content, notes, first


def _join(left: str, right: str, language: Language) -> str:
    if not left:
        return right
    if not right:
        return left
    if language == "cn":
        return left + right
    if left.endswith(",") and right[:1].isupper():
        left = left[:-1] + "."
    return f"{left} {right}"


def make_turns(doc: Document, pieces: list[Piece]) -> tuple[list[list[Turn]], list[str], int]:
    """Dialogue runs of merged turns, the narrative between them, and the number of empty turns dropped.

    ``narratives[i]`` is the narrative before run ``i``; ``narratives[-1]`` the one after the last run.
    """
    runs: list[list[Turn]] = []
    narratives: list[list[Piece]] = [[]]
    dropped = 0
    current: list[Turn] = []
    for piece in pieces:
        if piece.kind == "narrative":
            if current:
                runs.append(current)
                narratives.append([])
                current = []
            narratives[-1].append(piece)
            continue
        content, notes, first = _clean(doc.text, piece.spans, doc.language)
        if not content:
            dropped += 1
            continue
        notes = sorted(notes + _narration_notes(doc, piece), key=lambda n: n.start)
        turn = Turn(
            role=piece.role or "Seeker",
            participant=piece.participant,
            content=content,
            start=first if first is not None else piece.start,
            end=piece.end,
            spans=list(piece.spans),
            notes=notes,
            unsure=piece.unsure,
        )
        same = current and current[-1].role == turn.role and current[-1].participant == turn.participant
        if same and not turn.unsure and not current[-1].unsure:
            previous = current[-1]
            shift = len(_join(previous.content, "x", doc.language)) - 1
            for note in turn.notes:
                note.index += shift
            previous.content = _join(previous.content, turn.content, doc.language)
            previous.spans += turn.spans
            previous.notes += turn.notes
            previous.end = turn.end
        else:
            current.append(turn)
    if current:
        runs.append(current)
        narratives.append([])
    texts = ["\n\n".join(doc.text[p.start : p.end].strip() for p in group) for group in narratives]
    return runs, texts, dropped


def _narration_notes(doc: Document, piece: Piece) -> list[Note]:
    """The narration cut out of a dialogue paragraph, each note at the place it stood in the turn's content."""
    notes = []
    for start, end in piece.notes:
        before = [s for s in piece.spans if s[0] < start]
        index = len(_clean(doc.text, before, doc.language)[0]) if before else 0
        notes.append(Note(text=doc.text[start:end], start=start, end=end, index=index))
    return notes


def make_units(doc: Document, pieces: list[Piece]) -> tuple[list[Unit], int]:
    """Session units of one document (and the number of empty turns dropped)."""
    runs, narratives, dropped = make_turns(doc, pieces)
    spans = _narrative_spans(pieces)
    units: list[Unit] = []
    for i, turns in enumerate(runs):
        units.append(
            Unit(
                doc_id=doc.doc_id,
                language=doc.language,
                index=i,
                turns=turns,
                before=narratives[i],
                after=narratives[i + 1],
                before_span=spans[i],
                after_span=spans[i + 1],
            )
        )
    merged: list[Unit] = []
    for unit in units:
        one_sided = len({t.role for t in unit.turns}) == 1
        if one_sided and merged:
            host = merged[-1]
            host.turns += unit.turns
            host.after = _concat(host.after, unit.after)
            host.after_span = unit.after_span or host.after_span
            continue
        merged.append(unit)
    if len(merged) > 1 and len({t.role for t in merged[0].turns}) == 1:
        first, second = merged[0], merged[1]
        second.turns = first.turns + second.turns
        second.before = first.before
        second.before_span = first.before_span
        merged = merged[1:]
    for index, unit in enumerate(merged):
        unit.index = index
    return merged, dropped


def _concat(a: str, b: str) -> str:
    return "\n\n".join(x for x in (a, b) if x)


def _narrative_spans(pieces: list[Piece]) -> list[tuple[int, int] | None]:
    spans: list[tuple[int, int] | None] = []
    start: int | None = None
    end: int | None = None
    in_dialogue = False
    for piece in pieces:
        if piece.kind == "narrative":
            if in_dialogue:
                in_dialogue = False
            if start is None:
                start = piece.start
            end = piece.end
        else:
            if not in_dialogue:
                spans.append((start, end) if start is not None and end is not None else None)
                start = end = None
                in_dialogue = True
    spans.append((start, end) if start is not None and end is not None else None)
    return spans
