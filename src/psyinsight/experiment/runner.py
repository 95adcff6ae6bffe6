"""Run an experiment: plan → train each variant → generate for every system → score → report.

Each stage leaves files in the output folder and is skipped when they already answer its
inputs, so a killed experiment resumes where it stopped:

- ``plan.json``: per language, which variants the data supports (a task that yields fewer
  than ``min_train_examples`` training examples is not run, and the reason is written down:
  nothing is fabricated) and the test turns every system answers (the turns all of them
  share, then a seeded subset). Recomputed each run; it is deterministic.
- ``<language>/<variant>/``: the training run. Done when its adapter records the same recipe;
  an unfinished run resumes from its last checkpoint (``train.runner``), and one started
  with other settings is started over.
- ``examples/<language>-<system>.jsonl`` and ``predictions/<language>-<system>.jsonl``: the
  prompts and the answers. A predictions file is kept while ``.inputs.json`` beside it matches
  (same prompts, decoding, model and adapter weights); a partial one resumes by example id.
- ``report/``: the scores (``*.eval.json`` beside each predictions file, reused when
  unchanged), the paper's table with a base row, one row per variant and confidence
  intervals, and ``experiment.md`` around it.
"""

from __future__ import annotations

import dataclasses
import json
import random
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from psyinsight.errors import PsyInsightError
from psyinsight.experiment.config import ExperimentConfig, prompt_task
from psyinsight.fileio import read_json, sha256_file, write_json, write_jsonl, write_text
from psyinsight.records import base_label

BASE = "base"
"""The system name of the untuned model (its files are ``<language>-base``)."""

RECIPE_RECORD = "experiment-recipe.json"
"""Written in a variant's training folder when its training starts: the recipe the checkpoints belong to."""


@dataclass
class LanguagePlan:
    """What one language can support, and the test turns its systems answer."""

    language: str
    variants: list[str] = field(default_factory=list)
    """Variants that will be trained and scored."""
    not_supported: dict[str, str] = field(default_factory=dict)
    """Variant → why it is not run in this language."""
    train_examples: dict[str, int] = field(default_factory=dict)
    shared_test_turns: int = 0
    test_ids: list[str] = field(default_factory=list)


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, ensure_ascii=False))


def code_version() -> str:
    """The git commit of the package's source (with ``+dirty`` when changed), else the package version."""
    from psyinsight import __version__

    folder = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(folder), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(folder), "status", "--porcelain", "--", "."], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return __version__
    return f"{commit}{'+dirty' if dirty.strip() else ''}"


class Experiment:
    """One experiment file's stages over one output folder."""

    def __init__(self, config: ExperimentConfig, *, log: Callable[[str], None] = print):
        self.config = config
        self.out = Path(config.output_dir)
        self.log = log
        self.seconds: dict[str, float] = {}
        self._recipes: dict[tuple[str, str, str | None], Any] = {}

    # -- recipes
    def recipe_for(self, language: str, task: str, *, variant: str | None = None) -> Any:
        """The training recipe of ``variant`` in ``language`` (or, without a variant, the settings building ``task``'s prompts).

        Read once per (language, task, variant); callers do not change it."""
        from psyinsight.train.recipe import load_recipe

        key = (language, task, variant)
        if key in self._recipes:
            return self._recipes[key]
        name = variant or task
        overrides = self.config.overrides() + [
            "name=" + json.dumps(f"{self.config.name}-{language}-{name}"),
            "description=" + json.dumps(f"experiment {self.config.name}, {name} on {language}"),
            f"tasks.task={task}",
            f"data.languages=[{language}]",
            "training.output_dir=" + json.dumps(str(self.out / language / name)),
        ]
        self._recipes[key] = load_recipe(self.config.recipe, overrides)
        return self._recipes[key]

    # -- plan
    def plan(self) -> list[LanguagePlan]:
        """Which variants each language supports, and the test turns shared by all of its systems."""
        from psyinsight.models import load_tokenizer
        from psyinsight.train.runner import build_split_examples, load_recipe_sessions

        config = self.config
        first = self.recipe_for(config.languages[0], "dialog")
        sessions = load_recipe_sessions(first)
        tokenizer = load_tokenizer(first.model.name)
        plans = []
        for language in config.languages:
            plan = LanguagePlan(language)
            test_sets: dict[str, list[Any]] = {}

            def test_examples(task: str, language: str = language) -> list[Any]:
                if task not in test_sets:
                    recipe = self.recipe_for(language, task)
                    test_sets[task] = build_split_examples(recipe, config.test.split, tokenizer, sessions)[0]
                return test_sets[task]

            for variant in config.variants:
                recipe = self.recipe_for(language, variant, variant=variant)
                try:
                    train = build_split_examples(recipe, recipe.data.train_split, tokenizer, sessions)[0]
                    tested = test_examples(prompt_task(variant))
                except PsyInsightError as exc:
                    plan.not_supported[variant] = str(exc)
                    continue
                plan.train_examples[variant] = len(train)
                if len(train) < config.min_train_examples:
                    plan.not_supported[variant] = f"{len(train)} training examples (fewer than min_train_examples {config.min_train_examples})"
                elif not tested:
                    plan.not_supported[variant] = f"no {config.test.split} example"
                else:
                    plan.variants.append(variant)
            tasks = [prompt_task(v) for v in plan.variants] + ([config.base_task] if config.base_task else [])
            if tasks:
                order = [e.id for e in test_examples(tasks[0])]
                shared = set(order)
                for task in tasks[1:]:
                    shared &= {e.id for e in test_examples(task)}
                ids = [i for i in order if i in shared]
                plan.shared_test_turns = len(ids)
                if config.test.examples and config.test.examples < len(ids):
                    keep = sorted(random.Random(config.test.seed).sample(range(len(ids)), config.test.examples))
                    ids = [ids[i] for i in keep]
                plan.test_ids = ids
                self._write_examples(language, plan, test_examples)
            plans.append(plan)
            supported = ", ".join(plan.variants) or "none"
            self.log(f"plan {language}: variants {supported}; {len(plan.test_ids)} of {plan.shared_test_turns} shared {config.test.split} turns")
            for variant, why in plan.not_supported.items():
                self.log(f"plan {language}: {variant} not run: {why}")
        write_json(self.out / "plan.json", {"plans": [dataclasses.asdict(p) for p in plans]})
        return plans

    def systems(self, plan: LanguagePlan) -> list[str]:
        return ([BASE] if self.config.base_task else []) + plan.variants

    def examples_path(self, language: str, system: str) -> Path:
        return self.out / "examples" / f"{language}-{system}.jsonl"

    def predictions_path(self, language: str, system: str) -> Path:
        return self.out / "predictions" / f"{language}-{system}.jsonl"

    def _write_examples(self, language: str, plan: LanguagePlan, test_examples: Callable[[str], list[Any]]) -> None:
        """Each system's prompts for the chosen turns; the row's task is the variant (a mix adapter answers dialog prompts)."""
        wanted = set(plan.test_ids)
        for system in self.systems(plan):
            task = self.config.base_task if system == BASE else prompt_task(system)
            rows = []
            for example in test_examples(task):
                if example.id in wanted:
                    row = example.model_dump()
                    row["meta"] = {**row["meta"], "task": task if system == BASE else system}
                    rows.append(row)
            write_jsonl(self.examples_path(language, system), rows)

    # -- train
    def train(self, language: str, variant: str) -> Path:
        """Train one variant unless its adapter already records the same recipe; resume an unfinished run."""
        from psyinsight.models import read_adapter_meta
        from psyinsight.train.recipe import find_recipe
        from psyinsight.train.runner import run_recipe

        recipe = self.recipe_for(language, variant, variant=variant)
        folder = Path(recipe.training.output_dir)
        adapter = folder / "adapter"
        wanted = _comparable(recipe.to_dict())
        if _comparable(read_adapter_meta(adapter).get("recipe")) == wanted:
            self.log(f"train {language}/{variant}: up to date ({adapter})")
            return adapter
        record = folder / RECIPE_RECORD
        if folder.exists() and (not record.is_file() or _comparable(read_json(record)) != wanted):
            self.log(f"train {language}/{variant}: {folder} holds a run with other settings; starting over")
            shutil.rmtree(folder)
        folder.mkdir(parents=True, exist_ok=True)
        write_json(record, recipe.to_dict())
        self.log(f"train {language}/{variant}: {recipe.training.max_steps} steps into {folder}")
        start = time.perf_counter()
        adapter, metrics = run_recipe(recipe, resume="auto", recipe_path=str(find_recipe(self.config.recipe)))
        self.seconds[f"train {language}/{variant}"] = round(time.perf_counter() - start, 1)
        self.log(
            f"train {language}/{variant}: done, held-out target loss {metrics.get('base_eval_target_loss')} -> {metrics.get('eval_target_loss')}"
        )
        return adapter

    # -- generate
    def generate(self, language: str, system: str) -> Path:
        """Predictions of one system on the language's test turns; kept while their inputs are unchanged."""
        from psyinsight.fileio import read_jsonl
        from psyinsight.generate.generation import generate_predictions
        from psyinsight.models import load_model_and_tokenizer
        from psyinsight.records import load_examples

        examples_file = self.examples_path(language, system)
        examples = load_examples(examples_file)
        recipe = self.recipe_for(language, self.config.base_task or "dialog") if system == BASE else self.recipe_for(language, system, variant=system)
        adapter = None if system == BASE else Path(recipe.training.output_dir) / "adapter"
        inputs = {
            "examples_sha256": sha256_file(examples_file),
            "generation": dataclasses.asdict(self.config.generation),
            "model": recipe.model.name,
            "adapter_sha256": sha256_file(adapter / "adapter_model.safetensors") if adapter else None,
        }
        out = self.predictions_path(language, system)
        record = out.with_name(out.name[: -len(".jsonl")] + ".inputs.json")
        partial = out.with_name(out.name + ".partial")
        if record.is_file() and read_json(record) == _jsonable(inputs):
            if out.is_file() and {str(r.get("id")) for r in read_jsonl(out)} >= {e.id for e in examples}:
                self.log(f"generate {language}/{system}: up to date ({out})")
                return out
        else:
            out.unlink(missing_ok=True)
            partial.unlink(missing_ok=True)
            write_json(record, inputs)
        label = base_label(recipe.model.name) if system == BASE else f"{Path(recipe.model.name).name} + LoRA"
        if recipe.training.num_threads:
            import torch

            torch.set_num_threads(recipe.training.num_threads)
        model, tokenizer = load_model_and_tokenizer(recipe.model.name, adapter)
        report = generate_predictions(examples, out, model=model, tokenizer=tokenizer, config=self.config.generation, model_label=label)
        self.seconds[f"generate {language}/{system}"] = report.seconds
        self.log(
            f"generate {language}/{system}: {report.generated} generated, {report.resumed} resumed, "
            f"{report.parse_failures} parse failures, {report.seconds}s -> {out}"
        )
        return out

    # -- report
    def report(self, predictions: list[Path], plans: list[LanguagePlan], started: float) -> dict[str, Path]:
        """Score every predictions file (reused when unchanged) and write the table and ``experiment.md``."""
        from psyinsight.evaluate.report import write_report

        start = time.perf_counter()
        # The paper's second question, beside "does tuning help": does a reasoning variant beat dialog?
        compare_to = "dialog" if "dialog" in self.config.variants and len(self.config.variants) > 1 else None
        paths = write_report(
            predictions, self.out / "report", config=self.config.metrics, include_paper=True, bootstrap=self.config.bootstrap, compare_to=compare_to
        )
        self.seconds["score and report"] = round(time.perf_counter() - start, 1)
        summary = {
            "experiment": _jsonable(dataclasses.asdict(self.config)),
            "code": code_version(),
            "plans": [dataclasses.asdict(p) for p in plans],
            "training": {f"{p.language}/{v}": self._training_metrics(p.language, v) for p in plans for v in p.variants},
            "seconds_this_run": self.seconds,
            "wall_seconds_this_run": round(time.perf_counter() - started, 1),
        }
        paths["summary"] = write_json(self.out / "experiment.json", summary)
        paths["experiment"] = write_text(self.out / "report" / "experiment.md", self._markdown(summary, paths["markdown"]))
        return paths

    def _training_metrics(self, language: str, variant: str) -> dict[str, Any]:
        from psyinsight.models import read_adapter_meta

        recipe = self.recipe_for(language, variant, variant=variant)
        return dict(read_adapter_meta(Path(recipe.training.output_dir) / "adapter").get("metrics") or {})

    def _markdown(self, summary: dict[str, Any], report_md: Path) -> str:
        config = self.config
        lines = [
            f"# Experiment {config.name}",
            "",
            config.description,
            "",
            f"Recipe `{config.recipe}` with {json.dumps(config.settings, ensure_ascii=False)}; code {summary['code']}.",
            f"Test: {config.test.split} split, decoding {json.dumps(dataclasses.asdict(config.generation))}.",
            "",
            "## What each language supports",
            "",
            "| language | variants run | not run (why) | shared test turns | scored |",
            "|---|---|---|---|---|",
        ]
        for plan in summary["plans"]:
            why = "; ".join(f"{v}: {reason}" for v, reason in plan["not_supported"].items()) or "—"
            lines.append(
                f"| {plan['language']} | {', '.join(plan['variants']) or '—'} | {why} | {plan['shared_test_turns']} | {len(plan['test_ids'])} |"
            )
        lines += [
            "",
            "## Training",
            "",
            "| run | steps | train examples | held-out target loss: base → tuned | train seconds |",
            "|---|---|---|---|---|",
        ]
        for run, metrics in summary["training"].items():
            lines.append(
                f"| {run} | {metrics.get('steps', '—')} | {metrics.get('train_examples', '—')} | "
                f"{metrics.get('base_eval_target_loss', '—')} → {metrics.get('eval_target_loss', '—')} | {metrics.get('train_seconds', '—')} |"
            )
        lines += ["", "## Results", ""]
        body = report_md.read_text(encoding="utf-8")
        lines.append(body.split("\n", 1)[1] if body.startswith("# ") else body)
        return "\n".join(lines) + "\n"

    # -- everything
    def run(self) -> dict[str, Path]:
        started = time.perf_counter()
        plans = self.plan()
        if not any(plan.variants for plan in plans):
            raise PsyInsightError("no language supports any variant: nothing to train or compare (plan.json says why)", where="variants")
        for plan in plans:
            for variant in plan.variants:
                self.train(plan.language, variant)
        predictions = [self.generate(plan.language, system) for plan in plans for system in self.systems(plan) if plan.variants]
        return self.report(predictions, plans, started)


def _comparable(recipe: Any) -> Any:
    """A recipe as JSON without its output folder (a moved experiment folder is the same run)."""
    if not isinstance(recipe, dict):
        return None
    data = _jsonable(recipe)
    data.get("training", {}).pop("output_dir", None)
    return data
