"""The release's metric bugs (spec.md section 4) give different numbers than ours.

Each test computes the release's way with the libraries directly, then ours, on the same
pairs: swapped METEOR arguments with spaces as tokens, the ASCII-only ROUGE tokenizer on
Chinese, Distinct divided by the number of samples, and the kept "Therapist:" marker.
"""

from __future__ import annotations

import pytest

from psyinsight.errors import PsyInsightError
from psyinsight.evaluate.metrics import ScoringBatch
from psyinsight.evaluate.metrics.bleu import PaperBLEU
from psyinsight.evaluate.metrics.distinct import Distinct
from psyinsight.evaluate.metrics.rouge import Rouge
from psyinsight.evaluate.metrics.tokenizers import _jieba, words

EN_HYPS = ["I hear you.", "What do you want?", "That sounds hard."]
EN_REFS = [
    "I hear that you feel very alone at home these days.",
    "What would you like to be different when you wake up tomorrow?",
    "That sounds really hard, and you have carried it for a long time.",
]
ZH_HYPS = ["我觉得你最近压力很大，睡眠也不好。", "你希望事情有什么变化？"]
ZH_REFS = ["听起来你最近压力很大，晚上睡不好。", "你希望接下来会有什么不同？"]


def _wordnet():
    from psyinsight.evaluate.wordnet import load_wordnet

    try:
        return load_wordnet()
    except PsyInsightError as exc:
        pytest.skip(str(exc))


def test_release_meteor_swapped_and_space_tokens_differs_from_ours():
    from nltk.translate.meteor_score import meteor_score

    from psyinsight.evaluate.metrics.meteor import Meteor

    wordnet = _wordnet()
    jieba = _jieba()
    release = [meteor_score([jieba.lcut(h)], jieba.lcut(r), wordnet=wordnet) for h, r in zip(EN_HYPS, EN_REFS)]
    assert any(" " in jieba.lcut(h) for h in EN_HYPS)  # the release scored spaces as tokens
    ours = Meteor().score(ScoringBatch(EN_HYPS, EN_REFS, "en"))
    release_mean = sum(release) / len(release)
    # short hypotheses: METEOR weights recall 9:1, so with the sides swapped the release
    # measured how much of the short hypothesis the long reference covers, and scored high
    assert release_mean > ours.scores["METEOR"] + 0.1
    assert ours.scores["METEOR"] == pytest.approx(
        sum(meteor_score([r], h, wordnet=wordnet) for h, r in zip(map(words, EN_HYPS), map(words, EN_REFS))) / len(EN_HYPS)
    )


def test_release_rouge_tokenizer_zeroes_chinese_ours_does_not():
    from rouge_score.rouge_scorer import RougeScorer

    release = RougeScorer(["rougeL"]).score(ZH_REFS[0], ZH_HYPS[0])["rougeL"].fmeasure
    ours = Rouge().score(ScoringBatch(ZH_HYPS, ZH_REFS, "cn"))
    assert release == 0.0
    assert ours.scores["ROUGE-L"] > 0.3


def _release_distinct(hyps: list[str], n: int) -> float:
    """The release's Distinct-n, written from its description (spec.md section 4), not from ours:
    jieba tokens with the spaces kept, unique n-grams over all n-grams, divided by the samples."""
    jieba = _jieba()
    grams = [tuple(toks[i : i + n]) for toks in (jieba.lcut(h) for h in hyps) for i in range(len(toks) - n + 1)]
    return len(set(grams)) / len(grams) / len(hyps)


def test_release_distinct_divided_by_n_differs():
    hyps = [*EN_HYPS, "I hear you."]  # one repeated answer: a corpus ratio below 1
    ours = Distinct().score(ScoringBatch(hyps, [*EN_REFS, EN_REFS[0]], "en")).scores["Distinct-2"]
    release = _release_distinct(hyps, 2)
    # ours by hand: bigrams of words(...) without spaces; "I hear you." adds 3 repeated bigrams
    expected = len({g for h in hyps for g in zip(words(h), words(h)[1:])}) / sum(len(words(h)) - 1 for h in hyps)
    assert ours == pytest.approx(expected)
    assert ours < 1.0
    assert release < ours / 2  # divided by 4 samples (and diluted by space tokens)
    assert release != pytest.approx(ours)


def test_kept_speaker_marker_inflates_overlap():
    hyps = [f"Therapist: {h}" for h in EN_HYPS]
    refs = [f"Therapist: {r}" for r in EN_REFS]
    kept = PaperBLEU().score(ScoringBatch(hyps, refs, "en")).scores["BLEU-1"]
    stripped = PaperBLEU().score(ScoringBatch.from_pairs(hyps, refs, "en")).scores["BLEU-1"]
    assert kept > stripped + 0.05
