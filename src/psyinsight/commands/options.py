"""Option definitions shared by several commands: each flag's names and default are written once.

An option whose help is the same everywhere is a constant (``SAMPLE``); one whose help says
what it does in that command is a function taking the help (``seed(help)``), so the names,
short flag and default still come from here. Typer reads these objects without changing
them, so one object may serve several commands.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import typer

DEFAULT_SEED = 13
"""The seed of computed splits, shuffles and sampling unless ``--seed`` says otherwise."""

DEFAULT_API_KEY_ENV = "OPENAI_API_KEY"

RELEASE_DIR_HELP = "Folder with the release files (default: $PSYINSIGHT_DATA_DIR or ../shared/data/psy-insight)."

# Sessions: where a command reads them from.
SAMPLE = typer.Option(False, "--sample", help="Use the bundled synthetic sample instead of the release.")
LANGUAGES = typer.Option(None, "--language", "-l", help="Only this language (en or cn); repeatable.")
SPLIT_FILE = typer.Option(None, "--split-file", help="A split file from `psyinsight data split` (default: the leak-free split computed with --seed).")
RAW = typer.Option(False, "--raw", help="Keep the data untouched: no repair rules (duplicates, echoed labels and aliases stay).")

# Models.
DEVICE = typer.Option(None, "--device", help="cpu, cuda, cuda:1... (default: cuda when available).")

# The safety layer, in `safety`, `serve` and `chat`.
REGION = typer.Option(None, "--region", help="Crisis hotline region: US, CA, UK, IE, AU, NZ, SG, IN, CN, HK, TW or INTL (default: per language).")
CRISIS_RESOURCES = typer.Option(
    None, "--crisis-resources", help="Crisis message + hotline YAML (default: $PSYINSIGHT_CRISIS_RESOURCES or the bundled file)."
)
RISK_MODEL = typer.Option(None, "--model", help="Risk model (.npz written by `psyinsight safety train`; default: the bundled one).")
SECOND_OPINION_URL = typer.Option(
    None,
    "--second-opinion-url",
    help="OpenAI-compatible URL of a guard model (e.g. Llama Guard behind vLLM) asked about borderline messages; fails closed. Off by default.",
)
SECOND_OPINION_MODEL = typer.Option("default", "--second-opinion-model", help="Model name sent to the second-opinion endpoint.")


def data_dir(help: str = RELEASE_DIR_HELP) -> Any:
    """``--data-dir``: the release folder."""
    return typer.Option(None, "--data-dir", help=help)


def files(help: str) -> Any:
    """``--file/-f``: session files in the release format, repeatable."""
    return typer.Option(None, "--file", "-f", help=help)


def seed(help: str) -> Any:
    """``--seed``, defaulting to :data:`DEFAULT_SEED`."""
    return typer.Option(DEFAULT_SEED, "--seed", help=help)


def language(default: str | None, help: str) -> Any:
    """``--language/-l``: one language (``en``/``cn``), checked by ``checks.language``."""
    return typer.Option(default, "--language", "-l", help=help)


# An OpenAI-compatible endpoint, in `build`, `judge` and `generate --base-url`.


def base_url(default: str | None, help: str) -> Any:
    return typer.Option(default, "--base-url", help=help)


def api_key_env(help: str) -> Any:
    """``--api-key-env``: the variable holding the key, so the key itself is never an argument."""
    return typer.Option(DEFAULT_API_KEY_ENV, "--api-key-env", help=help)


def concurrency(help: str) -> Any:
    """``--concurrency``: requests in flight at once."""
    return typer.Option(8, "--concurrency", help=help)


def retries(help: str) -> Any:
    """``--retries``: retries after the first attempt on 429, 5xx and timeouts."""
    return typer.Option(4, "--retries", help=help)


def timeout(default: float, help: str) -> Any:
    """``--timeout``: seconds per attempt."""
    return typer.Option(default, "--timeout", help=help)


def llm_cache(help: str) -> Any:
    """``--cache``: the SQLite file of answers (the default is the command's own)."""
    return typer.Option(None, "--cache", help=help)


def config_help(cls_path: str, name: str) -> str:
    """Help text of a config field, so the CLI and the config say the same thing."""
    import importlib

    module, cls_name = cls_path.rsplit(".", 1)
    cls = getattr(importlib.import_module(module), cls_name)
    return next(f.metadata.get("help", "") for f in fields(cls) if f.name == name)


# Scoring, in `evaluate` and `report`.
_M = "psyinsight.evaluate.metrics.suite.MetricConfig"
METRICS = typer.Option(None, "--metrics", help=config_help(_M, "metrics") + " (comma-separated; default: all)")
BERTSCORE_MODEL_EN = typer.Option(None, "--bertscore-model-en", help=config_help(_M, "bertscore_model_en"))
BERTSCORE_LAYER_EN = typer.Option(None, "--bertscore-layer-en", help=config_help(_M, "bertscore_layer_en"))
BERTSCORE_MODEL_ZH = typer.Option(None, "--bertscore-model-zh", help=config_help(_M, "bertscore_model_zh"))
BERTSCORE_LAYER_ZH = typer.Option(None, "--bertscore-layer-zh", help=config_help(_M, "bertscore_layer_zh"))
BERTSCORE_BATCH_SIZE = typer.Option(64, "--bertscore-batch-size", help=config_help(_M, "bertscore_batch_size"))
BERTSCORE_RESCALE = typer.Option(False, "--bertscore-rescale", help=config_help(_M, "bertscore_rescale"))
METRIC_DEVICE = typer.Option(None, "--device", help=config_help(_M, "device"))
ZH_ROUGE_UNIT = typer.Option("word", "--zh-rouge-unit", help=config_help(_M, "zh_rouge_unit"))
WORDNET_DIR = typer.Option(None, "--wordnet-dir", help=config_help(_M, "wordnet_dir"))
KEEP_SPEAKER = typer.Option(False, "--keep-speaker", help="score the texts with their 'Therapist:' markers (the release's way; not recommended)")
FORCE = typer.Option(False, "--force", help="recompute even when an up-to-date evaluation file exists")

# Uncertainty, in `report`: sacrebleu's paired-bootstrap defaults (evaluate.bootstrap.DEFAULT_SAMPLES/DEFAULT_SEED,
# repeated here so that `psyinsight --help` does not import numpy).
DEFAULT_BOOTSTRAP = 1000
DEFAULT_BOOTSTRAP_SEED = 12345
BOOTSTRAP = typer.Option(
    DEFAULT_BOOTSTRAP,
    "--bootstrap",
    help="paired-bootstrap resamples for the 95% intervals (± on our cells) and the differences vs the base model; 0 turns them off",
)
BOOTSTRAP_SEED = typer.Option(DEFAULT_BOOTSTRAP_SEED, "--bootstrap-seed", help="seed of the bootstrap resamples (sacrebleu's default)")
