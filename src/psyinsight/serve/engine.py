"""The server's view of the model: generation that a client can cancel, that reports its
errors, and that never ends a reply in the middle of a character.

``LocalEngine`` serves the chat and the pipeline, where a call runs to its end. A server
needs more of each generation: a batch row whose client left must stop at its next token;
a stream's generation thread must stop, and be joined, before the process exits (a torch
thread still running at interpreter exit aborts it); an error in that thread must reach the
client instead of ending the stream as if the model had finished; and a reply cut by
``max_tokens`` must not end in half a UTF-8 character ("\ufffd"). ``ServingEngine`` adds
these around a ``LocalEngine``'s model and lock. Other engines (test doubles, remote
clients) are used as they are, with the same text clean-up.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from psyinsight.counsel.counselor import Generation, GenParams, LocalEngine, cut_at_stop

REPLACEMENT = "\ufffd"
"""What a decoder writes for bytes that are not (yet) a whole UTF-8 character."""
_MAX_CHAR_TOKENS = 3
"""A UTF-8 character is at most 4 bytes, so at most 3 trailing tokens can hold part of one."""


def whole_chars(text: str) -> str:
    """``text`` without a trailing partial character (as decoded text, it shows as U+FFFD)."""
    return text.rstrip(REPLACEMENT)


def _decode_whole(tokenizer: Any, ids: list[int]) -> str:
    """Decode ``ids``, leaving out trailing tokens that hold only part of a character."""
    text = tokenizer.decode(ids, skip_special_tokens=True)
    for drop in range(1, min(_MAX_CHAR_TOKENS, len(ids)) + 1):
        if not text.endswith(REPLACEMENT):
            break
        text = tokenizer.decode(ids[:-drop], skip_special_tokens=True)
    return whole_chars(text)


def _stop_rows(flags: Callable[[], list[bool]]) -> Any:
    """A transformers stopping criterion: row i stops at its next token once ``flags()[i]``."""
    import torch
    from transformers import StoppingCriteria

    class _Rows(StoppingCriteria):
        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            return torch.tensor(flags(), dtype=torch.bool, device=input_ids.device)

    return _Rows()


class ServingEngine:
    """Wraps the engine the server was given; see the module docstring for what it adds."""

    def __init__(self, engine: Any):
        # Constrained decoding (serve/structured.py) wraps the same model: requests with a
        # response_format go to it, every other request takes this engine's own paths.
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

    # ----------------------------------------------------------------------- batches
    def generate(self, prompts: Sequence[Sequence[dict[str, str]]], params: GenParams,
                 cancelled: Sequence[threading.Event] = ()) -> list[Generation]:  # fmt: skip
        """One reply per prompt, as one batch; row i stops early once ``cancelled[i]`` is set."""
        if self.structured is not None and getattr(params, "response_format", None) is not None:
            return self.structured.generate(prompts, params)
        if not self.local:
            out = self.engine.generate(prompts, params)
            return [Generation(whole_chars(g.text), g.prompt_tokens, g.completion_tokens, g.finish_reason) for g in out]
        import torch

        from psyinsight.train.templates import render_prompt

        eng = self.engine
        eng.load()
        tok, model = eng._tokenizer, eng._model
        flags = list(cancelled) or [threading.Event() for _ in prompts]
        with eng.lock:
            texts = [render_prompt(tok, p) + params.prefix for p in prompts]
            side, tok.padding_side = tok.padding_side, "left"
            try:
                batch = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
            finally:
                tok.padding_side = side
            device = next(model.parameters()).device
            batch = {k: v.to(device) for k, v in batch.items()}
            torch.manual_seed(params.seed)
            with torch.inference_mode():
                out = model.generate(**batch, **eng._decode_kwargs(params), stopping_criteria=[_stop_rows(lambda: [f.is_set() for f in flags])])
            ends = self._end_ids()
            results = []
            for prompt, row in zip(prompts, out[:, batch["input_ids"].shape[1] :].tolist()):
                n = next((i for i, t in enumerate(row) if t in ends), len(row))
                text, stopped = cut_at_stop(params.prefix + _decode_whole(tok, row[:n]), params.stop)
                finish = "stop" if stopped or n < params.max_new_tokens else "length"
                completion = min(eng.count_tokens(text), n) if stopped else n
                results.append(Generation(text.strip(), eng.count_prompt_tokens(prompt), completion, finish))
        return results

    def _end_ids(self) -> set[int]:
        """Token ids that end a row: end-of-sequence, and the padding of rows that ended."""
        ids: set[int] = set()
        for source in (self.engine._model.generation_config, self.engine._tokenizer):
            for name in ("eos_token_id", "pad_token_id"):
                value = getattr(source, name, None)
                ids.update(value if isinstance(value, (list, tuple)) else [] if value is None else [value])
        return ids

    # ----------------------------------------------------------------------- streams
    def stream(self, prompt: Sequence[dict[str, str]], params: GenParams, cancel: threading.Event) -> Iterator[str]:
        """The reply piece by piece. Setting ``cancel`` (or closing the iterator) stops the
        generation at its next token; the iterator returns only once its thread has ended,
        and raises the error that thread met, if any."""
        if self.structured is not None and getattr(params, "response_format", None) is not None:
            pieces = iter(self.structured.stream(prompt, params))
        else:
            pieces = self._local_stream(prompt, params, cancel) if self.local else iter(self.engine.stream(prompt, params))
        emitted = candidate = ""
        hold = max((len(s) for s in params.stop), default=0)  # what could be the start of a stop string
        try:
            for piece in pieces:
                if cancel.is_set():
                    return
                candidate += piece
                cut, stopped = cut_at_stop(candidate, params.stop)
                if stopped:
                    cut = whole_chars(cut)
                    if len(cut) > len(emitted):
                        yield cut[len(emitted) :]
                    return
                safe = len(candidate) - hold
                while safe > len(emitted) and candidate[safe - 1] == REPLACEMENT:  # maybe half a character: wait
                    safe -= 1
                if safe > len(emitted):
                    yield candidate[len(emitted) : safe]
                    emitted = candidate[:safe]
            rest = whole_chars(candidate)
            if len(rest) > len(emitted):
                yield rest[len(emitted) :]
        finally:
            close = getattr(pieces, "close", None)
            if close is not None:
                close()

    def _local_stream(self, prompt: Sequence[dict[str, str]], params: GenParams, cancel: threading.Event) -> Iterator[str]:
        import torch
        from transformers import TextIteratorStreamer

        from psyinsight.train.templates import render_prompt

        eng = self.engine
        eng.load()
        tok, model = eng._tokenizer, eng._model
        done = threading.Event()  # the reader stopped: the generation stops too
        failure: list[BaseException] = []
        eng.lock.acquire()
        try:
            batch = tok([render_prompt(tok, prompt) + params.prefix], return_tensors="pt", add_special_tokens=False)
            device = next(model.parameters()).device
            batch = {k: v.to(device) for k, v in batch.items()}
            streamer = TextIteratorStreamer(tok, skip_prompt=True, skip_special_tokens=True, timeout=600)
            stop = _stop_rows(lambda: [cancel.is_set() or done.is_set()])
            kwargs: dict[str, Any] = dict(batch, streamer=streamer, stopping_criteria=[stop], **eng._decode_kwargs(params))

            def run() -> None:
                try:
                    torch.manual_seed(params.seed)
                    with torch.inference_mode():
                        model.generate(**kwargs)
                except BaseException as exc:  # handed to the reader, which raises it
                    failure.append(exc)
                    streamer.end()
                finally:
                    eng.lock.release()

            thread = threading.Thread(target=run, name="psyinsight-stream", daemon=True)
            thread.start()
        except BaseException:
            eng.lock.release()
            raise
        try:
            if params.prefix:
                yield params.prefix
            yield from streamer
            if failure:
                raise failure[0]
        finally:
            done.set()
            thread.join()  # cooperative: it stops at its next token
