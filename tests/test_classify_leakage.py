"""Label names are masked in session inputs, the guard fails a benchmark that leaves one, and
nested selection chooses inputs (not only C) inside the training folds."""

from __future__ import annotations

import pytest

from psyinsight.classify import leakage
from psyinsight.classify.benchmark import BenchmarkConfig, run_benchmark
from psyinsight.classify.estimators import TfidfLinearClassifier
from psyinsight.classify.protocol import ProtocolConfig, run_nested
from psyinsight.classify.tasks import ExtractConfig, LabelledText, extract_examples
from psyinsight.data.sample import sample_sessions
from psyinsight.errors import PsyInsightError


@pytest.mark.parametrize(
    "text, masked",
    [
        ("We used SFBT and the miracle question.", "We used [LABEL] and the miracle question."),
        ("Solution-focused brief therapy asks for exceptions.", "[LABEL] asks for exceptions."),
        ("a cognitive behavioural frame", "a [LABEL] frame"),
        ("咨询师运用焦点解决短期治疗的奇迹提问。", "咨询师运用[LABEL]短期治疗的奇迹提问。"),
        ("认知行为疗法认为情绪来自解释", "[LABEL]疗法认为情绪来自解释"),
        ("REBT disputes the belief; ACT accepts it.", "[LABEL] disputes the belief; [LABEL] accepts it."),
        ("I actually want to act now.", "I actually want to act now."),  # an abbreviation is a whole upper-case word
    ],
)
def test_psychotherapy_names_are_masked_in_both_languages(text, masked):
    assert leakage.mask_label_names(text, "psychotherapy") == masked
    assert leakage.find_label_names(masked, "psychotherapy") == []


def test_every_psychotherapy_label_and_alias_is_a_name():
    from psyinsight.data import taxonomy

    names = set(leakage.label_names("psychotherapy"))
    assert {lab for lab in taxonomy.PSYCHOTHERAPIES if lab != taxonomy.UNKNOWN} <= names
    assert {"CBT", "SFBT", "REBT", "ACT", "焦点解决", "认知行为"} <= names
    assert leakage.label_names("emotion") == ()  # turn tasks are not guarded


def test_session_rows_are_masked_and_unmasked_rows_fail_the_guard():
    cn = [s for s in sample_sessions() if s.language == "cn"]
    fields = ExtractConfig(session_fields=("background", "reasoning", "summary", "guide", "dialog"))
    raw = extract_examples(cn, "psychotherapy", config=ExtractConfig(**{**fields.__dict__, "mask_label_names": False}))
    assert any(leakage.find_label_names(r.text, "psychotherapy") for r in raw)  # the sample names its therapy
    with pytest.raises(PsyInsightError, match="label names in the psychotherapy inputs"):
        leakage.check_no_label_names(raw, "psychotherapy", where="test")
    masked = extract_examples(cn, "psychotherapy", config=fields)
    leakage.check_no_label_names(masked, "psychotherapy", where="test")
    assert any(leakage.MASK in r.text for r in masked)


def test_the_benchmark_fails_when_a_name_is_left(monkeypatch, tmp_path):
    monkeypatch.setattr(leakage, "mask_label_names", lambda text, task: text)  # masking broken
    config = BenchmarkConfig(tasks=("psychotherapy",), languages=("cn",), models=("majority",), protocol=ProtocolConfig(scheme="kfold", n_splits=3))
    with pytest.raises(PsyInsightError, match="label names"):
        run_benchmark(sample_sessions(), config, tmp_path / "b")


def _rows(signal: bool) -> list[LabelledText]:
    rows = []
    for g in range(24):
        label = "ab"[g % 2]
        text = f"word{label} filler" if signal else f"filler{g % 5} noise"
        rows.append(LabelledText(f"s{g}", text, "", [label], f"s{g}", "en", group=f"g{g // 2}"))
    return rows


def test_nested_selection_chooses_the_inputs_inside_each_training_side():
    make = lambda: TfidfLinearClassifier("en")  # noqa: E731
    candidates = {"noise": (_rows(False), make), "signal": (_rows(True), make)}
    result = run_nested(_rows(False), candidates, task="psychotherapy", language="en", model_name="nested", extract=ExtractConfig())
    assert [f.result.extra["chosen"] for f in result.folds] == ["signal"] * 5
    assert result.mean() == pytest.approx(1.0)  # scored on the chosen candidate's own held-out rows


def test_a_candidate_with_other_rows_is_refused():
    make = lambda: TfidfLinearClassifier("en")  # noqa: E731
    with pytest.raises(ValueError, match="same rows"):
        run_nested(_rows(True), {"short": (_rows(True)[:-2], make)}, task="topic", language="en", model_name="n", extract=ExtractConfig())
