"""The safety guard: decides, before any model runs, whether a conversation shows risk.

One decision rule for a message: the risk model's P(risk) (meaning, wording and the
patterns, stacked; see ``model``) at or above one threshold, calibrated on the validation
split, is risk. Nothing overrides a confident score: no word list has to agree. Between
``borderline`` and the threshold, a configured second opinion (an OpenAI-compatible guard
model) decides, failing closed; without one, no risk.

For a conversation (``check_history``), every user and system message in the recent window
is read: the latest one alone; a short follow-up, a means or timing word, or a retraction
("I'm fine, forget it") after a risky turn; and the recent user turns read together, so that
risk spread over several messages is seen. On risk the caller answers with
``crisis_message`` (a fixed text with hotlines for the person's region and the crisis's
category), never model text.
"""

from __future__ import annotations

import logging
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from psyinsight.counsel.safety.model import ModelScore, RiskModel
from psyinsight.counsel.safety.patterns import PatternMatch, match_patterns, normalize
from psyinsight.counsel.safety.reply_screen import ReplyVerdict, screen_reply
from psyinsight.counsel.safety.resources import CrisisResources, load_resources
from psyinsight.data.schema import parse_language
from psyinsight.errors import PsyInsightError
from psyinsight.language import detect_language

log = logging.getLogger(__name__)


@dataclass
class SafetyConfig:
    """Settings of the safety guard (each is a CLI option of serve and chat)."""

    resources_path: str | None = None
    """Crisis message and hotline file (YAML); None = $PSYINSIGHT_CRISIS_RESOURCES or the bundled one."""
    region: str | None = None
    """Hotline region (US, UK, CN, HK, TW, ... or INTL); None = the file's default for the language."""
    model_path: str | None = None
    """Risk model (.npz with its .json card); None = the bundled one."""
    threshold: float | None = None
    """P(risk) at which the model flags a message; None = the threshold calibrated with the model."""
    context_turns: int = 3
    """How many earlier user turns are read with the latest one."""
    second_opinion_url: str | None = None
    """OpenAI-compatible base URL of a guard model for borderline messages (off when None)."""
    second_opinion_model: str = "default"
    """Model name sent to the second-opinion endpoint."""
    second_opinion_timeout: float = 10.0
    """Seconds to wait for the second opinion before failing closed."""


@dataclass
class SafetyResult:
    """The guard's verdict on a message or a conversation."""

    risk: bool
    category: str | None = None
    """suicide, self_harm, harm_others, danger_from_others or medical_emergency (None when no risk)."""
    score: float = 0.0
    """The risk model's P(risk) for the checked text."""
    threshold: float = 0.0
    """The threshold the score was compared with."""
    source: str | None = None
    """What decided: pattern, model, second_opinion, context, conversation, system or reply."""
    matches: list[str] = field(default_factory=list)
    discounted: bool = False
    """A pattern matched in a past / third-party / fiction context (the model then decided)."""
    text: str = ""
    """The message the verdict is about."""
    language: str = "en"
    """The detected language of the message (ISO 639-1; cn for Chinese)."""
    covered: bool = True
    """Whether the guard's patterns and data cover that language (en, cn); the model screens any."""
    reason: str = ""
    """One line: what matched, which score, which threshold."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    # Read like a mapping too (``risk["category"]``, ``risk.get("source")``), so callers that
    # keep verdicts as JSON-like data can use either form.
    def __getitem__(self, key: str) -> Any:
        if key not in self.__dataclass_fields__:
            raise KeyError(key)
        return getattr(self, key)

    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self, key, default) if key in self.__dataclass_fields__ else default


_EN_FOLLOW_UP = re.compile(
    r"\b(?:yes|yeah|yep|yup|i do|i am|i will|i have|plan|planned|method|pills?|rope|gun|knife|blade|bridge|roof|"
    r"tonight|tomorrow|soon|goodbye|bye|note|letter|ready|decided|nothing will stop me|"
    r"(?:i'?m|i am) (?:fine|ok|okay|safe|good|alright)|just kidding|jk|never ?mind|forget (?:it|what i said|about it)|doesn'?t matter|not serious)\b"
)
_CN_FOLLOW_UP = re.compile(
    r"是的|对|嗯|没错|会的|计划|方法|药|绳|刀|今晚|明天|马上|再见|永别|遗书|准备好|决定了|想好了|"
    r"没事|开玩笑|随便说说|算了|别管|不用管|当我没说|我很好|我还好|我没事"
)
_SHORT_REPLY_CHARS = 40


def is_follow_up(text: str) -> bool:
    """After a risky turn: a short answer, a means or timing word, or a retraction."""
    norm = normalize(text)
    return len(norm) <= _SHORT_REPLY_CHARS or bool(_EN_FOLLOW_UP.search(norm) or _CN_FOLLOW_UP.search(norm))


class SafetyGuard:
    """Patterns + the semantic risk model over a conversation; formats the crisis message."""

    def __init__(
        self,
        config: SafetyConfig | None = None,
        *,
        model: RiskModel | None = None,
        resources: CrisisResources | None = None,
        second_opinion: Any = None,
    ):
        self.config = config or SafetyConfig()
        self.resources = resources or load_resources(self.config.resources_path)
        self._model = model
        self._second = second_opinion
        if self._second is None and self.config.second_opinion_url:
            from psyinsight.counsel.safety.second_opinion import SecondOpinion
            from psyinsight.llm import LLMConfig

            self._second = SecondOpinion(
                LLMConfig(
                    base_url=self.config.second_opinion_url,
                    model=self.config.second_opinion_model,
                    timeout_s=self.config.second_opinion_timeout,
                    max_retries=0,
                    max_tokens=64,
                )
            )

    @property
    def model(self) -> RiskModel:
        if self._model is None:
            self._model = RiskModel.load(self.config.model_path)
        return self._model

    @property
    def threshold(self) -> float:
        return self.config.threshold if self.config.threshold is not None else self.model.threshold

    def warm_up(self) -> None:
        """Load the model and the encoder now rather than on the first message."""
        self.model.score("hello")

    # ------------------------------------------------------------------ messages
    def check_text(self, text: str) -> SafetyResult:
        """The verdict on one message."""
        return self.check_texts([text])[0]

    def check_texts(self, texts: list[str]) -> list[SafetyResult]:
        """The verdicts on many independent messages (the model runs once, batched)."""
        return [self.decide(t, s) for t, s in zip(texts, self.model.scores(texts))]

    def decide(self, text: str, score: ModelScore, *, ask: bool = True) -> SafetyResult:
        """The verdict on one message given its model score (the one decision rule)."""
        found = match_patterns(text)
        language = detect_language(text, cjk_share=0, identify=True)
        covered = language in ("en", "cn")
        if not covered:
            log.info("safety: message in %s, which the patterns do not cover; screened by the multilingual model", language)
        threshold = self.threshold
        base = {
            "score": score.risk,
            "threshold": threshold,
            "matches": found.matches,
            "discounted": found.discounted,
            "text": text,
            "language": language,
            "covered": covered,
        }
        category = found.category or score.category
        if not covered:  # only the multilingual reading knows this language: it decides alone
            meaning_t = self.model.meaning_threshold
            reason = f"{language} is read by the multilingual model alone: P(risk)={score.meaning:.3f} {'>=' if score.meaning >= meaning_t else '<'} threshold {meaning_t:.3f}"
            if score.meaning >= meaning_t or score.risk >= threshold:
                return SafetyResult(True, category, source="model", reason=reason, **{**base, "score": max(score.meaning, score.risk)})
            return SafetyResult(False, reason=reason, **base)
        if score.risk >= threshold:
            return SafetyResult(True, category, source="model", reason=_why(found, score.risk, threshold), **base)
        if ask and self._second is not None and score.risk >= self.model.borderline:
            opinion = self._second.ask(text)
            reason = f"second opinion: {opinion.reason}; borderline {_why(found, score.risk, threshold)}"
            if opinion.crisis:
                return SafetyResult(True, opinion.category or category, source="second_opinion", reason=reason, **base)
            return SafetyResult(False, reason=reason, **base)
        return SafetyResult(False, reason=_why(found, score.risk, threshold), **base)

    # ------------------------------------------------------------------ conversations
    def check_history(self, history: list[dict[str, Any]]) -> SafetyResult:
        """The verdict on a conversation: its latest user message, read with the recent ones.

        Tolerant of any shape: it runs before the history is validated, so that a malformed
        history (an empty turn, two user turns in a row) never skips the check.
        """
        turns = [m for m in history if isinstance(m, dict) and m.get("role") in ("user", "system")]
        user = [_text(m) for m in turns if m.get("role") == "user" and _text(m).strip()]
        system = [_text(m) for m in turns if m.get("role") == "system" and _text(m).strip()]
        if not user and not system:
            return SafetyResult(False, threshold=self.threshold, reason="no user message")
        window = user[-1 - self.config.context_turns :]
        together = " ".join(window) if len(window) > 1 else None
        texts = window + system + ([together] if together else [])
        scores = self.model.scores(texts)
        latest = self.decide(window[-1], scores[len(window) - 1]) if window else None
        if latest is not None and latest.risk:
            return latest
        for text, score in zip(system, scores[len(window) : len(window) + len(system)]):
            verdict = self.decide(text, score)
            if verdict.risk:
                return _as(verdict, "system", f"in the system message: {verdict.reason}")
        earlier = [self.decide(t, s, ask=False) for t, s in zip(window[:-1], scores[: len(window) - 1])]
        risky = [v for v in earlier if v.risk]
        if risky and latest is not None and is_follow_up(latest.text):
            before = risky[-1]
            return SafetyResult(
                True,
                before.category,
                score=max(before.score, latest.score),
                threshold=before.threshold,
                source="context",
                matches=before.matches,
                text=latest.text,
                language=latest.language,
                covered=latest.covered,
                reason=f"a follow-up to an earlier risky message ({before.reason})",
            )
        if together and not risky:
            joint = self.decide(together, scores[-1], ask=False)
            if joint.risk:
                return _as(joint, "conversation", f"the last {len(window)} messages together: {joint.reason}", text=window[-1])
        return latest or SafetyResult(False, threshold=self.threshold, reason="no user message")

    def after_risk(self, verdict: SafetyResult | None) -> bool:
        """Whether a conversation judged safe still carried some risk (a borderline score, a discounted pattern)."""
        return verdict is not None and (verdict.discounted or verdict.score >= self.model.borderline)

    def screen_reply(self, text: str, *, after: SafetyResult | None = None) -> ReplyVerdict:
        """Whether a model reply may be shown (see ``reply_screen``); ``after`` is the verdict on the conversation."""
        return screen_reply(text, after_risk=self.after_risk(after))

    # ------------------------------------------------------------------ messages shown
    def is_crisis_message(self, text: str) -> bool:
        """True when ``text`` is one of this guard's crisis messages (any language or region)."""
        heads = (m.split("{resources}")[0].strip() for m in self.resources.messages.values())
        return any(head and text.strip().startswith(head) for head in heads)

    def crisis_message(self, language: str = "en", region: str | None = None, category: str | None = None) -> str:
        """The fixed crisis message for ``language``, ``region`` and ``category``; never fails.

        A language without a message gets the English one, and an unknown region the
        language's default: a person in crisis never gets an error instead of the hotlines.
        """
        try:
            lang = parse_language(language)
        except ValueError:
            lang = "en"
        try:
            return self.resources.message(lang, region or self.config.region, category=category)
        except PsyInsightError:
            return self.resources.message(lang, None, category=category)


def _text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, list):  # OpenAI content parts
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return content if isinstance(content, str) else ""


def _as(verdict: SafetyResult, source: str, reason: str, *, text: str | None = None) -> SafetyResult:
    verdict.source, verdict.reason = source, reason
    if text is not None:
        verdict.text = text
    return verdict


def _why(found: PatternMatch, score: float, threshold: float) -> str:
    """One line: what matched, which score, which threshold."""
    if found.hit:
        what = f"pattern {found.matches[0]!r}" + (" in a past/third-party/fiction context" if found.discounted else "")
    else:
        what = "no pattern"
    cmp = ">=" if score >= threshold else "<"
    return f"{what}; model P(risk)={score:.3f} {cmp} threshold {threshold:.3f}"
