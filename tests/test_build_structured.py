"""The build sends each annotation answer's JSON Schema as ``response_format`` and falls back to json_object.

The schemas must say what the checkers accept (a schema-valid answer is a usable one, and
an answer with a label outside the taxonomy is schema-invalid); a server that rejects
json_schema gets plain JSON requests from then on, and the build loses nothing.
"""

from __future__ import annotations

import json
import shutil

import pytest
from fake_openai import FakeOpenAI, keys_responder

from psyinsight.build.ingest import sample_raw_dir
from psyinsight.build.pipeline import BuildConfig, run_build
from psyinsight.llm import LLMConfig

jsonschema = pytest.importorskip("jsonschema")
FILES = ["en/memoir_grief.txt", "en/memoir_grief.gold.json", "cn/memoir_loneliness.txt", "cn/memoir_loneliness.gold.json"]


def _raw(tmp_path):
    raw = tmp_path / "raw"
    for name in FILES:
        (raw / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(sample_raw_dir() / name, raw / name)
    return raw


def _build(url, tmp_path, name, **llm):
    config = LLMConfig(base_url=url, model="fake", max_concurrency=4, max_retries=1, timeout_s=5.0, backoff_s=0.01, **llm)
    return run_build(BuildConfig(raw_dir=_raw(tmp_path), out_dir=tmp_path / name, llm=config))


def test_every_annotation_request_carries_a_schema_its_checker_agrees_with(tmp_path):
    with FakeOpenAI(keys_responder) as server:
        report = _build(server.url, tmp_path, "out")
        bodies = [r.body for r in server.records]
    assert report["failures"]["total"] == 0 and report["llm_usage"]["structured_output"] == "json_schema"
    tasks = set()
    for body in bodies:
        fmt = body["response_format"]
        assert fmt["type"] == "json_schema" and fmt["json_schema"]["strict"] is True
        schema = fmt["json_schema"]["schema"]
        jsonschema.Draft202012Validator.check_schema(schema)
        answer = json.loads(keys_responder(body))  # answers the checkers accept...
        jsonschema.validate(answer, schema)  # ...are schema-valid
        tasks.add(fmt["json_schema"]["name"])
        bad = dict(answer)
        if "psychotherapy" in bad:
            bad["psychotherapy"] = "Astrology"
        elif "turns" in bad:
            bad["turns"] = bad["turns"][:-1]  # a turn id left out
        elif "is_same_qa" in bad:
            bad["is_same_qa"] = 2
        else:
            bad["extra"] = "x"
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema)
    assert {"psyinsight_unit", "psyinsight_labels", "psyinsight_window", "psyinsight_boundary"} <= tasks


def test_a_server_that_rejects_schemas_gets_json_object_and_nothing_is_lost(tmp_path):
    def reject_schemas(body, n):
        return "reject_schema" if (body.get("response_format") or {}).get("type") == "json_schema" else "ok"

    with FakeOpenAI(keys_responder, fault_fn=reject_schemas) as server:
        report = _build(server.url, tmp_path, "out")
        kinds = [(r.body.get("response_format") or {}).get("type") for r in server.records]
    assert report["failures"]["total"] == 0 and report["llm_usage"]["structured_output"] == "json_object"
    assert 1 <= kinds.count("json_schema") <= 4  # the requests already in flight when the first rejection came back
    assert kinds.count("json_object") == report["llm_usage"]["succeeded"]


def test_json_object_mode_never_sends_a_schema(tmp_path):
    with FakeOpenAI(keys_responder) as server:
        report = _build(server.url, tmp_path, "out", structured="json_object")
        kinds = {(r.body.get("response_format") or {}).get("type") for r in server.records}
    assert kinds == {"json_object"} and report["llm_usage"]["structured_output"] == "json_object"


WIDEST_CHAR = {"en": "~", "cn": "\u9fff"}
"""The widest character each language's text fields admit (1 and 3 UTF-8 bytes)."""


def _longest_answer(schema, language):
    """The answer the schema admits that takes the most bytes: every text at its longest, in its widest character."""
    if "enum" in schema:
        return max(schema["enum"], key=lambda value: len(json.dumps(value, ensure_ascii=False).encode("utf-8")))
    if schema["type"] == "object":
        return {key: _longest_answer(value, language) for key, value in schema["properties"].items()}
    if schema["type"] == "array":
        items = [_longest_answer(item, language) for item in schema.get("prefixItems", [])]
        return items + [_longest_answer(schema["items"], language)] * (schema["maxItems"] - len(items)) if schema.get("items") else items
    return WIDEST_CHAR[language] * schema["maxLength"]


@pytest.mark.parametrize("language", ["en", "cn"])
def test_no_answer_a_schema_admits_outgrows_its_token_limit(tmp_path, language):
    # A small model can loop inside a text field until max_tokens cuts it (seen: "1-3-4-5-6-..."); sized for
    # the worst case, the longest admitted answer still fits, so a constrained answer always closes.
    from psyinsight.build.annotate import AnnotateConfig, load_prompts, unit_jobs
    from psyinsight.build.pipeline import Build
    from psyinsight.build.schemas import token_bound
    from psyinsight.models import load_tokenizer

    tokenizer = load_tokenizer("smollm2")
    build = Build(BuildConfig(raw_dir=_raw(tmp_path), out_dir=tmp_path / "jobs", llm=None))
    states = build.ingest()
    build.segment(states)
    build.turns(states)
    build.anonymise(states)
    units = [u for s in states for u in s.anonymised if u.language == language]
    jobs = [job for unit in units for job in unit_jobs(unit, None, load_prompts(language), AnnotateConfig())]
    assert {job.task for job in jobs} >= {"unit", "labels", "window"}
    for job in jobs:
        schema, limit = job.request.schema, job.request.params["max_tokens"]
        answer = json.dumps(_longest_answer(schema, language), ensure_ascii=False, separators=(", ", ": "))
        jsonschema.validate(json.loads(answer), schema)
        tokens = len(tokenizer(answer, add_special_tokens=False)["input_ids"])
        assert tokens <= len(answer.encode("utf-8")) <= token_bound(schema, language) <= limit, (job.task, tokens, limit)


@pytest.mark.parametrize("text", ['a "quote"', "back\\slash", "two\nlines", "tab\there"])
def test_text_fields_admit_no_character_json_would_escape(text):
    from psyinsight.build.schemas import unit_schema

    schema = unit_schema(800, "en")
    answer = {key: "fine" for key in schema["properties"]}
    jsonschema.validate(answer, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**answer, "summary": text}, schema)
