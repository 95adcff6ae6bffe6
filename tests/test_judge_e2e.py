"""The LLM judge end to end against the scripted OpenAI-compatible server on 127.0.0.1.

The server answers 429, 500, timeouts, invalid JSON and truncated replies on purpose; the
judge must still rate every item, repair invalid replies once, keep the key out of every
file, and make zero requests on a second identical run (the cache).
"""

from __future__ import annotations

import json
import re

import pytest
from fake_openai import FakeOpenAI

from psyinsight.evaluate.judge import (
    CRITERIA,
    JudgeConfig,
    JudgeItem,
    combine_orders,
    judge_llm_config,
    judge_pairwise,
    judge_single,
    load_rubric,
    validate_preference,
    validate_rating,
)
from psyinsight.records import Prediction

SECRET = "sk-test-SECRET-value-123"


def rating_responder(body):
    """Scores derived from the response text: longer responses get higher helpfulness."""
    prompt = body["messages"][-1]["content"] if body["messages"][-1]["role"] == "user" else ""
    text = "\n".join(m["content"] for m in body["messages"])
    if "Response 1" in text or "回应 1" in text:
        # prefer the response that contains "feel" (a content preference, not a position one)
        first = text.split("Response 1" if "Response 1" in text else "回应 1", 1)[1].split("Response 2" if "Response 2" in text else "回应 2")[0]
        winner = "1" if "feel" in first else "2"
        return json.dumps({c: winner for c in CRITERIA} | {"rationale": "content"})
    match = re.search(r"(?:response to rate|咨询师回应)\n(.*?)\n", text)
    length = len(match.group(1)) if match else 0
    del prompt
    return json.dumps({"interactivity": 4, "helpfulness": 5 if length > 30 else 2, "comfort": 3, "explainability": 3, "rationale": "ok"})


def _items(n: int = 6) -> list[JudgeItem]:
    items = []
    for i in range(n):
        language = "en" if i % 2 == 0 else "cn"
        response = "How do you feel about that, in your own words today?" if i % 3 == 0 else "Go on."
        items.append(JudgeItem(f"s-{i}", language, "m", response, context=f"Client: line {i}", reasoning="explore feelings" if i == 0 else None))
    return items


def _config(server: FakeOpenAI, tmp_path, **kw) -> JudgeConfig:
    base = dict(
        base_url=server.url, model="judge-fake", max_concurrency=4, max_retries=4, timeout_s=1.0, cache_path=tmp_path / "judge.sqlite", backoff_s=0.01
    )
    base.update(kw)
    return JudgeConfig(llm=judge_llm_config(**base))


def test_single_mode_survives_faults_repairs_and_caches(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    faults = ["429", "500", "hang", "invalid_json", "truncated", "bad_body"]
    with FakeOpenAI(rating_responder, faults=faults) as server:
        rows, summary = judge_single(_items(), _config(server, tmp_path))
        first_requests = server.request_count
        assert all(row["ok"] for row in rows), [r["error"] for r in rows]
        assert {row["id"]: row["scores"]["helpfulness"] for row in rows}["s-0"] == 5
        assert {row["id"]: row["scores"]["helpfulness"] for row in rows}["s-1"] == 2
        assert sum(1 for row in rows if row["repaired"]) == 2  # invalid_json and truncated
        assert summary["llm"]["retries"] >= 4 and summary["llm"]["errors"].get("timeout") == 1
        assert server.records[0].authorization == f"Bearer {SECRET}"
        # the same run again: every answer (repairs included) comes from the cache
        server.reset_records()
        again, summary2 = judge_single(_items(), _config(server, tmp_path))
        assert server.request_count == 0 and summary2["llm"]["requests_made"] == 0
        assert [r["scores"] for r in again] == [r["scores"] for r in rows]
    assert first_requests >= len(rows) + len(faults)
    dumped = json.dumps(rows) + json.dumps(summary) + (tmp_path / "judge.sqlite").read_bytes().decode("latin-1")
    assert SECRET not in dumped


def test_unrepairable_reply_is_kept_raw_and_counted(tmp_path):
    with FakeOpenAI(lambda body: '{"interactivity": 9, "helpfulness": "great"}') as server:
        rows, summary = judge_single(_items(2), _config(server, tmp_path))
        assert server.request_count == 4  # two prompts, two repairs
    assert not any(r["ok"] for r in rows)
    assert "must be an integer from 1 to 5" in rows[0]["error"] and "after repair" in rows[0]["error"]
    assert rows[0]["raw"].startswith("{")
    assert sum(g["failed"] for g in summary["groups"]) == 2


def test_failed_requests_are_reported_not_raised(tmp_path):
    with FakeOpenAI(rating_responder, fault_fn=lambda body, n: "500") as server:
        rows, summary = judge_single(_items(1), _config(server, tmp_path, max_retries=1))
        assert server.request_count == 2
    assert rows[0]["ok"] is False and "request failed" in rows[0]["error"]


def test_pairwise_asks_both_orders_and_cancels_position_bias(tmp_path):
    a = [JudgeItem(f"s-{i}", "en", "A", "How do you feel now?") for i in range(3)]
    b = [JudgeItem(f"s-{i}", "en", "B", "Next question.") for i in range(3)]
    with FakeOpenAI(rating_responder) as server:
        rows, summary = judge_pairwise(a, b, _config(server, tmp_path))
        assert server.request_count == 6
        first_positions = [r.body["messages"][-1]["content"].split("## Response 2")[0] for r in server.records]
    assert sum("How do you feel now?" in p for p in first_positions) == 3  # A shown first three times, B three times
    assert all(r["winner"] == {c: "A" for c in CRITERIA} for r in rows)
    assert summary["criteria"]["comfort"]["a_wins"] == 1.0 and summary["criteria"]["comfort"]["position_consistency"] == 1.0
    # a judge that always prefers position 1 produces only ties
    with FakeOpenAI(lambda body: json.dumps({c: "1" for c in CRITERIA})) as server:
        rows, summary = judge_pairwise(a, b, _config(server, tmp_path, cache_path=tmp_path / "other.sqlite"))
    assert all(r["winner"] == {c: "tie" for c in CRITERIA} for r in rows)
    assert summary["criteria"]["helpfulness"]["ties"] == 1.0 and summary["criteria"]["helpfulness"]["position_consistency"] == 0.0


def test_concurrency_limit_is_respected(tmp_path):
    import threading
    import time

    live, peak, lock = [0], [0], threading.Lock()

    def slow(body):
        with lock:
            live[0] += 1
            peak[0] = max(peak[0], live[0])
        time.sleep(0.15)
        with lock:
            live[0] -= 1
        return rating_responder(body)

    with FakeOpenAI(slow) as server:
        rows, _ = judge_single(_items(8), _config(server, tmp_path, max_concurrency=3))
    assert all(r["ok"] for r in rows) and 2 <= peak[0] <= 3


def test_validation_and_order_combination():
    assert validate_rating({"interactivity": 5, "helpfulness": "4", "comfort": 3.0, "explainability": 1})[0] == {
        "interactivity": 5,
        "helpfulness": 4,
        "comfort": 3,
        "explainability": 1,
    }
    for bad in ({"interactivity": 0}, {"interactivity": 6}, {"interactivity": True}, {"interactivity": 2.5}, None):
        values, problem = validate_rating(bad)
        assert values is None and problem
    assert validate_preference({c: "tie" for c in CRITERIA})[0] == {c: "tie" for c in CRITERIA}
    assert validate_preference({c: "A" for c in CRITERIA})[0] is None
    winners, consistent = combine_orders({c: "1" for c in CRITERIA}, {c: "2" for c in CRITERIA})
    assert winners == {c: "A" for c in CRITERIA} and all(consistent.values())
    winners, consistent = combine_orders({c: "2" for c in CRITERIA}, {c: "tie" for c in CRITERIA})
    assert winners == {c: "tie" for c in CRITERIA} and not any(consistent.values())


@pytest.mark.parametrize("language", ["en", "cn"])
def test_rubrics_load_and_fill(language):
    rubric = load_rubric(language)
    text = rubric.criteria_text()
    assert all(c in text for c in CRITERIA)
    filled = rubric.fill("single", context="A {brace} here", response="R", explanation="", criteria=text)
    assert "A {brace} here" in filled and "{response}" not in filled and '"interactivity"' in filled


def test_cli_judge_writes_rows_and_summary(tmp_path, monkeypatch):
    from psyinsight.cli import main

    preds = tmp_path / "predictions.jsonl"
    rows = [
        Prediction(
            id=f"x/{i}",
            text=f"Therapist: reply {i} about how you feel",
            reference="r",
            response=f"reply {i} about how you feel",
            meta={"language": "en", "task": "dialog", "model": "tiny"},
        ).model_dump()
        for i in range(3)
    ]
    preds.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    out = tmp_path / "judged.jsonl"
    monkeypatch.setenv("PSYINSIGHT_JUDGE_API_KEY", SECRET)
    with FakeOpenAI(rating_responder) as server:
        args = ["judge", str(preds), "--out", str(out), "--base-url", server.url, "--model", "fake", "--cache", str(tmp_path / "c.sqlite")]
        with pytest.raises(SystemExit) as exit_info:
            main(args)
        assert exit_info.value.code in (0, None)
        assert server.records[0].authorization == f"Bearer {SECRET}"
        n = server.request_count
        with pytest.raises(SystemExit):
            main(args)
        assert server.request_count == n  # second run: cache only
    judged = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(judged) == 3 and all(r["ok"] for r in judged)
    summary = json.loads((tmp_path / "judged.jsonl.summary.json").read_text(encoding="utf-8"))
    assert summary["groups"][0]["model"] == "tiny" and SECRET not in json.dumps(summary)


# -- the judge's settings: one LLMConfig with the judge's defaults ------------------------------


@pytest.fixture
def judge_env(monkeypatch, tmp_path):
    for name in ("PSYINSIGHT_JUDGE_BASE_URL", "OPENAI_BASE_URL", "PSYINSIGHT_JUDGE_MODEL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PSYINSIGHT_CACHE_DIR", str(tmp_path / "cache"))


def _cli_config(tmp_path, monkeypatch, *options: str) -> JudgeConfig:
    """The JudgeConfig that `psyinsight judge` builds from its options (stopped before any request)."""
    from psyinsight.cli import main

    predictions = tmp_path / "p.jsonl"
    predictions.write_text(json.dumps({"id": "s-0", "text": "Therapist: Go on.", "meta": {"language": "en"}}) + "\n")
    seen = []

    class Stop(Exception):
        pass

    def capture(items, config, **kwargs):
        seen.append(config)
        raise Stop

    monkeypatch.setattr("psyinsight.evaluate.judge.judge_single", capture)
    with pytest.raises(Stop):
        main(["judge", str(predictions), "-o", str(tmp_path / "j.jsonl"), *options])
    return seen[0]


def test_the_cli_options_fill_the_judges_llm_config_as_before(tmp_path, monkeypatch, judge_env):
    from psyinsight.llm import LLMConfig

    config = _cli_config(
        tmp_path,
        monkeypatch,
        "--base-url",
        "http://judge.example/v1",
        "--model",
        "m-1",
        "--api-key-env",
        "MY_KEY",
        "--concurrency",
        "3",
        "--retries",
        "2",
        "--timeout",
        "7.5",
        "--cache",
        str(tmp_path / "c.sqlite"),
    )
    assert config.llm == LLMConfig(
        base_url="http://judge.example/v1",
        model="m-1",
        api_key_env="MY_KEY",
        max_concurrency=3,
        max_retries=2,
        timeout_s=7.5,
        cache_path=tmp_path / "c.sqlite",
        max_tokens=400,
        temperature=0.0,
    )
    assert (config.repair, config.max_context_chars) == (True, 4000)
    # the summary's `judge` settings keep their flat keys
    public = config.public_dict()
    assert {k: public[k] for k in ("base_url", "model", "api_key_env", "max_concurrency", "max_retries", "timeout_s", "max_tokens", "backoff_s")} == {
        "base_url": "http://judge.example/v1",
        "model": "m-1",
        "api_key_env": "MY_KEY",
        "max_concurrency": 3,
        "max_retries": 2,
        "timeout_s": 7.5,
        "max_tokens": 400,
        "backoff_s": 0.5,
    }
    assert public["cache_path"] == str(tmp_path / "c.sqlite") and public["repair"] is True and public["max_context_chars"] == 4000


def test_without_options_the_judge_takes_its_endpoint_and_model_from_the_environment(tmp_path, monkeypatch, judge_env):
    config = _cli_config(tmp_path, monkeypatch)
    assert (config.llm.base_url, config.llm.model, config.llm.api_key_env) == ("http://127.0.0.1:8000/v1", "gpt-4o-mini", "OPENAI_API_KEY")
    assert config.llm.cache_path is None and config.llm_config().cache_path == tmp_path / "cache" / "judge" / "llm.sqlite"
    monkeypatch.setenv("OPENAI_BASE_URL", "http://openai.example/v1")
    assert _cli_config(tmp_path, monkeypatch).llm.base_url == "http://openai.example/v1"
    monkeypatch.setenv("PSYINSIGHT_JUDGE_BASE_URL", "http://judge.example/v1")
    monkeypatch.setenv("PSYINSIGHT_JUDGE_MODEL", "judge-model")
    config = _cli_config(tmp_path, monkeypatch, "--model", "m-2")
    assert (config.llm.base_url, config.llm.model) == ("http://judge.example/v1", "m-2")
    assert (JudgeConfig().llm.base_url, JudgeConfig().llm.model) == ("http://judge.example/v1", "judge-model")


def test_a_judge_cache_written_before_keeps_hitting(judge_env):
    """The key of a judge request is what it was when JudgeConfig declared its own fields (the
    hash was computed with that version), so an existing cache answers a rerun for free."""
    from psyinsight.llm import ChatRequest, LLMClient

    client = LLMClient(JudgeConfig().llm_config())
    try:
        key = client.key_of(ChatRequest(messages=[{"role": "user", "content": "hi"}], json_mode=True, tag="judge"))
    finally:
        client.close()
    assert key == "73b2fbefacc4b0565406d4239c89f0de99e36e19776efdfbf1613d8771e5b15c"
