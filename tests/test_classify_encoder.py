"""The transformer encoder classifier with a tiny random BERT and a tokenizer trained in-process."""

from __future__ import annotations

import json
import random

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

from psyinsight.classify.encoder import EncoderClassifier, EncoderConfig  # noqa: E402
from psyinsight.classify.persistence import load_classifier, save_classifier  # noqa: E402
from psyinsight.classify.tasks import ExtractConfig  # noqa: E402
from psyinsight.errors import PsyInsightError  # noqa: E402

CUES = {"Anxiety": "worried", "Happiness": "glad", "Anger": "furious"}
FILLER = "today work my mother really the meeting i am feel so about".split()


def data(n, seed):
    rng = random.Random(seed)
    texts, labels = [], []
    for i in range(n):
        label = list(CUES)[i % 3]
        words = rng.sample(FILLER, 4) + [CUES[label]]
        rng.shuffle(words)
        texts.append(" ".join(words))
        labels.append(label)
    return texts, labels


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread: tiny matrices gain nothing from more, and on a loaded 2-core
    machine thread contention made the training test 25x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny_encoder(tmp_path_factory):
    """A 2-layer BERT with a WordPiece vocabulary trained on the toy corpus (seconds)."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-bert")
    texts, _ = data(60, 0)
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.train_from_iterator(
        texts + ["seeker supporter :"], trainers.WordPieceTrainer(vocab_size=200, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
    )
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls), ("[SEP]", sep)]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]"
    )
    fast.save_pretrained(folder)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=tok.get_vocab_size(),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    BertModel(config).save_pretrained(folder)
    return folder


def test_training_lowers_the_loss_and_learns(tiny_encoder):
    texts, labels = data(90, 1)
    model = EncoderClassifier(
        "en", EncoderConfig(model_path=str(tiny_encoder), epochs=10, learning_rate=5e-3, batch_size=16, max_length=32, device="cpu")
    )
    model.fit(texts, labels, ["Seeker: hello"] * len(texts))
    first, last = sum(model.losses_[:3]) / 3, sum(model.losses_[-3:]) / 3
    assert last < first * 0.7
    test_texts, test_labels = data(30, 2)
    predicted = model.predict(test_texts, ["Seeker: hello"] * 30)
    assert sum(p == g for p, g in zip(predicted, test_labels)) / 30 >= 0.8
    assert model.predict_proba(test_texts[:4]).shape == (4, 3)


def test_save_load_round_trip_and_hash_check(tiny_encoder, tmp_path):
    texts, labels = data(30, 3)
    model = EncoderClassifier("en", EncoderConfig(model_path=str(tiny_encoder), epochs=1, max_length=32, device="cpu"))
    model.fit(texts, labels)
    folder = save_classifier(model, tmp_path / "enc", task="emotion", language="en", extract=ExtractConfig())
    loaded = load_classifier(folder, task="emotion")
    assert loaded.manifest["model_type"] == "encoder" and loaded.labels == model.labels_
    assert loaded.predict(texts[:5]) == model.predict(texts[:5])
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["model_sha256"] = "0" * 64
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(PsyInsightError, match="SHA-256"):
        load_classifier(folder)


def test_multi_label_encoder(tiny_encoder):
    texts, labels = data(30, 4)
    sets = [[lab, "Anger"] if i % 2 else [lab] for i, lab in enumerate(labels)]
    model = EncoderClassifier("en", EncoderConfig(model_path=str(tiny_encoder), epochs=1, max_length=32, device="cpu"))
    model.fit(texts, sets)
    assert model.multi_label
    assert all(isinstance(s, list) and s for s in model.predict_sets(texts[:3]))


def test_missing_encoder_folder_is_a_clear_error(tmp_path):
    model = EncoderClassifier("en", EncoderConfig(model_path=str(tmp_path)))
    with pytest.raises(PsyInsightError, match="no config.json"):
        model.fit(["a", "b"], ["x", "y"])
