"""Exports: JSONL, HF datasets (save_to_disk, Parquet) and chat messages."""

from __future__ import annotations

import json

from test_data_validate import run_cli

from psyinsight.data.export import chat_record, export_sessions
from psyinsight.data.release import load_sessions
from psyinsight.data.sample import sample_sessions


def test_jsonl_round_trip_keeps_everything(tmp_path):
    sessions = sample_sessions()
    path = export_sessions(sessions, tmp_path / "all.jsonl", "jsonl")
    back = load_sessions(path)
    assert [s.uid for s in back] == [s.uid for s in sessions]
    assert [s.model_dump() for s in back] == [s.model_dump() for s in sessions]


def test_hf_disk_and_parquet(tmp_path):
    import datasets

    sessions = sample_sessions()
    disk = export_sessions(sessions, tmp_path / "hf", "hf")
    loaded = datasets.load_from_disk(str(disk))
    assert len(loaded) == 8 and loaded[0]["uid"] == "en-900001"
    assert loaded[0]["dialog"][0]["content"] == sessions[0].dialog[0].content
    parquet = export_sessions(sessions, tmp_path / "s.parquet", "parquet")
    table = datasets.Dataset.from_parquet(str(parquet))
    assert sorted(table["language"]) == sorted(s.language for s in sessions)
    assert json.loads(table[0]["extra_json"]) == {"synthetic": True}


def test_chat_form_alternates():
    for session in sample_sessions():
        record = chat_record(session)
        roles = [m["role"] for m in record["messages"]]
        assert roles[0] == "system"
        assert all(a != b for a, b in zip(roles[1:], roles[2:]))


def test_export_per_split(tmp_path):
    splits = tmp_path / "splits.json"
    assert run_cli("data", "split", "--sample", "--out", splits).returncode == 0
    done = run_cli("data", "export", tmp_path / "chat.jsonl", "--format", "chat", "--sample", "--splits", splits)
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for name in ("train", "validation", "test") for line in (tmp_path / f"chat_{name}.jsonl").read_text().splitlines()]
    assert len(rows) == 8
