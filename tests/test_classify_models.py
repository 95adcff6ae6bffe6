"""Models, metrics and persistence on small synthetic data with known answers."""

from __future__ import annotations

import json
import random
import warnings
from pathlib import Path

import numpy as np
import pytest

from psyinsight.classify.estimators import LinearConfig, MajorityClassifier, TfidfLinearClassifier
from psyinsight.classify.features import FeatureConfig
from psyinsight.classify.metrics import confusion_figure, results_markdown, score, score_sets
from psyinsight.classify.persistence import LanguageMismatchWarning, load_classifier, save_classifier
from psyinsight.classify.tasks import ExtractConfig
from psyinsight.errors import PsyInsightError

EN_WORDS = {
    "Anxiety": ["worried", "nervous", "panic", "tense", "uneasy"],
    "Happiness": ["glad", "happy", "delighted", "cheerful", "great"],
    "Anger": ["furious", "annoyed", "mad", "irritated", "rage"],
}
CN_WORDS = {"Anxiety": ["担心", "紧张", "焦虑"], "Happiness": ["开心", "高兴", "快乐"], "Anger": ["生气", "愤怒", "恼火"]}
FILLER = ["today", "work", "my", "mother", "really", "the", "meeting", "i", "am", "feel", "so", "about"]


def synth(words, filler, n, seed, sep=" "):
    rng = random.Random(seed)
    texts, labels = [], []
    for i in range(n):
        label = list(words)[i % len(words)]
        tokens = rng.sample(filler, 4) + [rng.choice(words[label])]
        rng.shuffle(tokens)
        texts.append(sep.join(tokens))
        labels.append(label)
    return texts, labels


def test_majority_predicts_the_most_frequent_label():
    model = MajorityClassifier().fit(["a", "b", "c"], ["x", "y", "y"])
    assert model.predict(["q", "r"]) == ["y", "y"]
    np.testing.assert_allclose(model.predict_proba(["q"]), [[1 / 3, 2 / 3]])


@pytest.mark.parametrize("estimator", ["svm", "logreg"])
def test_tfidf_learns_english(estimator):
    texts, labels = synth(EN_WORDS, FILLER, 90, 1)
    test_texts, test_labels = synth(EN_WORDS, FILLER, 30, 2)
    model = TfidfLinearClassifier("en", LinearConfig(estimator=estimator, C=1.0)).fit(texts, labels)
    assert score(test_labels, model.predict(test_texts)).accuracy >= 0.9
    proba = model.predict_proba(test_texts)
    assert proba.shape == (30, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)


def test_tfidf_learns_chinese_with_jieba_words():
    filler = ["今天", "工作", "我的", "妈妈", "真的", "会议", "我", "觉得"]
    texts, labels = synth(CN_WORDS, filler, 60, 3, sep="")
    test_texts, test_labels = synth(CN_WORDS, filler, 30, 4, sep="")
    model = TfidfLinearClassifier("cn", LinearConfig(C=1.0, features=FeatureConfig(char_ngrams=(0, 0)))).fit(texts, labels)
    assert score(test_labels, model.predict(test_texts)).accuracy >= 0.9


def test_context_block_carries_signal():
    # The utterance is uninformative; only the preceding turn tells the label.
    ctx, labels = synth(EN_WORDS, FILLER, 90, 5)
    texts = ["yes"] * 90
    model = TfidfLinearClassifier("en", LinearConfig(C=1.0, features=FeatureConfig(context_weight=1.0))).fit(texts, labels, ctx)
    test_ctx, test_labels = synth(EN_WORDS, FILLER, 30, 6)
    assert score(test_labels, model.predict(["yes"] * 30, test_ctx)).accuracy >= 0.9
    blind = TfidfLinearClassifier("en", LinearConfig(C=1.0, features=FeatureConfig(context_weight=0.0))).fit(texts, labels, ctx)
    assert score(test_labels, blind.predict(["yes"] * 30, test_ctx)).accuracy < 0.5


def test_following_turns_block_is_separate_from_context():
    nxt, labels = synth(EN_WORDS, FILLER, 90, 11)
    contexts = [f"Seeker: hello\n[NEXT]\n{t}" for t in nxt]
    cfg = LinearConfig(C=1.0, features=FeatureConfig(context_weight=1.0, next_weight=1.0))
    model = TfidfLinearClassifier("en", cfg).fit(["yes"] * 90, labels, contexts)
    assert [source for source, _, _ in model.featurizer_.blocks_] == ["text", "text", "context", "next"]
    test_next, test_labels = synth(EN_WORDS, FILLER, 30, 12)
    predicted = model.predict(["yes"] * 30, [f"Seeker: hello\n[NEXT]\n{t}" for t in test_next])
    assert score(test_labels, predicted).accuracy >= 0.9


def test_multi_label_sets():
    texts, labels = synth(EN_WORDS, FILLER, 90, 7)
    sets = [[lab] for lab in labels]
    for i in range(0, 90, 3):  # every third row also carries Anger's cue and label
        texts[i] += " furious"
        sets[i] = sorted(set(sets[i]) | {"Anger"})
    model = TfidfLinearClassifier("en", LinearConfig(estimator="logreg", C=10.0)).fit(texts, sets)
    assert model.multi_label
    predicted = model.predict_sets(["worried furious today", "glad today"], threshold=0.4)
    assert set(predicted[0]) == {"Anxiety", "Anger"} and predicted[1] == ["Happiness"]
    scores = score_sets([["Anxiety", "Anger"], ["Happiness"]], predicted)
    assert scores["subset_accuracy"] == 1.0


def test_score_known_answer():
    gold = ["a", "a", "b", "c"]
    pred = ["a", "b", "b", "a"]
    result = score(gold, pred)
    # per class F1: a = 2*0.5*0.5/1 = 0.5, b = 2*0.5*1/1.5 = 0.667, c = 0
    assert result.macro_f1 == pytest.approx((0.5 + 2 / 3 + 0) / 3)
    assert result.micro_f1 == pytest.approx(0.5) and result.accuracy == pytest.approx(0.5)
    assert result.confusion == [[1, 1, 0], [0, 1, 0], [1, 0, 0]]
    assert result.per_class["c"]["support"] == 1


def test_figure_and_table(tmp_path):
    result = score(["a", "b", "b"], ["a", "b", "a"])
    path = confusion_figure(result, tmp_path / "c.png")
    assert path.read_bytes()[:4] == b"\x89PNG"
    table = results_markdown([{"task": "emotion", "f1": 0.41234}], [("task", "task"), ("f1", "macro-F1")])
    assert table.splitlines() == ["| task | macro-F1 |", "|---|---|", "| emotion | 0.412 |"]


@pytest.fixture()
def saved_model(tmp_path):
    texts, labels = synth(EN_WORDS, FILLER, 60, 8)
    model = TfidfLinearClassifier("en", LinearConfig(C=1.0)).fit(texts, labels)
    folder = save_classifier(model, tmp_path / "m", task="emotion", language="en", extract=ExtractConfig())
    return folder, model


def test_round_trip_predicts_the_same(saved_model):
    folder, model = saved_model
    loaded = load_classifier(folder, task="emotion")
    texts, _ = synth(EN_WORDS, FILLER, 20, 9)
    assert loaded.predict(texts) == model.predict(texts)
    np.testing.assert_allclose(loaded.predict_proba(texts), model.predict_proba(texts))
    assert loaded.labels == ["Anger", "Anxiety", "Happiness"] and loaded.language == "en"


def _edit_manifest(folder, **changes):
    path = folder / "manifest.json"
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


def test_refuses_another_task(saved_model):
    folder, _ = saved_model
    with pytest.raises(PsyInsightError, match="trained for task 'emotion', not 'strategy'"):
        load_classifier(folder, task="strategy")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"psyinsight_version": "0.0.1"}, "saved by psyinsight 0.0.1"),
        ({"sklearn_version": "0.24.2"}, "scikit-learn 0.24.2"),
        ({"format_version": 99}, "manifest format version 99"),
        ({"format": "something-else"}, "not a psyinsight classifier manifest"),
        ({"model_sha256": "0" * 64}, "does not match the manifest's SHA-256"),
    ],
)
def test_refuses_other_versions_and_tampering(saved_model, changes, message):
    folder, _ = saved_model
    _edit_manifest(folder, **changes)
    with pytest.raises(PsyInsightError, match=message):
        load_classifier(folder)


def test_version_mismatch_can_be_allowed_with_a_warning(saved_model):
    folder, _ = saved_model
    _edit_manifest(folder, psyinsight_version="0.0.1")
    with pytest.warns(UserWarning, match="retrain"):
        load_classifier(folder, allow_version_mismatch=True)


def test_missing_manifest_is_clear(tmp_path):
    with pytest.raises(PsyInsightError, match="not a saved classifier"):
        load_classifier(tmp_path)


def test_language_mismatch_warns_or_raises(saved_model):
    folder, _ = saved_model
    loaded = load_classifier(folder)
    with pytest.warns(LanguageMismatchWarning, match="trained on 'en' text but the input looks 'cn'"):
        loaded.predict(["我今天很担心工作"])
    with pytest.raises(PsyInsightError, match="looks 'cn'"):
        loaded.check_language(["我今天很担心工作"], strict=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loaded.predict(["I am worried"])


def test_a_model_saved_before_the_layout_changed_still_loads():
    """``tests/data/classifier_v1`` was pickled when the classifiers lived in ``psyinsight.classify.estimators``."""
    folder = Path(__file__).parent / "data" / "classifier_v1"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # saved by an earlier psyinsight version
        loaded = load_classifier(folder, task="emotion", allow_version_mismatch=True)
    texts = ["really the nervous i feel", "the work great am feel", "meeting my feel annoyed about"]
    assert loaded.predict(texts) == ["Anxiety", "Happiness", "Anger"]
