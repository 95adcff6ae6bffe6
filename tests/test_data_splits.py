"""Splits: deterministic, grouped by session and case, no shared utterance across sides."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from test_data_validate import run_cli

from psyinsight.data.release import load_release
from psyinsight.data.sample import sample_sessions
from psyinsight.data.splits import MIN_SHARED_CHARS, SplitAssignment, assign_splits, case_groups, split_balance, utterance_key
from psyinsight.errors import PsyInsightError


@pytest.fixture(scope="module")
def sessions(release_dir):
    return load_release(release_dir)


@pytest.fixture(scope="module")
def assignment(sessions):
    return assign_splits(sessions, seed=13)


def test_no_session_case_or_utterance_crosses(sessions, assignment):
    train = assignment.select(sessions, "train")
    test = assignment.select(sessions, "test")
    assert {s.uid for s in train}.isdisjoint(s.uid for s in test)
    # Cases: every is_same_session chain lies on one side.
    for lang in ("en", "cn"):
        ordered = [s for s in sessions if s.language == lang]
        for before, after in zip(ordered, ordered[1:]):
            if after.is_same_session == 1:
                assert assignment.split_of[before.uid] == assignment.split_of[after.uid]
    # Duplicated utterances (the release repeats text across sessions) stay on one side.
    train_text = {(s.language, utterance_key(t.content)) for s in train for t in s.dialog}
    crossing = [
        t.content
        for s in test
        for t in s.dialog
        if len(utterance_key(t.content)) >= MIN_SHARED_CHARS and (s.language, utterance_key(t.content)) in train_text
    ]
    assert crossing == []
    repeated = Counter((s.language, utterance_key(t.content)) for s in sessions for t in s.dialog)
    assert sum(1 for (lang, key), n in repeated.items() if n > 1 and len(key) >= MIN_SHARED_CHARS) > 50


def test_shares_and_strata(sessions, assignment):
    for lang in ("en", "cn"):
        sizes = Counter()
        for s in sessions:
            if s.language == lang:
                sizes[assignment.split_of[s.uid]] += len(s.dialog)
        counts = Counter(assignment.split_of[s.uid] for s in sessions if s.language == lang)
        total, n = sum(sizes.values()), sum(counts.values())
        for name, share in (("train", 0.8), ("validation", 0.1), ("test", 0.1)):
            assert abs(sizes[name] / total - share) <= 0.03, (lang, name, "utterances")
            assert abs(counts[name] / n - share) <= 0.02, (lang, name, "sessions")
    sfbt = Counter(assignment.split_of[s.uid] for s in sessions if s.language == "en" and s.psychotherapy.startswith("Solution"))
    assert sfbt["test"] > 0 and sfbt["validation"] > 0


def test_deterministic_and_reusable(sessions, assignment, tmp_path):
    again = assign_splits(sessions, seed=13)
    assert again.split_of == assignment.split_of
    other = assign_splits(sessions, seed=14)
    assert other.split_of != assignment.split_of
    path = assignment.save(tmp_path / "splits.json")
    loaded = SplitAssignment.load(path)
    assert loaded.split_of == assignment.split_of and loaded.checksum() == assignment.checksum()


def test_groups_join_cases():
    groups = case_groups(sample_sessions())
    assert groups["en-900001"] == groups["en-900002"]
    assert groups["cn-900101"] == groups["cn-900102"]
    assert groups["en-900003"] != groups["en-900001"]


def test_small_data_still_fills_every_split():
    counts = assign_splits(sample_sessions()).counts()
    assert all(counts[name] > 0 for name in ("train", "validation", "test"))


def test_bad_ratios():
    with pytest.raises(PsyInsightError, match="ratios"):
        assign_splits(sample_sessions(), ratios=(0.5, 0.5, 0.5))


def test_long_sessions_do_not_all_go_to_train(sessions, assignment):
    """Session lengths look alike on both sides: similar means, small KS statistic."""
    balance = split_balance(sessions, assignment)
    for lang in ("en", "cn"):
        rows = balance["by_language"][lang]["splits"]
        assert abs(rows["train"]["mean_session_length"] - rows["test"]["mean_session_length"]) < 1.0
        assert balance["by_language"][lang]["train_test_ks"]["statistic"] < 0.25


def test_other_ratios_are_honoured_in_sessions(sessions):
    other = assign_splits(sessions, seed=5, ratios=(0.7, 0.15, 0.15))
    counts = Counter(other.split_of.values())
    assert abs(counts["train"] / len(sessions) - 0.7) <= 0.02
    assert abs(counts["test"] / len(sessions) - 0.15) <= 0.02


def test_split_file_reports_balance(tmp_path):
    out = tmp_path / "splits.json"
    done = run_cli("data", "split", "--sample", "--out", out)
    assert done.returncode == 0, done.stderr
    balance = json.loads(out.read_text())["balance"]
    assert set(balance["splits"]["train"]) >= {"session_share", "utterance_share", "mean_session_length"}
    assert 0 <= balance["train_test_ks"]["statistic"] <= 1
    assert "sessions" in run_cli("data", "split", "--help").stdout.split("--ratios", 1)[1][:400]
