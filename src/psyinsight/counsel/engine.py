"""The local model behind every chat surface: one loaded model, generation a caller can cancel.

``LocalEngine`` holds one model (+ LoRA adapter) and a lock so concurrent callers take
turns. Its generation is what a server needs as much as a terminal: a batch row whose
caller left stops at its next token; a stream's generation thread is stopped, and joined,
before the stream ends (a torch thread still running at interpreter exit aborts it); an
error in that thread reaches the reader instead of ending the stream as if the model had
finished; and no reply ends in half a UTF-8 character ("\ufffd"). ``trim_at_stop`` holds back
streamed text that could begin a stop string, for this engine and for any other.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

REPLACEMENT = "\ufffd"
"""What a decoder writes for bytes that are not (yet) a whole UTF-8 character."""
_MAX_CHAR_TOKENS = 3
"""A UTF-8 character is at most 4 bytes, so at most 3 trailing tokens can hold part of one."""


@dataclass(frozen=True)
class GenParams:
    """Decoding settings of one request; requests with equal params can share a batch."""

    max_new_tokens: int = 256
    temperature: float = 0.0
    """0 = greedy; > 0 samples with this temperature."""
    top_p: float = 1.0
    seed: int = 13
    stop: tuple[str, ...] = ()
    """Strings that end the reply (not included in it)."""
    prefix: str = ""
    """Text the reply is forced to start with (JSON mode uses "{"); part of the reply."""

    @property
    def do_sample(self) -> bool:
        return self.temperature > 0


@dataclass
class Generation:
    """One generated reply with its token accounting."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str
    """"stop" (the model ended, or a stop string) or "length" (max_new_tokens reached)."""


def cut_at_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    """``text`` up to the earliest stop string, and whether one was found."""
    cut = min((i for i in (text.find(s) for s in stop if s) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


def whole_chars(text: str) -> str:
    """``text`` without a trailing partial character (as decoded text, it shows as U+FFFD)."""
    return text.rstrip(REPLACEMENT)


def decode_whole(tokenizer: Any, ids: list[int]) -> str:
    """Decode ``ids``, leaving out trailing tokens that hold only part of a character."""
    text = tokenizer.decode(ids, skip_special_tokens=True)
    for drop in range(1, min(_MAX_CHAR_TOKENS, len(ids)) + 1):
        if not text.endswith(REPLACEMENT):
            break
        text = tokenizer.decode(ids[:-drop], skip_special_tokens=True)
    return whole_chars(text)


def trim_at_stop(pieces: Iterable[str], stop: Sequence[str], cancel: threading.Event | None = None) -> Iterator[str]:
    """Stream ``pieces`` up to the first stop string: text that could begin one is held back
    until it cannot, and so is a trailing partial character. Closing this iterator closes
    ``pieces`` (which stops a generation behind them)."""
    pieces = iter(pieces)
    emitted = candidate = ""
    hold = max((len(s) for s in stop), default=0)
    try:
        for piece in pieces:
            if cancel is not None and cancel.is_set():
                return
            candidate += piece
            cut, stopped = cut_at_stop(candidate, stop)
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


def _stop_rows(flags: Callable[[], list[bool]]) -> Any:
    """A transformers stopping criterion: row i stops at its next token once ``flags()[i]``."""
    import torch
    from transformers import StoppingCriteria

    class _Rows(StoppingCriteria):
        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            return torch.tensor(flags(), dtype=torch.bool, device=input_ids.device)

    return _Rows()


class LocalEngine:
    """A transformers model (+ LoRA adapter) loaded once, used by one caller at a time.

    The lock makes concurrent use safe (generate() is not re-entrant on one model); the
    server's queue batches requests in front of it so the lock is rarely contended.
    """

    def __init__(
        self, model: str = "default", adapter: str | None = None, *, device: str | None = None, dtype: str | None = None, threads: int | None = None
    ):
        if adapter and model in (None, "default"):  # the base model the adapter was trained on
            from psyinsight.models import read_adapter_meta

            model = read_adapter_meta(adapter).get("base_model") or "default"
        self.model_name = model
        self.adapter = adapter
        self.device = device
        self.dtype = dtype
        self.threads = threads
        """torch CPU threads (process-wide). On a busy CPU, 1 thread decodes several times
        faster than 2 that spin-wait on each other; None keeps torch's default."""
        self.lock = threading.Lock()
        self._load_lock = threading.Lock()
        self._model: Any = None
        self._tokenizer: Any = None

    def load(self) -> None:
        """Load the model now (the first request would otherwise pay for it)."""
        with self._load_lock:
            if self._model is None:
                from psyinsight.models import load_model_and_tokenizer

                if self.threads:
                    import torch

                    torch.set_num_threads(self.threads)
                self._model, self._tokenizer = load_model_and_tokenizer(self.model_name, self.adapter, device=self.device, dtype=self.dtype)

    @property
    def tokenizer(self) -> Any:
        self.load()
        return self._tokenizer

    def count_prompt_tokens(self, messages: Sequence[dict[str, str]]) -> int:
        from psyinsight.train.templates import render_prompt

        return len(self.tokenizer(render_prompt(self.tokenizer, messages), add_special_tokens=False)["input_ids"])

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` under this model's tokenizer."""
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"]) if text else 0

    _count = count_tokens

    def decode_kwargs(self, params: GenParams) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "max_new_tokens": params.max_new_tokens,
            "pad_token_id": self._tokenizer.pad_token_id,
            "do_sample": params.do_sample,
        }
        if params.do_sample:
            kwargs.update(temperature=params.temperature, top_p=params.top_p)
        else:  # silence "temperature is ignored" warnings from generation configs that set them
            kwargs.update(temperature=None, top_p=None, top_k=None)
        return kwargs

    def generate(self, prompts: Sequence[Sequence[dict[str, str]]], params: GenParams, cancelled: Sequence[threading.Event] = ()) -> list[Generation]:
        """One reply per prompt, as one batch; row i stops at its next token once ``cancelled[i]`` is set."""
        import torch

        from psyinsight.train.templates import render_prompt

        self.load()
        tok, model = self._tokenizer, self._model
        flags = list(cancelled) or [threading.Event() for _ in prompts]
        with self.lock:
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
                out = model.generate(**batch, **self.decode_kwargs(params), stopping_criteria=[_stop_rows(lambda: [f.is_set() for f in flags])])
            ends = self._end_ids()
            results = []
            for prompt, row in zip(prompts, out[:, batch["input_ids"].shape[1] :].tolist()):
                n = next((i for i, t in enumerate(row) if t in ends), len(row))
                text, stopped = cut_at_stop(params.prefix + decode_whole(tok, row[:n]), params.stop)
                finish = "stop" if stopped or n < params.max_new_tokens else "length"
                completion = min(self.count_tokens(text), n) if stopped else n
                results.append(Generation(text.strip(), self.count_prompt_tokens(prompt), completion, finish))
        return results

    def _end_ids(self) -> set[int]:
        """Token ids that end a row: end-of-sequence, and the padding of rows that ended."""
        ids: set[int] = set()
        for source in (self._model.generation_config, self._tokenizer):
            for name in ("eos_token_id", "pad_token_id"):
                value = getattr(source, name, None)
                ids.update(value if isinstance(value, (list, tuple)) else [] if value is None else [value])
        return ids

    def stream(self, prompt: Sequence[dict[str, str]], params: GenParams, cancel: threading.Event | None = None) -> Iterator[str]:
        """The reply piece by piece as the model writes it, cut at the first stop string.

        Holds the lock for the whole generation. Setting ``cancel`` or closing the iterator
        (a caller that went away) stops the generation at its next token; the iterator
        returns only once the generation thread has ended, and raises the error it met.
        """
        return trim_at_stop(self._pieces(prompt, params, cancel or threading.Event()), params.stop, cancel)

    def _pieces(self, prompt: Sequence[dict[str, str]], params: GenParams, cancel: threading.Event) -> Iterator[str]:
        import torch
        from transformers import TextIteratorStreamer

        from psyinsight.train.templates import render_prompt

        self.load()
        tok, model = self._tokenizer, self._model
        done = threading.Event()  # the reader stopped: the generation stops too
        failure: list[BaseException] = []
        self.lock.acquire()
        try:
            batch = tok([render_prompt(tok, prompt) + params.prefix], return_tensors="pt", add_special_tokens=False)
            device = next(model.parameters()).device
            batch = {k: v.to(device) for k, v in batch.items()}
            streamer = TextIteratorStreamer(tok, skip_prompt=True, skip_special_tokens=True, timeout=600)
            stop = _stop_rows(lambda: [cancel.is_set() or done.is_set()])
            kwargs: dict[str, Any] = dict(batch, streamer=streamer, stopping_criteria=[stop], **self.decode_kwargs(params))

            def run() -> None:
                try:
                    torch.manual_seed(params.seed)
                    with torch.inference_mode():
                        model.generate(**kwargs)
                except BaseException as exc:  # handed to the reader, which raises it
                    failure.append(exc)
                    streamer.end()
                finally:
                    self.lock.release()

            thread = threading.Thread(target=run, name="psyinsight-stream", daemon=True)
            thread.start()
        except BaseException:
            self.lock.release()
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
