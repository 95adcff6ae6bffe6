"""Bounded load test of ``psyinsight serve`` on 127.0.0.1: N requests, C at a time.

    python bench/serve_load.py [--requests 200] [--concurrency 8] [--max-tokens 16]
                               [--model default] [--threads 1] [--served-model default]
                               [--baseline-requests 24] [--url http://127.0.0.1:8000/v1]

Without ``--url`` the server runs in this process (uvicorn in a thread, the embedded
SmolLM2 by default) with micro-batching of up to C requests; the per-client rate limit is
turned off, since every request comes from one client. The baseline, run in the same
process on the same loaded model, is the same server with batching off (batch size 1)
on ``--baseline-requests`` requests; the ratios compare throughput and median latency.

Reports: errors (any non-200 or transport error), p50 / p95 / max latency, requests per
second, generated tokens per second, and the batch sizes the worker ran.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import statistics
import time
from typing import Any

import httpx

print = functools.partial(print, flush=True)  # noqa: A001  (progress shows when piped)

MESSAGES = [
    "I've been feeling anxious before every meeting at work.",
    "My partner and I keep arguing about money.",
    "I can't sleep well since I started my new job.",
    "How can I stop procrastinating on my thesis?",
    "My teenage son doesn't talk to me anymore.",
    "I feel lonely even when I'm with friends.",
    "我最近压力很大，总是睡不好。",
    "我和父母的关系越来越紧张。",
    "I get nervous when I have to speak in class.",
    "我总是拖延，做什么都提不起劲。",
]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


async def run_load(url: str, model: str, n: int, concurrency: int, max_tokens: int) -> dict[str, Any]:
    """Send ``n`` chat requests, ``concurrency`` at a time; collect latencies and errors."""
    latencies: list[float] = []
    errors: list[str] = []
    tokens = 0
    gate = asyncio.Semaphore(concurrency)

    async with httpx.AsyncClient(base_url=url, timeout=600, limits=httpx.Limits(max_connections=concurrency)) as client:

        async def one(i: int) -> None:
            nonlocal tokens
            body = {"model": model, "messages": [{"role": "user", "content": MESSAGES[i % len(MESSAGES)]}], "max_tokens": max_tokens}
            async with gate:
                start = time.perf_counter()
                try:
                    r = await client.post("/chat/completions", json=body)
                except httpx.HTTPError as exc:
                    errors.append(f"{type(exc).__name__}: {exc}")
                    return
                latencies.append(time.perf_counter() - start)
                if r.status_code != 200:
                    errors.append(f"{r.status_code}: {r.text[:200]}")
                else:
                    tokens += r.json()["usage"]["completion_tokens"]
            if (i + 1) % 25 == 0:
                print(f"  {i + 1}/{n} sent")

        start = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(n)))
        wall = time.perf_counter() - start
    return {
        "requests": n,
        "concurrency": concurrency,
        "max_tokens": max_tokens,
        "errors": len(errors),
        "error_samples": errors[:5],
        "p50_s": round(percentile(latencies, 0.5), 3) if latencies else None,
        "p95_s": round(percentile(latencies, 0.95), 3) if latencies else None,
        "max_s": round(max(latencies), 3) if latencies else None,
        "wall_s": round(wall, 2),
        "requests_per_s": round(n / wall, 3),
        "tokens_per_s": round(tokens / wall, 2),
    }


def in_process(engine: Any, batch_size: int, n: int, concurrency: int, max_tokens: int, served: str) -> dict[str, Any]:
    from psyinsight.serve import BackgroundServer, ServeConfig, create_app

    app = create_app(ServeConfig(rate=0, batch_size=batch_size, max_queue=max(256, n)), engine=engine)
    with BackgroundServer(app) as srv:
        result = asyncio.run(run_load(srv.url, served, n, concurrency, max_tokens))
    sizes = app.state.worker.batches
    result["batch_size_limit"] = batch_size
    result["mean_batch"] = round(statistics.mean(sizes), 2) if sizes else None
    return result


def show(name: str, r: dict[str, Any]) -> None:
    print(
        f"{name:10} n={r['requests']} c={r['concurrency']} max_tokens={r['max_tokens']} errors={r['errors']} "
        f"p50={r['p50_s']}s p95={r['p95_s']}s max={r['max_s']}s  {r['requests_per_s']} req/s  "
        f"{r['tokens_per_s']} tok/s  mean batch={r.get('mean_batch')}"
    )
    for e in r["error_samples"]:
        print(f"  error: {e}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--max-tokens", type=int, default=16)
    ap.add_argument("--model", default="default", help="model to load for the in-process server")
    ap.add_argument("--device", default=None)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (1 is fastest on a busy CPU)")
    ap.add_argument("--served-model", default="default", help="model name in the requests: default (plain) or counselor")
    ap.add_argument("--baseline-requests", type=int, default=24, help="requests for the no-batching baseline (0: skip)")
    ap.add_argument("--url", default=None, help="load an already running server instead (no baseline)")
    ap.add_argument("--json", default=None, help="write the results here")
    args = ap.parse_args()

    results: dict[str, Any] = {}
    if args.url:
        results["server"] = asyncio.run(run_load(args.url, args.served_model, args.requests, args.concurrency, args.max_tokens))
        show("server", results["server"])
    else:
        from psyinsight.counsel.engine import LocalEngine

        start = time.perf_counter()
        engine = LocalEngine(args.model, device=args.device, threads=args.threads)
        engine.load()
        device = str(next(engine._model.parameters()).device)
        print(f"loaded {args.model} on {device} in {time.perf_counter() - start:.1f}s (threads={args.threads or 'default'})")
        results["batched"] = in_process(engine, args.concurrency, args.requests, args.concurrency, args.max_tokens, args.served_model)
        show("batched", results["batched"])
        if args.baseline_requests:
            results["baseline"] = in_process(engine, 1, args.baseline_requests, args.concurrency, args.max_tokens, args.served_model)
            show("no-batch", results["baseline"])
            b, base = results["batched"], results["baseline"]
            results["ratios"] = {
                "throughput_x": round(b["requests_per_s"] / base["requests_per_s"], 2),
                "p50_latency_x": round(base["p50_s"] / b["p50_s"], 2) if b["p50_s"] else None,
            }
            print(
                f"micro-batching vs none (same process, same model): {results['ratios']['throughput_x']}x requests/s, "
                f"{results['ratios']['p50_latency_x']}x lower median latency"
            )
        results["device"] = device
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(results, handle, indent=2)
    failed = sum(r["errors"] for r in results.values() if isinstance(r, dict) and "errors" in r)
    raise SystemExit(1 if failed else 0)


if __name__ == "__main__":
    main()
