"""Agreement statistics against hand values and the reference libraries (scipy, krippendorff)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from psyinsight.errors import PsyInsightError
from psyinsight.evaluate.agreement import (
    agreement_between,
    agreement_within,
    compare_raters,
    cronbach_alpha,
    krippendorff_alpha,
    rankdata,
    spearman,
)


def test_rankdata_average_ties():
    assert rankdata([10, 20, 20, 5]).tolist() == [2.0, 3.5, 3.5, 1.0]


def test_spearman_hand_values_and_scipy():
    from scipy.stats import spearmanr

    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    rng = np.random.default_rng(1)
    x, y = rng.integers(1, 6, 50).astype(float), rng.integers(1, 6, 50).astype(float)
    x[3] = np.nan
    assert spearman(x.tolist(), y.tolist()) == pytest.approx(spearmanr(x, y, nan_policy="omit").statistic)
    assert math.isnan(spearman([1, 1, 1], [1, 2, 3]))  # no variance
    assert math.isnan(spearman([1, None], [2, 3]))  # one pair


def test_krippendorff_hand_value_nominal():
    # Two raters, four units: agree on 3 (1,1), (2,2), (3,3), disagree on (1,2).
    # Coincidences: n=8; n_1=3, n_2=3, n_3=2; observed disagreements o_12 = o_21 = 1.
    # D_o = 2/8; D_e = (2*(3*3 + 3*2 + 3*2)) / (8*7) = 42/56; alpha = 1 - (2/8)/(42/56) = 2/3
    assert krippendorff_alpha([[1, 2, 3, 1], [1, 2, 3, 2]], "nominal") == pytest.approx(2 / 3)


@pytest.mark.parametrize("level", ["nominal", "ordinal", "interval", "ratio"])
def test_krippendorff_matches_library(level):
    import krippendorff

    rng = np.random.default_rng(7)
    data = rng.integers(1, 6, size=(3, 30)).astype(float)
    data[1] = np.where(rng.random(30) < 0.6, data[0], data[1])
    data[0, 4] = data[2, 9] = data[1, 9] = np.nan
    ours = krippendorff_alpha([[None if np.isnan(v) else v for v in row] for row in data], level)
    assert ours == pytest.approx(krippendorff.alpha(reliability_data=data, level_of_measurement=level))


def test_krippendorff_perfect_and_undefined():
    assert krippendorff_alpha([[1, 2, 3], [1, 2, 3]], "ordinal") == pytest.approx(1.0)
    assert math.isnan(krippendorff_alpha([[3, 3], [3, 3]], "interval"))  # no variation at all
    with pytest.raises(ValueError):
        krippendorff_alpha([[1, 2], [1]])


def test_cronbach_alpha_hand_value():
    # items: variances 1, 1 (ddof 1); totals 2,4,6 -> variance 4; alpha = 2 * (1 - 2/4) = 1
    assert cronbach_alpha([[1, 1], [2, 2], [3, 3]]) == pytest.approx(1.0)
    # hand: items [1,2,3],[1,3,2]: var 1, 1; totals 2,5,5 var 3; alpha = 2*(1-2/3) = 2/3
    assert cronbach_alpha([[1, 1], [2, 3], [3, 2]]) == pytest.approx(2 / 3)
    assert math.isnan(cronbach_alpha([[1, 2]]))


def test_compare_raters_keys():
    stats = compare_raters([1, 2, 3, 4, None], [1, 2, 4, 4, 5])
    assert stats["n"] == 4 and stats["exact"] == pytest.approx(0.75) and stats["mean_abs_diff"] == pytest.approx(0.25)
    assert set(stats) == {"n", "spearman", "pearson", "alpha_ordinal", "alpha_interval", "exact", "mean_abs_diff"}


def test_file_agreement_judge_vs_human_csv(tmp_path):
    judge = tmp_path / "judge.jsonl"
    rows = [
        {"id": f"i{k}", "model": "m", "ok": True, "scores": {"interactivity": k % 5 + 1, "helpfulness": 3, "comfort": k % 5 + 1, "explainability": 2}}
        for k in range(6)
    ]
    rows.append({"id": "bad", "model": "m", "ok": False, "scores": None})
    judge.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    human = tmp_path / "human.csv"
    lines = ["study,rater,item,system,interactivity,helpfulness,comfort,explainability"]
    for k in range(6):
        lines.append(f"s,r1,i{k},m,{k % 5 + 1},3,{5 - k % 5},2")
        lines.append(f"s,r2,i{k},m,{k % 5 + 1},4,{5 - k % 5},2")
    human.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = agreement_between(judge, human)
    assert result["criteria"]["interactivity"]["spearman"] == pytest.approx(1.0)
    assert result["criteria"]["comfort"]["spearman"] < 0
    within = agreement_within(human)
    assert within["raters"] == ["r1", "r2"] and within["criteria"]["interactivity"]["alpha_ordinal"] == pytest.approx(1.0)
    with pytest.raises(PsyInsightError, match="one rater only"):
        agreement_within(judge)


def test_file_errors_name_the_record(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "interactivity": "high"}\n', encoding="utf-8")
    with pytest.raises(PsyInsightError, match="record 1"):
        agreement_within(bad)
    other = tmp_path / "other.jsonl"
    other.write_text('{"id": "zzz", "interactivity": 3}\n', encoding="utf-8")
    good = tmp_path / "good.jsonl"
    good.write_text('{"id": "a", "interactivity": 3}\n', encoding="utf-8")
    with pytest.raises(PsyInsightError, match="share no rated unit"):
        agreement_between(good, other)


def test_cli_agreement(tmp_path, capsys):
    from psyinsight.cli import main

    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_text("".join(json.dumps({"id": f"u{k}", "interactivity": k % 5 + 1, "comfort": 3}) + "\n" for k in range(8)), encoding="utf-8")
    b.write_text("".join(json.dumps({"id": f"u{k}", "interactivity": k % 5 + 1, "comfort": 2 + k % 2}) + "\n" for k in range(8)), encoding="utf-8")
    out = tmp_path / "agreement.json"
    with pytest.raises(SystemExit) as info:
        main(["agreement", str(a), str(b), "--out", str(out)])
    assert info.value.code in (0, None)
    assert "interactivity" in capsys.readouterr().out
    result = json.loads(out.read_text(encoding="utf-8"))
    assert result["criteria"]["interactivity"]["spearman"] == pytest.approx(1.0)
    assert result["criteria"]["helpfulness"]["n"] == 0.0 and result["criteria"]["helpfulness"]["spearman"] is None
