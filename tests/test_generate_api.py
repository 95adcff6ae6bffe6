"""``psyinsight generate --base-url URL --model NAME`` against the scripted OpenAI-compatible server.

An API model must see exactly the prompts a local model sees (the examples' messages), with
the decoding settings as request parameters; failures are retried, then left out of the file
(a rerun asks only for them); an empty reply is no prediction; the key stays in its variable.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fake_openai import FakeOpenAI

from psyinsight.cli import main
from psyinsight.fileio import read_jsonl, write_jsonl
from psyinsight.records import Example
from psyinsight.train.templates import as_dicts

SECRET = "sk-generate-SECRET-4711"


def reply(body: dict) -> str:
    """A parseable counselor turn that names the prompt it answers (its last message)."""
    return f"Therapist: I hear you. ({body['messages'][-1]['content'][-12:]})"


@pytest.fixture(scope="module")
def examples() -> list[Example]:
    from psyinsight.data.sample import sample_sessions
    from psyinsight.tasks.examples import TaskConfig, build_examples

    built = build_examples(sample_sessions(), TaskConfig(task="dialog")).examples
    return built[:4]


@pytest.fixture
def examples_file(tmp_path: Path, examples: list[Example]) -> Path:
    path = tmp_path / "test.jsonl"
    write_jsonl(path, [e.model_dump() for e in examples])
    return path


def run(*argv: str, capsys) -> tuple[int, str, str]:
    """The CLI in this process: exit code, stdout, stderr."""
    with pytest.raises(SystemExit) as exc:
        main(list(argv))
    captured = capsys.readouterr()
    return int(exc.value.code or 0), captured.out, captured.err


def generate(server: FakeOpenAI, examples_file: Path, out: Path, *extra: str, capsys) -> tuple[int, str, str]:
    return run("generate", "--examples", str(examples_file), "--base-url", server.url, "--model", "api-model", "-o", str(out), *extra, capsys=capsys)


def example_of(body: dict, examples: list[Example]) -> Example:
    """The example whose messages a request carried (exactly)."""
    found = [e for e in examples if as_dicts(e.messages) == body["messages"]]
    assert len(found) == 1, body["messages"]
    return found[0]


def test_requests_carry_the_example_messages_and_decoding(tmp_path, examples, examples_file, capsys):
    out = tmp_path / "pred.jsonl"
    with FakeOpenAI(reply) as server:
        code, stdout, stderr = generate(server, examples_file, out, "--max-new-tokens", "32", "--seed", "5", capsys=capsys)
        bodies = [r.body for r in server.records]
    assert code == 0, stderr
    assert len(bodies) == len(examples)
    assert sorted(example_of(b, examples).id for b in bodies) == sorted(e.id for e in examples)
    for body in bodies:
        params = {k: v for k, v in body.items() if k != "messages"}
        assert params == {"model": "api-model", "max_tokens": 32, "temperature": 0.0, "seed": 5}
    rows = read_jsonl(out)
    assert [r["id"] for r in rows] == [e.id for e in examples]
    for row, example in zip(rows, examples):
        assert row["reference"] == example.reference
        assert row["response"].startswith("I hear you.") and row["parse_ok"]
        assert row["meta"]["model"] == "api-model"
        assert row["meta"]["language"] == example.meta["language"]
        assert row["meta"]["decoding"] == {"backend": "api", "max_new_tokens": 32, "do_sample": False, "seed": 5}
    assert "4 predictions" in stdout and "4 generated, 0 resumed, 0 failed" in stdout and "requests 4, cache hits 0, retries 0" in stdout
    assert "api-model at " in stderr


def test_sampling_settings_and_label(tmp_path, examples_file, capsys):
    out = tmp_path / "sampled.jsonl"
    with FakeOpenAI(reply) as server:
        options = ("--sample-decoding", "--temperature", "0.5", "--top-p", "0.8", "--label", "GPT row", "--limit", "2")
        code, _, stderr = generate(server, examples_file, out, *options, capsys=capsys)
        bodies = [r.body for r in server.records]
    assert code == 0, stderr
    assert len(bodies) == 2
    assert all((b["temperature"], b["top_p"], b["seed"], b["max_tokens"]) == (0.5, 0.8, 13, 128) for b in bodies)
    rows = read_jsonl(out)
    assert [r["meta"]["model"] for r in rows] == ["GPT row"] * 2
    assert rows[0]["meta"]["decoding"] == {"backend": "api", "max_new_tokens": 128, "do_sample": True, "seed": 13, "temperature": 0.5, "top_p": 0.8}


def test_a_rerun_makes_zero_requests_resumed_or_cached(tmp_path, examples_file, capsys):
    out = tmp_path / "pred.jsonl"
    with FakeOpenAI(reply) as server:
        assert generate(server, examples_file, out, capsys=capsys)[0] == 0
        first = out.read_text(encoding="utf-8")
        assert (tmp_path / "pred.jsonl.llm-cache.sqlite").is_file()
        server.reset_records()
        code, stdout, _ = generate(server, examples_file, out, capsys=capsys)  # resumed: every id is in the file
        assert code == 0 and server.request_count == 0
        assert "0 generated, 4 resumed" in stdout and "requests 0" not in stdout  # no client was even started
        out.unlink()
        code, stdout, _ = generate(server, examples_file, out, capsys=capsys)  # the file is gone: the cache answers
        assert code == 0 and server.request_count == 0
        assert "4 generated" in stdout and "requests 0, cache hits 4" in stdout
    assert out.read_text(encoding="utf-8") == first


def test_transient_faults_are_retried(tmp_path, examples, examples_file, capsys):
    out = tmp_path / "pred.jsonl"
    with FakeOpenAI(reply, faults=["429", "500"]) as server:
        code, stdout, stderr = generate(server, examples_file, out, capsys=capsys)
        assert server.request_count == len(examples) + 2
    assert code == 0, stderr
    assert [r["id"] for r in read_jsonl(out)] == [e.id for e in examples]
    assert "0 failed" in stdout and "retries 2" in stdout


def test_permanent_failures_are_left_out_and_resumed(tmp_path, examples, examples_file, capsys):
    out = tmp_path / "pred.jsonl"
    broken = {examples[1].id, examples[3].id}
    state = {"down": True}

    def fault(body: dict, n: int) -> str:
        return "500" if state["down"] and example_of(body, examples).id in broken else "ok"

    with FakeOpenAI(reply, fault_fn=fault) as server:
        code, stdout, stderr = generate(server, examples_file, out, "--retries", "1", capsys=capsys)
        assert code == 2
        lines = stderr.strip().splitlines()
        assert lines[-1].startswith(f"error: generate: 2 of 4 examples got no prediction (first: {examples[1].id}: 500: server error 500)")
        assert "the others are in" in lines[-1] and not any(line.startswith("error") for line in lines[:-1])
        assert "2 generated, 0 resumed, 2 failed" in stdout
        assert [r["id"] for r in read_jsonl(out)] == [examples[0].id, examples[2].id]
        assert all(r["response"] for r in read_jsonl(out))
        # The server recovers: a rerun asks for the two missing examples only.
        state["down"] = False
        server.reset_records()
        code, stdout, stderr = generate(server, examples_file, out, "--retries", "1", capsys=capsys)
        assert code == 0, stderr
        assert sorted(example_of(r.body, examples).id for r in server.records) == sorted(broken)
    assert [r["id"] for r in read_jsonl(out)] == [e.id for e in examples]
    assert "2 generated, 2 resumed, 0 failed" in stdout


def test_nothing_is_written_when_every_request_fails(tmp_path, examples_file, capsys):
    out = tmp_path / "pred.jsonl"
    with FakeOpenAI(reply, fault_fn=lambda body, n: "401") as server:
        code, _, stderr = generate(server, examples_file, out, capsys=capsys)
        assert server.request_count == 4  # a 401 is not retried
    assert code == 2
    assert stderr.strip().splitlines()[-1].startswith("error: generate: 4 of 4 examples got no prediction")
    assert "nothing was written" in stderr and "check the API key variable" in stderr
    assert not out.exists() and not (tmp_path / "pred.jsonl.partial").exists()


def test_an_empty_reply_is_not_a_prediction(tmp_path, examples, examples_file, capsys):
    out = tmp_path / "pred.jsonl"
    empty = examples[2]
    state = {"empty": True}

    def responder(body: dict) -> str:
        return " \n" if state["empty"] and example_of(body, examples).id == empty.id else reply(body)

    with FakeOpenAI(responder) as server:
        code, _, stderr = generate(server, examples_file, out, capsys=capsys)
        assert code == 2
        assert f"(first: {empty.id}: empty reply)" in stderr.strip().splitlines()[-1]
        assert empty.id not in {r["id"] for r in read_jsonl(out)}
        # The empty answer was not kept in the cache either: the rerun asks again.
        state["empty"] = False
        server.reset_records()
        code, _, stderr = generate(server, examples_file, out, capsys=capsys)
        assert code == 0, stderr
        assert [example_of(r.body, examples).id for r in server.records] == [empty.id]
    assert [r["id"] for r in read_jsonl(out)] == [e.id for e in examples]


def test_the_key_comes_from_its_variable_and_is_written_nowhere(tmp_path, examples_file, capsys, monkeypatch):
    monkeypatch.setenv("MY_PROVIDER_KEY", SECRET)
    out = tmp_path / "pred.jsonl"
    with FakeOpenAI(reply, faults=["500"]) as server:
        code, stdout, stderr = generate(server, examples_file, out, "--api-key-env", "MY_PROVIDER_KEY", capsys=capsys)
        assert {r.authorization for r in server.records} == {f"Bearer {SECRET}"}
    assert code == 0, stderr
    assert "$MY_PROVIDER_KEY" in stderr
    assert SECRET not in stdout + stderr
    written = [p for p in tmp_path.iterdir() if p.is_file()]
    assert any(p.name.startswith("pred.jsonl.llm-cache.sqlite") for p in written)
    for path in written:
        assert SECRET.encode() not in path.read_bytes(), path


@pytest.mark.parametrize(
    ("extra", "where"),
    [
        (["--adapter", "ADAPTER"], "--adapter"),
        (["--backend", "vllm"], "--backend"),
        (["--concurrency", "0"], "--concurrency"),
    ],
)
def test_option_conflicts_name_the_option(tmp_path, examples_file, capsys, extra, where):
    (tmp_path / "ADAPTER").mkdir()
    extra = [str(tmp_path / "ADAPTER") if a == "ADAPTER" else a for a in extra]
    with FakeOpenAI(reply) as server:
        code, _, stderr = generate(server, examples_file, tmp_path / "p.jsonl", *extra, capsys=capsys)
        assert server.request_count == 0
    lines = stderr.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith(f"error: {where}: "), stderr


def test_the_model_name_is_required(tmp_path, examples_file, capsys):
    code, _, stderr = run(
        "generate", "--examples", str(examples_file), "--base-url", "http://127.0.0.1:9/v1", "-o", str(tmp_path / "p.jsonl"), capsys=capsys
    )
    assert code == 2 and stderr.strip().splitlines() == [stderr.strip()] and stderr.startswith("error: --model: ")


def test_built_examples_are_those_of_a_local_run_without_adapter(tmp_path, capsys, monkeypatch):
    """Without --examples, the budget is measured with the recipe's model's tokenizer, never --model's."""
    import dataclasses

    from psyinsight.train.recipe import Recipe
    from psyinsight.train.runner import build_split_examples

    asked: list[str] = []

    class WordTokenizer:
        def __call__(self, text: str, add_special_tokens: bool = False) -> dict:
            return {"input_ids": text.split()}

    def fake_load_tokenizer(name, **kw):
        asked.append(str(name))
        return WordTokenizer()

    monkeypatch.setattr("psyinsight.models.load_tokenizer", fake_load_tokenizer)
    with FakeOpenAI(reply) as server:
        argv = [
            "generate",
            "--sample",
            "--split",
            "test",
            "--limit",
            "3",
            "--base-url",
            server.url,
            "--model",
            "gpt-x",
            "-o",
            str(tmp_path / "p.jsonl"),
        ]
        code, _, stderr = run(*argv, capsys=capsys)
        bodies = [r.body for r in server.records]
    assert code == 0, stderr
    recipe = Recipe()
    assert asked == [recipe.model.name]
    recipe = dataclasses.replace(recipe, data=dataclasses.replace(recipe.data, source="sample", split_file=None))
    expected = build_split_examples(recipe, "test", WordTokenizer())[0][:3]
    assert sorted(json.dumps(b["messages"]) for b in bodies) == sorted(json.dumps(as_dicts(e.messages)) for e in expected)
    assert [r["id"] for r in read_jsonl(tmp_path / "p.jsonl")] == [e.id for e in expected]


def test_the_endpoint_options_are_spelled_as_in_judge():
    from typer.main import get_command

    from psyinsight.cli import app

    group = get_command(app)
    generate_cmd, judge_cmd = group.get_command(None, "generate"), group.get_command(None, "judge")
    for flag in ("--base-url", "--api-key-env", "--concurrency", "--retries", "--timeout", "--cache"):
        mine = next(p for p in generate_cmd.params if flag in p.opts)
        theirs = next(p for p in judge_cmd.params if flag in p.opts)
        assert (mine.opts, mine.default) == (theirs.opts, theirs.default), flag
    assert not any("--api-key" in p.opts for p in generate_cmd.params)


def test_options_that_do_nothing_are_named(tmp_path, examples_file, capsys):
    with FakeOpenAI(reply) as server:
        code, _, stderr = generate(server, examples_file, tmp_path / "p.jsonl", "--threads", "2", "--batch-size", "4", "--limit", "1", capsys=capsys)
    assert code == 0, stderr
    assert "warning: --threads, --batch-size do nothing with --base-url" in stderr.splitlines()
    # and the endpoint's options on a local run (stopped at its missing adapter)
    code, _, stderr = run(
        "generate", "--adapter", str(tmp_path / "missing"), "--cache", str(tmp_path / "c.sqlite"), "-o", str(tmp_path / "q.jsonl"), capsys=capsys
    )
    assert code == 2 and stderr.splitlines()[0] == "warning: --cache does nothing without --base-url"


def test_a_dead_endpoint_stops_after_one_chunk(tmp_path, capsys):
    """With --concurrency 1 a chunk is 4 requests: when all 4 fail, the other examples are not sent."""
    from psyinsight.data.sample import sample_sessions
    from psyinsight.tasks.examples import TaskConfig, build_examples

    path = tmp_path / "ten.jsonl"
    write_jsonl(path, [e.model_dump() for e in build_examples(sample_sessions(), TaskConfig(task="dialog")).examples[:10]])
    with FakeOpenAI(reply, fault_fn=lambda body, n: "404") as server:
        code, stdout, stderr = generate(server, path, tmp_path / "p.jsonl", "--concurrency", "1", capsys=capsys)
        assert server.request_count == 4
    assert code == 2 and "10 failed" in stdout
    assert stderr.strip().splitlines()[-1].startswith("error: generate: 10 of 10 examples got no prediction (first: ")
    assert "404: request rejected with status 404" in stderr and "nothing was written" in stderr
