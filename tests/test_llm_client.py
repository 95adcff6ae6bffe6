"""The LLM client against the scripted local server: cache, concurrency, retries, accounting."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from fake_openai import FakeOpenAI, default_responder

from psyinsight.errors import PsyInsightError
from psyinsight.llm import ChatRequest, LLMClient, LLMConfig, cache_key, parse_json_object


def _requests(n: int, json_mode: bool = True) -> list[ChatRequest]:
    return [ChatRequest(messages=[{"role": "user", "content": f"question {i}"}], json_mode=json_mode, tag="t") for i in range(n)]


def _config(server: FakeOpenAI, tmp_path: Path | None = None, **kw) -> LLMConfig:
    base = dict(base_url=server.url, model="fake", max_concurrency=8, max_retries=3, timeout_s=5.0, backoff_s=0.01)
    base.update(kw)
    if tmp_path is not None:
        base["cache_path"] = tmp_path / "llm.sqlite"
    return LLMConfig(**base)


def test_results_in_order_with_usage_and_cost(tmp_path):
    with FakeOpenAI() as server:
        client = LLMClient(_config(server, prompt_price_per_mtok=1e6, completion_price_per_mtok=2e6))
        results = client.complete_many(_requests(5))
    assert [json.loads(r.text)["echo"] for r in results] == [f"question {i}" for i in range(5)]
    assert all(r.ok and r.attempts == 1 and not r.cached for r in results)
    # the fake counts words: 2 prompt tokens and 3 completion tokens per request
    assert client.stats.prompt_tokens == 10 and client.stats.completion_tokens == 15
    assert client.stats.cost == pytest.approx(10 * 1.0 + 15 * 2.0)
    assert client.stats.by_tag["t"]["calls"] == 5
    assert client.stats.requests_made == 5


def test_cache_makes_rerun_free_and_keys_cover_params(tmp_path):
    with FakeOpenAI() as server:
        first = LLMClient(_config(server, tmp_path))
        a = first.complete_many(_requests(6))
        first.close()
        second = LLMClient(_config(server, tmp_path))
        b = second.complete_many(_requests(6))
        assert server.request_count == 6
        assert second.stats.requests_made == 0 and second.stats.cache_hits == 6
        assert [r.text for r in a] == [r.text for r in b] and all(r.cached for r in b)
        # a different parameter is a different key: one new request
        changed = [ChatRequest(messages=_requests(1)[0].messages, json_mode=True, params={"max_tokens": 7})]
        second.complete_many(changed)
        assert server.request_count == 7
    assert cache_key("m", [{"role": "user", "content": "x"}], {"a": 1}) != cache_key("m", [{"role": "user", "content": "x"}], {"a": 2})
    assert cache_key("m", [], {"a": 1, "b": 2}) == cache_key("m", [], {"b": 2, "a": 1})


def test_concurrency_limit_is_used():
    """All 8 requests are at the server at once: each answer waits until the 8th has arrived."""
    all_arrived = threading.Event()

    def responder(body):
        if server.in_flight >= 8:
            all_arrived.set()
        all_arrived.wait(4)  # a client that sends one at a time never gets past here in time
        return default_responder(body)

    with FakeOpenAI(responder) as server:
        client = LLMClient(_config(server, max_concurrency=8))
        results = client.complete_many(_requests(8))
    assert all(r.ok for r in results)
    assert all_arrived.is_set() and server.max_in_flight == 8, f"at most {server.max_in_flight} requests were in flight together"


@pytest.mark.parametrize("fault", ["429", "500", "503", "bad_body", "truncated_body", "hang"])
def test_transient_faults_are_retried(fault, tmp_path):
    with FakeOpenAI(faults=[fault, fault], hang_s=10) as server:
        client = LLMClient(_config(server, tmp_path, timeout_s=0.5, max_concurrency=1))
        [result] = client.complete_many(_requests(1))
    assert result.ok, result.error
    assert result.attempts == 3
    assert sum(client.stats.errors.values()) == 2
    assert client.stats.retries == 2 and client.stats.requests_made == 3


def test_exhausted_retries_fail_without_caching(tmp_path):
    with FakeOpenAI(faults=["500"] * 4) as server:
        client = LLMClient(_config(server, tmp_path, max_retries=3))
        [result] = client.complete_many(_requests(1))
        assert not result.ok and result.text is None and "500" in result.error
        assert result.attempts == 4 and client.stats.failed == 1
        assert len(client.cache) == 0
        # the failure was not cached: a rerun asks again and now succeeds
        [again] = client.complete_many(_requests(1))
        assert again.ok and not again.cached and server.request_count == 5


def test_client_errors_are_not_retried():
    with FakeOpenAI(faults=["401", "400"]) as server:
        client = LLMClient(_config(server, max_concurrency=1))
        results = client.complete_many(_requests(2))
    assert [r.attempts for r in results] == [1, 1]
    assert "401" in results[0].error and "API key" in results[0].error
    assert "400" in results[1].error


def test_content_faults_are_returned_for_the_caller_to_judge(tmp_path):
    with FakeOpenAI(faults=["invalid_json", "truncated"]) as server:
        client = LLMClient(_config(server, tmp_path, max_concurrency=1))
        bad, cut = client.complete_many(_requests(2))
    assert bad.ok and parse_json_object(bad.text)[0] is None
    assert cut.ok and cut.finish_reason == "length" and parse_json_object(cut.text)[0] is None


def test_api_key_only_from_environment_and_never_written(tmp_path, monkeypatch):
    secret = "sk-test-very-secret-123"
    monkeypatch.setenv("PSYINSIGHT_TEST_KEY", secret)
    with FakeOpenAI() as server:
        config = _config(server, tmp_path, api_key_env="PSYINSIGHT_TEST_KEY")
        client = LLMClient(config)
        client.complete_many(_requests(2))
        client.close()
        assert all(r.authorization == f"Bearer {secret}" for r in server.records)
    assert secret not in repr(config) and secret not in json.dumps(config.public_dict())
    for path in tmp_path.iterdir():
        assert secret.encode() not in path.read_bytes(), path


def test_unreachable_server_is_a_reported_failure():
    client = LLMClient(LLMConfig(base_url="http://127.0.0.1:9/v1", max_retries=1, backoff_s=0.01, timeout_s=2.0))
    [result] = client.complete_many(_requests(1))
    assert not result.ok and result.error.startswith("connection")


def test_bad_settings_name_the_setting():
    with pytest.raises(PsyInsightError, match="max_concurrency"):
        LLMConfig(max_concurrency=0)
    with pytest.raises(PsyInsightError, match="base_url"):
        LLMConfig(base_url="127.0.0.1:8000")


def test_complete_many_works_inside_a_running_loop():
    import asyncio

    with FakeOpenAI() as server:
        client = LLMClient(_config(server))

        async def inside() -> list:
            return client.complete_many(_requests(2))

        results = asyncio.run(inside())
    assert all(r.ok for r in results)


@pytest.mark.parametrize(
    "text, expected",
    [
        ('{"a": 1}', {"a": 1}),
        ('```json\n{"a": [1, 2]}\n```', {"a": [1, 2]}),
        ('Here you go: {"a": "x"} hope it helps', {"a": "x"}),
        ('{"a": 1', None),
        ("[1, 2]", None),
        ("no json here", None),
        (None, None),
    ],
)
def test_parse_json_object(text, expected):
    value, reason = parse_json_object(text)
    assert value == expected
    assert (reason is None) == (expected is not None)


def test_concurrency_limit_is_shared_across_threads():
    import concurrent.futures

    with FakeOpenAI(latency_s=0.2) as server:
        with LLMClient(_config(server, max_concurrency=2)) as client:
            with concurrent.futures.ThreadPoolExecutor(3) as pool:
                batches = [[ChatRequest(messages=[{"role": "user", "content": f"{t}-{i}"}]) for i in range(2)] for t in range(3)]
                results = [r for f in [pool.submit(client.complete_many, b) for b in batches] for r in f.result()]
    assert all(r.ok for r in results)
    # 3 threads x 2 requests, each held 0.2 s at the server: without a shared limit 6 would overlap
    assert server.max_in_flight == 2, f"{server.max_in_flight} requests were in flight through a limit of 2"
