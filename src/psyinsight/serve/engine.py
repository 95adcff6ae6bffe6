"""The server's view of the model: the ``LocalEngine``'s cancellable generation, and the same
text clean-up for every other engine.

Requests with a ``response_format`` go to constrained decoding (``serve/structured.py``),
which wraps the same model. A ``LocalEngine`` already stops a row whose client left, joins
its stream threads and never ends a reply in half a character; other engines (test doubles,
remote clients) are used as they are, their text cut at stop strings and at whole characters
the same way (``counsel.engine.trim_at_stop``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from typing import Any

from psyinsight.counsel.engine import Generation, GenParams, LocalEngine, trim_at_stop, whole_chars


class ServingEngine:
    """Wraps the engine the server was given; see the module docstring for what it adds."""

    def __init__(self, engine: Any):
        self.structured = engine if hasattr(engine, "supports") and hasattr(engine, "engine") else None
        engine = self.structured.engine if self.structured is not None else engine
        self.engine = engine
        # a LocalEngine whose generation a subclass replaced (a test double) is used as it is
        kind = type(engine)
        self.local = isinstance(engine, LocalEngine) and kind.generate is LocalEngine.generate and kind.stream is LocalEngine.stream

    def count_prompt_tokens(self, prompt: Sequence[dict[str, str]]) -> int:
        count = getattr(self.engine, "count_prompt_tokens", None)
        return count(prompt) if count else 0

    def count_tokens(self, text: str) -> int:
        count = getattr(self.engine, "count_tokens", None)
        return count(text) if count else 0

    def generate(self, prompts: Sequence[Sequence[dict[str, str]]], params: GenParams, cancelled: Sequence[threading.Event] = ()) -> list[Generation]:
        """One reply per prompt, as one batch; row i stops early once ``cancelled[i]`` is set."""
        if self.structured is not None and getattr(params, "response_format", None) is not None:
            return self.structured.generate(prompts, params)
        if self.local:
            return self.engine.generate(prompts, params, cancelled)
        out = self.engine.generate(prompts, params)
        return [Generation(whole_chars(g.text), g.prompt_tokens, g.completion_tokens, g.finish_reason) for g in out]

    def stream(self, prompt: Sequence[dict[str, str]], params: GenParams, cancel: threading.Event) -> Iterator[str]:
        """The reply piece by piece. Setting ``cancel`` (or closing the iterator) stops the
        generation at its next token; the iterator returns only once its thread has ended,
        and raises the error that thread met, if any."""
        if self.structured is not None and getattr(params, "response_format", None) is not None:
            return trim_at_stop(self.structured.stream(prompt, params), params.stop, cancel)
        if self.local:
            return self.engine.stream(prompt, params, cancel)
        return trim_at_stop(self.engine.stream(prompt, params), params.stop, cancel)
