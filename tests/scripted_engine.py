"""An engine that answers from a script: the model's failures (empty text, an exception, a
time-out) and its worst replies, on demand, for the safety surfaces' tests."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from psyinsight.counsel.engine import Generation, GenParams


class ScriptedEngine:
    """Replies in turn from ``script``; an entry that is an exception class or instance is raised.

    ``calls`` counts the prompts the model was asked to answer (a crisis must leave it at 0).
    """

    def __init__(self, *script: object, repeat_last: bool = True):
        self.script = list(script) or ["Observation: calm. Reasoning: listen. Therapist: Tell me more about that."]
        self.repeat_last = repeat_last
        self.calls = 0

    def _next(self) -> str:
        self.calls += 1
        item = self.script.pop(0) if len(self.script) > 1 or not self.repeat_last else self.script[0]
        if isinstance(item, type) and issubclass(item, BaseException):
            raise item("scripted model failure")
        if isinstance(item, BaseException):
            raise item
        return str(item)

    def load(self) -> None:
        pass

    def generate(self, prompts: Sequence[Sequence[dict[str, str]]], params: GenParams) -> list[Generation]:
        return [Generation(self._next(), 10, 5, "stop") for _ in prompts]

    def stream(self, prompt: Sequence[dict[str, str]], params: GenParams) -> Iterator[str]:
        text = self._next()
        for i in range(0, len(text), 7):
            yield text[i : i + 7]
