"""The records passed between build steps, each JSON-serialisable so a step's output can be cached.

Offsets are character offsets into the decoded source text (``Document.text``); for a
``.jsonl`` transcript they index the text the ingester assembles from its lines. They go
all the way into the output sessions (``provenance`` on sessions and turns).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from psyinsight.data.schema import Language, Role

PieceKind = Literal["narrative", "utterance"]


class Document(BaseModel):
    """One ingested source file."""

    doc_id: str
    """The file's path relative to the raw folder (POSIX separators)."""
    language: Language
    text: str
    sha256: str
    kind: Literal["text", "transcript"] = "text"
    pieces: list[Piece] = Field(default_factory=list)
    """Transcripts come already segmented (one utterance per line); text files are segmented later."""


class Note(BaseModel):
    """A bracketed stage direction or note cut out of an utterance."""

    text: str
    start: int
    end: int
    index: int = 0
    """Where it stood in the cleaned content (character index)."""


class Piece(BaseModel):
    """A paragraph (narrative) or one utterance, located in the source."""

    kind: PieceKind
    start: int
    end: int
    spans: list[tuple[int, int]] = Field(default_factory=list)
    """For utterances: the spans of spoken text (after a speaker prefix, or inside quotes)."""
    participant: str = ""
    role: Role | None = None
    how: str = ""
    """How it was decided: prefix, quote, transcript, llm, fallback."""
    unsure: str = ""
    """Why the rules were unsure (empty when sure)."""
    notes: list[tuple[int, int]] = Field(default_factory=list)
    """Narration cut out of a dialogue paragraph ("He shrugged.", 他想了想，): kept as notes with their offsets."""


class Turn(BaseModel):
    """One turn after role assignment, note cutting and merging."""

    role: Role
    participant: str
    content: str
    start: int
    """Source offset of the first content character (the turn boundary scored against gold)."""
    end: int
    spans: list[tuple[int, int]]
    notes: list[Note] = Field(default_factory=list)
    unsure: str = ""
    """Set when the rules could not decide this turn's speaker (never merged with a neighbour)."""


class Unit(BaseModel):
    """A run of dialogue with the narrative before and after it: one future session."""

    doc_id: str
    language: Language
    index: int
    turns: list[Turn]
    before: str = ""
    after: str = ""
    before_span: tuple[int, int] | None = None
    after_span: tuple[int, int] | None = None
    entities: dict[str, str] = Field(default_factory=dict)
    """Placeholder -> entity type, after anonymisation (the original strings are not kept here)."""

    @property
    def key(self) -> str:
        return f"{self.doc_id}#{self.index}"


Document.model_rebuild()
