"""Batched, seeded generation of counselor turns, and the predictions file.

``generate_replies`` is the one place that turns chat prompts into text: the prompts are
rendered with the tokenizer's chat template (templates.py), sorted by length so a batch
wastes little padding, left-padded (new tokens then follow every prompt directly), and
generated greedily or with sampling under a fixed seed per batch. The server reuses it.

``generate_predictions`` runs it over an examples file and writes one ``Prediction`` per
Example id, with its reference and parsed parts; a parse failure is kept and counted.
The run resumes: ids already in the output are not generated again. The same function
sends the same prompts to an OpenAI-compatible endpoint (``backend="api"``, through the
project's one LLM client), so an API model and a local one are scored on identical inputs;
a request that fails (after its retries) or comes back empty is left out of the file and
counted, and the next run asks for it again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from psyinsight.errors import PsyInsightError

if TYPE_CHECKING:
    from psyinsight.llm import LLMConfig
    from psyinsight.records import Example

log = logging.getLogger(__name__)


@dataclass
class GenerationConfig:
    """How to decode. Greedy by default (reproducible metrics); sampling is seeded."""

    max_new_tokens: int = field(default=128, metadata={"help": "Most tokens to generate per reply."})
    do_sample: bool = field(default=False, metadata={"help": "Sample instead of greedy decoding."})
    temperature: float = field(default=0.7, metadata={"help": "Sampling temperature (with do_sample)."})
    top_p: float = field(default=0.9, metadata={"help": "Nucleus sampling mass (with do_sample)."})
    seed: int = field(default=13, metadata={"help": "Seed; batch i uses seed + i, so results do not depend on timing."})
    batch_size: int = field(default=8, metadata={"help": "Prompts per forward pass."})
    repetition_penalty: float = field(default=1.0, metadata={"help": "1.0 = off; >1 discourages repeats."})

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise PsyInsightError("must be at least 1", where="max_new_tokens")
        if self.batch_size < 1:
            raise PsyInsightError("must be at least 1", where="batch_size")
        if self.do_sample and self.temperature <= 0:
            raise PsyInsightError("must be > 0 when sampling (or turn sampling off)", where="temperature")


def generate_replies(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[Sequence[Any]],
    *,
    max_new_tokens: int = 128,
    do_sample: bool = False,
    temperature: float = 0.7,
    top_p: float = 0.9,
    seed: int = 13,
    batch_size: int = 8,
    repetition_penalty: float = 1.0,
    on_batch: Callable[[list[int], list[str]], None] | None = None,
) -> list[str]:
    """Generate one reply per message list (chat form), in the input order.

    ``on_batch(indices, texts)`` is called after each batch (for incremental saving).
    """
    import torch

    from psyinsight.train.templates import render_prompt

    config = GenerationConfig(max_new_tokens, do_sample, temperature, top_p, seed, batch_size, repetition_penalty)
    texts = [render_prompt(tokenizer, messages) for messages in prompts]
    lengths = [len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts]
    order = sorted(range(len(texts)), key=lambda i: -lengths[i])
    outputs: list[str] = [""] * len(texts)
    previous_side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    device = next(model.parameters()).device
    gen_kwargs: dict[str, Any] = {
        "max_new_tokens": config.max_new_tokens,
        "do_sample": config.do_sample,
        "pad_token_id": tokenizer.pad_token_id,
        "repetition_penalty": config.repetition_penalty,
    }
    if config.do_sample:
        gen_kwargs.update(temperature=config.temperature, top_p=config.top_p)
    else:  # silence "temperature is ignored" warnings from generation configs that set them
        gen_kwargs.update(temperature=None, top_p=None, top_k=None)
    try:
        for batch_no, first in enumerate(range(0, len(order), config.batch_size)):
            indices = order[first : first + config.batch_size]
            batch = tokenizer([texts[i] for i in indices], return_tensors="pt", padding=True, add_special_tokens=False)
            batch = {k: v.to(device) for k, v in batch.items()}
            torch.manual_seed(config.seed + batch_no)
            with torch.inference_mode():
                out = model.generate(**batch, **gen_kwargs)
            new_tokens = out[:, batch["input_ids"].shape[1] :]
            decoded = tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
            decoded = [d.strip() for d in decoded]
            for i, d in zip(indices, decoded):
                outputs[i] = d
            if on_batch is not None:
                on_batch(indices, decoded)
    finally:
        tokenizer.padding_side = previous_side
    return outputs


BACKENDS = ("transformers", "vllm", "api")

API_CHUNK_PER_SLOT = 4
"""API requests per concurrency slot sent between two saves of the partial file."""


@dataclass
class GenerationReport:
    """What a predictions run did: counts, parse failures, request failures, timing, LLM usage."""

    output: Path
    total: int
    generated: int
    resumed: int
    parse_failures: int
    seconds: float
    backend: str
    failed: int = 0
    """Examples with no prediction this run (API: failed after retries, or empty); left out of the file."""
    first_error: str = ""
    """The first failure as ``<example id>: <reason>``, for the one-line message."""
    llm: dict[str, Any] | None = None
    """The API backend's client statistics (requests, cache hits, retries, tokens)."""

    def as_dict(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in self.__dict__.items()}


def decoding_meta(config: GenerationConfig, backend: str) -> dict[str, Any]:
    """How a prediction was decoded, as its ``meta.decoding`` records it (the same keys for every backend)."""
    meta: dict[str, Any] = {"backend": backend, "max_new_tokens": config.max_new_tokens, "do_sample": config.do_sample, "seed": config.seed}
    if config.do_sample:
        meta.update(temperature=config.temperature, top_p=config.top_p)
    if config.repetition_penalty != 1.0 and backend != "api":
        meta["repetition_penalty"] = config.repetition_penalty
    return meta


def _prediction_row(example: Example, text: str, model_label: str | None = None, decoding: dict[str, Any] | None = None) -> dict[str, Any]:
    from psyinsight.generate.parse import to_prediction

    meta = dict(example.meta)
    if model_label:
        meta["model"] = model_label
    if decoding:
        meta["decoding"] = decoding
    pred = to_prediction(
        example.id,
        text,
        reference=example.reference,
        language=str(meta.get("language", "en")),
        task=str(meta.get("task", "dialog")),
        meta=meta,
    )
    return pred.model_dump()


def generate_predictions(
    examples: Sequence[Example],
    output: str | Path,
    *,
    model: Any = None,
    tokenizer: Any = None,
    config: GenerationConfig | None = None,
    backend: str = "transformers",
    vllm_model: str | None = None,
    vllm_adapter: str | None = None,
    model_label: str | None = None,
    llm: LLMConfig | None = None,
) -> GenerationReport:
    """Write ``output`` (JSONL of ``Prediction``), resuming from the ids already there.

    Rows are appended after every batch and the file is rewritten atomically at the end,
    in the examples' order. ``backend="vllm"`` uses vLLM (GPU machines, optional);
    ``backend="api"`` sends each example's messages to the endpoint in ``llm``.
    ``model_label`` is written to each row's ``meta.model`` (evaluation groups by it).
    Examples that got no text (API failures) are not written: ``report.failed`` counts them,
    and when nothing at all is left to write, no file is written.
    """
    import json
    import time

    from psyinsight.fileio import read_jsonl, write_jsonl

    config = config or GenerationConfig()
    output = Path(output)
    seen: dict[str, dict[str, Any]] = {}
    partial = output.with_name(output.name + ".partial")
    for source in (output, partial):
        if source.is_file():
            for row in read_jsonl(source):
                if isinstance(row, dict) and "id" in row:
                    seen[str(row["id"])] = row
    ids = [e.id for e in examples]
    if len(set(ids)) != len(ids):
        raise PsyInsightError("example ids repeat; each Example id must be unique in a file", where="examples")
    if backend not in BACKENDS:
        raise PsyInsightError(f"unknown backend {backend!r}; choose {', '.join(BACKENDS)}", where="--backend")
    todo = [e for e in examples if e.id not in seen]
    decoding = decoding_meta(config, backend)
    failures: list[tuple[int, str]] = []
    llm_stats: dict[str, Any] | None = None
    start = time.perf_counter()
    output.parent.mkdir(parents=True, exist_ok=True)
    with open(partial, "a", encoding="utf-8") as sink:

        def save(indices: list[int], texts: list[str]) -> None:
            for i, text in zip(indices, texts):
                row = _prediction_row(todo[i], text, model_label, decoding)
                seen[todo[i].id] = row
                sink.write(json.dumps(row, ensure_ascii=False) + "\n")
            sink.flush()

        if todo:
            prompts = [e.messages for e in todo]
            if backend == "api":
                if llm is None:
                    raise PsyInsightError("the API backend needs an endpoint (LLMConfig)", where="generate")
                failures, llm_stats = _generate_api(prompts, config, llm, save)
            elif backend == "vllm":
                _generate_vllm(prompts, config, vllm_model, vllm_adapter, save)
            else:
                if model is None or tokenizer is None:
                    raise PsyInsightError("a model and tokenizer are needed", where="generate")
                generate_replies(
                    model,
                    tokenizer,
                    prompts,
                    max_new_tokens=config.max_new_tokens,
                    do_sample=config.do_sample,
                    temperature=config.temperature,
                    top_p=config.top_p,
                    seed=config.seed,
                    batch_size=config.batch_size,
                    repetition_penalty=config.repetition_penalty,
                    on_batch=save,
                )
    rows = [seen[i] for i in ids if i in seen]
    if rows or not failures:  # an empty examples list still writes its (empty) file
        write_jsonl(output, rows)
    partial.unlink(missing_ok=True)
    return GenerationReport(
        output=output,
        total=len(rows),
        generated=len(todo) - len(failures),
        resumed=len(examples) - len(todo),
        parse_failures=sum(1 for r in rows if not r.get("parse_ok", False)),
        seconds=round(time.perf_counter() - start, 2),
        backend=backend,
        failed=len(failures),
        first_error=f"{todo[failures[0][0]].id}: {failures[0][1]}" if failures else "",
        llm=llm_stats,
    )


def api_request_params(config: GenerationConfig) -> dict[str, Any]:
    """The decoding settings as chat-completion parameters: greedy is temperature 0; the seed
    goes along (servers that take it sample reproducibly; the cache key includes it)."""
    params: dict[str, Any] = {"max_tokens": config.max_new_tokens, "seed": config.seed}
    if config.do_sample:
        params.update(temperature=config.temperature, top_p=config.top_p)
    else:
        params["temperature"] = 0.0
    return params


def _generate_api(
    prompts: Sequence[Sequence[Any]],
    config: GenerationConfig,
    llm: LLMConfig,
    save: Callable[[list[int], list[str]], None],
) -> tuple[list[tuple[int, str]], dict[str, Any]]:
    """API backend: the prompts through ``LLMClient.complete_many`` in chunks (each saved when done).

    Returns the failures as ``(index, reason)`` and the client's statistics. An empty reply is
    a failure, and its cache entry is dropped so that the next run asks again. When every
    request of a chunk failed, the rest are not sent (and count as failed): the endpoint is
    not answering, and retrying each example would only take time.
    """
    from psyinsight.llm import ChatRequest, LLMClient
    from psyinsight.train.templates import as_dicts

    params = api_request_params(config)
    failures: list[tuple[int, str]] = []
    chunk = max(1, API_CHUNK_PER_SLOT * llm.max_concurrency)
    with LLMClient(llm) as client:
        for first in range(0, len(prompts), chunk):
            indices = list(range(first, min(first + chunk, len(prompts))))
            results = client.complete_many([ChatRequest(messages=as_dicts(prompts[i]), params=params, tag="generate") for i in indices])
            done: list[int] = []
            texts: list[str] = []
            for i, result in zip(indices, results):
                text = (result.text or "").strip()
                if not result.ok:
                    failures.append((i, str(result.error)))
                elif not text:
                    failures.append((i, "empty reply"))
                    client.forget(result)
                else:
                    done.append(i)
                    texts.append(text)
            if done:
                save(done, texts)
            elif not any(r.ok for r in results) and indices[-1] + 1 < len(prompts):
                # Not one answer in a whole chunk (a wrong URL, key or model): stop instead of retrying every example.
                reason = f"not sent: all {len(indices)} requests before it failed"
                failures += [(i, reason) for i in range(indices[-1] + 1, len(prompts))]
                break
        stats = client.stats.as_dict()
    return failures, stats


def _generate_vllm(
    prompts: Sequence[Sequence[Any]],
    config: GenerationConfig,
    model: str | None,
    adapter: str | None,
    save: Callable[[list[int], list[str]], None],
) -> None:
    """vLLM backend: one engine, all prompts at once (it batches internally)."""
    try:
        from vllm import LLM, SamplingParams  # type: ignore[import-not-found]
    except ImportError:
        raise PsyInsightError(
            "the vLLM backend needs `pip install vllm` on a CUDA machine; use --backend transformers elsewhere",
            where="--backend vllm",
        ) from None
    if not model:
        raise PsyInsightError("the vLLM backend needs the base model path", where="--model")
    from psyinsight.train.templates import as_dicts

    llm = LLM(model=model, enable_lora=adapter is not None, seed=config.seed)
    params = SamplingParams(
        max_tokens=config.max_new_tokens,
        temperature=config.temperature if config.do_sample else 0.0,
        top_p=config.top_p if config.do_sample else 1.0,
        repetition_penalty=config.repetition_penalty,
        seed=config.seed,
    )
    kwargs: dict[str, Any] = {}
    if adapter is not None:
        from vllm.lora.request import LoRARequest  # type: ignore[import-not-found]

        kwargs["lora_request"] = LoRARequest("adapter", 1, adapter)
    results = llm.chat([as_dicts(p) for p in prompts], params, **kwargs)
    save(list(range(len(prompts))), [r.outputs[0].text.strip() for r in results])
