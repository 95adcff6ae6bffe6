"""Step 2: split a document into narrative paragraphs and utterances, and say who speaks.

Rules first:
- a line starting with a speaker label ("Therapist:", "T:", "Beth:", "咨询师：", "来访者：")
  opens an utterance; the lines after it, up to a blank line, continue it;
- a paragraph made mostly of quoted speech ("...," she said.) is an utterance, attributed
  from the words around the quotes (I / a name / she, he); a paragraph with a few quoted
  words inside narrative stays narrative;
- roles: label words (Therapist, Client, 咨询师...), the first-person narrator of a
  counseling book is the counselor, a name opposite a known role takes the other role,
  unattributed quotes alternate with the previous speaker.

Where the rules are unsure (a one-off speaker label, a paragraph half quote and half
narrative, two unknown speakers), the piece is marked ``unsure`` with the reason; the
pipeline asks the LLM about exactly those pieces (``resolve_prompt``) and otherwise keeps
the rules' fallback.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator

from psyinsight.build.quotes import INTRO_END, clauses, find_quotes, find_speaker, group_quotes
from psyinsight.build.records import Document, Piece
from psyinsight.data.schema import SEEKER, SUPPORTER, Language, Role
from psyinsight.language import CJK_RANGE

SUPPORTER_LABELS = {
    "en": {
        "therapist",
        "counselor",
        "counsellor",
        "t",
        "th",
        "ther",
        "dr",
        "doctor",
        "analyst",
        "psychologist",
        "psychiatrist",
        "interviewer",
        "coach",
        "me",
        "i",
        "supporter",
    },
    "cn": {"咨询师", "治疗师", "心理师", "心理咨询师", "医生", "我", "咨", "治", "咨询者"},
}
SEEKER_LABELS = {
    "en": {"client", "c", "cl", "patient", "p", "pt", "seeker", "counselee"},
    "cn": {"来访者", "求助者", "患者", "病人", "案主", "访", "来", "当事人"},
}
NOT_SPEAKERS = {
    "en": {
        "chapter",
        "note",
        "notes",
        "example",
        "figure",
        "table",
        "session",
        "step",
        "part",
        "summary",
        "homework",
        "goal",
        "goals",
        "agenda",
        "source",
        "case",
        "exercise",
        "tip",
        "key",
        "warning",
        "box",
        "time",
        "date",
        "title",
        "aim",
        "aims",
        "question",
        "answer",
        "comment",
        "remember",
        "background",
        "reasoning",
        "plan",
    },
    "cn": {
        "注",
        "注释",
        "备注",
        "案例",
        "总结",
        "目标",
        "作业",
        "说明",
        "提示",
        "例如",
        "比如",
        "结论",
        "问题",
        "背景",
        "时间",
        "地点",
        "分析",
        "讨论",
        "评论",
        "要点",
        "小结",
        "回答",
    },
}
NARRATOR = {"en": "Therapist", "cn": "咨询师"}
CLIENT = {"en": "Client", "cn": "来访者"}

_EN_PREFIX = re.compile(
    r"^(?P<lead>[ \t>*_-]*)(?P<name>(?:(?:Dr|Mr|Mrs|Ms|Miss|Prof)\.?\s+)?[A-Z][\w'’.-]*(?:\s+[A-Z][\w'’.-]*){0,2})"
    r"[*_]*\s*:[*_]*\s+(?P<rest>\S.*)$"
)
_CN_PREFIX = re.compile(rf"^(?P<lead>[ \t>*_-]*)(?P<name>[{CJK_RANGE}A-Za-z]{{1,8}})[*_]*\s*[：:][*_]*\s*(?P<rest>\S.*)$")
_CN_SPEECH_END = ("说", "道", "问", "答", "讲", "表示", "补充", "喊", "想")
_SPEECH_VERB = {
    "en": re.compile(
        r"^\W*(?:(?:I|she|he|[A-Z][a-z]+)\s+(?:said|asked|replied|answered|added|whispered|told|continued)\b"
        r"|(?:said|asked|replied)\s)",
        re.IGNORECASE,
    ),
    "cn": re.compile(rf"^\W*[{CJK_RANGE}]{{0,4}}(?:说|问|道|答|回答)"),
}


def other(role: Role) -> Role:
    return SEEKER if role == SUPPORTER else SUPPORTER


def label_role(name: str, language: Language) -> Role | None:
    """The role a speaker label names by itself (Therapist, C, 来访者, Dr. X), else None."""
    key = name.strip().rstrip(".").casefold()
    if key in SUPPORTER_LABELS[language] or re.match(r"^(dr|doctor|prof)\.?\s", key):
        return SUPPORTER
    if key in SEEKER_LABELS[language]:
        return SEEKER
    return None


def _lines(text: str) -> Iterator[tuple[int, int]]:
    pos = 0
    for line in text.split("\n"):
        yield pos, pos + len(line)
        pos += len(line) + 1


def _blocks(text: str) -> list[list[tuple[int, int]]]:
    """Paragraphs: runs of non-blank lines, as (start, end) line spans."""
    blocks: list[list[tuple[int, int]]] = []
    current: list[tuple[int, int]] = []
    for start, end in _lines(text):
        if text[start:end].strip():
            current.append((start, end))
        elif current:
            blocks.append(current)
            current = []
    if current:
        blocks.append(current)
    return blocks


def speaker_prefix(line: str, language: Language) -> tuple[str, int] | None:
    """(speaker label, offset of the spoken text) when ``line`` opens with a speaker label."""
    m = (_CN_PREFIX if language == "cn" else _EN_PREFIX).match(line)
    if m is None and language == "cn":
        m = _EN_PREFIX.match(line)
    if m is None:
        return None
    name = m.group("name").strip()
    if name.casefold() in NOT_SPEAKERS[language] or name.startswith("第") or name.endswith(_CN_SPEECH_END):
        return None
    if len(name) > 1 and re.search(r"[我他她说问答道笑想]", name):
        return None  # 我问他：“……” / 他笑了：「……」 introduce a quote; they are not speaker labels
    if language == "en" and len(name.split()) > 2 and not re.match(r"^(Dr|Mr|Mrs|Ms|Miss|Prof)\b", name):
        return None  # "Case Study Two: ..." headings have several capitalised words; speaker labels rarely do
    return name, m.start("rest")


def _strip_span(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _prefixed(doc: Document, block: list[tuple[int, int]]) -> list[Piece] | None:
    text, language = doc.text, doc.language
    first = speaker_prefix(text[block[0][0] : block[0][1]], language)
    if first is None:
        return None
    pieces: list[Piece] = []
    for start, end in block:
        found = speaker_prefix(text[start:end], language)
        if found is not None:
            name, offset = found
            span = _strip_span(text, start + offset, end)
            pieces.append(Piece(kind="utterance", start=start, end=end, spans=[span], participant=name, how="prefix"))
        else:
            pieces[-1].spans.append(_strip_span(text, start, end))
            pieces[-1].end = end
    return pieces


def _quoted(doc: Document, block: list[tuple[int, int]], people: set[str]) -> list[Piece]:
    """A paragraph without speaker labels: narrative, or one utterance piece per speaker its quotes hold."""
    text, language = doc.text, doc.language
    start, end = block[0][0], block[-1][1]
    para = text[start:end]
    quotes = find_quotes(text, start, end)
    piece = Piece(kind="narrative", start=start, end=end)
    if not quotes:
        return [piece]
    quoted = sum(e - s for s, e in quotes)
    total = len(re.sub(r"\s", "", para))
    lead = text[start : quotes[0][0] - 1].strip()
    after_first = text[quotes[0][1] + 1 : quotes[1][0] - 1 if len(quotes) > 1 else end]
    fraction = quoted / max(total, 1)
    lead_short = len(lead) <= (12 if language == "cn" else 40)
    opens_with_speech = not lead and bool(_SPEECH_VERB[language].match(after_first))
    lead_clauses = clauses(text, start, quotes[0][0] - 1)
    last_lead = text[lead_clauses[-1][0] : lead_clauses[-1][1]] if lead_clauses else ""
    intro = bool(last_lead) and last_lead.rstrip().endswith(INTRO_END) and len(last_lead) <= (16 if language == "cn" else 50)
    intro = intro and find_speaker(last_lead, language, people, _role_words(language)) is not None
    if fraction >= 0.6 or (fraction >= 0.4 and lead_short) or (fraction >= 0.2 and (opens_with_speech or intro)):
        pass
    elif fraction >= 0.25:
        piece.unsure = f"a paragraph {fraction:.0%} quoted speech: dialogue or narrative?"
        return [piece]
    else:
        return [piece]
    groups = group_quotes(text, start, end, quotes, language, people, _role_words(language))
    pieces: list[Piece] = []
    for i, group in enumerate(groups):
        first, last = group.spans[0][0] - 1, group.spans[-1][1] + 1
        pieces.append(
            Piece(
                kind="utterance",
                start=start if i == 0 else first,
                end=end if i == len(groups) - 1 else last,
                spans=list(group.spans),
                participant=group.speaker,
                how="quote",
                notes=list(group.notes),
            )
        )
    return pieces


def _role_words(language: Language) -> set[str]:
    """Role words a narration clause can name as the speaker (咨询师说, the therapist asked)."""
    if language == "en":
        return set()
    return {w for w in SUPPORTER_LABELS["cn"] | SEEKER_LABELS["cn"] if len(w) >= 2}


def _is_title(doc: Document, block: list[tuple[int, int]]) -> bool:
    """A document's opening line standing alone with no sentence punctuation ("Case notes: the car", 咨询手记：孤独的周末)."""
    line = doc.text[block[0][0] : block[0][1]].strip()
    found = speaker_prefix(line, doc.language)
    return (
        len(block) == 1
        and len(line) <= 60
        and not re.search(r"[.!?。！？\"“”「」『』]", line)
        and (found is None or label_role(found[0], doc.language) is None)
    )


def split_pieces(doc: Document, people: set[str]) -> list[Piece]:
    """Narrative and utterance pieces, in source order, speakers named but roles not yet set."""
    if doc.kind == "transcript":
        return [p.model_copy(deep=True) for p in doc.pieces]
    pieces: list[Piece] = []
    for block in _blocks(doc.text):
        if not pieces and _is_title(doc, block):
            pieces.append(Piece(kind="narrative", start=block[0][0], end=block[-1][1]))
            continue
        prefixed = _prefixed(doc, block)
        if prefixed is not None:
            pieces += prefixed
            continue
        first_line = doc.text[block[0][0] : block[0][1]].lstrip()
        if first_line.startswith("#"):
            pieces.append(Piece(kind="narrative", start=block[0][0], end=block[-1][1]))
            continue
        pieces += _quoted(doc, block, people)
    return pieces


def assign_roles(pieces: list[Piece], text: str, language: Language, people: set[str]) -> None:
    """Set ``role`` and the participant's name on every utterance; mark what stays unsure."""
    label_counts = Counter(p.participant for p in pieces if p.how == "prefix")
    known: dict[str, Role] = {}
    for piece in pieces:
        if piece.kind == "utterance" and piece.role is not None:
            known.setdefault(piece.participant, piece.role)
        elif piece.how in ("prefix", "transcript") and label_role(piece.participant, language):
            known.setdefault(piece.participant, label_role(piece.participant, language))  # type: ignore[arg-type]
    # a name sharing a dialogue block with a known role takes the other role
    for block in _dialogue_runs(pieces):
        names = {p.participant for p in block if p.how in ("prefix", "transcript")}
        roles = {known[n] for n in names if n in known}
        for name in names - known.keys():
            if len(roles) == 1:
                known[name] = other(next(iter(roles)))
    unknown = [n for n in label_counts if n not in known]
    if len(unknown) >= 2:
        # two unnamed speakers: the one asking more questions is the counselor (unsure)
        asks = {n: sum(_asks(text, p) for p in pieces if p.participant == n) for n in unknown}
        counselor = max(unknown, key=lambda n: asks[n])
        for n in unknown:
            known[n] = SUPPORTER if n == counselor else SEEKER
        for piece in pieces:
            if piece.participant in unknown:
                piece.unsure = piece.unsure or "two speakers whose labels name no role"
    quoted_names = {p.participant for p in pieces if p.how == "quote" and _is_name(p.participant, language)}
    for name in _counselor_names(text, quoted_names, language):
        known.setdefault(name, SUPPORTER)
    supporter_known = supporter_known_as_i(pieces) or SUPPORTER in known.values()
    strangers = [n for n in quoted_names if n not in known]
    if len(strangers) >= 2 and not supporter_known:
        # two named speakers and no counselor named as such: the one asking more questions is the counselor (unsure)
        asks = {n: sum(_asks(text, p) for p in pieces if p.participant == n) for n in strangers}
        counselor = max(strangers, key=lambda n: asks[n])
        known[counselor] = SUPPORTER
        for piece in pieces:
            if piece.participant in strangers:
                piece.unsure = piece.unsure or "two named speakers and neither is named as the counselor"
    narrator, client = NARRATOR[language], CLIENT[language]
    main_client = _main_client(pieces, people, known)
    counselors = Counter(
        p.participant for p in pieces if p.how == "quote" and known.get(p.participant) == SUPPORTER and _is_name(p.participant, language)
    )
    narrator = counselors.most_common(1)[0][0] if counselors and not supporter_known_as_i(pieces) else narrator
    previous: Piece | None = None
    for piece in pieces:
        if piece.kind != "utterance":
            previous = None if piece.how != "transcript" else previous
            continue
        if piece.how in ("prefix", "transcript"):
            if piece.role is None:
                piece.role = known.get(piece.participant)
            if piece.role is None:
                # a one-off label with no role ("Remember: ...", a title) reads as narrative unless the LLM says otherwise
                piece.kind = "narrative"
                piece.unsure = piece.unsure or f"speaker label {piece.participant!r} names no role and appears once"
                previous = None
                continue
            if label_counts.get(piece.participant, 0) == 1 and piece.participant not in known and not piece.unsure:
                piece.unsure = f"speaker label {piece.participant!r} appears once"
        elif piece.participant == "I":
            piece.role, piece.participant = SUPPORTER, narrator
        elif piece.participant == "pronoun":
            piece.role, piece.participant = SEEKER, main_client or client
        elif piece.participant and not _is_name(piece.participant, language):
            piece.role = label_role(piece.participant, language) or SEEKER
            piece.participant = narrator if piece.role == SUPPORTER else (main_client or client)
        elif piece.participant:
            piece.role = known.get(piece.participant, SEEKER)
        elif previous is not None and previous.role is not None:
            piece.role = other(previous.role)
            piece.participant = narrator if piece.role == SUPPORTER else (main_client or client)
        else:
            piece.role = SEEKER
            piece.participant = main_client or client
            piece.unsure = piece.unsure or "an unattributed quote with no speaker before it"
        previous = piece


def supporter_known_as_i(pieces: list[Piece]) -> bool:
    """True when a first-person narrator speaks ("I asked"): the narrator is the counselor."""
    return any(p.how == "quote" and p.participant == "I" for p in pieces)


def _asks(text: str, piece: Piece) -> int:
    return sum(text[s:e].count("?") + text[s:e].count("？") for s, e in piece.spans)


def _dialogue_runs(pieces: list[Piece]) -> Iterator[list[Piece]]:
    run: list[Piece] = []
    for piece in pieces:
        if piece.kind == "utterance":
            run.append(piece)
        elif run:
            yield run
            run = []
    if run:
        yield run


def _is_name(participant: str, language: Language) -> bool:
    """A person's name, not the narrator, a pronoun or a role word."""
    return bool(participant) and participant not in ("I", "pronoun") and label_role(participant, language) is None


_EN_COUNSELOR_NEAR = r"\b(?:therapist|counsell?or|psychologist|psychotherapist|supervisee|trainee)\b[^.!?\n]{{0,24}}?\b{name}\b"
_EN_NAME_COUNSELOR = r"\b{name},?\s+(?:the|a|our|my)\s+(?:\w+\s+)?(?:therapist|counsell?or|psychologist)\b"
_CN_COUNSELOR_NEAR = r"(?:咨询师|治疗师|心理师){name}|{name}(?:咨询师|治疗师|医生|心理师)"


def _counselor_names(text: str, names: set[str], language: Language) -> set[str]:
    """Names the narration calls the counselor ("the counsellor, Helen", 咨询师李华)."""
    found = set()
    for name in names:
        escaped = re.escape(name)
        patterns = [_CN_COUNSELOR_NEAR] if language == "cn" else [_EN_COUNSELOR_NEAR, _EN_NAME_COUNSELOR]
        if any(re.search(p.format(name=escaped), text, re.IGNORECASE) for p in patterns):
            found.add(name)
    return found


def _main_client(pieces: list[Piece], people: set[str], known: dict[str, Role]) -> str:
    """The client's name for "she said" quotes: a Seeker speaker label, else the Seeker named most as a speaker."""
    seekers = [p.participant for p in pieces if p.how == "prefix" and known.get(p.participant) == SEEKER]
    named = [n for n in seekers if label_role(n, "en") is None and label_role(n, "cn") is None]
    if named:
        return Counter(named).most_common(1)[0][0]
    counts = Counter(
        p.participant
        for p in pieces
        if p.how == "quote"
        and p.kind == "utterance"
        and known.get(p.participant, SEEKER) == SEEKER
        and _is_name(p.participant, "en")
        and _is_name(p.participant, "cn")
    )
    if counts:
        return counts.most_common(1)[0][0]
    return ""


def segment(doc: Document, people: set[str]) -> list[Piece]:
    """Pieces with roles: the rule-based result (unsure pieces keep the rules' fallback)."""
    pieces = split_pieces(doc, people)
    assign_roles(pieces, doc.text, doc.language, people)
    return pieces


def piece_text(doc: Document, piece: Piece) -> str:
    if piece.kind == "narrative":
        return doc.text[piece.start : piece.end].strip()
    return join_spans(doc.text, piece.spans, doc.language)


def join_spans(text: str, spans: list[tuple[int, int]], language: Language) -> str:
    parts = [text[s:e].strip() for s, e in spans if text[s:e].strip()]
    if language == "cn":
        return "".join(parts)
    out = ""
    for part in parts:
        if out and out.endswith(",") and part[:1].isupper():
            out = out[:-1] + "."
        out = f"{out} {part}" if out else part
    return out
