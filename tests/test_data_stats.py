"""``data stats`` equals an independent count of the raw files."""

from __future__ import annotations

import json

from test_data_validate import run_cli

from psyinsight.data.release import load_release
from psyinsight.data.stats import compute_stats


def independent_count(path):
    sessions = json.loads(path.read_text("utf-8"))
    turns = [t for s in sessions for t in s["dialog"]]
    return {
        "sessions": len(sessions),
        "utterances": len(turns),
        "client": sum(t["speaker"] == "Seeker" for t in turns),
        "counselor": sum(t["speaker"] == "Supporter" for t in turns),
        "reasoning": sum(t["speaker"] == "Supporter" and bool((t.get("reasoning") or "").strip()) for t in turns),
        "observation": sum(t["speaker"] == "Seeker" and bool((t.get("observation") or "").strip()) for t in turns),
    }


def test_table_equals_independent_count(release_dir):
    report = compute_stats(load_release(release_dir, repair=False))
    for row in report.table:
        expected = independent_count(release_dir / f"{row.language}_data_version7.json")
        assert (row.sessions, row.utterances, row.client_turns, row.counselor_turns) == (
            expected["sessions"],
            expected["utterances"],
            expected["client"],
            expected["counselor"],
        )
        assert (row.turn_reasoning, row.turn_observation) == (expected["reasoning"], expected["observation"])
    en, cn = report.table
    assert (en.sessions, en.utterances, cn.sessions, cn.utterances) == (520, 6208, 431, 5776)
    assert report.labels["en"]["emotion"]["Neutral"] == 1015
    assert report.labels["cn"]["strategy"]["Question"] == 1858


def test_cli_prints_table_and_writes_figures(release_dir, tmp_path):
    done = run_cli("data", "stats", "--data-dir", release_dir, "--out", tmp_path)
    assert done.returncode == 0, done.stderr
    assert "en: 520 sessions / 6,208 utterances" in done.stdout
    assert "cn: 431 sessions / 5,776 utterances" in done.stdout
    pngs = list((tmp_path / "figures").glob("*.png"))
    assert len(pngs) >= 8 and all(p.read_bytes()[:4] == b"\x89PNG" for p in pngs)
    assert "| en | 520 | 6,208 |" in (tmp_path / "stats_as_released.md").read_text("utf-8")
