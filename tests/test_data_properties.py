"""Property tests: whatever JSON a user hands the loader, it loads or fails cleanly."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from psyinsight.data.release import load_sessions, to_sessions
from psyinsight.data.validate import validate_data
from psyinsight.errors import PsyInsightError

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=12,
)
labels = st.lists(st.sampled_from(["Neutral", "Anxiety", "Unknown", "Others", "Happy", "Question", "Fear"]), max_size=11)
turns = st.fixed_dictionaries(
    {"speaker": st.sampled_from(["Seeker", "Supporter"]), "content": st.text(max_size=30)},
    optional={
        "id": st.text(max_size=4),
        "participant": st.text(max_size=10),
        "observation": st.text(max_size=10) | st.none(),
        "reasoning": st.text(max_size=10),
        "emotional label": labels | st.text(max_size=8),
        "strategy": labels,
        "reference_labels": st.text(max_size=10) | st.lists(st.text(max_size=5), max_size=2),
    },
)
sessions = st.lists(
    st.fixed_dictionaries(
        {"dialog_id": st.text(min_size=1, max_size=6), "dialog": st.lists(turns, max_size=6)},
        optional={
            "psychotherapy": st.sampled_from(["", "Cognitive Behaviour Therapy", "N/A", "SFBT"]),
            "is_same_qa": st.sampled_from([0, 1, "", "1"]),
            "is_same_session": st.sampled_from([-1, 0, 1]),
            "guide": st.sampled_from(["", '{"output": "help"}', '{"message": "failed"}', "text"]),
        },
    ),
    max_size=4,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sessions)
def test_well_formed_sessions_load_and_repair_idempotently(data):
    loaded = to_sessions(data, "en", "mem.json")
    assert len(loaded) == len(data)
    again = to_sessions([s.to_release_dict() for s in loaded], "en", "mem.json")
    assert [s.dialog for s in again] == [s.dialog for s in loaded]
    assert all(not s.repairs for s in again)  # repaired data is a fixed point: no rule fires twice


@settings(max_examples=150, deadline=None)
@given(json_values)
def test_arbitrary_json_loads_or_fails_cleanly(tmp_path_factory, value):
    path = tmp_path_factory.mktemp("p") / "en_any.json"
    path.write_text(json.dumps(value), "utf-8")
    try:
        load_sessions(path)
    except PsyInsightError as exc:
        assert "en_any.json" in str(exc)
    findings = validate_data(value, path)
    assert isinstance(findings, list)
