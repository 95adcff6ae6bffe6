"""METEOR with the right argument order, over real tokens, on WordNet from the Debian files."""

from __future__ import annotations

from pathlib import Path

import pytest

from psyinsight.errors import PsyInsightError
from psyinsight.evaluate.metrics import ScoringBatch
from psyinsight.evaluate.metrics.meteor import Meteor
from psyinsight.evaluate.metrics.tokenizers import words
from psyinsight.evaluate.wordnet import DEBIAN_WORDNET, LEXNAMES, lexnames_text, load_wordnet, locate_wordnet, prepare_debian_wordnet


def _have_wordnet() -> bool:
    try:
        locate_wordnet()
        return True
    except PsyInsightError:
        return False


needs_wordnet = pytest.mark.skipif(not _have_wordnet(), reason="WordNet missing: sudo apt-get install wordnet-base wordnet-sense-index")


def test_lexnames_file_has_the_45_lexicographer_files():
    lines = lexnames_text().splitlines()
    assert len(lines) == len(LEXNAMES) == 45
    assert lines[0] == "00\tadj.all\t3" and lines[3] == "03\tnoun.Tops\t1" and lines[44] == "44\tadj.ppl\t3"
    assert lines[29] == "29\tverb.body\t2"


def test_missing_wordnet_is_a_clear_error(tmp_path):
    with pytest.raises(PsyInsightError, match="wordnet-base"):
        prepare_debian_wordnet(tmp_path / "nowhere", tmp_path / "out")
    with pytest.raises(PsyInsightError, match="not a folder"):
        locate_wordnet(tmp_path / "nowhere")


@pytest.mark.skipif(not (DEBIAN_WORDNET / "data.noun").is_file(), reason="Debian WordNet not installed")
def test_prepare_debian_wordnet_is_idempotent(tmp_path):
    first = prepare_debian_wordnet(DEBIAN_WORDNET, tmp_path / "wn")
    stamp = (first / "data.noun").stat().st_mtime_ns
    second = prepare_debian_wordnet(DEBIAN_WORDNET, tmp_path / "wn")
    assert first == second and (second / "data.noun").stat().st_mtime_ns == stamp
    assert (second / "lexnames").read_text(encoding="utf-8") == lexnames_text()


@needs_wordnet
def test_wordnet_reader_finds_synonyms():
    wordnet = load_wordnet()
    assert wordnet.get_version() == "3.0"
    assert "auto" in {lemma.name() for s in wordnet.synsets("car") for lemma in s.lemmas()}


@needs_wordnet
def test_meteor_hand_value_and_argument_order():
    from nltk.translate.meteor_score import meteor_score

    wordnet = load_wordnet()
    same = Meteor().score(ScoringBatch(["the cat sat on the mat"], ["the cat sat on the mat"], "en"))
    # 6 of 6 matched in one chunk: Fmean 1, penalty 0.5 * (1/6)^3
    assert same.scores["METEOR"] == pytest.approx(1 - 0.5 * (1 / 6) ** 3)
    hyp, ref = "I hear you.", "I hear that you feel very alone at home these days."
    ours = Meteor().score(ScoringBatch([hyp], [ref], "en")).scores["METEOR"]
    right = meteor_score([words(ref)], words(hyp), wordnet=wordnet)
    swapped = meteor_score([words(hyp)], words(ref), wordnet=wordnet)
    assert ours == pytest.approx(right)
    assert abs(ours - swapped) > 0.05  # METEOR weights recall 9:1, so the order matters


@needs_wordnet
def test_meteor_uses_wordnet_synonyms():
    with_syn = Meteor().score(ScoringBatch(["the auto is red"], ["the car is red"], "en")).scores["METEOR"]
    without = Meteor().score(ScoringBatch(["the tree is red"], ["the car is red"], "en")).scores["METEOR"]
    assert with_syn > without + 0.2


@needs_wordnet
def test_meteor_chinese_is_non_zero_on_overlap():
    result = Meteor().score(ScoringBatch(["我觉得你最近压力很大，睡眠也不好。"], ["听起来你最近压力很大，晚上睡不好。"], "cn"))
    assert result.scores["METEOR"] > 0.3
    assert "tok:jieba" in str(result.signature)


def test_explicit_wordnet_folder_without_files_is_an_error(tmp_path: Path):
    (tmp_path / "wn").mkdir()
    with pytest.raises(PsyInsightError, match="WordNet files missing"):
        locate_wordnet(tmp_path / "wn")
