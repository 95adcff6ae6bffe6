"""The normaliser: named rules that repair each known defect of the release.

Each rule is a small function over one raw session dict (the JSON as loaded). It fixes what
it recognises in place and records a ``Repair`` (rule, field, turn, original value), so the
repaired data plus its repair log reproduce the original exactly: nothing is lost.

The rules run in ``RULES`` order; ``repair_session`` returns the repaired dict and its log.
``psyinsight data validate`` runs the same rules on a copy and reports what they would change.
"""

from __future__ import annotations

import copy
import difflib
import json
import re
from collections import Counter
from collections.abc import Callable
from typing import Any

from psyinsight.data import taxonomy
from psyinsight.data.schema import SEEKER, SUPPORTER, Repair
from psyinsight.language import has_cjk

RawSession = dict[str, Any]

ECHO_MIN_LABELS = 9
"""An emotion list with this many labels is the annotating model echoing the label set."""

TEXT_FIELDS = ("theme", "psychotherapy", "topic", "stage", "guide", "background", "reasoning", "summary")
INT_FIELDS = ("is_same_qa", "is_same_session")
NOT_AVAILABLE = {"N/A", "NA", "n/a", "N.A.", "None", "null"}

RULE_DESCRIPTIONS: dict[str, str] = {
    "wrong_type": 'a field has the wrong JSON type ("" for an int, a string for a list)',
    "not_available": 'a text field holds a placeholder such as "N/A"',
    "unknown_case_link": "is_same_session is -1 (unknown); stored as null",
    "failure_json": "a text field holds the annotating model's failure JSON",
    "wrapped_output": 'a text field holds an unparsed {"output": ...} wrapper',
    "label_alias": "a label spelled other than canonically",
    "echoed_label_list": f"an emotion list of {ECHO_MIN_LABELS}+ labels (the label set echoed); stored as [Unknown]",
    "unknown_mixed": "Unknown mixed with real labels; Unknown removed",
    "duplicate_turn": "an exact duplicate of an earlier turn (same id and content); removed",
    "repeated_turn_id": "a turn id used by an earlier, different turn; suffixed",
    "annotation_wrong_role": "observation/emotion on a counselor turn or reasoning/strategy on a client turn; removed",
    "participant_variant": "a participant name with a stray colon, note or spelling variant",
    "empty_turn": "a turn with empty content; removed",
}


def _record(log: list[Repair], rule: str, field: str, original: Any, turn: str | None = None, detail: str = "") -> None:
    log.append(Repair(rule=rule, field=field, turn=turn, original=copy.deepcopy(original), detail=detail))


def _turn_ref(turn: dict[str, Any], index: int) -> str:
    tid = turn.get("id")
    return str(tid) if tid not in (None, "") else f"#{index}"


# --- session-level rules -------------------------------------------------------------


def fix_types(session: RawSession, log: list[Repair]) -> None:
    for field in INT_FIELDS:
        value = session.get(field)
        if value is None or isinstance(value, bool) or isinstance(value, int):
            continue
        fixed: int | None
        if isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
            fixed = int(value)
        elif isinstance(value, float) and value.is_integer():
            fixed = int(value)
        else:
            fixed = None
        _record(log, "wrong_type", field, value, detail=f"{type(value).__name__} -> {fixed!r}")
        session[field] = fixed
    if isinstance(session.get("dialog_id"), int):
        _record(log, "wrong_type", "dialog_id", session["dialog_id"], detail="int -> str")
        session["dialog_id"] = f"{session['dialog_id']:06d}"
    for field in TEXT_FIELDS:
        value = session.get(field)
        if value is None or isinstance(value, str):
            continue
        _record(log, "wrong_type", field, value, detail=f"{type(value).__name__} -> str")
        session[field] = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    for index, turn in enumerate(session.get("dialog", [])):
        ref = _turn_ref(turn, index)
        for key in ("emotional label", "strategy", "reference_labels"):
            value = turn.get(key)
            if isinstance(value, str):
                _record(log, "wrong_type", key, value, turn=ref, detail="str -> list")
                turn[key] = [value] if value.strip() else []
        for key in ("content", "participant", "observation", "reasoning", "id"):
            value = turn.get(key)
            if value is not None and not isinstance(value, str):
                _record(log, "wrong_type", key, value, turn=ref, detail=f"{type(value).__name__} -> str")
                turn[key] = str(value)


def fix_not_available(session: RawSession, log: list[Repair]) -> None:
    for field in TEXT_FIELDS:
        value = session.get(field)
        if isinstance(value, str) and value.strip() in NOT_AVAILABLE:
            _record(log, "not_available", field, value)
            session[field] = ""
    for index, turn in enumerate(session.get("dialog", [])):
        for key in ("observation", "reasoning"):
            value = turn.get(key)
            if isinstance(value, str) and value.strip() in NOT_AVAILABLE:
                _record(log, "not_available", key, value, turn=_turn_ref(turn, index))
                turn[key] = ""


def fix_case_link(session: RawSession, log: list[Repair]) -> None:
    if session.get("is_same_session") == -1:
        _record(log, "unknown_case_link", "is_same_session", -1)
        session["is_same_session"] = None


_FAILURE_KEYS = {"message", "error", "status", "code", "detail"}


def _parse_json_object(text: str) -> dict[str, Any] | None:
    stripped = text.strip()
    if not (stripped.startswith("{") and stripped.endswith("}")):
        return None
    try:
        value = json.loads(stripped)
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def fix_llm_json(session: RawSession, log: list[Repair]) -> None:
    """Unwrap {"output": ...} wrappers; blank the model's failure messages."""
    for field in ("guide", "background", "reasoning", "summary", "theme"):
        value = session.get(field)
        if not isinstance(value, str):
            continue
        obj = _parse_json_object(value)
        if obj is None:
            continue
        if isinstance(obj.get("output"), str):
            _record(log, "wrapped_output", field, value)
            session[field] = obj["output"].strip()
        elif obj and set(obj) <= _FAILURE_KEYS:
            _record(log, "failure_json", field, value)
            session[field] = ""


def fix_session_labels(session: RawSession, log: list[Repair]) -> None:
    for field, kind in (("psychotherapy", "psychotherapy"), ("topic", "topic"), ("stage", "stage")):
        value = session.get(field)
        if not isinstance(value, str):
            continue
        if value.strip() == "":  # not annotated: kept empty (en has no stage at all)
            continue
        found = taxonomy.canonical(kind, value)
        if found is not None and found != value:
            _record(log, "label_alias", field, value, detail=f"-> {found}")
            session[field] = found


# --- turn-level rules ----------------------------------------------------------------


def fix_turn_labels(session: RawSession, log: list[Repair]) -> None:
    for index, turn in enumerate(session.get("dialog", [])):
        ref = _turn_ref(turn, index)
        for key, kind in (("emotional label", "emotion"), ("strategy", "strategy")):
            labels = turn.get(key)
            if not isinstance(labels, list):
                continue
            if kind == "emotion" and len(labels) >= ECHO_MIN_LABELS:
                _record(log, "echoed_label_list", key, labels, turn=ref)
                turn[key] = [taxonomy.UNKNOWN]
                continue
            renamed = []
            for label in labels:
                found = taxonomy.canonical(kind, label) if isinstance(label, str) else None
                if found is not None and found != label:
                    _record(log, "label_alias", key, label, turn=ref, detail=f"-> {found}")
                    renamed.append(found)
                else:
                    renamed.append(label)
            deduped = list(dict.fromkeys(renamed))
            if taxonomy.UNKNOWN in deduped and len(deduped) > 1:
                _record(log, "unknown_mixed", key, renamed, turn=ref)
                deduped = [label for label in deduped if label != taxonomy.UNKNOWN]
            turn[key] = deduped


_WRONG_ROLE = {SUPPORTER: ("observation", "emotional label"), SEEKER: ("reasoning", "strategy")}


def fix_wrong_role(session: RawSession, log: list[Repair]) -> None:
    for index, turn in enumerate(session.get("dialog", [])):
        for key in _WRONG_ROLE.get(turn.get("speaker"), ()):
            if key in turn:
                _record(log, "annotation_wrong_role", key, turn.pop(key), turn=_turn_ref(turn, index))


def fix_duplicates(session: RawSession, log: list[Repair]) -> None:
    """Drop exact duplicates (same id and content); suffix ids reused by different turns."""
    kept: list[dict[str, Any]] = []
    seen_content: set[tuple[str, str]] = set()
    id_uses: Counter[str] = Counter()
    for index, turn in enumerate(session.get("dialog", [])):
        content = turn.get("content")
        if isinstance(content, str) and not content.strip():
            _record(log, "empty_turn", "dialog", turn, turn=_turn_ref(turn, index))
            continue
        tid = str(turn.get("id", ""))
        key = (tid, content if isinstance(content, str) else "")
        if tid and key in seen_content:
            _record(log, "duplicate_turn", "dialog", turn, turn=tid, detail=f"position {index}")
            continue
        seen_content.add(key)
        if tid:
            id_uses[tid] += 1
            if id_uses[tid] > 1:
                new_id = f"{tid}.{id_uses[tid] - 1}"
                _record(log, "repeated_turn_id", "id", tid, turn=new_id)
                turn["id"] = new_id
        kept.append(turn)
    session["dialog"] = kept


_PARTICIPANT_NOTE = re.compile(r"\s*[（(][^）)]*[）)]\s*$")


def _clean_participant(name: str) -> str:
    return _PARTICIPANT_NOTE.sub("", name).strip().rstrip(":：").strip()


def fix_participants(session: RawSession, log: list[Repair], canonical_names: dict[str, str]) -> None:
    for index, turn in enumerate(session.get("dialog", [])):
        name = turn.get("participant")
        if not isinstance(name, str):
            continue
        cleaned = _clean_participant(name)
        cleaned = canonical_names.get(cleaned, cleaned)
        if cleaned and cleaned != name:
            _record(log, "participant_variant", "participant", name, turn=_turn_ref(turn, index), detail=f"-> {cleaned}")
            turn["participant"] = cleaned


def _is_variant(rare: str, common: str) -> bool:
    """Spelling variants of one name: "Mr. Arians"/"Mr. Arianes", "莉娜"/"丽娜".

    Latin names must agree on every word but one, and that word differs by one or two
    letters (not digits, not a plural "s"): "Mrs. Smith" and "Student 1" stay apart.
    CJK names (6+ characters) may differ by one character.
    """
    if has_cjk(rare) or has_cjk(common):
        if min(len(rare), len(common)) < 6 or abs(len(rare) - len(common)) > 1:
            return False
        matcher = difflib.SequenceMatcher(None, rare, common)
        kept = sum(block.size for block in matcher.get_matching_blocks())
        return max(len(rare), len(common)) - kept <= 1
    a_words, b_words = rare.split(), common.split()
    if len(a_words) != len(b_words):
        return False
    differing = [(a, b) for a, b in zip(a_words, b_words) if a != b]
    if len(differing) != 1:
        return False
    a, b = differing[0]
    if min(len(a), len(b)) < 6 or any(ch.isdigit() for ch in a + b) or a.rstrip("s") == b.rstrip("s"):
        return False
    matcher = difflib.SequenceMatcher(None, a, b)
    kept = sum(block.size for block in matcher.get_matching_blocks())
    return max(len(a), len(b)) - kept <= 2 and matcher.ratio() >= 0.8


def participant_variants(sessions: list[RawSession]) -> dict[str, str]:
    """Map rare spellings of a participant to the most frequent one, across one file."""
    counts: Counter[str] = Counter()
    for session in sessions:
        for turn in session.get("dialog", []) if isinstance(session, dict) else []:
            if isinstance(turn, dict) and isinstance(turn.get("participant"), str):
                counts[_clean_participant(turn["participant"])] += 1
    names = sorted(counts, key=lambda n: (-counts[n], n))
    mapping: dict[str, str] = {}
    for i, rare in enumerate(names):
        for common in names[:i]:
            if common not in mapping and _is_variant(rare, common):
                mapping[rare] = common
                break
    return mapping


SessionRule = Callable[[RawSession, list[Repair]], None]
RULES: tuple[SessionRule, ...] = (
    fix_duplicates,  # first, so a removed turn is logged exactly as written
    fix_types,
    fix_not_available,
    fix_case_link,
    fix_llm_json,
    fix_session_labels,
    fix_turn_labels,
    fix_wrong_role,
)


def repair_session(raw: RawSession, canonical_names: dict[str, str] | None = None) -> tuple[RawSession, list[Repair]]:
    """Repair one raw session; return the repaired copy and the log of what changed."""
    # Rules replace values rather than mutate them, so copying the containers is enough.
    session = {**raw, "dialog": [dict(turn) for turn in raw.get("dialog", [])]}
    log: list[Repair] = []
    for rule in RULES:
        rule(session, log)
    fix_participants(session, log, canonical_names or {})
    return session, log
