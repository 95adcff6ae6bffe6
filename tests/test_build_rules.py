"""The build's rule-based steps: ingest, segmentation and roles (scored against gold), turns, anonymisation."""

from __future__ import annotations

import json

import pytest

from psyinsight.build.anonymise import Placeholders, anonymise_unit, find_leaks, source_entities
from psyinsight.build.entities import detect, known_people
from psyinsight.build.gold import Score, gold_path, load_gold, score_turns
from psyinsight.build.ingest import discover, ingest_file, sample_raw_dir
from psyinsight.build.records import Document
from psyinsight.build.segment import segment
from psyinsight.build.turns import make_units
from psyinsight.errors import PsyInsightError

RAW = sample_raw_dir()


def _doc(text: str, language: str = "en", name: str = "x.txt") -> Document:
    return Document(doc_id=name, language=language, text=text, sha256="0")


def _units(doc: Document):
    people = known_people(doc.text, doc.language)
    return make_units(doc, segment(doc, people))[0], people


# -- ingest ----------------------------------------------------------------------------------


def test_bundled_raw_samples_cover_both_languages_with_gold():
    files = discover(RAW)
    docs = [ingest_file(f, RAW) for f in files]
    by_language = {lang: [d for d in docs if d.language == lang] for lang in ("en", "cn")}
    assert len(by_language["en"]) >= 3 and len(by_language["cn"]) >= 3
    for path in files:
        assert gold_path(path).is_file(), path


def test_non_utf8_file_is_a_clear_error(tmp_path):
    (tmp_path / "ok.txt").write_text("Therapist: Hello.\nClient: Hi.\n", encoding="utf-8")
    (tmp_path / "gbk.txt").write_bytes("第一行\n咨询师：你好。".encode("gb18030"))
    bad = tmp_path / "gbk.txt"
    with pytest.raises(PsyInsightError) as info:
        ingest_file(bad, tmp_path)
    message = str(info.value)
    assert "gbk.txt" in message and "not UTF-8" in message and "line 1" in message and "iconv" in message


def test_empty_folder_and_missing_folder_are_errors(tmp_path):
    with pytest.raises(PsyInsightError, match="no .txt"):
        discover(tmp_path)
    with pytest.raises(PsyInsightError, match="no such file or folder"):
        discover(tmp_path / "nope")


def test_one_raw_file_is_accepted(tmp_path):
    raw = tmp_path / "session.txt"
    raw.write_text("Therapist: Hello.\nClient: Hi.\n", encoding="utf-8")
    assert discover(raw) == [raw]
    assert ingest_file(raw, raw).doc_id == "session.txt"
    with pytest.raises(PsyInsightError, match="not a raw file"):
        discover(tmp_path / "x.pdf") if (tmp_path / "x.pdf").write_text("x") else None


def test_jsonl_transcript_keeps_offsets(tmp_path):
    rows = [
        {"narrative": "A first session."},
        {"participant": "Counselor", "text": "What brings you here?"},
        {"speaker": "Jo", "content": "I can't sleep.", "role": "client"},
    ]
    (tmp_path / "t.jsonl").write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    doc = ingest_file(tmp_path / "t.jsonl", tmp_path)
    assert doc.kind == "transcript" and [p.kind for p in doc.pieces] == ["narrative", "utterance", "utterance"]
    units, _ = _units(doc)
    [unit] = units
    assert [(t.role, t.participant, t.content) for t in unit.turns] == [
        ("Supporter", "Counselor", "What brings you here?"),
        ("Seeker", "Jo", "I can't sleep."),
    ]
    for turn in unit.turns:
        assert doc.text[turn.start : turn.start + len(turn.content)] == turn.content


def test_bad_transcript_line_names_the_line(tmp_path):
    (tmp_path / "t.jsonl").write_text('{"participant": "T", "text": "hi"}\n{"text": "no speaker"}\n', encoding="utf-8")
    with pytest.raises(PsyInsightError, match="line 2"):
        ingest_file(tmp_path / "t.jsonl", tmp_path)


# -- segmentation against gold ------------------------------------------------------------------


def _gold_scores() -> dict[str, Score]:
    scores = {"en": Score(), "cn": Score()}
    for path in discover(RAW):
        doc = ingest_file(path, RAW)
        units, _ = _units(doc)
        gold, _ = load_gold(path, doc.text)
        scores[doc.language].add(score_turns([t for u in units for t in u.turns], gold))
    return scores


def test_rule_segmentation_against_gold_turns():
    scores = _gold_scores()
    for language, score in scores.items():
        result = score.as_dict()
        assert score.gold >= 30, language
        assert result["boundary_precision"] >= 0.95 and result["boundary_recall"] >= 0.95, (language, result)
        assert result["role_precision"] >= 0.95 and result["role_recall"] >= 0.95, (language, result)
        assert result["participant_accuracy"] >= 0.95, (language, result)


def test_scorer_counts_misses_and_wrong_roles():
    doc = _doc("T: Hello there.\nC: Hi.\n")
    units, _ = _units(doc)
    turns = units[0].turns
    from psyinsight.build.gold import GoldTurn

    gold = [GoldTurn(turns[0].start, "Supporter", "T"), GoldTurn(turns[1].start, "Supporter", "C"), GoldTurn(999, "Seeker", "C")]
    result = score_turns(turns, gold).as_dict()
    assert result["boundary_precision"] == 1.0 and result["boundary_recall"] == pytest.approx(2 / 3, abs=1e-3)
    assert result["role_precision"] == 0.5


@pytest.mark.parametrize(
    "text, language, expected",
    [
        # continuation lines join the turn; a one-speaker run merges
        (
            "T: How are you?\nC: Tired,\n   very tired.\nC: All week.\n",
            "en",
            [("Supporter", "T", "How are you?"), ("Seeker", "C", "Tired, very tired. All week.")],
        ),
        # a name opposite a known role takes the other role
        (
            "Counsellor: What happened?\nMaya: I lost my job.\n",
            "en",
            [("Supporter", "Counsellor", "What happened?"), ("Seeker", "Maya", "I lost my job.")],
        ),
        # quoted speech: the narrator is the counselor, "she" the client; unattributed quotes alternate
        (
            '"I feel stuck," she said.\n\n"Stuck in what way?" I asked.\n\n"Everything."\n',
            "en",
            [("Seeker", "Client", "I feel stuck."), ("Supporter", "Therapist", "Stuck in what way?"), ("Seeker", "Client", "Everything.")],
        ),
        ("咨询师：你好。\n来访者：我睡不着。（叹气）\n", "cn", [("Supporter", "咨询师", "你好。"), ("Seeker", "来访者", "我睡不着。")]),
        (
            "“我很累，”她说，“什么都不想做。”\n\n“从什么时候开始的？”我问。\n",
            "cn",
            [("Seeker", "来访者", "我很累，什么都不想做。"), ("Supporter", "咨询师", "从什么时候开始的？")],
        ),
    ],
)
def test_rules_table(text, language, expected):
    units, _ = _units(_doc(text, language))
    assert [(t.role, t.participant, t.content) for u in units for t in u.turns] == expected


def test_narrative_with_a_few_quoted_words_stays_narrative():
    doc = _doc('She said she "needed a break" and that the week had been long and hard for everyone.\n\nT: Hello.\nC: Hi.\n')
    units, _ = _units(doc)
    assert len(units) == 1 and units[0].before.startswith("She said")
    assert [t.content for t in units[0].turns] == ["Hello.", "Hi."]


def test_notes_are_cut_with_offsets():
    text = "T: Go on.\nC: I [Pause.] don't know. (laughs) Maybe.\n"
    units, _ = _units(_doc(text))
    turn = units[0].turns[1]
    assert turn.content == "I don't know. Maybe."
    assert [n.text for n in turn.notes] == ["[Pause.]", "(laughs)"]
    for note in turn.notes:
        assert text[note.start : note.end] == note.text
    assert turn.content[: turn.notes[0].index] == "I"
    assert turn.content[: turn.notes[1].index].rstrip() == "I don't know."


def test_empty_turns_are_dropped_and_counted():
    doc = _doc("T: Tell me.\nC: [Silence.]\n\nT: Take your time.\nC: Okay.\n")
    units, dropped = make_units(doc, segment(doc, set()))
    assert dropped == 1
    assert [t.content for u in units for t in u.turns] == ["Tell me. Take your time.", "Okay."] or dropped == 1


def test_units_carry_narrative_before_and_after_and_merge_one_sided_units():
    text = "Intro narrative.\n\nT: Hi.\nC: Hello.\n\nMiddle narrative.\n\nC: One more thing.\n\nEnd narrative.\n"
    units, _ = _units(_doc(text))
    assert len(units) == 1  # the client-only unit merged into the first
    unit = units[0]
    assert unit.before == "Intro narrative."
    assert "Middle narrative." in unit.after and "End narrative." in unit.after
    assert [t.content for t in unit.turns] == ["Hi.", "Hello.", "One more thing."]


def test_unsure_pieces_are_marked():
    doc = _doc('Maya: I am not sure.\n\n"I cannot do this anymore, not again," was all that came before the long silence.\n')
    label, quote = segment(doc, set())
    # a one-off label naming no role falls back to narrative; an unattributed opening quote to the client
    assert (label.kind, quote.kind, quote.role) == ("narrative", "utterance", "Seeker")
    assert "appears once" in label.unsure and "unattributed" in quote.unsure


# -- anonymisation --------------------------------------------------------------------------------


def test_no_gold_entity_survives_anonymisation():
    for path in discover(RAW):
        doc = ingest_file(path, RAW)
        units, people = _units(doc)
        people |= {t.participant for u in units for t in u.turns}
        out = [anonymise_unit(u, people) for u in units]
        texts = [x for u in out for x in [u.before, u.after] + [t.content for t in u.turns] + [t.participant for t in u.turns]]
        _, entities = load_gold(path, doc.text)
        assert find_leaks(texts, {e["text"] for e in entities}, doc.language) == [], path.name


def test_placeholders_are_consistent_within_a_session():
    text = "Sarah Collins came from Leeds.\n\nT: Hello Sarah.\nC: Hi. Call me on 0113 496 0734.\n\nLater Sarah wrote to sarah.c@example.com.\n"
    doc = _doc(text)
    units, people = _units(doc)
    [unit] = [anonymise_unit(u, people) for u in units]
    assert unit.before == "[PERSON_1] came from [PLACE_1]."
    assert unit.turns[0].content == "Hello [PERSON_1]."
    assert unit.turns[1].content == "Hi. Call me on [PHONE_1]."
    assert unit.after == "Later [PERSON_1] wrote to [EMAIL_1]."
    assert set(unit.entities.values()) == {"person", "place", "phone", "email"}


def test_leak_check_reports_what_detection_missed():
    assert find_leaks(["Met Zed at noon."], {"Zed", "Ann"}, "en") == ["Zed"]
    assert find_leaks(["Zedekiah"], {"Zed"}, "en") == []
    assert find_leaks(["我和张伟谈了谈"], {"张伟"}, "cn") == ["张伟"]


def test_entity_rules_table():
    found = {(e.text, e.type) for e in detect("王芳住在杭州，2020年5月12日来访，电话138 0013 8000。", "cn")}
    assert found == {("王芳", "person"), ("杭州", "place"), ("2020年5月12日", "date"), ("138 0013 8000", "phone")}
    found = {(e.text, e.type) for e in detect("On 3 March 2021 Dr. Lee met Tom at 12 Elm Road.", "en")}
    assert {("3 March 2021", "date"), ("Dr. Lee", "person"), ("Tom", "person"), ("Elm Road", "place")} <= found
    table = Placeholders()
    assert source_entities("Tom met Ann.", "en", {"Tom"}) >= {"Tom", "Ann"}
    assert table.mapping == {}


@pytest.mark.parametrize("language", ["en", "cn"])
def test_shipped_prompts_load_and_fill(language):
    from psyinsight.build.annotate import load_prompts

    prompts = load_prompts(language)
    fields = dict.fromkeys(
        ["context", "before", "after", "dialogue", "window", "previous", "current", "psychotherapies", "topics", "stages", "emotions", "strategies"],
        "x",
    )
    for task, spec in prompts.tasks.items():
        text = spec["user"].format(**fields)
        assert f"Keys: {spec['keys']}" in text, (language, task)
    assert "{error}" in prompts.repair and "{keys}" in prompts.repair
