"""The Psy-Insight release format, typed.

``Session`` and ``Turn`` mirror the release's JSON (spec.md section 1). Keys the schema
does not know are kept (``extra="allow"``) and written back on export, so a file a user
extends with their own fields round-trips unchanged. ``Session.repairs`` records what the
normaliser changed, with the original value, so nothing is lost.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field


def _as_list(value: Any) -> Any:
    """The release writes a single label as a bare string in places; read it as a list."""
    if isinstance(value, str):
        return [value] if value.strip() else []
    return value


def _as_optional_int(value: Any) -> Any:
    """cn writes ``is_same_qa`` as "" once: an unknown, not a zero."""
    if isinstance(value, str) and not value.strip():
        return None
    return value


LabelList = Annotated[list[str] | None, BeforeValidator(_as_list)]
OptionalInt = Annotated[int | None, BeforeValidator(_as_optional_int)]

Language = Literal["en", "cn"]
"""The release's own names: ``en`` (English) and ``cn`` (Chinese)."""
LANGUAGES: tuple[Language, ...] = ("en", "cn")

Role = Literal["Seeker", "Supporter"]
SEEKER: Role = "Seeker"
SUPPORTER: Role = "Supporter"


def parse_language(value: str) -> Language:
    """Accept en/cn and the usual synonyms (zh, zh-CN, chinese, english)."""
    key = value.strip().lower()
    if key in {"en", "eng", "english"}:
        return "en"
    if key in {"cn", "zh", "zh-cn", "zh_cn", "chinese", "中文"}:
        return "cn"
    raise ValueError(f"unknown language {value!r}; use 'en' or 'cn' (or 'zh')")


class NoteLabel(BaseModel):
    """A bracketed note cut out of a cn utterance, with its character index."""

    model_config = ConfigDict(extra="allow")
    label: str
    index: int | None = None
    type: str | None = None


class Turn(BaseModel):
    """One utterance. Seeker turns carry observation and emotions; Supporter turns reasoning and strategies."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    speaker: Role
    participant: str = ""
    content: str
    id: str = ""
    observation: str | None = None
    emotions: LabelList = Field(default=None, alias="emotional label")
    reasoning: str | None = None
    strategies: LabelList = Field(default=None, alias="strategy")
    reference_labels: LabelList = None
    labels: list[NoteLabel] | None = None

    @property
    def is_client(self) -> bool:
        return self.speaker == SEEKER

    @property
    def is_counselor(self) -> bool:
        return self.speaker == SUPPORTER


class Repair(BaseModel):
    """One change the normaliser made: the rule, where, and the value it replaced."""

    rule: str
    field: str
    turn: str | None = None
    """The turn's id (or ``#index`` when the id is missing) for turn-level repairs."""
    original: Any = None
    detail: str = ""


class Session(BaseModel):
    """One counseling session: session labels, chain-of-thought narrative and the dialogue."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    dialog_id: str
    language: Language
    theme: str = ""
    psychotherapy: str = ""
    topic: str = ""
    stage: str = ""
    guide: str = ""
    is_same_qa: OptionalInt = None
    """1 when this session's first reply continues the previous session's last turn."""
    is_same_session: OptionalInt = None
    """1 when this session is the same case as the previous one; None when unknown (cn -1)."""
    background: str = ""
    reasoning: str = ""
    summary: str = ""
    dialog: list[Turn]
    repairs: list[Repair] = Field(default_factory=list)

    @property
    def uid(self) -> str:
        """Unique across both languages: ``en-000432``."""
        return f"{self.language}-{self.dialog_id}"

    def to_release_dict(self, *, with_repairs: bool = False) -> dict[str, Any]:
        """The release JSON shape (field names as in the files, unknown keys kept)."""
        data = self.model_dump(by_alias=True, exclude_none=True, exclude={"repairs"} if not with_repairs else set())
        for turn, raw in zip(self.dialog, data["dialog"]):
            for key in ("observation", "reasoning"):
                if getattr(turn, key) is None:
                    raw.pop(key, None)
        return data
