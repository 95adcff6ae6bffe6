"""The safety guard: decides, before any model runs, whether a conversation shows risk.

Decision for one message (patterns first, the classifier second):

1. An explicit pattern match in a here-and-now context is risk, whatever the classifier
   says: a statistical model must not be able to wave through "I want to kill myself".
2. A pattern match discounted by a past / third-party / fiction context is risk only when
   the classifier is confident (``discounted_threshold``).
3. Otherwise the classifier may flag a paraphrase no pattern lists (``classifier_threshold``),
   but only when the message carries a risk cue (``patterns.has_risk_cue``: a death,
   self-harm, violence, means or finality word). Trained on a few hundred sentences, the
   classifier alone scores ordinary counseling talk ("I've been anxious before my exams",
   "我想是这样") as high as crisis talk; on the release's ~6k client turns it raised 200
   alarms, 194 of them without any such word.

For a conversation, the latest user message is checked, and so are the recent user turns:
after a risky turn, a short assent ("yes", "是的") or a follow-up naming means or timing
("I have the pills", "今晚") is risk too, though it would pass on its own.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from psyinsight.safety.classifier import RiskClassifier, default_classifier
from psyinsight.safety.patterns import has_risk_cue, match_patterns, normalize
from psyinsight.safety.resources import CrisisResources, load_resources


@dataclass
class SafetyConfig:
    """Settings of the safety guard (each is a CLI option of serve and chat)."""

    resources_path: str | None = None
    """Crisis message and hotline file (YAML); None = $PSYINSIGHT_CRISIS_RESOURCES or the bundled one."""
    region: str | None = None
    """Hotline region (US, UK, CN, HK, TW, ... or INTL); None = the file's default for the language."""
    use_classifier: bool = True
    """Use the n-gram classifier as well as the patterns (off = patterns only)."""
    classifier_threshold: float = 0.7
    """Risk probability above which the classifier flags a message no pattern matched (with a risk cue).
    Chosen by 5-fold cross-validation on train.jsonl: the highest recall whose false-positive
    rate on the hard negatives stays under 0.03 (bench/safety_release.py --cv prints the table)."""
    require_cue: bool = True
    """The classifier may flag a message no pattern matched only when it has a risk cue word."""
    discounted_threshold: float = 0.9
    """Risk probability needed when a pattern matched in a past/third-party/fiction context."""
    context_turns: int = 3
    """How many recent user turns are looked at besides the latest one."""
    train_path: str | None = None
    """Classifier training file (JSONL); None = the bundled one."""


@dataclass
class SafetyResult:
    """The guard's verdict on a message or a conversation."""

    risk: bool
    category: str | None = None
    """suicide, self_harm or harm_others (None when no risk)."""
    score: float = 0.0
    """The classifier's risk probability for the checked message (0 when it is off)."""
    source: str | None = None
    """What decided: pattern, pattern+classifier, classifier, or context."""
    matches: list[str] = field(default_factory=list)
    discounted: bool = False
    text: str = ""
    """The user message the verdict is about."""

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
    r"tonight|tomorrow|soon|goodbye|bye|note|letter|ready|decided|nothing will stop me)\b"
)
_CN_FOLLOW_UP = re.compile(r"是的|对|嗯|没错|会的|计划|方法|药|绳|刀|今晚|明天|马上|再见|永别|遗书|准备好|决定了|想好了")
_SHORT_REPLY_CHARS = 12


class SafetyGuard:
    """Patterns + classifier over the user's messages; formats the crisis message."""

    def __init__(
        self,
        config: SafetyConfig | None = None,
        *,
        classifier: RiskClassifier | None = None,
        resources: CrisisResources | None = None,
    ):
        self.config = config or SafetyConfig()
        self.resources = resources or load_resources(self.config.resources_path)
        self._classifier = classifier

    @property
    def classifier(self) -> RiskClassifier | None:
        if not self.config.use_classifier:
            return None
        if self._classifier is None:
            self._classifier = default_classifier(self.config.train_path)
        return self._classifier

    def warm_up(self) -> None:
        """Train the classifier now rather than on the first message."""
        _ = self.classifier

    def check_text(self, text: str) -> SafetyResult:
        """The verdict on one message."""
        return self.check_texts([text])[0]

    def check_texts(self, texts: list[str]) -> list[SafetyResult]:
        """The verdicts on many independent messages (the classifier runs once, batched)."""
        clf = self.classifier
        scores = clf.scores(texts) if clf is not None else [(0.0, None)] * len(texts)
        return [self.decide(text, score, category) for text, (score, category) in zip(texts, scores)]

    def decide(self, text: str, score: float, category: str | None) -> SafetyResult:
        """The verdict on one message given its classifier score (batched and cross-validated scoring)."""
        found = match_patterns(text)
        base = {"score": score, "matches": found.matches, "discounted": found.discounted, "text": text}
        use_clf = self.config.use_classifier
        if found.hit and not found.discounted:
            return SafetyResult(True, found.category, source="pattern", **base)
        if found.hit and use_clf and score >= self.config.discounted_threshold:
            return SafetyResult(True, found.category, source="pattern+classifier", **base)
        if (
            not found.hit
            and use_clf
            and score >= self.config.classifier_threshold
            and (not self.config.require_cue or has_risk_cue(text))
        ):
            return SafetyResult(True, category, source="classifier", **base)
        return SafetyResult(False, **base)

    def check_history(self, history: list[dict[str, Any]]) -> SafetyResult:
        """The verdict on a conversation: its latest user message, read with the recent ones."""
        user_turns = [str(m.get("content") or "") for m in history if m.get("role") == "user"]
        if not user_turns:
            return SafetyResult(False)
        latest = self.check_text(user_turns[-1])
        if latest.risk:
            return latest
        recent = user_turns[-1 - self.config.context_turns : -1]
        for earlier in reversed(recent):
            before = self.check_text(earlier)
            if before.risk and _is_follow_up(user_turns[-1]):
                return SafetyResult(
                    True,
                    before.category,
                    score=max(before.score, latest.score),
                    source="context",
                    matches=before.matches,
                    text=user_turns[-1],
                )
        return latest

    def is_crisis_message(self, text: str) -> bool:
        """True when ``text`` is one of this guard's crisis messages (any language or region)."""
        heads = (m.split("{resources}")[0].strip() for m in self.resources.messages.values())
        return any(head and text.strip().startswith(head) for head in heads)

    def crisis_message(self, language: str = "en", region: str | None = None) -> str:
        """The fixed crisis message for ``language`` and ``region`` (default: the config's)."""
        return self.resources.message(language, region or self.config.region)


def _is_follow_up(text: str) -> bool:
    norm = normalize(text)
    short = len(norm) <= _SHORT_REPLY_CHARS
    return short or bool(_EN_FOLLOW_UP.search(norm) or _CN_FOLLOW_UP.search(norm))
