"""Rating items, blinding, SQLite storage, CSV export and the agreement report (no browser)."""

from __future__ import annotations

import csv
import json
import math
import sqlite3
from pathlib import Path

import pytest

from psyinsight.errors import PsyInsightError
from psyinsight.evaluate.agreement import rating_rows, within_rows
from psyinsight.ui.items import blind_sides, load_items, rater_order
from psyinsight.ui.ratings import (
    CRITERIA,
    EXPORT_FIELDS,
    Rating,
    RatingStore,
    export_csv,
    load_rows,
    read_export,
)


def write_preds(path: Path, ids: list[str], word: str) -> Path:
    rows = [
        {
            "id": i,
            "text": f"Therapist: {word} {i}",
            "response": f"{word} answer {i}",
            "observation": f"{word} sees",
            "reasoning": f"{word} because",
            "reference": f"ref {i}",
            "meta": {"task": "obs_reasoning_dialog"},
        }
        for i in ids
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def scores(value: int) -> dict[str, int]:
    return {c: value for c in CRITERIA}


IDS = [f"en-000{n:03d}/{t}" for n in range(4) for t in (1, 3, 5)]


@pytest.fixture
def pair(tmp_path: Path) -> tuple[Path, Path]:
    return write_preds(tmp_path / "mistral.jsonl", IDS, "M"), write_preds(tmp_path / "glm.jsonl", IDS[:-2] + ["en-000999/1"], "G")


def test_single_mode_items_keep_the_raw_text_when_parsing_failed(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps({"id": "x/1", "text": "raw model text", "response": "", "parse_ok": False}) + "\n", encoding="utf-8")
    items = load_items([path])
    assert items.mode == "single" and items.systems == ("p",)
    assert items.items[0].candidates[0].response == "raw model text"


def test_ab_items_pair_by_id_and_count_the_unpaired(pair: tuple[Path, Path]) -> None:
    items = load_items(list(pair))
    assert items.mode == "ab" and items.systems == ("mistral", "glm") and items.study == "mistral vs glm"
    assert [it.id for it in items.items] == IDS[:-2]
    assert items.unpaired == {"mistral": 2, "glm": 1}
    first = items.items[0]
    assert [c.system for c in first.candidates] == ["mistral", "glm"]
    assert first.candidates[1].response == f"G answer {IDS[0]}" and first.candidates[1].reasoning == "G because"


def test_context_comes_from_the_examples_file(tmp_path: Path, pair: tuple[Path, Path]) -> None:
    ex = tmp_path / "examples.jsonl"
    ex.write_text(
        json.dumps(
            {
                "id": IDS[0],
                "messages": [{"role": "system", "content": "SYSTEM PROMPT"}, {"role": "user", "content": "Client: I can't sleep."}],
                "target": "t",
                "reference": "r",
            }
        )
        + "\n",
        encoding="utf-8",
    )
    items = load_items(list(pair), examples=ex, names=["sys-1", "sys-2"])
    assert items.systems == ("sys-1", "sys-2")
    assert items.items[0].context == ({"role": "user", "content": "Client: I can't sleep."},)
    assert items.items[1].context == ()


def test_item_errors_name_the_file_and_the_fix(tmp_path: Path, pair: tuple[Path, Path]) -> None:
    dup = tmp_path / "dup.jsonl"
    dup.write_text(json.dumps({"id": "a", "text": "x"}) + "\n" + json.dumps({"id": "a", "text": "y"}) + "\n", encoding="utf-8")
    with pytest.raises(PsyInsightError, match=r"dup\.jsonl \(record 2\): duplicate prediction id 'a'"):
        load_items([dup])
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"text": "no id"}) + "\n", encoding="utf-8")
    with pytest.raises(PsyInsightError, match=r"bad\.jsonl \(record 1\): not a prediction record \(id"):
        load_items([bad])
    other = write_preds(tmp_path / "other.jsonl", ["zz/1"], "O")
    with pytest.raises(PsyInsightError, match="no prediction id is in both files"):
        load_items([pair[0], other])
    with pytest.raises(PsyInsightError, match="same name"):
        load_items(list(pair), names=["x", "x"])
    with pytest.raises(PsyInsightError, match="one name per file"):
        load_items(list(pair), names=["x"])
    with pytest.raises(PsyInsightError, match="got 3"):
        load_items([*pair, pair[0]])


def test_same_file_names_in_two_folders_get_their_folder(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = write_preds(tmp_path / "a" / "predictions.jsonl", IDS[:2], "A")
    b = write_preds(tmp_path / "b" / "predictions.jsonl", IDS[:2], "B")
    assert load_items([a, b]).systems == ("a/predictions", "b/predictions")


def test_blinding_is_reproducible_balanced_and_per_rater(pair: tuple[Path, Path]) -> None:
    items = load_items([pair[0], pair[0]], names=["x", "y"]).items
    first = {it.id: blind_sides(it, "r1", seed=13)[0].system for it in items}
    assert first == {it.id: blind_sides(it, "r1", seed=13)[0].system for it in items}
    assert set(first.values()) == {"x", "y"}, "both orientations must occur over 12 items"
    other = {it.id: blind_sides(it, "r2", seed=13)[0].system for it in items}
    reseeded = {it.id: blind_sides(it, "r1", seed=14)[0].system for it in items}
    assert other != first and reseeded != first
    for it in items:
        assert sorted(c.system for c in blind_sides(it, "r1", 13)) == ["x", "y"]
    # over many items the coin is fair
    from psyinsight.ui.items import Candidate, RatingItem

    many = [RatingItem(id=str(k), candidates=(Candidate("x", "a"), Candidate("y", "b"))) for k in range(2000)]
    share = sum(blind_sides(it, "r1", 13)[0].system == "x" for it in many) / len(many)
    assert 0.45 < share < 0.55


def test_rater_order_is_a_reproducible_permutation_per_rater() -> None:
    o1 = rater_order(IDS, "r1", 13)
    assert sorted(o1) == sorted(IDS) and o1 == rater_order(IDS, "r1", 13)
    assert o1 != rater_order(IDS, "r2", 13) and o1 != IDS


def test_store_saves_updates_and_keeps_created_at(tmp_path: Path) -> None:
    store = RatingStore(tmp_path / "r.sqlite")
    first = store.save(Rating("s", " r1 ", "i1", ("glm", "mistral"), (scores(3), scores(4)), preference="B", seed=13, position=2))
    assert first.rater == "r1" and first.scores == (scores(3), scores(4)) and first.created_at
    again = store.save(Rating("s", "r1", "i1", ("glm", "mistral"), (scores(5), scores(1)), preference="A", seed=13, position=2, comment="changed"))
    assert again.created_at == first.created_at and again.updated_at >= first.updated_at
    assert [r.scores for r in store.ratings()] == [(scores(5), scores(1))]
    assert store.get("s", "r1", "i1").comment == "changed"
    store.save(Rating("s", "r2", "i1", ("mistral",), (scores(2),)))
    assert len(store.ratings(study="s")) == 2 and len(store.ratings(rater="r2")) == 1 and store.studies() == ["s"]
    with sqlite3.connect(tmp_path / "r.sqlite") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("SELECT COUNT(*) FROM ratings").fetchone()[0] == 2


@pytest.mark.parametrize(
    ("rating", "message"),
    [
        (Rating("s", "", "i", ("m",), (scores(3),)), "enter a rater id"),
        (Rating("s", "r", "i", ("m",), ({**scores(3), "comfort": None},)), "rate the response on comfort"),
        (Rating("s", "r", "i", ("a", "b"), (scores(3), {"comfort": 2})), "rate response B on interactivity, helpfulness, explainability"),
        (Rating("s", "r", "i", ("m",), ({**scores(3), "helpfulness": 6},)), "helpfulness must be an integer from 1 to 5, got 6"),
        (Rating("s", "r", "i", ("a", "b"), (scores(3), scores(3)), preference="C"), "preference must be one of A, B, tie"),
        (Rating("s", "r", "i", ("m",), (scores(3),), preference="A"), "preference must be one of A, B, tie in A/B mode"),
    ],
)
def test_invalid_ratings_are_refused_with_the_reason(tmp_path: Path, rating: Rating, message: str) -> None:
    store = RatingStore(tmp_path / "r.sqlite")
    with pytest.raises(PsyInsightError, match=message):
        store.save(rating)
    assert store.ratings() == []


def test_a_file_that_is_not_a_database_is_named(tmp_path: Path) -> None:
    junk = tmp_path / "notes.sqlite"
    junk.write_text("just some text, not sqlite\n" * 20, encoding="utf-8")
    with pytest.raises(PsyInsightError, match=r"notes\.sqlite: not a usable ratings database"):
        RatingStore(junk)
    with pytest.raises(PsyInsightError, match="is a folder"):
        RatingStore(tmp_path)


def test_export_is_long_unblinded_and_reads_back(tmp_path: Path) -> None:
    store = RatingStore(tmp_path / "r.sqlite")
    store.save(Rating("ab", "r1", "i1", ("glm", "mistral"), (scores(2), scores(5)), preference="B"))
    store.save(Rating("single", "r1", "i1", ("glm",), (scores(4),)))
    out = tmp_path / "exports" / "ratings.csv"
    assert export_csv(store, out) == 3
    assert not [p for p in out.parent.iterdir() if p.name != "ratings.csv"], "no temporary file left"
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert tuple(rows[0]) == EXPORT_FIELDS
    ab = [r for r in rows if r["study"] == "ab"]
    assert {(r["system"], r["side"], r["helpfulness"], r["preferred_system"]) for r in ab} == {
        ("glm", "A", "2", "mistral"),
        ("mistral", "B", "5", "mistral"),
    }
    assert read_export(out)[0]["comfort"] in (2, 4, 5)
    assert len(load_rows(out, study="single")) == 1 and len(load_rows(tmp_path / "r.sqlite")) == 3
    assert export_csv(store, tmp_path / "only.csv", study="single") == 1


def test_read_export_names_bad_cells(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("study,rater,item,system," + ",".join(CRITERIA) + "\ns,r,i,m,3,x,3,3\n", encoding="utf-8")
    with pytest.raises(PsyInsightError, match=r"bad\.csv \(line 2\): helpfulness must be an integer"):
        read_export(bad)
    with pytest.raises(PsyInsightError, match="missing columns"):
        (tmp_path / "h.csv").write_text("a,b\n1,2\n", encoding="utf-8")
        read_export(tmp_path / "h.csv")


def _rows(table: dict[str, list[int]], systems: tuple[str, ...] = ("m",)) -> list[dict]:
    """Long rows where rater ``r`` gives item k the score table[r][k] on every criterion."""
    rows = []
    for rater, values in table.items():
        for k, v in enumerate(values):
            if v is None:
                continue
            for s in systems:
                rows.append({"study": "s", "rater": rater, "item": f"i{k}", "system": s, **scores(v), "preferred_system": ""})
    return rows


def agreement_report(rows: list[dict]) -> dict:
    """The agreement of the app's long rows, as ``psyinsight agreement`` computes it."""
    return within_rows(rating_rows(rows, "ratings.csv"))


def test_agreement_is_perfect_for_identical_raters_and_undefined_for_one() -> None:
    report = agreement_report(_rows({"r1": [1, 2, 3, 4, 5], "r2": [1, 2, 3, 4, 5], "r3": [1, 2, 3, 4, None]}))
    assert len(report["raters"]) == 3 and report["units"] == 5
    for c in report["criteria"].values():
        assert c["complete_units"] == 4
        assert c["alpha_ordinal"] == pytest.approx(1.0) and c["alpha_interval"] == pytest.approx(1.0)
        assert c["cronbach"] == pytest.approx(1.0)
    alone = agreement_report(_rows({"r1": [1, 2, 3]}))
    assert all(math.isnan(c["alpha_interval"]) and math.isnan(c["cronbach"]) for c in alone["criteria"].values())


def test_agreement_drops_when_raters_disagree_and_means_are_per_system() -> None:
    agree = agreement_report(_rows({"r1": [1, 2, 4, 5], "r2": [1, 3, 4, 5]}))
    reverse = agreement_report(_rows({"r1": [1, 2, 4, 5], "r2": [5, 3, 2, 1]}))
    assert agree["criteria"]["interactivity"]["alpha_interval"] > 0.8
    assert reverse["criteria"]["interactivity"]["alpha_interval"] < 0
    assert reverse["criteria"]["interactivity"]["cronbach"] < 0
    means = agreement_report(_rows({"r1": [2, 4]}, systems=("a", "b")))["means"]
    assert means == {s: {**{c: 3.0 for c in CRITERIA}, "n": 2} for s in ("a", "b")}


def test_preferences_count_once_per_rating() -> None:
    rows = _rows({"r1": [3, 3]}, systems=("a", "b"))
    for r in rows:
        r["preferred_system"] = "b" if r["item"] == "i0" else "tie"
    assert agreement_report(rows)["preferences"] == {"s": {"b": 1, "tie": 1}}
    assert all(not math.isnan(v) for v in agreement_report(rows)["means"]["a"].values())


def test_agreement_matches_the_krippendorff_package_on_messy_data() -> None:
    krippendorff = pytest.importorskip("krippendorff")
    import random

    rng = random.Random(3)
    truth = [rng.randint(1, 5) for _ in range(30)]
    table = {f"r{k}": [None if rng.random() < 0.2 else max(1, min(5, t + rng.choice((-1, 0, 0, 1)))) for t in truth] for k in range(4)}
    report = agreement_report(_rows(table, systems=("a",)))["criteria"]["interactivity"]
    matrix = [[math.nan if v is None else v for v in table[r]] for r in sorted(table)]
    for level, got in (("ordinal", report["alpha_ordinal"]), ("interval", report["alpha_interval"])):
        assert got == pytest.approx(krippendorff.alpha(reliability_data=matrix, level_of_measurement=level), abs=1e-9)
