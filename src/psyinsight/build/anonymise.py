"""Step 4: replace people, places, contact details and dates with placeholders.

Placeholders are ``[PERSON_1]``, ``[PLACE_2]``, ``[EMAIL_1]``, ``[PHONE_1]``, ``[URL_1]``,
``[DATE_1]``, numbered in order of first appearance and consistent within a session: the
same person is the same placeholder in the narrative, the turns and the participant name
("Sarah Collins" and later "Sarah" share one). The original strings are never written to
the output; the leak check (``find_leaks``) reports any source entity still present.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from psyinsight.build.entities import Entity, detect
from psyinsight.build.records import Unit
from psyinsight.build.segment import NARRATOR, SEEKER_LABELS, SUPPORTER_LABELS
from psyinsight.data.schema import Language

_TITLES = re.compile(r"^(?:Dr|Mr|Mrs|Ms|Miss|Prof)\.?\s+")


class Placeholders:
    """One session's mapping from entity strings to placeholders."""

    def __init__(self) -> None:
        self.mapping: dict[str, str] = {}
        self.counts: dict[str, int] = {}

    def _person_key(self, name: str) -> str | None:
        bare = _TITLES.sub("", name).removesuffix("'s").removesuffix("’s")
        for known, placeholder in self.mapping.items():
            if not placeholder.startswith("[PERSON_"):
                continue
            known_bare = _TITLES.sub("", known)
            parts = known_bare.split()
            if (
                bare == known_bare
                or (len(parts) > 1 and bare in (parts[0], parts[-1]))
                or (len(bare.split()) > 1 and known_bare in (bare.split()[0], bare.split()[-1]))
            ):
                return placeholder
        return None

    def get(self, entity: Entity) -> str:
        if entity.text in self.mapping:
            return self.mapping[entity.text]
        placeholder = self._person_key(entity.text) if entity.type == "person" else None
        if placeholder is None:
            kind = entity.type.upper()
            self.counts[kind] = self.counts.get(kind, 0) + 1
            placeholder = f"[{kind}_{self.counts[kind]}]"
        self.mapping[entity.text] = placeholder
        return placeholder


def is_role_word(name: str, language: Language) -> bool:
    """True for labels that name a role, not a person (Therapist, T, 来访者)."""
    key = name.strip().rstrip(".").casefold()
    return key in SUPPORTER_LABELS[language] or key in SEEKER_LABELS[language] or name in NARRATOR.values()


def replace(text: str, language: Language, people: set[str], table: Placeholders) -> str:
    """``text`` with every detected entity replaced through ``table``."""
    if not text:
        return text
    out: list[str] = []
    pos = 0
    for entity in detect(text, language, people):
        out.append(text[pos : entity.start])
        out.append(table.get(entity))
        pos = entity.end
    out.append(text[pos:])
    return "".join(out)


def anonymise_unit(unit: Unit, people: set[str]) -> Unit:
    """A copy of ``unit`` with placeholders in narrative, turns, notes and participant names."""
    table = Placeholders()
    lang = unit.language
    result = unit.model_copy(deep=True)
    result.before = replace(unit.before, lang, people, table)
    for turn in result.turns:
        if not is_role_word(turn.participant, lang):
            if turn.participant in people or detect(turn.participant, lang, people):
                turn.participant = replace(turn.participant, lang, people | {turn.participant}, table)
        turn.content = replace(turn.content, lang, people, table)
        for note in turn.notes:
            note.text = replace(note.text, lang, people, table)
    result.after = replace(unit.after, lang, people, table)
    result.entities = {placeholder: placeholder[1:].split("_")[0].lower() for placeholder in table.mapping.values()}
    return result


def source_entities(text: str, language: Language, people: set[str]) -> set[str]:
    """The entity strings of a whole source document (what must not survive)."""
    found = {e.text for e in detect(text, language, people)}
    found |= {p for p in people if not is_role_word(p, language)}
    return {f for f in found if len(f) >= 2}


def find_leaks(texts: Iterable[str], entities: set[str], language: Language) -> list[str]:
    """The source entities still present in ``texts`` (whole words in English)."""
    blob = "\n".join(texts)
    leaks = []
    for entity in sorted(entities):
        pattern = re.escape(entity) if language == "cn" else rf"(?<![\w]){re.escape(entity)}(?![\w])"
        if re.search(pattern, blob):
            leaks.append(entity)
    return leaks
