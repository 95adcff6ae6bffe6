"""Training throughput: our weighted-loss trainer against TRL's SFTTrainer, in one run.

Same model, same examples, same LoRA, same batch size and steps. Each configuration runs
in its own child process (clean peak memory, no warm caches shared), configurations are
interleaved over ``--repeats`` rounds, and the best round of each is kept (the machine
may be shared). Printed: tokens/s, ratio against TRL (completion-only loss, the
baseline), peak memory, and the cost of ``w_prompt = 0.1`` (exact, and sampled from 10% of
the prompt tokens) over ``w_prompt = 0``, both ours (projection at target positions only)
and the usual way (logits at every position, then a masked CE).

    python bench/train.py                       # SmolLM2-135M on the CPU, bundled sample
    python bench/train.py --steps 20 --release  # English release examples
    python bench/train.py --random-mistral      # Mistral-7B-shaped random model, CUDA, bf16

Tokens are counted the same way for every configuration: the non-padding tokens of the
examples a run consumed (its own tokenisation), divided by the wall time of
``trainer.train()`` (or, with ``--metric tokens_per_cpu_s``, by the process's CPU time,
which other users of a shared machine disturb far less).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

CONFIGS = {
    "trl_completion_only": {"kind": "trl"},
    "ours_w0": {"kind": "ours", "w_prompt": 0.0},
    "ours_w0.1": {"kind": "ours", "w_prompt": 0.1},
    # The usual way to compute a masked loss: logits at every position, then CE.
    "ours_w0_all_logits": {"kind": "ours", "w_prompt": 0.0, "fused": False, "skip": False},
    "ours_w0.1_unfused": {"kind": "ours", "w_prompt": 0.1, "fused": False},
    "ours_w0.1_random_order": {"kind": "ours", "w_prompt": 0.1, "group_by_length": False},
    # An unbiased estimate of the w_prompt=0.1 loss from 10% of the prompt tokens.
    "ours_w0.1_sample0.1": {"kind": "ours", "w_prompt": 0.1, "prompt_sample": 0.1},
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="smollm2", help="Model name or folder (default: the embedded SmolLM2-135M).")
    p.add_argument("--random-mistral", action="store_true", help="Use a random Mistral-7B-shaped model (CUDA, bf16) with the tokenizer of --model.")
    p.add_argument("--layers", type=int, default=32, help="Layers of the random Mistral (32 = the real shape; fewer for a smaller GPU).")
    p.add_argument("--release", action="store_true", help="Use English release examples instead of the bundled sample.")
    p.add_argument("--examples", type=int, default=32, help="Examples in the training set.")
    p.add_argument("--steps", type=int, default=8, help="Optimizer steps per run.")
    p.add_argument("--batch-size", type=int, default=2, help="Examples per step.")
    p.add_argument("--max-length", type=int, default=384, help="Token budget per example.")
    p.add_argument("--repeats", type=int, default=2, help="Rounds; the best of each configuration is kept.")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads.")
    p.add_argument("--configs", default=",".join(CONFIGS), help="Comma-separated subset of: " + ", ".join(CONFIGS))
    p.add_argument("--metric", choices=["tokens_per_s", "tokens_per_cpu_s"], default="tokens_per_s",
                   help="Throughput to compare: wall clock, or process CPU time (steadier on a shared CPU; CPU only).")
    p.add_argument("--json", type=Path, default=None, help="Also write the results here.")
    return p.parse_args(argv)


def build_examples(args: argparse.Namespace, tokenizer: Any) -> list[Any]:
    from psyinsight.tasks import TaskConfig, build_examples as build, tokenizer_counter

    if args.release:
        from psyinsight.release import load_release

        sessions = load_release(languages=["en"])
    else:
        from psyinsight.sample import sample_sessions

        sessions = sample_sessions()
    examples = build(sessions, TaskConfig(task="dialog", max_tokens=args.max_length), count_tokens=tokenizer_counter(tokenizer)).examples
    return examples[: args.examples]


def load(args: argparse.Namespace) -> tuple[Any, Any]:
    import torch

    from psyinsight.models import load_model_and_tokenizer, load_tokenizer

    if not args.random_mistral:
        return load_model_and_tokenizer(args.model, device="cpu" if not torch.cuda.is_available() else None, padding_side="right")
    if not torch.cuda.is_available():
        sys.exit("--random-mistral needs a CUDA GPU")
    from transformers import MistralConfig, MistralForCausalLM

    tok = load_tokenizer(args.model, padding_side="right")
    config = MistralConfig(
        vocab_size=max(32000, len(tok)), hidden_size=4096, intermediate_size=14336, num_hidden_layers=args.layers,
        num_attention_heads=32, num_key_value_heads=8, max_position_embeddings=32768, rope_theta=1e6,
        pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
    )  # fmt: skip
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = MistralForCausalLM(config).to(torch.bfloat16)
    return model, tok


def lora_config() -> Any:
    from peft import LoraConfig

    return LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, task_type="CAUSAL_LM",
                      target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])  # fmt: skip


def common_args(args: argparse.Namespace, out: str) -> dict[str, Any]:
    import torch

    cuda = torch.cuda.is_available()
    return dict(
        output_dir=out, per_device_train_batch_size=args.batch_size, gradient_accumulation_steps=1, max_steps=args.steps,
        learning_rate=1e-4, lr_scheduler_type="constant", logging_steps=10**6, save_strategy="no", report_to="none",
        use_cpu=not cuda, bf16=cuda, disable_tqdm=True, seed=13, dataloader_num_workers=0,
    )  # fmt: skip


def run_one(name: str, args: argparse.Namespace, queue: Any) -> None:
    """Child process: train one configuration, report tokens/s and peak memory."""
    import torch

    torch.set_num_threads(args.threads)
    spec = CONFIGS[name]
    model, tok = load(args)
    examples = build_examples(args, tok)
    out = f"/tmp/psyinsight-bench-{name}-{os.getpid()}"
    if spec["kind"] == "trl":
        from datasets import Dataset
        from trl import SFTConfig, SFTTrainer

        rows = [{"prompt": [m.model_dump() for m in e.messages], "completion": [{"role": "assistant", "content": e.target}]} for e in examples]
        cfg = SFTConfig(**common_args(args, out), completion_only_loss=True, max_length=args.max_length, packing=False)
        trainer = SFTTrainer(model=model, args=cfg, train_dataset=Dataset.from_list(rows), processing_class=tok, peft_config=lora_config())
        lengths = [len(x) for x in trainer.train_dataset["input_ids"]]
    else:
        from peft import get_peft_model
        from transformers import TrainingArguments

        from psyinsight.collate import PadCollator
        from psyinsight.train import encode_examples, weighted_trainer_class

        feats = encode_examples(examples, tok, w_prompt=spec["w_prompt"], max_length=args.max_length)
        targs = TrainingArguments(**common_args(args, out), remove_unused_columns=False,
                                  train_sampling_strategy="group_by_length" if spec.get("group_by_length", True) else "random")  # fmt: skip
        trainer = weighted_trainer_class()(model=get_peft_model(model, lora_config()), args=targs, train_dataset=feats,
                                           data_collator=PadCollator(tok.pad_token_id))  # fmt: skip
        trainer.fused_loss = spec.get("fused", True)
        trainer.skip_unweighted_logits = spec.get("skip", True)
        trainer.prompt_loss_sample = spec.get("prompt_sample", 1.0)
        lengths = [len(f["input_ids"]) for f in feats]
    seen_tokens = sum(lengths) / len(lengths) * args.batch_size * args.steps
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    start, cpu_start = time.perf_counter(), time.process_time()
    trainer.train()
    seconds = time.perf_counter() - start
    cpu_seconds = time.process_time() - cpu_start
    if torch.cuda.is_available():
        peak = torch.cuda.max_memory_allocated() / 2**30
        where = "gpu"
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        where = "cpu_rss"
    queue.put({"config": name, "tokens_per_s": seen_tokens / seconds, "seconds": seconds, "tokens": seen_tokens,
               "tokens_per_cpu_s": seen_tokens / max(cpu_seconds, 1e-9), "cpu_seconds": cpu_seconds,
               "examples": len(lengths), f"peak_{where}_gb": round(peak, 3)})  # fmt: skip


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    names = [n.strip() for n in args.configs.split(",") if n.strip()]
    unknown = [n for n in names if n not in CONFIGS]
    if unknown:
        sys.exit(f"unknown config(s) {unknown}; choose from {', '.join(CONFIGS)}")
    ctx = mp.get_context("spawn")
    best: dict[str, dict[str, Any]] = {}
    for round_no in range(args.repeats):
        for name in names:
            queue = ctx.Queue()
            proc = ctx.Process(target=run_one, args=(name, args, queue))
            proc.start()
            proc.join()
            if proc.exitcode != 0:
                sys.exit(f"{name} failed (exit {proc.exitcode})")
            result = queue.get()
            print(f"round {round_no + 1} {name:24} {result['tokens_per_s']:8.1f} tok/s  {result['seconds']:7.1f}s"
                  f"  {result['tokens_per_cpu_s']:8.1f} tok/cpu-s", flush=True)  # fmt: skip
            if name not in best or result[args.metric] > best[name][args.metric]:
                best[name] = result
    base = best.get("trl_completion_only")
    m = args.metric
    print(f"\nbest of {args.repeats} by {m}")
    print(f"{'config':24} {'tok/s':>9} {'tok/cpu-s':>10} {'vs TRL':>7} {'peak GB':>8}")
    for name in names:
        r = best[name]
        ratio = r[m] / base[m] if base else float("nan")
        r["ratio_vs_trl"] = round(ratio, 3)
        peak = next(v for k, v in r.items() if k.startswith("peak_"))
        print(f"{name:24} {r['tokens_per_s']:9.1f} {r['tokens_per_cpu_s']:10.1f} {ratio:7.3f} {peak:8.2f}")
    costs = {}
    for weighted, w0 in (("ours_w0.1", "ours_w0"), ("ours_w0.1", "ours_w0_all_logits"), ("ours_w0.1_sample0.1", "ours_w0")):
        if w0 in best and weighted in best:
            cost = best[w0][m] / best[weighted][m] - 1
            costs[f"{weighted} over {w0}"] = round(cost, 4)
            print(f"{weighted} costs {cost * 100:+.1f}% time over {w0}")
    if costs:
        best["w_prompt_cost"] = costs  # type: ignore[assignment]
    summary = {"args": vars(args) | {"json": str(args.json) if args.json else None}, "results": best}
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2) + "\n")
    return summary


if __name__ == "__main__":
    main()
