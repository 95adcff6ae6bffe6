"""Training recipes: config dataclasses with help text, loaded strictly from YAML.

A recipe has sections ``model``, ``lora``, ``data``, ``tasks`` (tasks.TaskConfig),
``training`` and ``generation`` (generate.GenerationConfig). The dataclasses carry the
help text; pydantic checks a file against them strictly (``extra="forbid"``, strict JSON
types): an unknown key (a typo) or a value of the wrong type is an error naming the file,
the key and the fix, never silently ignored. Shipped recipes live in ``psyinsight/recipes/``
and are found by name (``psyinsight train cpu-default``).
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import json
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import ConfigDict, TypeAdapter, ValidationError, create_model

from psyinsight.data.splits import check_split
from psyinsight.errors import PsyInsightError
from psyinsight.generate.generation import GenerationConfig
from psyinsight.tasks.examples import TaskConfig
from psyinsight.train.loss import DEFAULT_W_PROMPT, check_prompt_sample, check_w_prompt

QUANTIZATIONS = ("none", "4bit")
DTYPES = ("auto", "float32", "bfloat16", "float16")
SOURCES_HELP = "'sample' (bundled), 'release' (the release folder), or a session file in the release format"


@dataclass
class ModelSection:
    """Which base model, in which precision."""

    name: str = field(default="smollm2", metadata={"help": "'smollm2' (embedded default), a local folder, or a hub id."})
    dtype: str = field(default="auto", metadata={"help": f"One of {', '.join(DTYPES)}; auto = bf16 on GPUs that have it, else float32."})
    quantization: str = field(default="none", metadata={"help": "none, or 4bit (QLoRA NF4 via bitsandbytes; CUDA only)."})
    gradient_checkpointing: bool = field(default=False, metadata={"help": "True saves activation memory at ~30% more compute."})
    attn_implementation: str | None = field(default=None, metadata={"help": "e.g. sdpa, flash_attention_2; None: the library's choice."})

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise PsyInsightError(f"unknown dtype {self.dtype!r}; choose from {', '.join(DTYPES)}", where="model.dtype")
        if self.quantization not in QUANTIZATIONS:
            raise PsyInsightError(f"unknown quantization {self.quantization!r}; choose from {', '.join(QUANTIZATIONS)}", where="model.quantization")


@dataclass
class LoraSection:
    """The LoRA adapter (peft)."""

    r: int = field(default=16, metadata={"help": "Rank; more = more capacity and memory (the release: 256)."})
    alpha: int = field(default=32, metadata={"help": "Scale numerator (scale = alpha / r; the release: 128)."})
    dropout: float = field(default=0.05, metadata={"help": "Dropout on the adapter input."})
    target_modules: list[str] = field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        metadata={"help": "Module names to adapt, or ['all-linear']."},
    )
    lm_head: bool = field(default=False, metadata={"help": "Also adapt the output projection (the release did)."})

    def __post_init__(self) -> None:
        if self.r < 1 or self.alpha < 1:
            raise PsyInsightError("r and alpha must be positive", where="lora")
        if not 0 <= self.dropout < 1:
            raise PsyInsightError("must be in [0, 1)", where="lora.dropout")


@dataclass
class DataSection:
    """Where sessions come from and which split trains / evaluates."""

    source: str = field(default="sample", metadata={"help": f"Sessions: {SOURCES_HELP}."})
    data_dir: str | None = field(default=None, metadata={"help": "Release folder for source 'release' (default: found automatically)."})
    languages: list[str] = field(default_factory=lambda: ["en", "cn"], metadata={"help": "Languages to keep (en, cn)."})
    split_file: str | None = field(
        default=None, metadata={"help": "A split file (`psyinsight data split`); default: the leak-free split computed with seed."}
    )
    split_seed: int = field(default=13, metadata={"help": "Seed of the computed split."})
    train_split: str = field(default="train", metadata={"help": "Split to train on."})
    eval_split: str | None = field(default="validation", metadata={"help": "Split to measure held-out target loss on; None: no evaluation."})
    max_train_examples: int | None = field(default=None, metadata={"help": "Keep a seeded random subset of this many training examples."})
    max_eval_examples: int | None = field(default=64, metadata={"help": "Held-out examples to evaluate (seeded subset)."})
    examples_file: str | None = field(default=None, metadata={"help": "Train on a prebuilt `tasks build` JSONL instead of building from sessions."})
    eval_examples_file: str | None = field(default=None, metadata={"help": "Evaluate on a prebuilt JSONL."})

    def __post_init__(self) -> None:
        for name in ("train_split", "eval_split"):
            value = getattr(self, name)
            if value is not None:
                check_split(value, f"data.{name}")


@dataclass
class TrainingSection:
    """The optimisation (transformers TrainingArguments under the hood)."""

    output_dir: str = field(default="runs/cpu-default", metadata={"help": "Checkpoints, logs and the final adapter (output_dir/adapter)."})
    w_prompt: float = field(
        default=DEFAULT_W_PROMPT, metadata={"help": "Loss weight of prompt tokens (target tokens: 1.0); 0 reproduces the release."}
    )
    max_length: int = field(default=1024, metadata={"help": "Token budget per example; the oldest history turns are dropped to fit."})
    epochs: float = field(default=1.0, metadata={"help": "Passes over the training examples (ignored when max_steps > 0)."})
    max_steps: int = field(default=-1, metadata={"help": "Optimizer steps; -1: run `epochs`."})
    learning_rate: float = field(default=2e-4, metadata={"help": "Peak learning rate."})
    lr_scheduler: str = field(default="cosine", metadata={"help": "transformers scheduler name (cosine, linear, constant...)."})
    warmup_ratio: float = field(default=0.03, metadata={"help": "Fraction of steps warming up."})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay."})
    batch_size: int = field(default=4, metadata={"help": "Examples per micro-batch per device."})
    grad_accum: int = field(default=1, metadata={"help": "Micro-batches per optimizer step (the loss is normalised over all of them)."})
    group_by_length: bool = field(
        default=True, metadata={"help": "Batch examples of similar length: less padding, faster. Off for a sequential mix."}
    )
    seed: int = field(default=13, metadata={"help": "Seed of initialisation, data order and dropout."})
    logging_steps: int = field(default=10, metadata={"help": "Log the loss every N steps."})
    save_steps: int = field(default=100, metadata={"help": "Checkpoint every N steps (resume from the last one)."})
    save_total_limit: int = field(default=2, metadata={"help": "Checkpoints kept."})
    eval_base: bool = field(default=True, metadata={"help": "Also measure the base model's held-out target loss, before training."})
    num_threads: int | None = field(default=None, metadata={"help": "CPU threads for torch (None: torch's default)."})
    optim: str = field(default="adamw_torch", metadata={"help": "Optimizer (e.g. adamw_torch, paged_adamw_8bit on CUDA)."})
    max_grad_norm: float = field(default=1.0, metadata={"help": "Gradient clipping."})
    prompt_loss_sample: float = field(
        default=1.0,
        metadata={
            "help": "Share of prompt tokens scored per step, each at weight w_prompt / share: an unbiased estimate of the prompt loss at that share of its cost (1.0 = exact)."
        },
    )
    fused_loss: bool = field(
        default=True,
        metadata={
            "help": "Vocabulary projection and cross-entropy in one chunked pass where the model allows it (loss.py). Same loss, less time and memory."
        },
    )
    skip_unweighted_logits: bool = field(
        default=True,
        metadata={
            "help": "Unfused path: project to the vocabulary only where a token has loss weight (w_prompt = 0: target columns only). Same loss, less compute."
        },
    )

    def __post_init__(self) -> None:
        check_w_prompt(self.w_prompt)
        check_prompt_sample(self.prompt_loss_sample, self.w_prompt)
        for name in ("batch_size", "grad_accum", "max_length", "logging_steps", "save_steps"):
            if getattr(self, name) < 1:
                raise PsyInsightError("must be at least 1", where=f"training.{name}")
        if self.max_steps <= 0 and self.epochs <= 0:
            raise PsyInsightError("set epochs > 0 or max_steps > 0", where="training")


@dataclass
class Recipe:
    """A whole training run: every section has defaults, a YAML file overrides them."""

    name: str = field(default="cpu-default", metadata={"help": "Short name, recorded with the adapter."})
    description: str = field(default="", metadata={"help": "One line on what this recipe is for."})
    model: ModelSection = field(default_factory=ModelSection)
    lora: LoraSection = field(default_factory=LoraSection)
    data: DataSection = field(default_factory=DataSection)
    tasks: TaskConfig = field(default_factory=TaskConfig)
    training: TrainingSection = field(default_factory=TrainingSection)
    generation: GenerationConfig = field(default_factory=GenerationConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# ---------------------------------------------------------------- strict loading

_STRICT = ConfigDict(extra="forbid", strict=True)
"""No unknown key, and no coercion: ``"2"`` is not an int, ``2.0`` is not an int, ``1`` is not a bool."""


def _join(outer: str | None, inner: str | None) -> str | None:
    """``outer.inner``, unless ``inner`` already starts with ``outer`` (a section naming itself)."""
    if not outer or not inner:
        return outer or inner
    return inner if inner == outer or inner.startswith(outer + ".") else f"{outer}.{inner}"


def _relocated(exc: PsyInsightError, *, path: str | Path | None, where: str | None) -> PsyInsightError:
    """``exc`` (raised by a section's own checks, where= relative to it) placed in the file and the section."""
    message = str(exc)
    if exc.path is None and exc.where:
        message = message.removeprefix(f"{exc.where}: ")
    return PsyInsightError(message, path=exc.path or path, where=_join(where, exc.where))


@functools.cache
def _validator(cls: type) -> TypeAdapter[Any]:
    """A strict pydantic model with the fields of dataclass ``cls``. A nested section is taken here
    as a mapping (or null: its defaults) and validated on its own, so its errors carry its name."""
    hints = typing.get_type_hints(cls)
    fields: dict[str, Any] = {
        f.name: (dict[str, Any] | None if dataclasses.is_dataclass(hints[f.name]) else hints[f.name], None) for f in dataclasses.fields(cls)
    }
    return TypeAdapter(create_model(f"{cls.__name__}Settings", __config__=_STRICT, **fields))


def _json_text(data: Any, *, path: str | Path | None, where: str) -> str:
    """The settings as JSON text, which pydantic validates in its strict JSON mode: YAML gives
    JSON types (a list is fine for a tuple field), anything else (a date, a set) is refused here."""

    def plain(value: Any, at: str) -> Any:
        if isinstance(value, dict):
            return {str(k): plain(v, _join(at, str(k)) or "") for k, v in value.items()}
        if isinstance(value, list):
            return [plain(v, at) for v in value]
        if value is None or isinstance(value, (str, int, float, bool)):
            return value
        raise PsyInsightError(f"{type(value).__name__} {value!r} is not a setting value; quote it to make it text", path=path, where=at or None)

    return json.dumps(plain(data, where))


def _one_line(error: ValidationError, cls: type, data: dict[str, Any], *, path: str | Path | None, section: str) -> PsyInsightError:
    """The first problem pydantic found, as one line naming the key (and the closest known key for a typo)."""
    name = str(error.errors()[0]["loc"][0])
    where = _join(section, name)
    known = [f.name for f in dataclasses.fields(cls)]
    if name not in known:
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else f"; known keys: {', '.join(known)}"
        return PsyInsightError(f"unknown setting {name!r}{hint}", path=path, where=where)
    annotation, value = typing.get_type_hints(cls)[name], data[name]
    if dataclasses.is_dataclass(annotation):
        return PsyInsightError(f"expected a mapping of settings, got {type(value).__name__}", path=path, where=where)
    return PsyInsightError(f"expected {_type_name(annotation)}, got {type(value).__name__} {value!r}", path=path, where=where)


def _type_name(annotation: Any) -> str:
    return str(annotation).replace("typing.", "").replace("<class '", "").replace("'>", "")


def build_section(cls: type, data: Any, *, path: str | Path | None, section: str) -> Any:
    """Instantiate dataclass ``cls`` (a recipe, or one of its sections) from a mapping.

    pydantic checks it (``extra="forbid"``, strict JSON types; nested sections in turn); the first
    problem becomes one ``PsyInsightError`` naming the file and the key, with "did you mean"
    for an unknown key. ``cls``'s own checks (``__post_init__``) run as usual.
    """
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise PsyInsightError(f"expected a mapping of settings, got {type(data).__name__}", path=path, where=section or "top level")
    text = _json_text(data, path=path, where=section)
    try:
        checked = _validator(cls).validate_json(text)
    except ValidationError as exc:
        raise _one_line(exc, cls, data, path=path, section=section) from None
    hints = typing.get_type_hints(cls)
    values = {}
    for name in checked.model_fields_set:
        value = getattr(checked, name)
        if dataclasses.is_dataclass(hints[name]):
            value = build_section(hints[name], value, path=path, section=_join(section, name) or name)
        values[name] = value
    try:
        return cls(**values)
    except PsyInsightError as exc:
        raise _relocated(exc, path=path, where=section or None) from None


def shipped_recipes() -> dict[str, Path]:
    """Name → path of the recipes shipped with the package."""
    folder = resources.files("psyinsight") / "recipes"
    return {Path(str(p)).stem: Path(str(p)) for p in folder.iterdir() if str(p).endswith((".yaml", ".yml"))}


def find_recipe(name_or_path: str | Path) -> Path:
    """A recipe file path: an existing file, or the name of a shipped recipe."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    shipped = shipped_recipes()
    key = path.stem if path.suffix in (".yaml", ".yml") else str(name_or_path)
    if key in shipped:
        return shipped[key]
    raise PsyInsightError(
        f"no such recipe file, and no shipped recipe of that name; shipped: {', '.join(sorted(shipped))}",
        path=path,
    )


def load_recipe(name_or_path: str | Path, overrides: list[str] | None = None) -> Recipe:
    """Read a recipe YAML (strictly) and apply ``section.key=value`` overrides."""
    from psyinsight.fileio import read_yaml

    path = find_recipe(name_or_path)
    data = read_yaml(path)
    if data is None or data == {}:
        # An empty file would run as the defaults under another name: almost surely a mistake.
        raise PsyInsightError("the recipe is empty; start from a shipped one (`psyinsight train cpu-default --show`)", path=path)
    if not isinstance(data, dict):
        raise PsyInsightError(f"expected a mapping of sections (model, data, training...), found {type(data).__name__}", path=path)
    apply_overrides(data, overrides)
    return build_section(Recipe, data, path=path, section="")


def apply_overrides(data: dict[str, Any], overrides: list[str] | None, *, flat: tuple[str, ...] = ()) -> None:
    """Apply ``--set section.key=value`` items (values read as YAML) to settings ``data`` in place.

    A section named in ``flat`` holds dotted keys itself: ``settings.training.max_steps=5`` sets
    ``data["settings"]["training.max_steps"]``.
    """
    import yaml

    for item in overrides or []:
        dotted, sep, raw = item.partition("=")
        if not sep or not dotted.strip():
            raise PsyInsightError(f"override {item!r} must look like section.key=value", where="--set")
        keys = dotted.strip().split(".")
        if keys[0] in flat and len(keys) > 1:
            keys = [keys[0], ".".join(keys[1:])]
        node = data
        for k in keys[:-1]:
            node = node.setdefault(k, {})
            if not isinstance(node, dict):
                raise PsyInsightError(f"{k!r} is not a section", where=f"--set {item}")
        node[keys[-1]] = yaml.safe_load(raw)


def recipe_of_adapter(adapter: str | Path) -> Recipe:
    """The recipe an adapter was trained with, read from the metadata `psyinsight train` saved beside it.

    An adapter saved by other tools has no such record: it gets the default recipe, so a
    command reading the adapter's data, task and model sees the same defaults as ``train``.
    The stored recipe is checked as strictly as a recipe file, naming the adapter folder.
    """
    from psyinsight.models import read_adapter_meta

    stored = read_adapter_meta(adapter).get("recipe")
    return build_section(Recipe, stored, path=adapter, section="") if stored else Recipe()
