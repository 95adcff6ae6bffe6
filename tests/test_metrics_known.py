"""Each metric against hand-computed values and against its reference library called directly."""

from __future__ import annotations

import math

import pytest

from psyinsight.errors import PsyInsightError
from psyinsight.evaluate.metrics import MetricConfig, ScoringBatch, build_metrics, strip_speaker
from psyinsight.evaluate.metrics.bleu import PaperBLEU, SacreBLEU
from psyinsight.evaluate.metrics.distinct import Distinct
from psyinsight.evaluate.metrics.length import Length
from psyinsight.evaluate.metrics.rouge import Rouge
from psyinsight.evaluate.metrics.tokenizers import RougeTokenizer, words

HYP = "the cat sat on the mat"
REF = "the cat is on the mat"
ZH_HYP = "我觉得你最近压力很大，睡眠也不好。"
ZH_REF = "听起来你最近压力很大，晚上睡不好。"


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("Therapist: How are you?", "How are you?"),
        ("  therapist :  Hi", "Hi"),
        ("Therapist: Therapist: twice", "twice"),
        ("咨询师：你好", "你好"),
        ("心理咨询师: 你好", "你好"),
        ("Counsellor: ok", "ok"),
        ("The therapist: said", "The therapist: said"),
        ("Bry: not a counselor marker", "Bry: not a counselor marker"),
    ],
)
def test_strip_speaker(raw, expected):
    assert strip_speaker(raw) == expected


def test_batch_strips_markers_and_checks_lengths():
    batch = ScoringBatch.from_pairs(["Therapist: a"], ["咨询师：b"], "zh")
    assert batch.hypotheses == ["a"] and batch.references == ["b"] and batch.language == "cn"
    with pytest.raises(PsyInsightError, match="2 hypotheses but 1 references"):
        ScoringBatch(["a", "b"], ["c"], "en")
    with pytest.raises(PsyInsightError, match="unknown language"):
        ScoringBatch(["a"], ["b"], "fr")


def test_words_drop_whitespace_and_split_chinese():
    assert words("I feel  sad.") == ["I", "feel", "sad", "."]
    zh = words(ZH_HYP)
    assert "压力" in zh and all(t.strip() for t in zh)


def test_rouge_tokenizer_matches_library_on_english_and_keeps_chinese():
    from rouge_score.tokenizers import DefaultTokenizer

    text = "Therapist's question: How're you (really) doing, 2day?"
    assert RougeTokenizer().tokenize(text) == DefaultTokenizer(use_stemmer=False).tokenize(text)
    assert DefaultTokenizer(use_stemmer=False).tokenize(ZH_REF) == []  # the release's tokenizer
    assert RougeTokenizer("word").tokenize("压力很大 OK") == ["压力", "很大", "ok"]
    assert RougeTokenizer("char").tokenize("压力很大") == ["压", "力", "很", "大"]
    with pytest.raises(PsyInsightError):
        RougeTokenizer("syllable")  # type: ignore[arg-type]


def test_paper_bleu_hand_values_and_nltk():
    from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

    result = PaperBLEU().score(ScoringBatch([HYP], [REF], "en"))
    # 5 of 6 unigrams match ("sat" does not), equal lengths so no brevity penalty.
    assert result.scores["BLEU-1"] == pytest.approx(5 / 6)
    # bigrams: "the cat", "on the", "the mat" of 5 match -> sqrt(5/6 * 3/5)
    assert result.scores["BLEU-2"] == pytest.approx(math.sqrt(5 / 6 * 3 / 5))
    smooth = SmoothingFunction().method1
    for n in (1, 2, 3, 4):
        direct = sentence_bleu([REF.split()], HYP.split(), weights=(1 / n,) * n, smoothing_function=smooth)
        assert result.scores[f"BLEU-{n}"] == pytest.approx(direct)
    assert "smooth:method1" in str(result.signature) and "tok:jieba" in str(result.signature)


def test_paper_bleu_averages_sentences_and_scores_empty_as_zero():
    result = PaperBLEU().score(ScoringBatch([HYP, ""], [REF, REF], "en"))
    assert result.segments["BLEU-1"][1] == 0.0
    assert result.scores["BLEU-1"] == pytest.approx((5 / 6) / 2)


def test_sacrebleu_equals_library_and_hand_value():
    import sacrebleu

    hyps, refs = [HYP, "a dog runs"], [REF, "a dog walks fast"]
    result = SacreBLEU().score(ScoringBatch(hyps, refs, "en"))
    assert result.scores["sacreBLEU-4"] == pytest.approx(sacrebleu.corpus_bleu(hyps, [refs], tokenize="13a").score)
    # corpus unigram precision 7/9, hypothesis 9 tokens vs reference 10 -> BP = exp(1 - 10/9)
    assert result.scores["sacreBLEU-1"] == pytest.approx(100 * math.exp(1 - 10 / 9) * 7 / 9)
    zh = SacreBLEU().score(ScoringBatch([ZH_HYP], [ZH_REF], "cn"))
    assert zh.scores["sacreBLEU-4"] == pytest.approx(sacrebleu.corpus_bleu([ZH_HYP], [[ZH_REF]], tokenize="zh").score)
    assert "tok:zh" in str(zh.signature) and "tok:13a" in str(result.signature)


def test_rouge_hand_value_library_and_chinese():
    from rouge_score.rouge_scorer import RougeScorer

    result = Rouge().score(ScoringBatch([HYP], [REF], "en"))
    assert result.scores["ROUGE-1"] == pytest.approx(5 / 6)  # 5 shared unigrams of 6 on each side
    direct = RougeScorer(["rouge1", "rouge2", "rougeL"]).score(REF, HYP)
    for key, name in (("rouge1", "ROUGE-1"), ("rouge2", "ROUGE-2"), ("rougeL", "ROUGE-L")):
        assert result.scores[name] == pytest.approx(direct[key].fmeasure)
    zh = Rouge().score(ScoringBatch([ZH_HYP], [ZH_REF], "cn"))
    assert zh.scores["ROUGE-1"] > 0.3 and zh.scores["ROUGE-L"] > 0.3
    chars = Rouge("char").score(ScoringBatch([ZH_HYP], [ZH_REF], "cn"))
    assert chars.scores["ROUGE-1"] > 0.3 and "zh-char" in str(chars.signature)


def test_distinct_hand_values():
    result = Distinct().score(ScoringBatch(["a b a b", "a b c"], ["x", "y"], "en"))
    # unigrams: 7 in all, 3 distinct; bigrams: ab ba ab ab bc -> 3 distinct of 5
    assert result.scores["Distinct-1"] == pytest.approx(3 / 7)
    assert result.scores["Distinct-2"] == pytest.approx(3 / 5)
    assert result.scores["Distinct-1(mean)"] == pytest.approx((2 / 4 + 3 / 3) / 2)
    assert result.scores["Distinct-3"] == pytest.approx(3 / 3)  # aba bab abc
    assert result.scores["Distinct-3(mean)"] == pytest.approx((2 / 2 + 1) / 2)


def test_length_and_parse_failure_rate():
    batch = ScoringBatch(["one two three", "你好"], ["a b", "c"], "en", parse_ok=[True, False])
    result = Length().score(batch)
    assert result.scores["Length"] == pytest.approx((3 + 1) / 2)
    assert result.scores["Length(chars)"] == pytest.approx((13 + 2) / 2)
    assert result.scores["ParseFailure"] == pytest.approx(0.5)


def test_metric_config_rejects_unknown_values():
    with pytest.raises(PsyInsightError, match="unknown metric"):
        MetricConfig(metrics=("bleu", "cider"))
    with pytest.raises(PsyInsightError, match="zh_rouge_unit"):
        MetricConfig(zh_rouge_unit="syllable")
    assert [m.family for m in build_metrics(MetricConfig(metrics=("rouge", "bleu")))] == ["bleu", "rouge"]


def test_empty_batch_gives_nan_not_an_error():
    for metric in build_metrics(MetricConfig(metrics=("bleu", "sacrebleu", "rouge", "distinct", "length"))):
        result = metric.score(ScoringBatch([], [], "en"))
        assert all(math.isnan(v) for v in result.scores.values()), metric.family
