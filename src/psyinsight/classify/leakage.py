"""Label names in the inputs: masked for session tasks, and a guard that fails when one is left.

The construction LLM's analysis fields (background, reasoning, summary, guide) and the
dialogue itself often name the session's psychotherapy ("SFBT", "焦点解决"): a classifier
reading them learns to spot the name, not the counseling. One rule for both languages:
every canonical label name, alias and abbreviation of the task, English or Chinese, is
replaced by ``MASK`` in every session input; ``check_no_label_names`` then fails a
benchmark whose rows still hold one. Turn-level tasks (emotion, strategy) are not covered:
their label names are everyday words ("anxiety", "question") that the text must keep.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import cache

from psyinsight.data import taxonomy
from psyinsight.errors import PsyInsightError
from psyinsight.language import has_cjk

MASK = "[LABEL]"
GUARDED_TASKS: tuple[str, ...] = ("psychotherapy", "topic")

EXTRA_NAMES: dict[str, tuple[str, ...]] = {
    "psychotherapy": (
        # English short forms of the canonical names
        "cognitive behavioral",
        "cognitive behavioural",
        "cognitive therapy",
        "solution focused",
        "psychoanalytic",
        "psychoanalysis",
        "psychodynamic",
        "client centered",
        "client centred",
        "person centered",
        "person centred",
        "Adlerian",
        "family therapy",
        "family systems",
        "acceptance and commitment",
        "rational emotive",
        "Gestalt",
        "reality therapy",
        "postmodern therapy",
        "narrative therapy",
        "existential therapy",
        "multicultural therapy",
        "feminist therapy",
        # Chinese names
        "认知行为",
        "认知疗法",
        "焦点解决",
        "焦点短期",
        "短期焦点",
        "精神分析",
        "心理动力",
        "亲婴",
        "来访者中心",
        "以人为中心",
        "当事人中心",
        "人本主义",
        "阿德勒",
        "家庭治疗",
        "家庭疗法",
        "家庭系统",
        "婚姻家庭",
        "婚姻与家庭",
        "接纳承诺",
        "接纳与承诺",
        "合理情绪",
        "理性情绪",
        "格式塔",
        "完形",
        "现实疗法",
        "现实治疗",
        "后现代",
        "叙事疗法",
        "叙事治疗",
        "存在主义",
        "多元文化",
        "女性主义",
    ),
    "topic": (
        "持续抑郁",
        "伴侣关系",
        "亲子关系",
        "容貌焦虑",
        "学业压力",
        "职业危机",
        "工作危机",
        "物质滥用",
        "校园霸凌",
        "校园欺凌",
        "朋友问题",
        "睡眠问题",
        "拖延症",
    ),
}
"""Names beyond ``taxonomy``'s labels and aliases (which are English)."""


def label_names(task: str) -> tuple[str, ...]:
    """Every name of every label of ``task``: canonical, aliases, short forms, Chinese.

    Single-word topic aliases that are ordinary words ("Depression") are left out: the
    canonical names ("Ongoing Depression") are kept.
    """
    if task not in GUARDED_TASKS:
        return ()
    labels = [lab for lab in taxonomy.LABELS[task] if lab not in (taxonomy.UNKNOWN, taxonomy.OTHERS)]  # type: ignore[index]
    aliases = [a for a, c in taxonomy.ALIASES[task].items() if c in labels and (task != "topic" or " " in a)]  # type: ignore[index]
    return tuple(dict.fromkeys([*labels, *aliases, *EXTRA_NAMES.get(task, ())]))


def _piece(name: str) -> str:
    if has_cjk(name):
        return re.escape(name)
    if name.isupper():  # an abbreviation: whole word, as written (CBT, not "act")
        return rf"(?-i:\b{re.escape(name)}\b)"
    words = [re.escape(w) for w in re.split(r"[\s\-]+", name) if w]
    return r"\b" + r"[\s\-]*".join(words) + r"\b"


@cache
def _pattern(task: str) -> re.Pattern[str] | None:
    names = sorted(label_names(task), key=len, reverse=True)
    return re.compile("|".join(_piece(n) for n in names), re.IGNORECASE) if names else None


def mask_label_names(text: str, task: str) -> str:
    """``text`` with every label name of ``task`` replaced by ``MASK``."""
    pattern = _pattern(task)
    return pattern.sub(MASK, text) if pattern and text else text


def find_label_names(text: str, task: str) -> list[str]:
    """The label names of ``task`` found in ``text``, as written there."""
    pattern = _pattern(task)
    return [m.group(0) for m in pattern.finditer(text)] if pattern and text else []


def check_no_label_names(rows: Sequence[object], task: str, *, where: str) -> None:
    """Fail when any row's text or context names a label of ``task``."""
    leaks = [(r.id, found) for r in rows for found in find_label_names(f"{r.text}\n{r.context}", task)]
    if leaks:
        sessions = sorted({rid for rid, _ in leaks})
        examples = ", ".join(f"{rid}: {name!r}" for rid, name in leaks[:3])
        raise PsyInsightError(
            f"label names in the {task} inputs of {len(sessions)} of {len(rows)} rows (e.g. {examples}); "
            "mask them (ExtractConfig.mask_label_names) or drop the field",
            where=where,
        )
