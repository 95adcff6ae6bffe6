"""The one test for Chinese characters and the one language detector, and the stages that use them."""

from __future__ import annotations

import pytest

from psyinsight.language import cjk_ratio, detect_language, has_cjk, has_letters

EXT_A = "\u3400\u4db5"  # CJK Unified Ideographs Extension A
COMPAT = "\uf900\ufa0e"  # CJK Compatibility Ideographs
BASIC = "我很难过"


@pytest.mark.parametrize("text", [BASIC, EXT_A, COMPAT, f"ok {EXT_A[0]} ok"])
def test_has_cjk_covers_all_three_ideograph_blocks(text):
    assert has_cjk(text)


@pytest.mark.parametrize("text", ["", "I am sad", "ひらがな", "한국어", "１２３！", "Привет"])
def test_has_cjk_is_false_for_other_scripts(text):
    assert not has_cjk(text)


def test_cjk_ratio_counts_letters_only():
    assert cjk_ratio("我很难过 ok") == pytest.approx(4 / 6)
    assert cjk_ratio(f"{EXT_A}{COMPAT} ok!!! 123") == pytest.approx(4 / 6)
    assert cjk_ratio("123 !!") == 0.0


def test_detect_language_threshold_and_default():
    assert detect_language("I am sad") == "en" and detect_language(BASIC) == "cn"
    assert detect_language(EXT_A + COMPAT) == "cn"
    assert detect_language(["I am ", "sad"]) == "en" and detect_language(["我很", "难过"]) == "cn"
    # one Chinese name in an English sentence does not make it Chinese, unless any Chinese counts
    assert detect_language("I talked with 李 about work today") == "en"
    assert detect_language("I talked with 李 about work today", cjk_share=0) == "cn"
    # three of ten letters is the threshold
    assert detect_language("我很好abcdefg") == "cn" and detect_language("我很好abcdefgh") == "en"
    # ``default`` answers for every text that is not Chinese (the counselor's configured language)
    assert detect_language("fine", "cn", cjk_share=0) == "cn" and detect_language("", "cn") == "cn"


def test_detect_language_names_other_languages_when_asked():
    pytest.importorskip("py3langid")
    french = "je ne sais plus quoi faire de ma vie"
    assert detect_language(french, identify=True) == "fr"
    assert detect_language(french) == "en"
    assert detect_language("kms", identify=True) == "en"  # too short to identify
    assert detect_language("我想死", cjk_share=0, identify=True) == "cn"


def test_has_letters():
    assert not has_letters("123 !!") and not has_letters(["", "42"])
    assert has_letters("ok") and has_letters(["1", "我"]) and has_letters(EXT_A)


def test_the_stages_read_extension_a_as_chinese():
    """The builder, the release reader and the ROUGE tokenizer count the same characters."""
    from psyinsight.build.ingest import guess_language
    from psyinsight.data.release import guess_language as guess_release_language
    from psyinsight.evaluate.metrics.tokenizers import RougeTokenizer

    assert guess_language(EXT_A * 3) == "cn" and guess_language("plain English") == "en"
    session = {"dialog": [{"content": EXT_A + COMPAT}]}
    assert guess_release_language("dialogs.json", [session]) == "cn"
    assert RougeTokenizer("char").tokenize(f"ok {EXT_A}") == ["ok", *EXT_A]
