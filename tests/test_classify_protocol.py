"""Grouped protocol splits, the labeller, and one small task/language pair on the release."""

from __future__ import annotations

import numpy as np
import pytest

from psyinsight.classify.estimators import MajorityClassifier, TfidfLinearClassifier
from psyinsight.classify.labeller import label_sessions
from psyinsight.classify.persistence import load_classifier, save_classifier
from psyinsight.classify.protocol import ProtocolConfig, group_splits, run_nested, run_protocol
from psyinsight.classify.runner import rows_for, train_classifier
from psyinsight.classify.tasks import ExtractConfig, LabelledText
from psyinsight.data.sample import sample_sessions


def toy_rows(n_groups=20, per_group=3):
    rows = []
    for g in range(n_groups):
        label = ["a", "b"][g % 2]
        for i in range(per_group):
            rows.append(LabelledText(f"s{g}/{i}", f"word{label} filler{i}", "", [label], f"s{g}", "en", group=f"g{g // 2}"))
    return rows


@pytest.mark.parametrize("scheme", ["shuffle", "kfold"])
def test_splits_never_share_a_group(scheme):
    rows = toy_rows()
    splits = group_splits(rows, ProtocolConfig(scheme=scheme))
    assert len(splits) == 5
    groups = np.array([r.group for r in rows])
    for train, test in splits:
        assert not set(groups[train]) & set(groups[test])
        assert len(train) + len(test) == len(rows)
    if scheme == "kfold":  # every row is tested exactly once
        assert sorted(np.concatenate([t for _, t in splits]).tolist()) == list(range(len(rows)))


def test_protocol_mean_sd_and_signature():
    rows = toy_rows()
    result = run_protocol(rows, MajorityClassifier, task="emotion", language="en", model_name="majority", extract=ExtractConfig())
    learned = run_protocol(rows, lambda: TfidfLinearClassifier("en"), task="emotion", language="en", model_name="tfidf", extract=ExtractConfig())
    assert learned.mean() == pytest.approx(1.0) and learned.sd() == pytest.approx(0.0)
    assert result.mean() < 0.7
    values = [f.result.macro_f1 for f in result.folds]
    assert result.sd() == pytest.approx(np.std(values, ddof=1))
    assert "splits:group-shuffle-5x80/20|seed:13|model:majority" in result.signature


def test_nested_selection_uses_training_folds_only():
    rows = toy_rows(n_groups=30)
    candidates = {"majority": MajorityClassifier, "tfidf": lambda: TfidfLinearClassifier("en")}
    result = run_nested(rows, candidates, task="emotion", language="en", model_name="nested", extract=ExtractConfig())
    assert [f.result.extra["chosen"] for f in result.folds] == ["tfidf"] * 5
    assert result.mean() == pytest.approx(1.0)
    assert all(set(f.result.extra["inner_macro_f1"]) == {"majority", "tfidf"} for f in result.folds)
    assert result.signature.endswith("|nested:3fold")


def test_too_few_groups_is_an_error():
    with pytest.raises(ValueError, match="too few"):
        group_splits(toy_rows(n_groups=2), ProtocolConfig(scheme="kfold"))


def test_labeller_fills_missing_labels_and_records_it(tmp_path):
    sessions = sample_sessions()
    model, _ = train_classifier(sessions, "emotion", "en")
    folder = save_classifier(model, tmp_path / "m", task="emotion", language="en", extract=ExtractConfig())
    saved = load_classifier(folder)
    blank = [s.model_copy(deep=True) for s in sessions]
    target = blank[0]
    target.dialog[0].emotions = ["Unknown"]
    out = label_sessions(blank, [saved])
    assert out[0].dialog[0].emotions and out[0].dialog[0].emotions != ["Unknown"]
    assert out[0].dialog[0].emotions[0] in saved.labels
    filled = [r for r in out[0].repairs if r.rule == "classifier_label"]
    assert len(filled) == 1 and filled[0].original == ["Unknown"]
    assert blank[0].dialog[0].emotions == ["Unknown"]  # the input is not changed
    assert all(s.dialog == o.dialog for s, o in zip(blank[4:], out[4:]))  # cn sessions untouched by an en model


@pytest.mark.release
def test_release_pair_beats_the_majority_baseline(release_dir):
    """One small pair of the protocol on the real data: cn psychotherapy (355 sessions)."""
    from psyinsight.classify.defaults import default_extract, default_linear
    from psyinsight.data.release import load_release

    sessions = load_release(release_dir, ["cn"])
    extract = default_extract("psychotherapy", "cn")
    rows = rows_for(sessions, "psychotherapy", "cn", extract)
    assert len(rows) == 355  # 431 sessions less Unknown (75) and empty (1)
    config = ProtocolConfig(n_splits=2)
    splits = group_splits(rows, config)
    kwargs = dict(task="psychotherapy", language="cn", extract=extract, config=config, splits=splits)
    base = run_protocol(rows, MajorityClassifier, model_name="majority", **kwargs)
    ours = run_protocol(rows, lambda: TfidfLinearClassifier("cn", default_linear("psychotherapy", "cn")), model_name="tfidf", **kwargs)
    assert base.mean() < 0.1
    assert ours.mean() > 3 * base.mean()
