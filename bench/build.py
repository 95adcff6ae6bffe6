"""LLM throughput of the build: 16-way against 1-way concurrency, on a server answering after 200 ms.

    python bench/build.py [--requests 48] [--latency 0.2] [--concurrency 16] [--pipeline]

Runs the scripted OpenAI-compatible server (tests/fake_openai.py) on 127.0.0.1, in its own
process, and measures, in this one (the baseline and the candidate in the same run): (1) the LLM client alone, N distinct requests at 1-way and at N-way
concurrency; (2) with --pipeline, the whole ``psyinsight build`` of the bundled raw
excerpts at both settings. Prints requests per second and the ratio to the 1-way baseline.
Target: 16-way gives at least 10x the throughput of 1-way.
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


from psyinsight.build.ingest import sample_raw_dir  # noqa: E402
from psyinsight.build.pipeline import BuildConfig, run_build  # noqa: E402
from psyinsight.llm import ChatRequest, LLMClient, LLMConfig  # noqa: E402


def client_throughput(url: str, n: int, concurrency: int, salt: str) -> float:
    """Requests per second of one warmed-up client (connections and TLS set-up outside the timing)."""
    with LLMClient(LLMConfig(base_url=url, model="bench", max_concurrency=concurrency)) as client:
        client.complete_many([ChatRequest(messages=[{"role": "user", "content": f"{salt} warm-up {i}"}]) for i in range(concurrency)])
        requests = [ChatRequest(messages=[{"role": "user", "content": f"{salt} request {i}"}]) for i in range(n)]
        start = time.perf_counter()
        results = client.complete_many(requests)
        elapsed = time.perf_counter() - start
    if not all(r.ok for r in results):
        raise SystemExit(f"{sum(not r.ok for r in results)} requests failed")
    return n / elapsed


def pipeline_throughput(url: str, concurrency: int) -> tuple[float, int]:
    with tempfile.TemporaryDirectory() as out:
        llm = LLMConfig(base_url=url, model="bench", max_concurrency=concurrency)
        start = time.perf_counter()
        report = run_build(BuildConfig(raw_dir=sample_raw_dir(), out_dir=Path(out), llm=llm, batch_size=16))
        elapsed = time.perf_counter() - start
    calls = report["llm_usage"]["requests_made"]
    return calls / elapsed, calls


@contextlib.contextmanager
def _server_process(latency: float) -> Iterator[str]:
    """The scripted server in its own process, so its threads do not share the client's GIL."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    script = Path(__file__).resolve().parents[1] / "tests" / "fake_openai.py"
    proc = subprocess.Popen([sys.executable, str(script), "--port", str(port), "--latency", str(latency), "--keys"], stdout=subprocess.PIPE)
    try:
        proc.stdout.readline()  # "listening on ..."
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=48, help="Requests per client measurement.")
    parser.add_argument("--latency", type=float, default=0.2, help="Server answer delay in seconds.")
    parser.add_argument("--concurrency", type=int, default=16, help="The concurrency compared with 1-way.")
    parser.add_argument("--pipeline", action="store_true", help="Also time a whole build of the bundled excerpts.")
    args = parser.parse_args()
    with _server_process(args.latency) as url:
        server = argparse.Namespace(url=url)
        base = client_throughput(server.url, args.requests, 1, "one")
        fast = client_throughput(server.url, args.requests, args.concurrency, "many")
        print(f"server latency {args.latency * 1000:.0f} ms, {args.requests} requests")
        print(f"client   1-way: {base:7.2f} req/s   (baseline)")
        print(f"client {args.concurrency:>3}-way: {fast:7.2f} req/s   ratio {fast / base:5.1f}x  (target >= 10x)")
        if args.pipeline:
            base_p, calls = pipeline_throughput(server.url, 1)
            fast_p, _ = pipeline_throughput(server.url, args.concurrency)
            print(f"build    1-way: {base_p:7.2f} calls/s ({calls} calls, baseline)")
            print(f"build  {args.concurrency:>3}-way: {fast_p:7.2f} calls/s   ratio {fast_p / base_p:5.1f}x")


if __name__ == "__main__":
    main()
