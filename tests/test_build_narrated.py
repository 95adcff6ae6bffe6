"""Narrated dialogue (case books): quotes split into turns, speakers read from the narration.

Each attribution pattern the rules know, in English and Chinese: a tag after the quote
("she replied", 他说), before it ("I said," / 我问道：), inside it ("A," she said, "B."),
an action beat (He shrugged. / 他想了想，), alternation when nothing names the speaker,
the first-person narrator as the counselor, narration kept as notes with offsets, and what
the rules cannot decide reported with its place. Then the consistency checks that catch
the old failure (every quote merged into one client turn), and the gold scores.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from psyinsight.build.entities import detect, known_people
from psyinsight.build.ingest import sample_raw_dir
from psyinsight.build.pipeline import BuildConfig, run_build
from psyinsight.build.records import Document, Turn
from psyinsight.build.segment import segment
from psyinsight.build.turns import make_units
from psyinsight.data.consistency import source_findings, turn_findings

RAW = sample_raw_dir()


def _turns(text: str, language: str) -> list[tuple[str, str, str]]:
    doc = Document(doc_id="t.txt", language=language, text=text, sha256="0")
    pieces = segment(doc, known_people(text, language))
    units, _ = make_units(doc, pieces)
    return [(t.role, t.participant, t.content) for u in units for t in u.turns]


def _pieces(text: str, language: str):
    doc = Document(doc_id="t.txt", language=language, text=text, sha256="0")
    return doc, segment(doc, known_people(text, language))


S, C = "Supporter", "Seeker"


@pytest.mark.parametrize(
    "text, expected",
    [
        # a tag after the quote, a name and a pronoun; the narrator "I" is the counselor
        (
            'Notes\n\n"What brings you here?" I asked.\n\n"My sister made me come," Daniel said.\n\n"She worries," he added.\n',
            [(S, "Therapist", "What brings you here?"), (C, "Daniel", "My sister made me come. She worries.")],
        ),
        # a tag before the quote, and the verb before the name ("asked Helen")
        (
            'Session notes\n\nI said, "Tell me about the week."\n\n"It was long," she replied.\n\n"Long in what way?" asked the counsellor.\n',
            [(S, "Therapist", "Tell me about the week."), (C, "Client", "It was long."), (S, "Therapist", "Long in what way?")],
        ),
        # a tag inside the quote, and two speakers in one paragraph
        (
            'Notes\n\n"So the first feeling," I said, "was shame?" "Yes," Maria replied. "Then anger."\n',
            [(S, "Therapist", "So the first feeling, was shame?"), (C, "Maria", "Yes. Then anger.")],
        ),
        # action beats name the next quote; an unattributed quote alternates
        (
            'Notes\n\n"Who is everyone?" I asked. He shrugged. "Maria, mostly."\n\n"And at work?"\n\n"My boss." Tom smiled.\n',
            [(S, "Therapist", "Who is everyone?"), (C, "Tom", "Maria, mostly."), (S, "Therapist", "And at work?"), (C, "Tom", "My boss.")],
        ),
        # curly single quotes with an apostrophe inside
        (
            "Notes\n\n‘What would it mean?’ I asked.\n\n‘That I’d failed,’ Priya said quietly.\n",
            [(S, "Therapist", "What would it mean?"), (C, "Priya", "That I’d failed.")],
        ),
    ],
)
def test_english_attribution_patterns(text, expected):
    assert _turns(text, "en") == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        # 我问道 after the quote, a name with 说 inside the quote pair
        (
            "手记\n\n“您最担心的是什么？”我问道。“我怕她考不好，”王芳说，“这一年就白费了。”\n",
            [(S, "咨询师", "您最担心的是什么？"), (C, "王芳", "我怕她考不好，这一年就白费了。")],
        ),
        # the ：“…” form before the quote: 我问他：, 咨询师说：, 他回答道：
        (
            "手记\n\n我问他：“最近睡得怎么样？”\n\n他想了想，回答道：『不太好。』\n\n咨询师说：「听起来很累。」\n",
            [(S, "咨询师", "最近睡得怎么样？"), (C, "来访者", "不太好。"), (S, "咨询师", "听起来很累。")],
        ),
        # a beat (他点点头，) names the next quote; 「」 with nothing around them alternate
        (
            "手记\n\n张建国想了想，说：“早上买菜。”\n\n“听起来有点空。”\n\n“是空。”他点点头，“没人需要我了。”\n\n「社区找过您吗？」\n\n「问过我辅导作文。」\n",
            [
                (C, "张建国", "早上买菜。"),
                (S, "咨询师", "听起来有点空。"),
                (C, "张建国", "是空。没人需要我了。"),
                (S, "咨询师", "社区找过您吗？"),
                (C, "张建国", "问过我辅导作文。"),
            ],
        ),
    ],
)
def test_chinese_attribution_patterns(text, expected):
    assert _turns(text, "cn") == expected


def test_narration_between_quotes_is_kept_as_notes_with_offsets():
    text = 'Notes\n\n"What happens at night?" I asked.\n\n"I go through the shift again." She rubbed her temples. "Every number."\n'
    doc, pieces = _pieces(text, "en")
    units, _ = make_units(doc, pieces)
    client = units[0].turns[1]
    assert client.content == "I go through the shift again. Every number."
    (note,) = client.notes
    assert text[note.start : note.end] == note.text == "She rubbed her temples."
    assert note.index == len("I go through the shift again. ")  # where "Every number." starts


def test_a_quote_no_rule_can_attribute_is_reported_with_its_place_and_never_merged(tmp_path):
    raw = tmp_path / "raw" / "en"
    raw.mkdir(parents=True)
    (raw / "open.txt").write_text('"I don\'t know where to begin."\n\n"Anywhere is fine," I said.\n', encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "psyinsight.cli", "build", str(tmp_path / "raw"), "--no-llm", "-o", str(tmp_path / "out"), "--no-progress"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "unsure: en/open.txt:1 [0:30] an unattributed quote with no speaker before it" in done.stdout
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    (row,) = report["unsure_pieces"]
    assert row["file"] == "en/open.txt" and row["line"] == 1 and not row["resolved"]
    dialog = json.loads((tmp_path / "out" / "en_data.json").read_text())[0]["dialog"]
    assert [t["content"] for t in dialog] == ["I don't know where to begin.", "Anywhere is fine."]


def test_the_consistency_checks_catch_quotes_merged_into_one_turn():
    """What the old rules wrote for a narrated excerpt, as release-format turns and as build turns."""
    merged = {
        "dialog_id": "1",
        "dialog": [
            {"id": "0-0", "speaker": "Seeker", "content": "What made you come in the end? My daughter, Lily. She said I promised."},
            {"id": "0-1", "speaker": "Seeker", "content": "“您最担心的是什么？”我问道。“我怕她考不好，”王芳说，“这一年就白费了。”"},
            {"id": "0-2", "speaker": "Seeker", "content": "My daughter, Lily. She said I promised."},
        ],
    }
    found = [(f.turn, f.rule, f.severity) for f in turn_findings("f.json", merged)]
    assert found == [("0-0", "other_role_question", "suspect"), ("0-1", "quotes_in_turn", "suspect"), ("0-1", "other_role_question", "suspect")]
    text = '"What made you come?" I asked. "My daughter," she said.\n'
    turn = Turn(role="Seeker", participant="Client", content="What made you come? My daughter.", start=1, end=len(text), spans=[(1, 20), (32, 44)])
    (finding,) = source_findings(text, "en", [turn], set())
    assert finding["rule"] == "quotes_in_turn" and finding["line"] == 1


def test_validate_lists_suspect_turns(tmp_path):
    path = tmp_path / "merged.json"
    path.write_text(
        json.dumps(
            [
                {
                    "dialog_id": "1",
                    "dialog": [
                        {"speaker": "Seeker", "content": "What made you come in the end? My daughter, Lily.", "id": "0-0"},
                        {"speaker": "Supporter", "content": "Thank you for telling me.", "id": "0-1"},
                    ],
                }
            ]
        ),
        encoding="utf-8",
    )
    done = subprocess.run([sys.executable, "-m", "psyinsight.cli", "data", "validate", str(path)], capture_output=True, text=True, timeout=120)
    assert "suspect: " in done.stdout and "[other_role_question]" in done.stdout and "1 suspect(s)" in done.stdout


def test_gold_boundaries_and_roles_on_the_narrated_samples_and_the_blind_pair(tmp_path):
    report = run_build(BuildConfig(raw_dir=RAW, out_dir=tmp_path / "out", llm=None))
    files = report["gold"]["files"]
    narrated = [name for name in files if "narrated_" in name or "blind_" in name or "memoir_" in name]
    assert len(narrated) == 8
    for name in narrated:
        score = files[name]
        for key in ("boundary_precision", "boundary_recall", "role_precision", "role_recall"):
            assert score[key] >= 0.95, (name, key, score)
    assert report["gold"]["blind"]["gold"] == 21 and report["unsure_pieces"] == []
    assert report["gold"]["gold_entity_leaks"] == [] and report["leaks"]["count"] == 0


def test_jieba_person_names_join_the_rules_without_masking_common_words():
    text = "李明轩三十岁，在深圳工作。王芳是一位高三学生的母亲。我爸从小就说，做不到第一就是失败。"
    people = {e.text for e in detect(text, "cn") if e.type == "person"}
    assert people == {"李明轩", "王芳"}  # 李明轩 is found by jieba's nr tag; 高三 (nr to jieba) and 小就 are not names
