"""Structured output for ``psyinsight serve``: ``response_format`` enforced by constrained decoding.

``{"type": "json_schema", "json_schema": {"name": ..., "schema": {...}}}`` and
``{"type": "json_object"}`` are accepted as the OpenAI API and vLLM accept them. The schema
is compiled to a grammar by xgrammar, whose transformers ``LogitsProcessor`` masks every
token that would leave the grammar, so each answer parses and matches the schema whatever
the model (unless ``max_tokens`` cuts it first: ``finish_reason`` is then ``length``).

Why xgrammar: measured on CPU with the embedded SmolLM2 (docs/structured_output.md), it
decodes at the speed of unconstrained generation and compiles a schema in about a second;
llguidance was about 20% slower per token, outlines compiled each schema in several
seconds and lm-format-enforcer does not import with transformers 5. JSON is generated
without free whitespace: a small model otherwise loops on newlines until ``max_tokens``.

The engine is wrapped (``StructuredEngine``), not changed: requests without a format go to
it untouched; requests with one carry ``StructuredParams`` (``GenParams`` plus the format),
so the worker only batches requests that share a format.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from psyinsight.counsel.engine import Generation, GenParams, cut_at_stop
from psyinsight.serve.config import ApiError

ANY_OBJECT = '{"type": "object"}'


@dataclass(frozen=True)
class ResponseFormat:
    """A checked ``response_format``: the schema as canonical JSON (hashable, so requests can batch)."""

    kind: str
    """``json_object`` or ``json_schema``."""
    schema: str
    name: str = ""


@dataclass(frozen=True)
class StructuredParams(GenParams):
    """Decoding settings of a request whose answer must follow ``response_format``."""

    response_format: ResponseFormat | None = None


def parse_response_format(value: Any) -> ResponseFormat | None:
    """``None`` for text, a ``ResponseFormat`` for json_object / json_schema; a 400 naming the field otherwise."""
    if value is None:
        return None
    kind = value.get("type") if isinstance(value, dict) else None
    if kind == "text":
        return None
    if kind == "json_object":
        return ResponseFormat("json_object", ANY_OBJECT)
    if kind != "json_schema":
        raise ApiError(400, "response_format.type must be 'text', 'json_object' or 'json_schema'", param="response_format")
    spec = value.get("json_schema")
    if not isinstance(spec, dict):
        raise ApiError(400, "response_format.json_schema must be an object with 'name' and 'schema'", param="response_format.json_schema")
    schema = spec.get("schema")
    if not isinstance(schema, dict):
        raise ApiError(400, "response_format.json_schema.schema must be a JSON Schema object", param="response_format.json_schema.schema")
    name = spec.get("name", "")
    if not isinstance(name, str):
        raise ApiError(400, "response_format.json_schema.name must be a string", param="response_format.json_schema.name")
    _check_schema(schema)
    return ResponseFormat("json_schema", json.dumps(schema, sort_keys=True, ensure_ascii=False), name)


def _check_schema(schema: dict[str, Any]) -> None:
    """A 400 for a schema that is not valid JSON Schema (draft 2020-12 meta-schema)."""
    try:
        import jsonschema
    except ImportError:
        return  # the grammar compiler still rejects what it cannot read (compile_grammar)
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        where = "/".join(str(p) for p in exc.path)
        raise ApiError(
            400,
            f"invalid JSON Schema{' at ' + where if where else ''}: {exc.message}",
            param="response_format.json_schema.schema",
            code="invalid_schema",
        ) from None


def constrained(params: GenParams, response_format: ResponseFormat) -> StructuredParams:
    """``params`` for a request that must follow ``response_format`` (no forced prefix: the grammar opens the object)."""
    fields = {name: getattr(params, name) for name in params.__dataclass_fields__}
    fields["prefix"] = ""
    return StructuredParams(**fields, response_format=response_format)


class GrammarCache:
    """Compiled grammars per schema for one tokenizer (compiling costs about a second; formats repeat)."""

    def __init__(self, tokenizer: Any, vocab_size: int, size: int = 64):
        import xgrammar as xgr

        self._xgr = xgr
        self._compiler = xgr.GrammarCompiler(xgr.TokenizerInfo.from_huggingface(tokenizer, vocab_size=vocab_size))
        self._cache: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()
        self._size = size

    def get(self, fmt: ResponseFormat) -> Any:
        with self._lock:
            if fmt.schema in self._cache:
                self._cache.move_to_end(fmt.schema)
                return self._cache[fmt.schema]
        try:
            compiled = self._compiler.compile_json_schema(fmt.schema, any_whitespace=False, strict_mode=True)
        except Exception as exc:  # noqa: BLE001 - the compiler's own error type varies by version
            raise ApiError(400, f"the schema cannot be enforced: {exc}", param="response_format.json_schema.schema", code="invalid_schema") from None
        with self._lock:
            self._cache[fmt.schema] = compiled
            while len(self._cache) > self._size:
                self._cache.popitem(last=False)
        return compiled

    def processor(self, fmt: ResponseFormat) -> Any:
        """A fresh logits processor (one per generate call: it keeps each row's grammar state)."""
        from xgrammar.contrib.hf import LogitsProcessor

        return LogitsProcessor(self.get(fmt))


def available() -> bool:
    """Whether constrained decoding can run here (xgrammar installed)."""
    try:
        import xgrammar  # noqa: F401
    except ImportError:
        return False
    return True


class StructuredEngine:
    """An engine that follows ``StructuredParams.response_format``; everything else goes to the wrapped engine.

    Constrained decoding needs the model's logits, so it runs on a transformers engine
    (``LocalEngine``: its model, tokenizer and lock). Another engine gets a 400 for a
    request with a format instead of an answer that may not follow it.
    """

    def __init__(self, engine: Any):
        self.engine = engine
        self._grammars: GrammarCache | None = None
        self._init_lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.engine, name)

    def supports(self) -> bool:
        return available() and hasattr(self.engine, "load") and hasattr(self.engine, "lock")

    def check(self, fmt: ResponseFormat) -> None:
        """Compile ``fmt`` now (a 400 at request time for a schema the compiler rejects)."""
        self._cache().get(fmt)

    def _cache(self) -> GrammarCache:
        if not self.supports():
            raise ApiError(
                400,
                "response_format json_schema/json_object needs a local transformers model and the "
                "'xgrammar' package (pip install 'psyinsight[serve]')",
                param="response_format",
                code="unsupported",
            )
        with self._init_lock:
            if self._grammars is None:
                self.engine.load()
                model = self.engine._model
                self._grammars = GrammarCache(self.engine._tokenizer, model.config.vocab_size)
        return self._grammars

    def _inputs(self, prompts: Sequence[Sequence[dict[str, str]]]) -> tuple[dict[str, Any], Any]:
        from psyinsight.train.templates import render_prompt

        tok = self.engine._tokenizer
        side, tok.padding_side = tok.padding_side, "left"
        try:
            batch = tok([render_prompt(tok, p) for p in prompts], return_tensors="pt", padding=True, add_special_tokens=False)
        finally:
            tok.padding_side = side
        device = next(self.engine._model.parameters()).device
        return {k: v.to(device) for k, v in batch.items()}, tok

    def _kwargs(self, params: StructuredParams) -> dict[str, Any]:
        from transformers import LogitsProcessorList

        kwargs = self.engine.decode_kwargs(params)
        kwargs["logits_processor"] = LogitsProcessorList([self._cache().processor(params.response_format)])  # type: ignore[arg-type]
        return kwargs

    def generate(self, prompts: Sequence[Sequence[dict[str, str]]], params: GenParams) -> list[Generation]:
        if not isinstance(params, StructuredParams) or params.response_format is None:
            return self.engine.generate(prompts, params)
        import torch

        self._cache()
        with self.engine.lock:
            batch, tok = self._inputs(prompts)
            kwargs = self._kwargs(params)
            torch.manual_seed(params.seed)
            with torch.inference_mode():
                out = self.engine._model.generate(**batch, **kwargs)
        width = batch["input_ids"].shape[1]
        results = []
        for prompt, row in zip(prompts, out[:, width:]):
            ids = [int(t) for t in row if int(t) != tok.pad_token_id or tok.pad_token_id == tok.eos_token_id]
            ended = tok.eos_token_id in ids
            ids = ids[: ids.index(tok.eos_token_id)] if ended else ids
            text = tok.decode(ids, skip_special_tokens=True)
            text, stopped = cut_at_stop(text, params.stop)
            finish = "stop" if ended or stopped else "length"
            results.append(Generation(text.strip(), self.engine.count_prompt_tokens(prompt), len(ids), finish))
        return results

    def stream(self, prompt: Sequence[dict[str, str]], params: GenParams) -> Iterator[str]:
        """Pieces of the constrained answer as the model writes them."""
        if not isinstance(params, StructuredParams) or params.response_format is None:
            yield from self.engine.stream(prompt, params)
            return
        import torch
        from transformers import TextIteratorStreamer

        self._cache()
        self.engine.lock.acquire()
        try:
            batch, tok = self._inputs([prompt])
            streamer = TextIteratorStreamer(tok, skip_prompt=True, skip_special_tokens=True, timeout=600)
            kwargs = dict(batch, streamer=streamer, **self._kwargs(params))  # type: ignore[arg-type]

            def run() -> None:
                try:
                    torch.manual_seed(params.seed)
                    with torch.inference_mode():
                        self.engine._model.generate(**kwargs)
                except Exception:
                    streamer.end()
                    raise
                finally:
                    self.engine.lock.release()

            threading.Thread(target=run, name="psyinsight-structured-stream", daemon=True).start()
        except BaseException:
            self.engine.lock.release()
            raise
        yield from streamer
