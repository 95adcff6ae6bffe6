"""Rule-based detection of what anonymisation must replace: people, places, contacts, dates.

Rules, not a model, so the build runs offline and is auditable: contact details and dates
by pattern; people from speaker labels, titles (Dr., Mr., ...), a list of common first
names, capitalised words inside sentences that are not common capitalised words (en) and
common surnames / 小X / 老X patterns (cn), together with jieba's part-of-speech tags for
Chinese (a ``nr`` person-name token is taken when it also looks like a name: a surname or
小/老/阿 first, not a common word); places from a small gazetteer and street or
administrative suffixes. The leak check reports whatever these rules miss.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from psyinsight.data.schema import Language
from psyinsight.language import CJK_RANGE, has_cjk

EntityType = str  # person | place | email | phone | url | date


@dataclass(frozen=True)
class Entity:
    text: str
    type: EntityType
    start: int
    end: int


_MONTHS = "January|February|March|April|May|June|July|August|September|October|November|December"
_MONTHS_SHORT = "Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec"
PATTERNS: list[tuple[EntityType, re.Pattern[str]]] = [
    ("email", re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")),
    ("url", re.compile(r"https?://\S+|www\.\S+")),
    ("date", re.compile(rf"\b\d{{1,2}}(?:st|nd|rd|th)?\s+(?:{_MONTHS}|{_MONTHS_SHORT})\.?,?\s+\d{{4}}\b")),
    ("date", re.compile(rf"\b(?:{_MONTHS}|{_MONTHS_SHORT})\.?\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+\d{{4}}\b")),
    ("date", re.compile(r"\b\d{4}-\d{1,2}-\d{1,2}\b|\b\d{1,2}/\d{1,2}/\d{2,4}\b")),
    ("date", re.compile(r"\d{4}\s*年\s*\d{1,2}\s*月(?:\s*\d{1,2}\s*[日号])?")),
    ("phone", re.compile(r"(?<![0-9A-Za-z.])\+?\d(?:[\d\s().-]{6,}\d)(?![0-9A-Za-z])")),
]

FIRST_NAMES = set(
    """Aaron Adam Alan Albert Alex Alice Alison Amanda Amy Andrew Angela Anna Anne Anthony Ben Beth Betty
    Bill Bob Brian Carl Carol Caroline Catherine Charles Charlie Chris Christine Claire Daniel Dave David
    Deborah Dennis Diane Donna Dorothy Ed Edward Elizabeth Ellen Emily Emma Eric Frank Gary George Grace
    Greg Hannah Harry Helen Henry Ian Jack Jacob Jake James Jane Janet Jason Jean Jeff Jennifer Jenny Jessica
    Jim Joan Joe John Jon Joseph Josh Joyce Judy Julia Julie Karen Kate Katie Kevin Laura Lauren Linda Lily
    Lisa Liz Louise Lucy Maria Marie Mark Martha Martin Mary Matt Matthew Megan Michael Michelle Mike Nancy
    Nick Nicola Olivia Pam Patricia Paul Peter Phil Rachel Rebecca Richard Rob Robert Ron Rose Ruth Ryan Sam
    Sandra Sarah Scott Sharon Simon Sophie Stephen Steve Sue Susan Tim Tom Tony Vicky William Zoe""".split()
)
"""Common English first names: the rule that catches a name at the start of a sentence."""

_NOT_NAMES = set(
    """I I'm I'd I've I'll Mum Mom Dad Mother Father God Christmas Easter English British America American
    Monday Tuesday Wednesday Thursday Friday Saturday Sunday January February March April May June July
    August September October November December Therapist Client Counselor Counsellor Patient Doctor
    Chapter Session Figure Table Note Notes Example Part Step Miracle Internet OK Okay""".split()
)

EN_PLACES = set(
    """London Manchester Leeds Liverpool Birmingham Bristol Glasgow Edinburgh Cardiff Belfast Dublin Oxford
    Cambridge York Sheffield Newcastle Nottingham Brighton Boston Chicago Houston Dallas Seattle Denver
    Atlanta Miami Toronto Vancouver Montreal Sydney Melbourne Auckland Paris Berlin Madrid Rome Tokyo
    Beijing Shanghai California Texas Florida England Scotland Wales Ireland Canada Australia France
    Germany Spain Italy China Japan India""".split()
) | {"New York", "Los Angeles", "San Francisco"}
_EN_PLACE_SUFFIX = re.compile(
    r"\b(?:[A-Z][a-z]+\s){1,2}(?:Street|St\.|Road|Rd\.|Avenue|Ave\.|Lane|Drive|Close|Way|Square|Park|Hospital|School|College)\b"
)
_EN_UNIVERSITY = re.compile(r"\bUniversity of [A-Z][a-z]+(?:\s[A-Z][a-z]+)?")
_EN_TITLE = re.compile(r"\b(?:Dr|Mr|Mrs|Ms|Miss|Prof)\.?\s+[A-Z][a-z]+(?:[-'][A-Z]?[a-z]+)?")
_EN_CAP = re.compile(r"(?<![\w'])[A-Z][a-z]+(?:-[A-Z]?[a-z]+|'[A-Z][a-z]+)?")

CN_SURNAMES = "王李张刘陈杨赵吴孙郭罗梁宋郑谢韩唐冯董萧曹袁邓蔡彭潘杜戴魏薛叶阎余蒋沈钟卢汪田姜范"
"""Common surnames that rarely begin an ordinary word (周, 高, 马, 方... are left out on purpose)."""
_CN_STOP_AFTER = set("是今来在说的想带答留了一，。、：；！？“”‘’也又都就把被和与跟对向给从到会能要不很有没先住去看找做告觉认问谈走哭坐站写读听回打")
_CN_KIN = {
    "母亲",
    "父亲",
    "妈妈",
    "爸爸",
    "丈夫",
    "妻子",
    "女儿",
    "儿子",
    "朋友",
    "同事",
    "老师",
    "室友",
    "姐姐",
    "哥哥",
    "弟弟",
    "妹妹",
    "同学",
    "男友",
    "女友",
}
_CN_COMMON_WORDS = {"陈述", "张开", "张力", "王国", "李子", "杨柳", "叶子", "曹操", "宋朝", "唐朝", "韩国", "田地", "范围", "范围内"}
CN_PLACES = set(
    """北京 上海 天津 重庆 杭州 成都 广州 深圳 南京 武汉 西安 苏州 长沙 郑州 青岛 大连 厦门 沈阳 哈尔滨 昆明 合肥 济南 福州
    南昌 贵阳 兰州 太原 石家庄 宁波 无锡 香港 澳门 台北 台湾 东北 美国 英国 日本 加拿大 澳大利亚""".split()
)
_CN_PLACE_SUFFIX = re.compile(rf"[{CJK_RANGE}]{{2,4}}(?:省|市|县|区|镇|村|路|街|大道|小区|医院|大学|中学|小学)")
_CN_XIAO = re.compile(rf"[小老阿][{CJK_RANGE}](?=[^{CJK_RANGE}]|[说问道的是和也又就在今想把被让]|$)")
CN_COUNTER_XIAO = {
    "小时",
    "小学",
    "小心",
    "小说",
    "小孩",
    "老师",
    "老板",
    "老人",
    "老家",
    "阿姨",
    "小组",
    "小事",
    "老公",
    "老婆",
    "小的",
    "老是",
    "小姐",
}


def _overlaps(found: list[Entity], start: int, end: int) -> bool:
    return any(e.start < end and start < e.end for e in found)


def _add(found: list[Entity], text: str, kind: EntityType, start: int, end: int) -> None:
    if not _overlaps(found, start, end):
        found.append(Entity(text[start:end], kind, start, end))


def known_people(text: str, language: Language, speaker_names: set[str] = frozenset()) -> set[str]:
    """Person names in a whole document: speaker labels plus the rules above."""
    names = {n for n in speaker_names if n}
    names |= {e.text for e in detect(text, language) if e.type == "person"}
    return names


def detect(text: str, language: Language, people: set[str] = frozenset()) -> list[Entity]:
    """All entities in ``text``, longest first where they overlap, sorted by position."""
    found: list[Entity] = []
    for kind, pattern in PATTERNS:
        for m in pattern.finditer(text):
            if kind == "phone" and sum(c.isdigit() for c in m.group()) < 8:
                continue
            _add(found, text, kind, m.start(), m.end())
    for name in sorted(people, key=len, reverse=True):
        pattern = re.escape(name) if language == "cn" else rf"(?<![\w]){re.escape(name)}(?![\w])"
        for m in re.finditer(pattern, text):
            _add(found, text, "person", m.start(), m.end())
    if language == "cn":
        _detect_cn(text, found)
    else:
        _detect_en(text, found)
    return sorted(found, key=lambda e: e.start)


def _detect_en(text: str, found: list[Entity]) -> None:
    for pattern in (_EN_UNIVERSITY, _EN_PLACE_SUFFIX):
        for m in pattern.finditer(text):
            _add(found, text, "place", m.start(), m.end())
    for place in sorted(EN_PLACES, key=len, reverse=True):
        for m in re.finditer(rf"(?<![\w]){re.escape(place)}(?![\w])", text):
            _add(found, text, "place", m.start(), m.end())
    for m in _EN_TITLE.finditer(text):
        _add(found, text, "person", m.start(), m.end())
    tokens = list(_EN_CAP.finditer(text))
    skip = -1
    for i, m in enumerate(tokens):
        word = m.group()
        if i <= skip or word in _NOT_NAMES or word.split("'")[0] in _NOT_NAMES:
            continue
        stripped = text[: m.start()].rstrip(" *_([")
        before = stripped.rstrip("\"“‘'")
        opens_quote = len(before) < len(stripped)  # the first word inside a quote starts a sentence: I said, "That ..."
        sentence_start = not before or before[-1] in ".!?:\n#>])" or opens_quote
        if not (word in FIRST_NAMES or not sentence_start):
            continue
        end = m.end()
        if i + 1 < len(tokens):
            nxt = tokens[i + 1]
            if text[m.end() : nxt.start()] == " " and nxt.group() not in _NOT_NAMES:
                end, skip = nxt.end(), i + 1  # a surname: "Sarah Collins"
        _add(found, text, "person", m.start(), end)


CN_NAME_SURNAMES = CN_SURNAMES + "周高马方胡朱林何徐孙罗黄许邱秦任韦贾夏付邹熊孟江白崔石廖易邵程谭姚龙万段雷钱汤尹黎常武乔贺赖龚文"
"""Surnames accepted at the start of a jieba ``nr`` token (jieba has judged the whole token a name)."""
_CN_NR_NOT_NAMES = {"高三", "高二", "高一", "初三", "初二", "初一", "常常", "文字", "江湖", "白天", "石头", "任何", "万一", "程度"}


def jieba_names(text: str) -> list[tuple[int, int]]:
    """Spans of jieba ``nr`` tokens that also look like names; [] when jieba is not installed."""
    try:
        import jieba
        import jieba.posseg as pseg
    except ImportError:
        return []
    jieba.setLogLevel(60)
    spans = []
    pos = 0
    for token in pseg.cut(text):
        word, flag = token.word, token.flag
        start = text.find(word, pos)
        pos = start + len(word) if start >= 0 else pos
        if flag != "nr" or start < 0 or not 2 <= len(word) <= 4 or word in _CN_NR_NOT_NAMES or word in _CN_COMMON_WORDS:
            continue
        if not all(has_cjk(ch) for ch in word):
            continue
        if word[0] in CN_NAME_SURNAMES or (word[0] in "小老阿" and len(word) == 2 and word not in CN_COUNTER_XIAO):
            spans.append((start, start + len(word)))
    return spans


def _detect_cn(text: str, found: list[Entity]) -> None:
    for start, end in jieba_names(text):
        _add(found, text, "person", start, end)
    for place in sorted(CN_PLACES, key=len, reverse=True):
        for m in re.finditer(re.escape(place), text):
            _add(found, text, "place", m.start(), m.end())
    for m in _CN_PLACE_SUFFIX.finditer(text):
        if any(p in m.group() for p in CN_PLACES):
            continue
        _add(found, text, "place", m.start(), m.end())
    for m in _CN_XIAO.finditer(text):
        if m.group() not in CN_COUNTER_XIAO and m.group()[1] not in "就时候心学说是在也都的了":
            _add(found, text, "person", m.start(), m.end())
    for i, ch in enumerate(text):
        if ch not in CN_SURNAMES:
            continue
        prev = text[i - 1] if i else "。"
        if has_cjk(prev) and prev not in _CN_STOP_AFTER and prev not in "叫名" and text[max(0, i - 2) : i] not in _CN_KIN:
            continue
        j = i + 1
        while j < len(text) and j - i < 3 and has_cjk(text[j]) and text[j] not in _CN_STOP_AFTER:
            j += 1
        name = text[i:j]
        follows = text[j] if j < len(text) else "。"
        if 2 <= len(name) <= 3 and name not in _CN_COMMON_WORDS and (follows in _CN_STOP_AFTER or not has_cjk(follows)):
            _add(found, text, "person", i, j)
