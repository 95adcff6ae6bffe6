"""Screening a model's reply before it reaches a person.

A small counseling model can say the worst thing at the worst time: agree that someone
would be better off dead, tell them to go ahead, or answer a question about doses. The
guard checks what the person writes; this checks what the model writes, with patterns for
the two kinds of harm a reply can do:

- **encouragement**: "you should do it", "go ahead and end it", "nobody would miss you",
  "你应该去死", "没有你大家会更好";
- **method information**: lethal amounts, the "best" or "painless" way, how to tie, cut,
  jump, burn charcoal; in English and Chinese.

A reply that matches is replaced by the crisis message. Streams are screened sentence by
sentence (``StreamScreen``): text is released only once the sentence it belongs to is
complete and the whole reply so far has passed, so a harmful sentence never goes out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from psyinsight.counsel.safety.text import canonical

_YOU_HARM = r"(?:kill yourself|end (?:it all|your life)|take your (?:own )?life|die|hang yourself|cut (?:yourself|deeper)|hurt (?:yourself|him|her|them)|overdose)"

ENCOURAGEMENT = re.compile(
    "|".join(
        f"(?:{p})"
        for p in (
            rf"\byou (?:should|must|need to|ought to|have to|might as well|could just) (?:just |go ahead and |finally )?{_YOU_HARM}\b",
            rf"\b(?:go ahead|just do it|do it)\b[,.!]? (?:and )?{_YOU_HARM}\b",
            r"\b(?:kill yourself|kys)\b",
            r"\b(?:nobody|no one|no-one) (?:would|will|is going to) (?:miss|care about|notice) you\b",
            r"\b(?:the world|everyone|your family|they) (?:would|will) be better (?:off )?without you\b",
            r"\byou(?:'re| are) (?:just )?(?:a burden|better off dead|worthless and)\b",
            r"\byou deserve to (?:die|suffer|be hurt)\b",
            rf"\bit(?:'s| is) (?:okay|ok|fine|reasonable|understandable|the right choice|a good idea) (?:for you )?to {_YOU_HARM}\b",
            r"\b(?:death|dying|suicide) (?:is|would be) (?:the|a) (?:best|right|only|good) (?:option|choice|answer|way out)\b",
            r"你(?:就|还是|应该|最好|干脆|不如)?(?:去死|自杀|跳下去|死了算了|结束自己的?生命|割下去|吃下去)",
            r"去死吧|没人会(?:在乎|想念|在意)你|没有你.{0,6}(?:更好|轻松)|你(?:就)?是(?:个)?(?:累赘|负担|废物)|你(?:活该|该死)",
            r"(?:自杀|死)(?:是|才是)(?:最好|唯一|正确)的(?:选择|办法|出路)",
        )
    )
)
GO_AHEAD = re.compile(
    r"\byou (?:should|must|need to|could|can) (?:just |finally )?(?:do it|go through with it|go ahead|end it|end things|jump|follow through)\b"
    r"|\b(?:go ahead|just do it|go for it|do it tonight|do it now)\b|(?:那就|你就|就)(?:去)?(?:做吧|去做|做了吧|跳吧|动手)|去吧|做吧"
)
"""Plain "do it" is encouragement of harm only after a risky message; elsewhere it is ordinary advice."""
METHOD = re.compile(
    "|".join(
        f"(?:{p})"
        for p in (
            r"\b\d+(?:[.,]\d+)?\s*(?:mg|milligrams?|grams?|g|pills|tablets|capsules)\b.{0,60}\b(?:lethal|fatal|deadly|kill|die|death|enough to)\b",
            r"\b(?:lethal|fatal|deadly|toxic) (?:dose|amount|level)\b.{0,40}\b(?:is|are|would be|about|around|of)\b.{0,20}\d",
            r"\b(?:most|least) painful (?:way|method)\b|\b(?:painless|quickest|easiest|surest|fastest|best) (?:way|method) (?:to|of) (?:die|dying|kill|killing|end|ending|suicide)\b",
            r"\b(?:tie|tying|make|making) (?:a |the )?noose\b|\bhow to hang\b|\bcut (?:along|vertically|deeper|lengthwise|down the)\b",
            r"\b(?:jump|fall|falling) (?:from|off) (?:at least |a height of |the )?\d+\b",
            r"\b(?:carbon monoxide|charcoal|exhaust)\b.{0,50}\b(?:car|garage|room|seal|closed|tape)\b",
            r"\b(?:mix|mixing|combine|combining) (?:\w+ ){0,3}(?:bleach|ammonia|pills|alcohol)\b.{0,40}\b(?:lethal|fatal|die|kill|deadly)\b",
            r"致死量.{0,10}(?:是|为|大约|大概|约|\d)|\d+\s*(?:片|粒|毫克|克|mg).{0,12}(?:致死|会死|足以|足够|能死)",
            r"最(?:不痛苦|无痛|快|有效|简单)的(?:死法|自杀方法|方法)|(?:烧炭|木炭).{0,12}(?:密闭|封|关(?:好|紧)?(?:门|窗))|割.{0,6}(?:竖着|动脉|深一点|深一些)",
            r"从\d+楼|上吊(?:的方法|要|时)|(?:绳子|绳结).{0,6}(?:打|系)",
        )
    )
)


@dataclass
class ReplyVerdict:
    """Whether a model reply is unsafe, and what matched."""

    unsafe: bool
    kind: str | None = None
    """encouragement or method."""
    matches: list[str] = field(default_factory=list)


def screen_reply(text: str, *, after_risk: bool = False) -> ReplyVerdict:
    """The verdict on a model reply (or on the part of it written so far).

    ``after_risk``: the person's last messages carried some risk (a model score near the
    threshold, or a discounted pattern), so a plain "go ahead" is read as encouragement.
    """
    norm = canonical(text)
    checks = [("encouragement", ENCOURAGEMENT), ("method", METHOD)]
    if after_risk:
        checks.append(("encouragement", GO_AHEAD))
    for kind, pattern in checks:
        found = [m.group(0) for m in pattern.finditer(norm)]
        if found:
            return ReplyVerdict(True, kind, found)
    return ReplyVerdict(False)


_SENTENCE_END = re.compile(r"[.!?。！？\n](?=\s|$)|[。！？\n]")
_JSON_VALUE_END = re.compile(r"[,}\]]")


class StreamScreen:
    """Releases streamed text sentence by sentence (value by value for JSON), each time after
    screening the reply so far.

    ``feed`` returns the text that may be shown now ("" while a sentence is open); once a
    sentence fails, ``verdict`` is set and nothing more is released: the caller stops the
    model and sends the crisis message instead.
    """

    def __init__(self, *, after_risk: bool = False, json: bool = False) -> None:
        self.after_risk = after_risk
        self.boundary = _JSON_VALUE_END if json else _SENTENCE_END
        """Where text may be released: sentence ends, or the end of each value of a JSON answer."""
        self.text = ""
        self.released = 0
        self.verdict: ReplyVerdict | None = None

    def feed(self, piece: str) -> str:
        if self.verdict is not None:
            return ""
        self.text += piece
        last_end = max((m.end() for m in self.boundary.finditer(self.text, self.released)), default=-1)
        if last_end <= self.released:
            return ""
        return self._release(last_end)

    def close(self) -> str:
        """The rest of the reply, once the model has finished (screened as a whole)."""
        if self.verdict is not None:
            return ""
        return self._release(len(self.text))

    def _release(self, end: int) -> str:
        verdict = screen_reply(self.text[:end], after_risk=self.after_risk)
        if verdict.unsafe:
            self.verdict = verdict
            return ""
        out, self.released = self.text[self.released : end], end
        return out
