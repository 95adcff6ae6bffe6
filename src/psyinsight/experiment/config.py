"""An experiment file: the paper's comparison (a base model against task variants) in one YAML.

One file names everything that makes the comparison fair and repeatable: the training recipe
and the settings every variant shares (model, data, step budget), the task variants, the
languages, the test subset and the decoding. It is read as strictly as a training recipe
(``train.recipe.build_section``): an unknown key or a wrong type is one error naming the file
and the key.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from psyinsight.data.schema import LANGUAGES
from psyinsight.data.splits import check_split
from psyinsight.errors import PsyInsightError
from psyinsight.evaluate.metrics import MetricConfig
from psyinsight.generate.generation import GenerationConfig
from psyinsight.tasks.prompts import TASKS

VARIANTS = ("dialog", "reasoning", "observation_reasoning", "mix")
"""The paper's supervised variants: the counselor's reply alone; reasoning, then the reply;
observation, reasoning, then the reply; and the auxiliary tasks mixed with dialog."""

RESERVED_SETTINGS = ("name", "description", "tasks.task", "data.languages", "training.output_dir")
"""Recipe keys the experiment sets itself for each variant and language."""


@dataclass
class TestSection:
    """Which counselor turns every system is scored on."""

    split: str = field(default="test", metadata={"help": "Split whose counselor turns are generated (test, validation)."})
    examples: int = field(
        default=60, metadata={"help": "A seeded subset of this many turns, the same for every system (0: every turn all variants share)."}
    )
    seed: int = field(default=13, metadata={"help": "Seed of the subset."})

    def __post_init__(self) -> None:
        check_split(self.split, "test.split")
        if self.examples < 0:
            raise PsyInsightError(f"must be 0 (all) or more, got {self.examples}", where="examples")


@dataclass
class ExperimentConfig:
    """A base model and its task variants, trained with one budget and scored on one test subset."""

    name: str = field(default="experiment", metadata={"help": "Short name; recorded with every adapter it trains."})
    description: str = field(default="", metadata={"help": "One line on what this experiment measures."})
    recipe: str = field(default="cpu-default", metadata={"help": "The training recipe every variant starts from (a shipped name or a YAML)."})
    settings: dict[str, Any] = field(
        default_factory=dict,
        metadata={"help": "Recipe settings every variant shares, as `train --set` takes them: {training.max_steps: 150, data.source: release}."},
    )
    languages: list[str] = field(default_factory=lambda: ["en"], metadata={"help": "Languages, each trained and scored on its own (en, cn)."})
    variants: list[str] = field(default_factory=lambda: list(VARIANTS), metadata={"help": f"Task variants to train: {', '.join(VARIANTS)}."})
    base_task: str | None = field(
        default="dialog", metadata={"help": "The prompt the untuned base model answers (its row in the table); null: no base row."}
    )
    min_train_examples: int = field(
        default=50,
        metadata={"help": "A variant whose task yields fewer training examples in a language is not run there, and the report says why."},
    )
    test: TestSection = field(default_factory=TestSection)
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    metrics: MetricConfig = field(default_factory=MetricConfig)
    bootstrap: int = field(default=1000, metadata={"help": "Paired bootstrap resamples for the confidence intervals (0: none)."})
    output_dir: str = field(default="runs/experiment", metadata={"help": "Where every stage writes its files (a rerun resumes from them)."})

    def __post_init__(self) -> None:
        for language in self.languages:
            if language not in LANGUAGES:
                raise PsyInsightError(f"unknown language {language!r}; choose from {', '.join(LANGUAGES)}", where="languages")
        if not self.languages:
            raise PsyInsightError("name at least one language", where="languages")
        unknown = [v for v in self.variants if v not in VARIANTS]
        if unknown:
            raise PsyInsightError(f"unknown variant(s) {', '.join(unknown)}; choose from {', '.join(VARIANTS)}", where="variants")
        if not self.variants:
            raise PsyInsightError("name at least one variant", where="variants")
        if len(set(self.variants)) != len(self.variants):
            raise PsyInsightError("a variant is named twice", where="variants")
        if self.base_task is not None and self.base_task not in TASKS:
            raise PsyInsightError(f"unknown task {self.base_task!r}; choose from {', '.join(TASKS)}", where="base_task")
        reserved = [key for key in self.settings if key in RESERVED_SETTINGS]
        if reserved:
            raise PsyInsightError(f"{', '.join(reserved)} is set by the experiment for each variant and language; leave it out", where="settings")
        if self.min_train_examples < 1:
            raise PsyInsightError(f"must be at least 1, got {self.min_train_examples}", where="min_train_examples")
        if self.bootstrap < 0:
            raise PsyInsightError(f"must be 0 (no intervals) or more, got {self.bootstrap}", where="bootstrap")

    def overrides(self) -> list[str]:
        """The shared settings as ``train --set`` overrides (JSON values, which YAML reads unchanged)."""
        return [f"{key}={json.dumps(value, ensure_ascii=False)}" for key, value in self.settings.items()]


def prompt_task(variant: str) -> str:
    """The prompt a variant's adapter answers at test time: a mix adapter is prompted as dialog."""
    return "dialog" if variant == "mix" else variant


def load_experiment(path: str | Path, overrides: list[str] | None = None) -> ExperimentConfig:
    """Read an experiment YAML strictly; ``overrides`` (``key.sub=value``) change it first."""
    from psyinsight.fileio import read_yaml
    from psyinsight.train.recipe import apply_overrides, build_section

    path = Path(path)
    if not path.is_file():
        raise PsyInsightError("no such experiment file (see experiments/ for examples)", path=path)
    data = read_yaml(path)
    if not isinstance(data, dict) or not data:
        raise PsyInsightError("expected a mapping of settings (recipe, settings, variants, test...)", path=path)
    apply_overrides(data, overrides, flat=("settings",))  # settings keys hold dots themselves
    config = build_section(ExperimentConfig, data, path=path, section="")
    check_settings(config, path)
    return config


def check_settings(config: ExperimentConfig, path: Path) -> None:
    """The shared settings make a valid recipe: a typo fails here, naming this file, not after a stage ran."""
    from psyinsight.train.recipe import load_recipe

    try:
        load_recipe(config.recipe, config.overrides())
    except PsyInsightError as exc:
        raise PsyInsightError(f"{exc}", path=path, where="settings" if config.settings else "recipe") from None
