"""The guard's pieces on input nobody here wrote: the dodges undone by ``text.canonical``,
bad input of every kind with a defined verdict, the risk model's files, and the optional
second opinion (through the project's LLM client, failing closed)."""

from __future__ import annotations

import json
import unicodedata

import numpy as np
import pytest
from fake_openai import FakeOpenAI

from psyinsight.counsel.safety import SafetyConfig, SafetyGuard
from psyinsight.counsel.safety.encoder_file import layers_digest
from psyinsight.counsel.safety.model import ARRAYS, RiskModel, default_model_path
from psyinsight.counsel.safety.second_opinion import parse_opinion
from psyinsight.counsel.safety.text import canonical
from psyinsight.errors import PsyInsightError


@pytest.mark.parametrize(
    "dodged, plain",
    [
        ("I want to k1ll mys3lf", "i want to kill myself"),
        ("ki\u200bll my\u200dself", "kill myself"),
        ("k\u0456ll mys\u0435lf", "kill myself"),  # Cyrillic і, е
        ("ＫＩＬＬ ＭＹＳＥＬＦ", "kill myself"),
        ("s.u.i.c.i.d.e", "suicide"),
        ("$uicide", "suicide"),
        ("自 杀", "自杀"),
        ("我想自*杀", "我想自杀"),
    ],
)
def test_dodges_are_undone(dodged, plain):
    assert canonical(dodged) == plain


@pytest.mark.parametrize("text", ["mp3 at 4am", "covid19 in 2nd grade", "Я хочу домой", "今天天气很好，我们去公园。"])
def test_ordinary_text_is_left_as_it_reads(text):
    assert canonical(text) == unicodedata.normalize("NFKC", text).lower()


@pytest.mark.parametrize(
    "text",
    [
        "I want to k1ll mys3lf",
        "k i l l  m y s e l f",
        "ki\u200bll my\u200bself",
        "k\u0456ll mys\u0435lf",
        "我想 自 杀",
        "我不想活了😭😭",
        "zisha le suan le",
    ],
)
def test_dodged_crisis_is_caught(guard, text):
    assert guard.check_text(text).risk


@pytest.mark.parametrize(
    "text, risk",
    [
        ("", False),
        ("   \n\t ", False),
        ("😀🎉👍", False),
        ("\u200b\u200b", False),
        ("word " * 20000 + "I swallowed all my sleeping pills an hour ago and I feel dizzy. " + "word " * 5000, True),
        ("今天很开心 and I had pizza with friends", False),
    ],
    ids=["empty", "blank", "emoji-only", "zero-width-only", "100kB-buried-risk", "mixed-scripts"],
)
def test_bad_input_gets_a_defined_verdict(guard, text, risk):
    result = guard.check_text(text)
    assert result.risk is risk and result.reason


@pytest.mark.parametrize(
    "text, language",
    [
        ("Je veux mourir, je vais me tuer ce soir", "fr"),
        ("Quiero morir, me voy a suicidar esta noche", "es"),
        ("Ich will nicht mehr leben, ich bringe mich heute um", "de"),
    ],
)
def test_uncovered_languages_are_screened_and_logged(guard, text, language, caplog):
    with caplog.at_level("INFO", logger="psyinsight.counsel.safety.guard"):
        result = guard.check_text(text)
    assert result.language == language and not result.covered
    assert result.risk, result.reason
    assert "do not cover" in caplog.text


def test_a_model_fitted_on_other_encoder_layers_is_refused(tmp_path, guard):
    path = tmp_path / "m.npz"
    guard.model.save(path)
    card = json.loads(path.with_suffix(".json").read_text())
    assert card["encoder_layers_digest"] == layers_digest()
    path.with_suffix(".json").write_text(json.dumps({**card, "encoder_layers_digest": "0" * 16}))
    with pytest.raises(PsyInsightError, match="refit it") as err:
        RiskModel.load(path)
    assert str(path) in str(err.value)


def test_the_model_file_round_trips_and_loads_no_code(tmp_path, guard):
    path = tmp_path / "m.npz"
    guard.model.save(path)
    again = RiskModel.load(path)
    assert again.threshold == guard.model.threshold and again.card["digest"] == guard.model.card["digest"]
    texts = ["I want to die", "我今天很开心", "the pills are kicking in"]
    assert [s.risk for s in again.scores(texts)] == pytest.approx([s.risk for s in guard.model.scores(texts)])
    with np.load(default_model_path(), allow_pickle=False) as arrays:
        assert set(arrays.files) == set(ARRAYS)


def test_a_missing_or_broken_model_file_names_the_file(tmp_path):
    with pytest.raises(PsyInsightError, match="risk model file missing"):
        RiskModel.load(tmp_path / "none.npz")
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    bad.with_suffix(".json").write_text("{}")
    with pytest.raises(PsyInsightError, match="not a risk model") as info:
        RiskModel.load(bad)
    assert str(bad) in str(info.value)


# ------------------------------------------------------------------ the second opinion
CALM = "I had a lovely walk with my dog this morning."


@pytest.mark.parametrize(
    "answer, crisis",
    [
        ('{"crisis": true, "category": "suicide"}', True),
        ('{"crisis": false, "category": null}', False),
        ("unsafe\nS11", True),
        ("safe", False),
        ("I cannot say", None),
    ],
)
def test_guard_model_answers_are_read(answer, crisis):
    opinion = parse_opinion(answer)
    assert (opinion.crisis if opinion else None) is crisis


def _with_second_opinion(url: str) -> SafetyGuard:
    """A guard whose borderline band is everything below its threshold (so CALM is asked about)."""
    g = SafetyGuard(SafetyConfig(second_opinion_url=url, second_opinion_timeout=2))
    g.model.borderline = 0.0
    return g


@pytest.mark.parametrize("crisis", [True, False])
def test_a_borderline_message_is_decided_by_the_second_opinion(crisis):
    answer = '{"crisis": true, "category": "self_harm"}' if crisis else '{"crisis": false, "category": null}'
    with FakeOpenAI(responder=lambda body: answer) as server:
        result = _with_second_opinion(server.url).check_text(CALM)
        assert server.request_count == 1 and CALM in server.records[0].body["messages"][0]["content"]
    assert result.risk is crisis and "second opinion" in result.reason
    if crisis:
        assert result.source == "second_opinion" and result.category == "self_harm"


@pytest.mark.parametrize("fault", ["500", "hang", "bad_body"])
def test_the_second_opinion_fails_closed(fault):
    with FakeOpenAI(faults=[fault] * 5, hang_s=5) as server:
        result = _with_second_opinion(server.url).check_text(CALM)
        assert result.risk and result.source == "second_opinion" and "failing closed" in result.reason


def test_no_second_opinion_is_asked_unless_configured(guard):
    assert guard._second is None


def test_training_fits_calibrates_and_writes_a_model_that_loads(tmp_path):
    from psyinsight.counsel.safety.corpus import load_examples, named_sets, training_rows
    from psyinsight.counsel.safety.model import train

    rows = training_rows()[::60]
    valid = load_examples(named_sets()["valid"])[::5]
    model = train(rows, valid, folds=3)
    assert 0 < model.borderline <= model.threshold < 1
    assert model.card["validation"]["fpr"] <= 0.04 and model.card["train_rows"] == len(rows)
    model.save(tmp_path / "m.npz")
    again = RiskModel.load(tmp_path / "m.npz")
    assert again.score("I want to kill myself tonight").risk == pytest.approx(model.score("I want to kill myself tonight").risk)
