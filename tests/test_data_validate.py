"""``psyinsight data validate``: findings with exact places; clear errors for bad input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from psyinsight.data.release import load_sessions
from psyinsight.data.sample import sample_path
from psyinsight.data.validate import validate_files
from psyinsight.errors import PsyInsightError

PSYINSIGHT = [sys.executable, "-m", "psyinsight.cli"]


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*PSYINSIGHT, *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=120)


def test_raw_release_reports_every_family(release_dir):
    report = validate_files([release_dir / "en_data_version7.json", release_dir / "cn_data_version7.json"])
    counts = {rule: n for (severity, rule), n in report.by_rule().items()}
    for rule in (
        "echoed_label_list",
        "unknown_mixed",
        "duplicate_turn",
        "repeated_turn_id",
        "wrong_type",
        "failure_json",
        "wrapped_output",
        "annotation_wrong_role",
        "label_alias",
        "participant_variant",
        "not_available",
        "unknown_case_link",
        "counselor_first",
        "same_speaker_run",
        "cross_session_utterance",
        "missing_annotation",
    ):
        assert counts.get(rule, 0) > 0, rule
    assert counts["counselor_first"] == 353 + 287
    assert counts["same_speaker_run"] == 316 + 68
    first = next(f for f in report.findings if f.rule == "duplicate_turn")
    assert first.dialog_id and first.turn and first.file.endswith("en_data_version7.json")


def test_repaired_export_is_clean(release_dir, tmp_path):
    out = tmp_path / "repaired.json"
    done = run_cli("data", "export", out, "--format", "json", "--data-dir", release_dir)
    assert done.returncode == 0, done.stderr
    check = run_cli("data", "validate", out, "--show", "0")
    assert check.returncode == 0, check.stdout
    assert "0 problem(s)" in check.stdout
    raw = run_cli("data", "validate", "--data-dir", release_dir, "--show", "0")
    assert raw.returncode == 1 and "echoed_label_list" in raw.stdout


def test_sample_validates_clean():
    done = run_cli("data", "validate", sample_path("en"), sample_path("cn"))
    assert done.returncode == 0, done.stdout


BAD_INPUTS = {
    "malformed.json": (b'[{"dialog_id": "1", "dialog": [}', 2, "invalid JSON"),
    "latin1.json": ('[{"dialog_id": "caf\xe9"}]'.encode("latin-1"), 2, "not UTF-8"),
    "empty.json": (b"", 2, "empty"),
    "object.json": (b'{"dialog_id": "1", "dialog": []}', 1, "expected a JSON list"),
    "nodialog.json": (b'[{"dialog_id": "7"}]', 1, "has no dialog"),
    "nocontent.json": (b'[{"dialog_id": "7", "dialog": [{"speaker": "Seeker", "id": "0-0"}]}]', 1, "no content"),
    "badlabel.json": (
        b'[{"dialog_id": "7", "dialog": [{"speaker": "Seeker", "id": "0-0", "content": "x", "emotional label": ["Boredom"]}]}]',
        1,
        "'Boredom' is not a known emotion",
    ),
}


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_bad_input_gives_one_clear_line(tmp_path, name):
    body, code, message = BAD_INPUTS[name]
    path = tmp_path / name
    path.write_bytes(body)
    done = run_cli("data", "validate", path)
    assert done.returncode == code, done.stdout + done.stderr
    assert message in done.stdout + done.stderr
    assert str(path) in done.stdout + done.stderr
    assert "Traceback" not in done.stderr


def test_loader_errors_name_file_and_place(tmp_path):
    path = tmp_path / "en_x.json"
    path.write_text('[{"dialog_id": "7", "dialog": [{"speaker": "Seeker", "id": "0-3"}]}]', "utf-8")
    with pytest.raises(PsyInsightError, match=r"en_x.json \(dialog_id 7, turn 0-3, field content\)"):
        load_sessions(path)
    out = tmp_path / "out.jsonl"
    done = run_cli("data", "export", out, "--file", path)
    assert done.returncode == 2 and "turn has no content" in done.stderr and "Traceback" not in done.stderr
    assert not out.exists()


def test_huge_file_is_refused_before_reading(tmp_path):
    path = tmp_path / "huge.json"
    with open(path, "wb") as handle:
        handle.truncate(200 * 1024 * 1024)  # sparse: costs no disk
    done = run_cli("data", "validate", path)
    assert done.returncode == 2 and "200 MB" in done.stderr and "PSYINSIGHT_MAX_FILE_MB" in done.stderr


def test_cli_help_lists_data_commands():
    done = run_cli("data", "--help")
    for command in ("fetch", "validate", "stats", "split", "export"):
        assert command in done.stdout
