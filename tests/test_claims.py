"""ntknb.claims: the verdict rule, the Claim type, its JSON and its HTML table."""

import json
import math

import pytest

from ntknb import claims as C
from ntknb.stats import Interval

BASE = dict(
    id="ch04.kernel_change_ratio",
    source="loo2022evolution",
    where="Sec. 4, Fig. 3",
    claim="Adversarial training changes the empirical NTK by orders of magnitude more than standard training.",
    paper="orders of magnitude",
    direction="greater",
    threshold=10.0,
    measured=1.16,
    low=1.05,
    high=1.27,
    n_seeds=3,
    n_test=None,
    scale="MNIST 0 vs 1, 512 train, FC-3 width 512",
)


@pytest.mark.parametrize("direction, low, high, expected", [
    ("greater", 10.5, 12.0, "reproduced"),
    ("greater", 1.05, 1.27, "contradicted"),
    ("greater", 9.0, 11.0, "inconclusive"),
    ("greater", 10.0, 12.0, "inconclusive"),  # touching the threshold is not beyond it
    ("greater", 8.0, 10.0, "inconclusive"),
    ("less", 1.0, 9.0, "reproduced"),
    ("less", 10.5, 12.0, "contradicted"),
    ("less", 9.0, 11.0, "inconclusive"),
    ("greater", None, 12.0, "inconclusive"),
    ("greater", 11.0, None, "reproduced"),
    ("greater", None, 9.0, "contradicted"),
    ("less", -math.inf, math.inf, "inconclusive"),
])
def test_verdict_rule(direction, low, high, expected):
    assert C.verdict(direction, 10.0, low, high) == expected


def test_verdict_bad_direction():
    with pytest.raises(ValueError, match="'direction'"):
        C.verdict("more", 1.0, 0.0, 2.0)


def test_claim_verdict_is_computed_never_typed():
    c = C.Claim(**BASE)
    assert c.verdict == "contradicted"
    with pytest.raises(TypeError):
        C.Claim(**BASE, verdict="reproduced")
    assert C.Claim(**dict(BASE, low=10.5, high=12.0, measured=11.0)).verdict == "reproduced"
    assert C.Claim(**dict(BASE, threshold=1.1)).verdict == "inconclusive"
    assert "lies below the threshold 10" in c.explanation


def test_to_json_roundtrip_plain_values():
    c = C.Claim(**dict(BASE, low=None, n_test=500, section="ch04-claims"))
    js = c.to_json()
    assert json.loads(json.dumps(js)) == js  # plain JSON values
    assert js["low"] is None and js["verdict"] == "contradicted" and js["n_test"] == 500
    assert C.Claim.from_json(js) == c
    bad = dict(js, verdict="reproduced")
    with pytest.raises(ValueError, match="does not follow"):
        C.Claim.from_json(bad)
    with pytest.raises(ValueError, match="missing fields"):
        C.Claim.from_json({k: v for k, v in js.items() if k != "scale"})


def test_from_interval():
    rest = {k: v for k, v in BASE.items() if k not in ("measured", "low", "high", "n_seeds", "n_test")}
    c = C.Claim.from_interval(Interval(0.8, 0.75, 0.85, 5, 0.95, "t"), n_test=200, **rest)
    assert (c.measured, c.low, c.high, c.n_seeds, c.n_test) == (0.8, 0.75, 0.85, 5, 200)
    c = C.Claim.from_interval(Interval(0.8, 0.75, 0.85, 500, 0.95, "wilson"), n_seeds=1, **rest)
    assert (c.n_seeds, c.n_test) == (1, 500)
    with pytest.raises(ValueError, match="n_seeds"):
        C.Claim.from_interval(Interval(0.8, 0.75, 0.85, 500, 0.95, "bootstrap"), n_test=500, **rest)


@pytest.mark.parametrize("change, match", [
    (dict(id="has space"), "'id'"),
    (dict(source="nokey2099"), "'source' must be a key"),
    (dict(direction="more"), "'direction'"),
    (dict(measured=2.0), "must contain measured"),
    (dict(threshold=math.nan), "'threshold'"),
    (dict(n_seeds=0), "'n_seeds'"),
    (dict(n_test=-1), "'n_test'"),
    (dict(claim=""), "'claim'"),
    (dict(section="not a label"), "'section'"),
])
def test_bad_claims(change, match):
    with pytest.raises(ValueError, match=match):
        C.Claim(**dict(BASE, **change))


def test_bib_keys_read_the_book():
    keys = C.bib_keys()
    assert {"tsilivis2022ntk", "loo2022evolution", "madry2018towards"} <= keys


def test_html_table():
    a = C.Claim(**BASE)
    b = C.Claim(**dict(BASE, id="ch04.other", claim="x < y & z", low=10.5, high=12.0, measured=11.0, n_test=200))
    text = C.claims_html([a, b.to_json()])
    assert text.startswith('<table class="ntknb-claims">') and text.count("<tr>") == 3
    assert "x &lt; y &amp; z" in text  # escaped
    assert "contradicted" in text and "reproduced" in text and "200 test points" in text
    assert "1.16 [1.05, 1.27]" in text and "&gt; 10" in text
    assert C.claims_html([]) == "<p><em>No claims.</em></p>"
    with pytest.raises(ValueError, match="unique"):
        C.claims_html([a, a])
    assert C.show_claims([a])._repr_html_() == C.claims_html([a])


def test_glue_claims_stores_plain_json(capsys):
    from ntknb import report

    a = C.Claim(**BASE)
    shown = C.glue_claims([a])
    assert shown._repr_html_() == C.claims_html([a])
    assert report.glued_values()["claims"] == [a.to_json()]


def test_summary_in_words_follows_the_verdicts(monkeypatch):
    reproduced = C.Claim(**dict(BASE, id="demo.up", low=10.5, high=12.0, measured=11.0, n_test=500))
    contradicted = C.Claim(**BASE)
    text = C.summary_markdown([contradicted, reproduced])
    assert text.startswith("Of the 2 claims this chapter checks, 1 reproduced, 1 contradicted.")
    assert text.index("**Reproduced**") < text.index("**Not reproduced (contradicted)**")
    assert "Measured 11 [10.5, 12], needs > 10" in text and "(3 seeds, 500 test points)" in text
    assert "inconclusive" not in text.split("\n")[0]
    assert C.summary_markdown([]) == "This chapter checks no claim of its sources."
    glued = []
    monkeypatch.setattr("ntknb.report.glue", lambda name, value, display=False: glued.append((name, value)))
    assert C.glue_summary([reproduced]) == C.summary_markdown([reproduced])
    assert glued[0][0] == "claims_summary"


def test_seed_check_rows_say_where_a_verdict_flips():
    def claim(cid, low, high):  # needs > 0.5
        return C.Claim(**{**BASE, "id": cid, "threshold": 0.5, "low": low, "high": high, "measured": (low + high) / 2})

    a = [claim("x.a", 0.6, 0.8), claim("x.b", 0.6, 0.8), claim("x.c", 0.6, 0.8), claim("x.d", 0.6, 0.8)]
    b = [claim("x.a", 0.55, 0.9).to_json(), claim("x.b", 0.1, 0.2), claim("x.c", 0.1, 0.8)]
    rows = C.seed_check_rows(a, b)
    assert [r[3] for r in rows] == ["same", "flips", "differs", "only here"]
    assert rows[0][1].endswith("reproduced") and rows[1][2].endswith("contradicted") and rows[3][2] == "–"
    assert len(C.SEED_CHECK_COLUMNS) == len(rows[0])


def test_seed_check_record_and_summary(tmp_path):
    import json

    import yaml

    def claim(cid, low, high):  # needs > 0.5
        return C.Claim(**{**BASE, "id": cid, "threshold": 0.5, "low": low, "high": high, "measured": (low + high) / 2})

    page = [claim("x.a", 0.6, 0.8), claim("x.b", 0.6, 0.8), claim("x.c", 0.6, 0.8)]
    other = [claim("x.a", 0.55, 0.9), claim("x.b", 0.1, 0.2)]
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.json").write_text(json.dumps({"claims": [c.to_json() for c in other], "runtime_s": 12.5}))
    (run / "parameters.yaml").write_text(yaml.safe_dump({"seed": 4000, "n_seeds": 3, "eps": 0.1}))
    rec = C.seed_check_record(run, command="ntknb run x -p seed 4000")
    assert rec["seeds"] == [4000, 4001, 4002] and rec["runtime_s"] == 12.5 and rec["parameters"]["eps"] == 0.1
    assert set(rec["claims"][0]) == {"id", "verdict", "measured", "low", "high", "n_seeds", "n_test"}
    f = tmp_path / ("x" + C.SEED_CHECK_SUFFIX)
    assert C.load_seed_checks(f) == []
    f.write_text(json.dumps(rec) + "\n")
    records = C.load_seed_checks(f)
    rows, s = C.seed_check_summary(page, records)
    assert s == {"runs": 1, "compared": 2, "same": 1, "differs": 0, "flips": 1, "min_seeds": 3}
    assert [r[3] for r in rows] == ["same", "flips", "only here"] and "(seeds 4000-4002)" in rows[0][2]
    assert rows[0][2] == C.seed_check_rows(page, other)[0][2] + " (seeds 4000-4002)"  # brief dicts read as claims
    unbounded = {"id": "x.a", "verdict": "inconclusive", "measured": 0.7, "low": None, "high": None}
    assert C.seed_check_rows(page[:1], [unbounded])[0][2] == "0.7 [-∞, ∞] inconclusive"  # as Claim prints it
    assert C.seed_check_summary(page, []) == ([], {"runs": 0, "compared": 0, "same": 0, "differs": 0, "flips": 0,
                                                   "min_seeds": 0})
    (run / "metrics.json").write_text(json.dumps({"claims": []}))
    with pytest.raises(ValueError, match="no 'claims'"):
        C.seed_check_record(run, command="x")
