"""ntknb.claims: the verdict rule, the Claim type, its JSON and its HTML table."""

import json
import math

import pytest

from ntknb import claims as C
from ntknb import records as R
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


def test_compact_block_shows_the_verdict_first():
    a = C.Claim(**BASE)
    b = C.Claim(**dict(BASE, id="ch04.other", claim="x < y & z with m^(-1/2)", low=10.5, high=12.0, measured=11.0,
                       n_test=200))
    text = C.claims_html([a, b.to_json()])
    assert text.startswith('<div class="ntknb-claims">') and text.count('class="ntknb-claim"') == 2
    for c in (a, b):  # each entry opens with its badge, right after its anchor
        entry = text.split(f'id="{C.claim_anchor(c.id)}">', 1)[1]
        assert entry.startswith(f'<span class="ntknb-verdict ntknb-v-{c.verdict}"')
    assert "x &lt; y &amp; z with m<sup>-1/2</sup>" in text  # escaped, math readable
    assert "Loo et al. 2022, Sec. 4, Fig. 3" in text and "loo2022evolution" not in text  # author-year
    assert "200 test points" in text and "1.16 [1.05, 1.27]" in text and "needs &gt; 10" in text
    assert C.claim_anchor("ch04.other") == "claim-ch04-other"
    assert C.claims_html([]) == "<p><em>No claims.</em></p>"
    with pytest.raises(ValueError, match="unique"):
        C.claims_html([a, a])
    assert C.show_claims([a])._repr_html_() == C.claims_html([a])
    unbounded = C.Claim(**dict(BASE, low=None, high=None))
    assert "no interval" in C.claims_html([unbounded]) and "∞" not in unbounded.interval_text
    assert C.Claim(**dict(BASE, low=None)).interval_text == "1.16 (-∞, 1.27]"


def test_cite_text_and_readable_math():
    assert C.cite_text("tsilivis2022ntk") == "Tsilivis & Kempe 2022"
    assert C.cite_text("jacot2018ntk") == "Jacot et al. 2018"
    assert C.cite_text("no_such_key") == "no_such_key"
    assert C.readable("Eq. 18 (jacot2018ntk)") == "Eq. 18 (Jacot et al. 2018)"
    assert C.readable("sqrt(d) vs ||w||_1, Θ_0 >= 2^k") == "√d vs ‖w‖<sub>1</sub>, Θ<sub>0</sub> ≥ 2<sup>k</sup>"
    assert C.readable("n_test * m^(-1/2) | x", "myst") == "n\\_test \\* m{sup}`-1/2` \\| x"
    with pytest.raises(ValueError, match="'fmt'"):
        C.readable("x", "latex")


def test_glue_claims_stores_plain_json(capsys):
    from ntknb import report

    a = C.Claim(**BASE)
    shown = C.glue_claims([a])
    assert shown._repr_html_() == C.claims_html([a])
    assert report.glued_values()["claims"] == [a.to_json()]


def test_summary_in_prose_follows_the_verdicts(monkeypatch):
    reproduced = C.Claim(**dict(BASE, id="demo.up", low=10.5, high=12.0, measured=11.0, n_test=500))
    contradicted = C.Claim(**BASE)
    text = C.summary_markdown([contradicted, reproduced])
    first = text.split("\n")[0]
    assert first.startswith("Of the 2 claims of {cite:t}`loo2022evolution` this chapter tests on MNIST 0 vs 1, "
                            "with 3 seeds and up to 500 test points: 1 reproduced and 1 contradicted.")
    assert text.index("**Reproduced**") < text.index("**Contradicted**")
    # the same claim reproduced and contradicted: each named with its task, once per verdict
    assert text.count("adversarial training changes the empirical NTK by orders of magnitude") == 2
    assert len(text.split()) < 120  # a few sentences, not a dump
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
    rec = R.seed_check_record(run, command="ntknb run x -p seed 4000")
    assert rec["seeds"] == [4000, 4001, 4002] and rec["runtime_s"] == 12.5 and rec["parameters"]["eps"] == 0.1
    assert set(rec["claims"][0]) == {"id", "verdict", "measured", "low", "high", "n_seeds", "n_test"}
    f = tmp_path / ("x" + R.SEED_CHECK_SUFFIX)
    assert R.load_seed_checks(f) == []
    f.write_text(json.dumps(rec) + "\n")
    runs = R.load_seed_checks(f)
    rows, s = C.seed_check_summary(page, runs)
    assert s == {"runs": 1, "compared": 2, "same": 1, "differs": 0, "flips": 1, "min_seeds": 3}
    assert [r[3] for r in rows] == ["same", "flips", "only here"] and "(seeds 4000-4002)" in rows[0][2]
    assert rows[0][2] == C.seed_check_rows(page, other)[0][2] + " (seeds 4000-4002)"  # brief dicts read as claims
    unbounded = {"id": "x.a", "verdict": "inconclusive", "measured": 0.7, "low": None, "high": None}
    assert C.seed_check_rows(page[:1], [unbounded])[0][2] == "0.7 (no interval) inconclusive"  # as Claim prints it
    f.write_text((json.dumps(rec) + "\n") * 2)  # the same run appended twice counts once
    assert R.load_seed_checks(f) == runs and C.seed_check_summary(page, runs * 2)[1] == s
    assert C.seed_check_summary(page, []) == ([], {"runs": 0, "compared": 0, "same": 0, "differs": 0, "flips": 0,
                                                   "min_seeds": 0})
    (run / "metrics.json").write_text(json.dumps({"claims": []}))
    with pytest.raises(ValueError, match="no 'claims'"):
        R.seed_check_record(run, command="x")


# ------------------------------------------------- preconditions and "not testable" (issue 28)

WHITE_BOX = dict(name="white_box_above_zero", description="the white-box attack leaves the network above 0",
                 direction="greater", threshold=0.0)


def test_precondition_rule_and_json():
    p = C.Precondition(measured=0.2, **WHITE_BOX)
    assert p.met and C.Precondition.from_json(p.to_json()) == p
    assert not C.Precondition(measured=0.0, **WHITE_BOX).met  # equality fails, as for claims
    assert C.Precondition(**dict(WHITE_BOX, direction="less", threshold=0.5), measured=0.4).met
    assert "measured 0, needs > 0 — not met" in C.Precondition(measured=0.0, **WHITE_BOX).text
    with pytest.raises(ValueError, match="does not follow"):
        C.Precondition.from_json(dict(p.to_json(), met=False))
    for bad, match in ((dict(name="a b"), "'name'"), (dict(description=" "), "'description'"),
                       (dict(direction="more"), "'direction'"), (dict(threshold=math.inf), "'threshold'")):
        with pytest.raises(ValueError, match=match):
            C.Precondition(measured=0.1, **dict(WHITE_BOX, **bad))


def test_failed_precondition_makes_a_claim_not_testable_and_never_rescues_it():
    ok = C.Precondition(measured=0.2, **dict(WHITE_BOX, name="above_chance"))
    failed = C.Precondition(measured=0.0, **WHITE_BOX)
    reproduced = dict(BASE, low=10.5, high=12.0, measured=11.0)
    assert C.Claim(**reproduced, preconditions=[ok]).verdict == "reproduced"
    for fields in (reproduced, BASE, dict(BASE, threshold=1.1)):  # reproduced, contradicted, inconclusive
        c = C.Claim(**fields, preconditions=[ok, failed.to_json()])
        assert c.verdict == "not_testable" and c.verdict_text == "not testable at this scale"
        assert c.failed_preconditions == (failed,)
        assert c.explanation.startswith("not testable at this scale: white_box_above_zero (")
        assert "measured 0, needs > 0" in c.explanation
    assert C.verdict("greater", 10, 11, 12, [failed]) == "not_testable"
    c = C.Claim(**BASE, preconditions=[failed])
    assert set(C.VERDICTS) == {"reproduced", "contradicted", "inconclusive", "not_testable"}
    text = C.claims_html([c])
    assert "ntknb-v-not_testable" in text and "not testable at this scale" in text
    assert "not met: white_box_above_zero: measured 0, needs &gt; 0" in text  # short form in the entry
    entry, folded = text.split("<details>")
    assert failed.description not in entry and failed.description in folded  # description folded
    summary = C.summary_markdown([c])
    assert "1 not testable at this scale" in summary and "white\\_box\\_above\\_zero measured 0, needs \\> 0" in summary
    with pytest.raises(ValueError, match="unique"):
        C.Claim(**BASE, preconditions=[failed, failed])
    with pytest.raises(ValueError, match="'preconditions'"):
        C.Claim(**BASE, preconditions="white_box")


def test_preconditions_json_round_trip_and_old_json_loads():
    c = C.Claim(**BASE, preconditions=[C.Precondition(measured=0.0, **WHITE_BOX)])
    js = c.to_json()
    assert json.loads(json.dumps(js)) == js and js["verdict"] == "not_testable"
    assert C.Claim.from_json(js) == c
    with pytest.raises(ValueError, match="does not follow"):
        C.Claim.from_json(dict(js, verdict="contradicted"))  # a typed verdict cannot hide the condition
    old = {k: v for k, v in C.Claim(**BASE).to_json().items() if k != "preconditions"}  # stored notebooks
    assert C.Claim.from_json(old).preconditions == () and C.Claim.from_json(old).verdict == "contradicted"


def test_every_stored_notebook_claim_still_loads():
    from ntknb.book.pages import glued_claims

    loaded = [C._as_claims(raw) for _, raw in glued_claims() if raw]
    assert loaded and all(c.verdict in C.VERDICTS for cs in loaded for c in cs)
    assert all(C.summary_markdown(cs) and C.claims_html(cs) for cs in loaded)


# ---------------------------------------------------------------- the claim register (issue 29)

REGISTER = """
claims:
  - id: demo.ratio
    source: loo2022evolution
    where: Sec. 4, Fig. 3
    quote: "the kernel changes by orders of magnitude"
    claim: Adversarial training moves the kernel by orders of magnitude more.
    paper: orders of magnitude
    direction: greater
    threshold: 10
    justification: orders of magnitude read as a ratio of at least 10.
    preconditions:
      - name: trained_long_enough
        description: training reached the phase the claim is about
        direction: greater
        threshold: 20
  - id: demo.plain
    source: tsilivis2022ntk
    where: Sec. 3
    quote: "about 0"
    claim: Accuracy falls to about 0.
    paper: about 0 %
    direction: less
    threshold: 0.1
    justification: about 0 read as below 10 %.
"""


def test_register_loads_validates_and_builds_claims(tmp_path):
    path = tmp_path / "01_demo.yaml"
    path.write_text(REGISTER)
    specs = C.load_register(path)
    assert list(specs) == ["demo.ratio", "demo.plain"] and specs["demo.ratio"].threshold == 10.0
    assert C.registered("demo.plain", tmp_path) == specs["demo.plain"]
    with pytest.raises(ValueError, match="'claim_id'"):
        C.registered("demo.none", tmp_path)
    measured = dict(measured=11.0, low=10.5, high=12.0, n_seeds=5, n_test=None, scale="MNIST, 40 epochs")
    c = C.Claim.from_register(specs["demo.ratio"], conditions={"trained_long_enough": 40}, **measured)
    assert (c.threshold, c.direction, c.source, c.verdict) == (10.0, "greater", "loo2022evolution", "reproduced")
    short = C.Claim.from_register(specs["demo.ratio"], conditions={"trained_long_enough": 8}, **measured)
    assert short.verdict == "not_testable" and short.preconditions[0].description.startswith("training reached")
    with pytest.raises(ValueError, match="'conditions'"):
        C.Claim.from_register(specs["demo.ratio"], **measured)
    with pytest.raises(ValueError, match="'conditions'"):
        C.Claim.from_register(specs["demo.plain"], conditions={"x": 1}, **measured)
    for bad, match in ((REGISTER.replace("direction: less", "direction: lower"), "'direction'"),
                       (REGISTER.replace("source: tsilivis2022ntk", "source: nokey"), "'source'"),
                       (REGISTER.replace("    justification: about 0 read as below 10 %.\n", ""), "fields"),
                       (REGISTER.replace("demo.plain", "demo.ratio"), "registered twice"),
                       ("claims: {}", "one key"),
                       (REGISTER.replace("        threshold: 20", "        threshold: 20\n        measured: 3"),
                        "exactly the fields")):
        path.write_text(bad)
        with pytest.raises(ValueError, match=match):
            C.load_register(path)


def _git(cwd, *args):
    import subprocess

    subprocess.run(["git", "-C", str(cwd), *args], check=True, capture_output=True,
                   env={"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
                        "GIT_COMMITTER_EMAIL": "t@t", "PATH": __import__("os").environ["PATH"]})


def test_registrations_from_the_git_history(tmp_path):
    import shutil

    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    reg = tmp_path / "notebooks" / "claims"
    reg.mkdir(parents=True)
    (reg / "01_demo.yaml").write_text(REGISTER)
    info = C.registrations(reg)
    assert info["demo.ratio"]["status"] == "not under version control" and info["demo.ratio"]["commit"] is None
    _git(tmp_path, "init", "-q")
    assert C.registrations(reg)["demo.ratio"]["status"] == "not committed"
    _git(tmp_path, "add", ".")
    _git(tmp_path, "commit", "-q", "-m", "register")
    first = C.registrations(reg)
    assert first["demo.ratio"]["status"] == "registered" and first["demo.ratio"]["changes"] == 0
    assert first["demo.ratio"]["file"] == "notebooks/claims/01_demo.yaml" and len(first["demo.ratio"]["commit"]) == 40
    (reg / "01_demo.yaml").write_text(REGISTER.replace("threshold: 0.1", "threshold: 0.2"))
    assert C.registrations(reg)["demo.plain"]["status"] == "not committed"
    _git(tmp_path, "commit", "-q", "-am", "change a threshold")
    after = C.registrations(reg)
    assert after["demo.ratio"]["commit"] == first["demo.ratio"]["commit"]  # unchanged claim keeps its date
    assert after["demo.plain"]["commit"] != first["demo.plain"]["commit"] and after["demo.plain"]["changes"] == 1


def test_the_book_s_register_files_load_and_agree_with_the_stored_claims():
    """Every register file under notebooks/claims/ is valid, and a registered claim that a stored
    notebook glued has the registered source, words, threshold and direction."""
    from ntknb.book.pages import glued_claims

    stored = {c["id"]: c for _, raw in glued_claims() for c in (raw or [])}
    for path in sorted(C.REGISTER_DIR.glob("*.yaml")):
        for cid, spec in C.load_register(path).items():
            if cid in stored:
                c = stored[cid]
                assert (spec.source, spec.claim, spec.threshold, spec.direction) == (
                    c["source"], c["claim"], c["threshold"], c["direction"]), (path.name, cid)


def test_seed_check_mismatch_names_every_parameter_off_the_defaults():
    defaults = {"seed": 0, "n_seeds": 3, "eps": 0.1, "widths": [1, 2]}
    at = {"parameters": {"seed": 7000, "n_seeds": 3, "eps": 0.1, "widths": [1, 2]}}
    assert C.seed_check_mismatch(at, defaults) == []  # the base seed apart, the defaults
    off = {"parameters": {"seed": 7000, "n_seeds": 3, "eps": 0.2, "old_knob": 1}}
    assert C.seed_check_mismatch(off, defaults) == ["eps", "widths", "old_knob"]  # differs, missing, gone
    assert C.seed_check_mismatch({"seeds": [1]}, defaults) == ["parameters not recorded"]
