"""Recipes: every shipped one loads; bad ones fail with one clear error; resume is exact."""

from __future__ import annotations

from pathlib import Path

import pytest

from psyinsight.errors import PsyInsightError
from psyinsight.train.recipe import Recipe, load_recipe, shipped_recipes

pytestmark = pytest.mark.usefixtures("torch_one_thread")
REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", ["cpu-default", "mistral-7b-en", "glm4-9b-zh"])
def test_every_shipped_recipe_loads_and_matches_the_repo_copy(name):
    assert name in shipped_recipes()
    recipe = load_recipe(name)
    assert isinstance(recipe, Recipe) and recipe.name == name
    assert (REPO / "recipes" / f"{name}.yaml").read_text() == shipped_recipes()[name].read_text()


def test_release_hyperparameters_are_in_the_gpu_recipes():
    r = load_recipe("mistral-7b-en")
    assert (r.lora.r, r.lora.alpha, r.lora.dropout, r.lora.lm_head) == (256, 128, 0.05, True)
    assert (r.training.learning_rate, r.training.epochs, r.training.batch_size, r.training.grad_accum) == (5e-5, 5.0, 2, 2)
    assert (r.model.quantization, r.training.max_length, r.training.lr_scheduler) == ("4bit", 4096, "cosine")
    assert load_recipe("glm4-9b-zh").tasks.task == "rag"


def write(tmp_path, text):
    path = tmp_path / "r.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("training:\n  learnig_rate: 0.1\n", "unknown setting 'learnig_rate'; did you mean 'learning_rate'"),
        ("training:\n  batch_size: two\n", "training.batch_size.*expected int"),
        ("training:\n  w_prompt: 1.5\n", "w_prompt.*between 0 and 1"),
        ("training:\n  prompt_loss_sample: 0\n", "prompt_loss_sample.*in \\(0, 1\\]"),
        ("training:\n  w_prompt: 0\n  prompt_loss_sample: 0.5\n", "prompt_loss_sample.*needs 0 < w_prompt < 1"),
        ("tasks:\n  task: dialogue\n", "unknown task 'dialogue'"),
        ("model:\n  quantization: 8bit\n", "unknown quantization"),
        ("lora: 3\n", "expected a mapping"),
        ("training: [\n", "invalid YAML"),
    ],
)
def test_bad_recipes_fail_with_one_clear_error(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(PsyInsightError, match=message) as info:
        load_recipe(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    ("text", "where", "message"),
    [
        ("nme: x\n", "(nme)", "unknown setting 'nme'; did you mean 'name'?"),
        ("tasks:\n  tsk: dialog\n", "(tasks.tsk)", "unknown setting 'tsk'; did you mean 'task'?"),
        ("generation:\n  max_new_token: 9\n", "(generation.max_new_token)", "did you mean 'max_new_tokens'?"),
        ("lora:\n  zzz: 1\n", "(lora.zzz)", "unknown setting 'zzz'; known keys: r, alpha, dropout, target_modules, lm_head"),
        ("training:\n  batch_size: '2'\n", "(training.batch_size)", "expected int, got str '2'"),
        ("training:\n  batch_size: 2.0\n", "(training.batch_size)", "expected int, got float 2.0"),
        ("training:\n  eval_base: 1\n", "(training.eval_base)", "expected bool, got int 1"),
        ("training:\n  learning_rate: 'fast'\n", "(training.learning_rate)", "expected float, got str 'fast'"),
        ("training:\n  num_threads: 2.5\n", "(training.num_threads)", "expected int | None, got float 2.5"),
        ("name: 3\n", "(name)", "expected str, got int 3"),
        ("lora:\n  target_modules: [q_proj, 1]\n", "(lora.target_modules)", "expected list[str], got list ['q_proj', 1]"),
        ("tasks:\n  mix_tasks: dialog\n", "(tasks.mix_tasks)", "expected tuple[str, ...], got str 'dialog'"),
        ("data:\n  split_file: 2024-01-01\n", "(data.split_file)", "date datetime.date(2024, 1, 1) is not a setting value"),
        ("generation: [1]\n", "(generation)", "expected a mapping of settings, got list"),
        ("tasks:\n  task: dialogue\n", "(tasks.task)", "unknown task 'dialogue'"),
        ("generation:\n  max_new_tokens: 0\n", "(generation.max_new_tokens)", "must be at least 1"),
    ],
)
def test_a_wrong_key_or_type_is_one_line_naming_file_key_and_fix(tmp_path, text, where, message):
    path = write(tmp_path, text)
    with pytest.raises(PsyInsightError) as info:
        load_recipe(path)
    assert str(info.value).startswith(f"{path} {where}: ")
    assert message in str(info.value) and "\n" not in str(info.value)


def test_strict_json_types_keep_what_yaml_means(tmp_path):
    """YAML's own types pass unchanged: an int where a float is due, a list for a tuple, null for a section."""
    path = write(tmp_path, "training:\n  epochs: 2\n  num_threads: null\ntasks:\n  task: mix\n  mix_tasks: [labels, dialog]\nlora:\n")
    recipe = load_recipe(path)
    assert recipe.training.epochs == 2.0 and isinstance(recipe.training.epochs, float)
    assert recipe.tasks.mix_tasks == ("labels", "dialog")
    assert recipe.lora == Recipe().lora and recipe.training.num_threads is None


def test_a_recipe_saved_with_an_adapter_loads_back_the_same():
    """Adapter metadata stores ``to_dict()`` as JSON (tuples become lists); ``generate`` rebuilds it."""
    import json

    from psyinsight.train.recipe import build_section

    for name in shipped_recipes():
        recipe = load_recipe(name, ["tasks.task=mix", "tasks.mix_tasks=[aux_reasoning, dialog]"])
        saved = json.loads(json.dumps(recipe.to_dict()))
        assert build_section(Recipe, saved, path="adapter", section="") == recipe
    saved["training"]["learnig_rate"] = 0.1
    with pytest.raises(PsyInsightError, match=r"^adapter \(training.learnig_rate\): unknown setting 'learnig_rate'; did you mean 'learning_rate'\?$"):
        build_section(Recipe, saved, path="adapter", section="")


def test_the_cli_prints_a_bad_recipe_as_one_line_and_exits_2(tmp_path, capsys):
    from psyinsight.cli import main

    path = write(tmp_path, "training:\n  max_stepz: 10\n")
    with pytest.raises(SystemExit) as info:
        main(["train", str(path), "--show"])
    err = capsys.readouterr().err
    assert info.value.code == 2
    assert err == f"error: {path} (training.max_stepz): unknown setting 'max_stepz'; did you mean 'max_steps'?\n"


def test_overrides_are_typed_and_checked():
    r = load_recipe("cpu-default", ["training.max_steps=7", "tasks.task=labels"])
    assert r.training.max_steps == 7 and r.tasks.task == "labels"
    with pytest.raises(PsyInsightError, match="unknown setting"):
        load_recipe("cpu-default", ["training.max_stepz=7"])
    with pytest.raises(PsyInsightError, match="no such recipe"):
        load_recipe("no-such-recipe")


def test_a_missing_model_path_is_refused_before_anything_loads(tmp_path):
    from psyinsight.train.runner import LoRARecipeRunner

    recipe = load_recipe("cpu-default", [f"model.name={tmp_path / 'nope'}"])
    with pytest.raises(PsyInsightError, match="no such model folder"):
        LoRARecipeRunner(recipe)


def tiny_recipe(model_dir, out, **training):
    overrides = [
        f"model.name={model_dir}",
        "data.languages=[en]",
        f"training.output_dir={out}",
        "training.max_length=512",
        "training.batch_size=2",
        "training.logging_steps=1",
        "training.eval_base=false",
        "data.max_eval_examples=4",
        "training.learning_rate=0.01",
        "training.num_threads=1",
    ]
    overrides += [f"training.{k}={v}" for k, v in training.items()]
    return load_recipe("cpu-default", overrides)


def _adapter_tensors(folder):
    from safetensors.torch import load_file

    return load_file(str(Path(folder) / "adapter_model.safetensors"))


@pytest.mark.parametrize("prompt_loss_sample", [1.0, 0.5])
def test_resume_gives_the_same_weights_as_an_uninterrupted_run(tiny_llama_dir, tmp_path, prompt_loss_sample):
    import torch
    from transformers import TrainerCallback

    from psyinsight.train.runner import LoRARecipeRunner

    def recipe(out):
        return tiny_recipe(tiny_llama_dir, out, max_steps=4, save_steps=2, prompt_loss_sample=prompt_loss_sample)

    straight = LoRARecipeRunner(recipe(tmp_path / "a"))
    straight_adapter = straight.run()

    class StopAt2(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 2:
                control.should_training_stop = True
            return control

    first = LoRARecipeRunner(recipe(tmp_path / "b"))
    first.setup()
    first.trainer.add_callback(StopAt2())
    first.train()
    assert first.trainer.state.global_step == 2 and (tmp_path / "b" / "checkpoint-2").is_dir()
    second = LoRARecipeRunner(recipe(tmp_path / "b"), resume="auto")
    resumed_adapter = second.run()
    assert second.metrics["resumed_from"].endswith("checkpoint-2")
    a, b = _adapter_tensors(straight_adapter), _adapter_tensors(resumed_adapter)
    assert a.keys() == b.keys()
    moved = [k for k in a if "lora_B" in k and a[k].abs().sum() > 0]
    assert moved, "training did not move the adapter"
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-6), key


def test_adapter_is_saved_with_recipe_checksum_and_version(tiny_llama_dir, tmp_path):
    from psyinsight import __version__
    from psyinsight.fileio import read_json
    from psyinsight.models import ADAPTER_META, load_model_and_tokenizer
    from psyinsight.train.runner import run_recipe

    adapter, metrics = run_recipe(tiny_recipe(tiny_llama_dir, tmp_path / "c", max_steps=2, eval_base="true"), resume="none")
    meta = read_json(adapter / ADAPTER_META)
    assert meta["psyinsight"] == __version__
    assert meta["base_model"] == str(tiny_llama_dir)
    assert len(meta["split_checksum"]) == 64
    assert meta["recipe"]["training"]["max_steps"] == 2 and meta["w_prompt"] == 0.1
    assert metrics["steps"] == 2 and metrics["eval_target_loss"] > 0 and metrics["base_eval_target_loss"] > 0
    # The adapter reloads on its recorded base model alone.
    model, tok = load_model_and_tokenizer(None, adapter, device="cpu")
    assert tok.padding_side == "left"
    assert any("lora_" in name for name, _ in model.named_parameters())

    # merge folds it into the base: a plain model with the same outputs.
    import torch

    from psyinsight.train.runner import merge_adapter

    merged_dir = merge_adapter(adapter, tmp_path / "merged")
    merged, _ = load_model_and_tokenizer(str(merged_dir), device="cpu")
    assert not any("lora_" in name for name, _ in merged.named_parameters())
    ids = tok("Therapist: hello there", return_tensors="pt")["input_ids"]
    base, _ = load_model_and_tokenizer(str(tiny_llama_dir), device="cpu")
    with torch.no_grad():
        assert torch.allclose(model(input_ids=ids).logits, merged(input_ids=ids).logits, atol=1e-4)
        assert not torch.allclose(base(input_ids=ids).logits, merged(input_ids=ids).logits, atol=1e-4)


@pytest.mark.parametrize(
    ("overrides", "strategy"),
    [([], "group_by_length"), (["training.group_by_length=false"], "random"), (["tasks.task=mix", "tasks.mix_schedule=sequential"], "sequential")],
)
def test_training_arguments_read_the_recipe_as_transformers_5_does(tmp_path, overrides, strategy):
    """warmup_ratio goes in as warmup_steps, which transformers 5 reads as a share of the steps
    below 1 (4.x: 0.03 steps, no warmup at all); the sampler is named by train_sampling_strategy."""
    from psyinsight.train.runner import LoRARecipeRunner

    recipe = load_recipe("cpu-default", [f"training.output_dir={tmp_path}", "training.warmup_ratio=0.05", *overrides])
    args = LoRARecipeRunner(recipe).training_arguments()
    assert args.get_warmup_steps(200) == 10 and args.get_warmup_steps(10) == 1
    assert args.train_sampling_strategy == strategy
