"""The safety guard's decision rule on ordinary counseling talk and on indirect crisis talk:
the risk-cue gate on the classifier, regression tables in both languages, the release
flag rate, the cross-validated threshold table, and test sets kept apart from training."""

from __future__ import annotations

import itertools
import time
from collections import Counter

import pytest

from psyinsight.safety import SafetyConfig, SafetyGuard
from psyinsight.safety.classifier import data_path, load_examples
from psyinsight.safety.evaluate import MAX_OVERLAP, cross_validate_thresholds, max_overlap
from psyinsight.safety.patterns import has_risk_cue, normalize

TEST_SETS = ("testset.jsonl", "blindset.jsonl", "blindset2.jsonl", "blindset3.jsonl")


@pytest.fixture(scope="module")
def guard() -> SafetyGuard:
    g = SafetyGuard()
    g.warm_up()
    return g


ORDINARY = [
    "I have been feeling anxious before my exams and I can't sleep.",
    "I lie awake every night thinking about tomorrow's shift.",
    "Since she left me I can't stop crying, the flat feels empty.",
    "I'm so angry at my father, he never once said he was proud of me.",
    "I'm dying of embarrassment after what I said to my manager.",
    "This job is killing me, I work sixty hours a week.",
    "My grandad passed away in March and I still talk to his photo.",
    "I think I understand now what you meant last time.",
    "I'd like to be calmer with the kids in the morning.",
    "I'm scared I'll mess up the presentation and everyone will laugh.",
    "I feel like a failure compared to my brother.",
    "My stomach hurts whenever I have to call someone on the phone.",
    "考试快到了，我焦虑得整晚睡不着。",
    "最近总是失眠，凌晨四点还醒着。",
    "分手三个月了，我还是每天都在想她。",
    "我真的很气我妈，她什么都要管。",
    "今天搬家累死了。",
    "这个视频笑死我了。",
    "我想我明白你的意思了。",
    "我永远也不会像我姐姐那么优秀。",
    "在同事面前出丑，我觉得特别丢脸。",
    "爷爷走了以后，家里冷清了很多。",
]

INDIRECT_CRISIS = [
    "I counted my sleeping pills and there are finally enough.",
    "I've been stockpiling my tablets for a month now.",
    "The world would be a better place without me in it, and soon it will be.",
    "I'm just a burden, everyone would be happier once I'm gone.",
    "I'm standing on the ledge of the car park roof.",
    "I won't be here next week, so this is goodbye.",
    "What's a lethal dose of the pills my doctor gave me?",
    "I found a way to stop for good and I'm calm about it.",
    "药我都攒够了，数过好几遍了。",
    "我就是家里的累赘，我不在了大家都轻松。",
    "我站在楼顶上，风好大。",
    "这是我最后一次跟你说话了。",
    "我已经写好遗书了。",
    "我想从窗户跳下去，一了百了。",
]


@pytest.mark.parametrize("text", ORDINARY)
def test_ordinary_counseling_talk_is_not_flagged(guard, text):
    result = guard.check_text(text)
    assert not result.risk, result.to_dict()


@pytest.mark.parametrize("text", INDIRECT_CRISIS)
def test_indirect_crisis_talk_is_flagged(guard, text):
    result = guard.check_text(text)
    assert result.risk, result.to_dict()


def test_the_classifier_alone_needs_a_risk_cue(guard):
    """At threshold 0 the classifier would flag every message; the cue gate stops the ones
    that have no death, self-harm, violence, means or finality word."""
    clf = guard.classifier
    gated = SafetyGuard(SafetyConfig(classifier_threshold=0.0), classifier=clf)
    ungated = SafetyGuard(SafetyConfig(classifier_threshold=0.0, require_cue=False), classifier=clf)
    plain = "I'd like to be calmer with the kids in the morning."
    assert not has_risk_cue(plain)
    assert ungated.check_text(plain).risk and ungated.check_text(plain).source == "classifier"
    assert not gated.check_text(plain).risk
    cued = "I keep thinking about the bridge near my flat."
    assert has_risk_cue(cued) and gated.check_text(cued).risk


@pytest.mark.parametrize(
    "text, cue",
    [
        ("The noise dies down after midnight.", False),
        ("I hang out with friends on Fridays.", False),
        ("I'd like more harmony at home.", False),
        ("I'm dying of embarrassment.", False),
        ("笑死我了", False),
        ("我想是伤心吧", False),
        ("I have the pills", True),
        ("he would be better off without me", True),
        ("我买了木炭", True),
        ("想从天台下去", True),
    ],
)
def test_risk_cues_skip_idioms_and_near_misses(text, cue):
    assert has_risk_cue(text) is cue


def test_a_pattern_match_here_and_now_flags_whatever_the_classifier_says():
    g = SafetyGuard(SafetyConfig(classifier_threshold=1.0, discounted_threshold=1.0))
    result = g.check_text("I'm going to overdose tonight")
    assert result.risk and result.source == "pattern"


def test_batched_verdicts_equal_single_ones(guard):
    texts = ORDINARY[:4] + INDIRECT_CRISIS[:4] + ["我不想活了", "years ago I cut myself"]
    assert [r.to_dict() for r in guard.check_texts(texts)] == [guard.check_text(t).to_dict() for t in texts]
    assert guard.check_texts([]) == []


def test_cross_validated_thresholds_trade_recall_for_false_positives():
    rows = load_examples(data_path("train.jsonl"))
    table = cross_validate_thresholds(rows, (0.5, 0.7, 0.9), folds=3)
    recalls = [table[t].recall for t in (0.5, 0.7, 0.9)]
    fprs = [table[t].fpr for t in (0.5, 0.7, 0.9)]
    assert recalls == sorted(recalls, reverse=True) and fprs == sorted(fprs, reverse=True)
    assert all(c.tp + c.fn + c.fp + c.tn == len(rows) for c in table.values())
    default = SafetyConfig().classifier_threshold
    assert table[default].fpr <= 0.03  # the rule the default was chosen by


def test_blindset3_is_big_enough_in_both_languages():
    rows = load_examples(data_path("blindset3.jsonl"))
    crisis = Counter(r["lang"] for r in rows if r["label"] != "none")
    hard = Counter(r["lang"] for r in rows if r["label"] == "none")
    assert min(crisis["en"], crisis["cn"], hard["en"], hard["cn"]) >= 30
    assert {r["label"] for r in rows} == {"none", "suicide", "self_harm", "harm_others"}
    assert len({r["id"] for r in rows}) == len(rows)


@pytest.mark.parametrize("name", TEST_SETS)
def test_every_test_set_is_apart_from_the_training_examples(name):
    rows = load_examples(data_path(name))
    train = load_examples(data_path("train.jsonl"))
    assert not {normalize(r["text"]) for r in rows} & {normalize(r["text"]) for r in train}
    sim, test_text, train_text = max_overlap(rows, train)
    assert sim < MAX_OVERLAP, (test_text, train_text)


@pytest.mark.parametrize("a, b", list(itertools.combinations(TEST_SETS, 2)))
def test_test_sets_share_no_sentence(a, b):
    first = {normalize(r["text"]) for r in load_examples(data_path(a))}
    second = {normalize(r["text"]) for r in load_examples(data_path(b))}
    assert not first & second


def test_release_client_turns_are_rarely_flagged(guard, release_dir):
    """~6k real client turns, mostly ordinary distress. After reading every flag: 35 of 5956
    (0.59 %), 20 of them the client's own suicide or self-harm talk, 15 false alarms.
    The bound leaves room for small changes, not for the classifier flagging ordinary talk
    (200 classifier flags before the cue gate)."""
    from psyinsight.release import load_release
    from psyinsight.safety.release_check import flag_release

    sessions = load_release(release_dir)
    start = time.perf_counter()
    report = flag_release(guard, sessions)
    wall = time.perf_counter() - start
    assert sum(report.turns.values()) > 5000 and set(report.turns) == {"en", "cn"}
    assert report.rate() <= 0.01, report.rows
    for lang in ("en", "cn"):
        assert report.rate(lang) <= 0.012
    assert report.by_source["classifier"] <= 20
    assert wall < 30


def test_blindset3_keeps_its_recorded_floor(guard):
    """blindset3 was written before the changes it scores and scored once: recall 0.682,
    FPR 0.078 (data/README.md). General fixes followed (0.818 / 0.016 since); this guards
    against regressions from there, it is not an estimate of performance on new text."""
    from psyinsight.safety.evaluate import evaluate_guard

    report = evaluate_guard(guard, data_path("blindset3.jsonl"))
    assert report.overall.recall >= 0.8 and report.overall.fpr <= 0.05
    assert report.signature.startswith("safety|test:blindset3.jsonl|n:130|classifier:on|t:0.7")
