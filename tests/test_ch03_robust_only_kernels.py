"""Tests for ntknb.chapters.ch03_robust_only_kernels (chapter 03): schema, the three disjoint sets of
held-out points, the choices made on the choice points only, the "best" robust-only machine, the
trade-off shortfall, the registered claims and their verdicts, summaries."""

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from ntknb.book.params import load_notebook, notebook_parameters
from ntknb.chapters import ch03_robust_only_kernels as ch

NB = Path(__file__).resolve().parents[1] / "notebooks" / "03_robust_only_kernels.py"


def params(**changes):
    defaults = {n: p.default for n, p in notebook_parameters(load_notebook(NB)).items()}
    return ch.Params.from_values({**defaults, **changes})


def test_params_rules_and_checkpoints():
    p = params(at_steps=60, at_checkpoints=[5, 60])
    assert p.evaluated_checkpoints == [5, 60]
    q = params(at_steps=60, at_checkpoints=[5, 10])
    assert q.at_checkpoints == [5, 10] and q.evaluated_checkpoints == [5, 10, 60]  # the parameter is not edited
    for change, name in [(dict(classes=["airplane"]), "classes"), (dict(classes=["airplane", 3]), "classes"),
                         (dict(robust_k=[p.n_features + 1]), r"robust_k\[0\]"),
                         (dict(at_checkpoints=[61]), r"at_checkpoints\[0\]"), (dict(architecture="nope"), "architecture"),
                         (dict(n_features=p.mnist_n_train + 1, n_train=5000), "n_features"),
                         (dict(n_choose=1), "n_choose")]:
        with pytest.raises(ValueError, match=f"'{name}'"):
            params(**change)
    # the three held-out sets are drawn together from the pair's 2000 test images
    with pytest.raises(ValueError, match=r"n_select \+ n_eval \+ n_choose must be at most 2000"):
        params(n_select=200, n_eval=1000, n_choose=802)
    assert params(n_select=200, n_eval=1000, n_choose=800).n_choose == 800
    for gone in ("robust_level", "robust_fraction"):  # registered bars, not parameters
        with pytest.raises(ValueError, match=gone):
            params(**{gone: 0.5})


def _row(family, tag, n, clean, pgd, standard=float("nan")):
    return dict(family=family, tag=tag, n=n, clean=clean, fgsm=pgd, pgd=pgd, standard=standard, S=list(range(n)))


ROWS = [_row("(a) threshold", "γ=0.5", 0, 0.5, 1.0), _row("(a) threshold", "γ=0.3", 3, 0.7, 0.55),
        _row("(b) top-k eigenvalue", "k=1", 1, 0.9, 0.9), _row("(c) top-k robust", "k=4", 4, 0.8, 0.45),
        _row("full kernel", "all", 100, 0.9, 0.05)]


def test_best_robust_only_and_levels():
    best, qualified = ch.best_robust_only(ROWS)
    assert best["tag"] == "γ=0.3" and qualified  # empty sets and family (b) are not candidates
    high = [dict(r, pgd=r["pgd"] - 0.1) if r["family"] != "full kernel" else r for r in ROWS]
    best, qualified = ch.best_robust_only(high)
    assert best["tag"] == "γ=0.3" and not qualified  # none reaches the level: the highest PGD accuracy
    assert ch.nontrivial_level(0.9) == pytest.approx(0.7)
    p = params()
    assert p.seeds == [p.seed + i for i in range(p.n_seeds)] and p.standard == {"n_iter": p.eval_iters}
    with pytest.raises(ValueError, match="'n_seeds'"):
        params(n_seeds=0)


def test_shortfall_and_the_tradeoff_choice():
    # level 0.7 (full kernel 0.9): γ=0.3 min(0.7 - 0.7, 0.55 - 0.525) = 0; k=4: min(0.1, 0.45 - 0.6) = -0.15
    assert ch.shortfall(0.7, 0.55, 0.9) == pytest.approx(0.0)
    assert ch.shortfall(0.8, 0.45, 0.9) == pytest.approx(-0.15)
    d, row = ch.tradeoff_choice(ROWS)
    assert row["tag"] == "γ=0.3" and d == pytest.approx(0.0)
    rows = [*ROWS[:-1], _row("(c) top-k robust", "k=8", 8, 0.8, 0.1, standard=0.7), ROWS[-1]]
    d, row = ch.tradeoff_choice(rows)
    assert row["tag"] == "k=8" and d == pytest.approx(0.1)  # the standard evaluation where it ran
    # family (b) is never a candidate, however good
    d, row = ch.tradeoff_choice([*ROWS[:-1], _row("(b) top-k eigenvalue", "k=2", 2, 1.0, 1.0), ROWS[-1]])
    assert row["tag"] == "γ=0.3"


def test_mnist_summary_picks_the_most_robust_robust_only_machine():
    p = params(mnist_eps=[0.1])
    values, table = ch.mnist_summary(p, {0.1: ROWS})
    assert values["mnist_most_robust_pgd_0"] == 0.55 and values["mnist_full_clean_0"] == 0.9
    assert table == [[0.1, 0.9, 0.05, "(a) threshold γ=0.3", 3, 0.7, 0.55]]


# ------------------------------------------------------------------------ the three sets, end to end


def _fake_task(seed, n_train, n_test, flip_from=None, noise_from=None):
    """Two classes of 6x6x1 images with class-dependent brightness and a class-dependent pattern;
    ``flip_from`` / ``noise_from``: from that test index on, labels flipped / images replaced by noise."""
    rng = np.random.default_rng(seed)

    def draw(n):
        lab = np.arange(n) % 2
        rng.shuffle(lab)
        pattern = np.tile(np.linspace(-0.2, 0.2, 6), (6, 1))[None, :, :, None]
        x = 0.5 + 0.15 * (2 * lab - 1)[:, None, None, None] * (1 + pattern) + 0.1 * rng.normal(size=(n, 6, 6, 1))
        return np.clip(x, 0, 1).astype(np.float32), (2.0 * lab - 1)[:, None].astype(np.float32)

    x_train, y_train = draw(n_train)
    x_test, y_test = draw(n_test)
    if flip_from is not None:
        y_test[flip_from:] *= -1
    if noise_from is not None:
        x_test[noise_from:] = np.random.default_rng(99).uniform(size=x_test[noise_from:].shape).astype(np.float32)
    return SimpleNamespace(x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)


TINY = dict(n_seeds=1, n_train=40, n_select=20, n_choose=20, n_eval=20, n_features=12, gammas=[0.6, 0.5, 0.3],
            top_k=[1, 4], robust_k=[1, 2, 4], pgd_steps=2, eval_iters=2, at_steps=20, at_batch_size=20,
            at_pgd_steps=2, at_checkpoints=[1, 3, 10, 20], test_batch_size=20, feature_batch_size=12, mnist_eps=[],
            mnist_robust_k=[1, 4])


def _tiny_run(monkeypatch, **fake):
    p = params(**TINY)
    monkeypatch.setattr(ch.data, "make_task", lambda cifar, classes, n_train, n_test, seed:
                        _fake_task(seed, n_train, n_test, **fake))
    return p, ch.cifar_seed_run(p, None, p.seed)


def test_setup_splits_the_held_out_points_into_three_disjoint_sets():
    p = params(**TINY)
    task = _fake_task(0, 40, 60)
    task.x_test = np.broadcast_to(np.arange(60, dtype=np.float32)[:, None, None, None] / 60,
                                  (60, 6, 6, 1)).copy()  # image i is constant i / 60
    s = ch.setup(p, task, 20, 1, n_choose=15)
    ids = {k: set(np.round(s[f"x_{k}"][:, 0, 0, 0] * 60).astype(int)) for k in ("sel", "choose", "eval")}
    assert [len(ids[k]) for k in ("sel", "choose", "eval")] == [20, 15, 25]
    assert not (ids["sel"] & ids["choose"] or ids["sel"] & ids["eval"] or ids["choose"] & ids["eval"])
    assert ids["sel"] | ids["choose"] | ids["eval"] == set(range(60))
    assert np.array_equal(s["y_choose"], task.y_test[20:35]) and np.array_equal(s["y_eval"], task.y_test[35:])
    assert len(ch.setup(p, task, 20, 1)["x_choose"]) == 0  # MNIST: no choice points
    with pytest.raises(ValueError, match="'on'"):
        ch.evaluate_families(p, s, {}, 0.1, on="sel")


@pytest.mark.slow
def test_every_choice_ignores_the_evaluation_points(monkeypatch):
    """Flipping the labels of the evaluation points and replacing their images by noise changes what
    is measured there, never what is chosen (best robust-only machine, trade-off machine, early
    stop); flipping the labels of the choice points does change the choice data (the test can fail)."""
    first = 40  # n_select + n_choose: the evaluation points start here
    p, base = _tiny_run(monkeypatch)
    _, moved = _tiny_run(monkeypatch, flip_from=first, noise_from=first + 10)
    pick = lambda run: (run.best["tag"], run.qualified, run.trade["tag"], run.early)  # noqa: E731
    assert pick(moved) == pick(base)
    assert [(r["clean"], r["pgd"]) for r in moved.choice_rows] == [(r["clean"], r["pgd"]) for r in base.choice_rows]
    assert not np.allclose(moved.final.clean, base.final.clean)  # the evaluation itself did change
    assert [r["family"] for r in base.choice_rows] == [*(["(a) threshold"] * 3), *(["(c) top-k robust"] * 3),
                                                       "full kernel"]
    _, choice_flipped = _tiny_run(monkeypatch, flip_from=p.n_select)
    assert [r["clean"] for r in choice_flipped.choice_rows] != [r["clean"] for r in base.choice_rows]
    assert base.kt.sc_at is not None and len(base.final) == len(ch.FINAL)


# ------------------------------------------------------------------------------------- claims


def _run(full, best, trade, at, early, n=400, qualified=True):
    """A replica with the given (clean, standard-evaluation robust) accuracies of the five final
    machines (:data:`ch.FINAL`); per-point robustness with the given counts (AT's robust points
    include early's)."""
    acc = np.array([full, best, trade, at, early], float)
    correct = np.zeros((5, n), bool)
    for j, a in enumerate(acc[:, 1]):
        correct[j, :int(round(a * n))] = True
    final = SimpleNamespace(clean=acc[:, 0], pgd=acc[:, 1], standard=acc[:, 1], standard_correct=correct, n_test=n)
    chosen = dict(family="(a) threshold", tag="γ=0.3")
    return SimpleNamespace(final=final, rows=ROWS, choice_rows=ROWS, qualified=qualified, best=chosen, trade=chosen)


def _claims(runs):
    return {c.id: c for c in ch.claims(params(), runs)}


def test_claims_come_from_the_register_and_are_well_formed():
    from ntknb.claims import Claim

    specs = ch.claim_specs()
    runs = [_run((0.865 + d, 0.05), (0.84, 0.59 + d), (0.8, 0.6), (0.7, 0.67), (0.7, 0.645)) for d in (-0.01, 0, 0.01)]
    cs = _claims(runs)
    assert list(cs) == list(specs) == ["ch03.full_kernel_not_robust", "ch03.robust_only_clean_shortfall",
                                       "ch03.robust_only_pgd", "ch03.robust_only_tradeoff",
                                       "ch03.kernel_at_vs_standard"]
    for cid, c in cs.items():
        assert Claim.from_json(c.to_json()) == c and c.n_seeds == 3 and c.n_test == 1200
        assert (c.source, c.claim, c.threshold, c.direction) == (specs[cid].source, specs[cid].claim,
                                                                 specs[cid].threshold, specs[cid].direction)
        assert c.low <= c.measured <= c.high
        assert ("choice points" in c.scale) == (cid != "ch03.full_kernel_not_robust")  # every machine chosen there
    # the bars of the code are the registered ones
    assert specs["ch03.robust_only_pgd"].threshold == ch.ROBUST_LEVEL
    assert f"{ch.ROBUST_FRACTION:g} x clean" in specs["ch03.robust_only_tradeoff"].claim
    assert f"ROBUST_FRACTION = {ch.ROBUST_FRACTION:g}" in specs["ch03.robust_only_tradeoff"].justification
    assert f"ROBUST_LEVEL = {ch.ROBUST_LEVEL:g}" in specs["ch03.robust_only_clean_shortfall"].justification
    assert cs["ch03.robust_only_pgd"].measured == pytest.approx(0.59)
    assert cs["ch03.robust_only_clean_shortfall"].measured == pytest.approx(
        0.84 - np.mean([ch.nontrivial_level(0.865 + d) for d in (-0.01, 0, 0.01)]))
    assert cs["ch03.kernel_at_vs_standard"].measured == pytest.approx(0.025)
    # the trade-off claim measures the machine chosen on the choice points (FINAL row 2), not the best
    assert cs["ch03.robust_only_tradeoff"].measured == pytest.approx(
        np.mean([ch.shortfall(0.8, 0.6, 0.865 + d) for d in (-0.01, 0, 0.01)]))
    for c in cs.values():  # accuracies in [0, 1], differences in [-1, 1]
        assert -1 <= c.low and c.high <= 1


def test_claim_verdicts_flip_across_the_thresholds():
    spread = (-0.01, 0, 0.01)
    cs = _claims([_run((0.865, 0.05 + d), (0.84, 0.60 + d), (0.84, 0.7), (0.75, 0.67), (0.645, 0.645)) for d in spread])
    assert cs["ch03.full_kernel_not_robust"].verdict == "reproduced"
    assert cs["ch03.robust_only_clean_shortfall"].verdict == "contradicted"
    assert cs["ch03.robust_only_pgd"].verdict == "contradicted"
    assert cs["ch03.robust_only_tradeoff"].verdict == "contradicted"  # min(0.84 - 0.6825, 0.7 - 0.63) = 0.07 > 0
    cs = _claims([_run((0.865, 0.05), (0.84, 0.6), (0.84, 0.6), (0.75, 0.67), (0.645, 0.645)) for _ in spread])
    assert cs["ch03.robust_only_tradeoff"].verdict == "reproduced"  # 0.6 - 0.63 < 0: compromised
    cs = _claims([_run((0.865, 0.60 + d), (0.60, 0.40 + d), (0.6, 0.55), (0.80, 0.80), (0.50, 0.50)) for d in spread])
    assert cs["ch03.full_kernel_not_robust"].verdict == "contradicted"
    assert cs["ch03.robust_only_clean_shortfall"].verdict == "reproduced"
    assert cs["ch03.robust_only_pgd"].verdict == "reproduced"
    assert cs["ch03.robust_only_tradeoff"].verdict == "reproduced"  # clean 0.6 below the level 0.6825
    assert cs["ch03.kernel_at_vs_standard"].verdict == "reproduced"  # AT right wherever standard is, +120 points
    cs = _claims([_run((0.865, 0.50 + d), (0.70, 0.52), (0.7, 0.52), (0.70, 0.50), (0.70, 0.50))
                  for d in (-0.1, 0, 0.1)])
    assert cs["ch03.full_kernel_not_robust"].verdict == "inconclusive"
    assert cs["ch03.kernel_at_vs_standard"].verdict == "inconclusive"  # identical per-point results: [0, 0]


def test_preconditions_make_claims_not_testable():
    spread = (-0.01, 0, 0.01)
    ok = [_run((0.865, 0.05 + d), (0.84, 0.60 + d), (0.84, 0.6), (0.75, 0.67), (0.645, 0.645)) for d in spread]
    assert all(not c.failed_preconditions for c in _claims(ok).values())
    # a full kernel near chance: nothing to break, no meaningful level
    weak = [_run((0.7, 0.05 + d), (0.84, 0.60 + d), (0.84, 0.6), (0.75, 0.67), (0.645, 0.645)) for d in spread]
    cs = _claims(weak)
    for cid in ("ch03.full_kernel_not_robust", "ch03.robust_only_clean_shortfall", "ch03.robust_only_tradeoff"):
        assert cs[cid].verdict == "not_testable"
        assert [q.name for q in cs[cid].failed_preconditions] == ["full_kernel_accurate"]
    # one seed without a robust-only machine at the bar on the choice points
    miss = [_run((0.865, 0.05), (0.84, 0.6), (0.84, 0.6), (0.75, 0.67), (0.645, 0.645), qualified=q)
            for q in (True, False, True)]
    cs = _claims(miss)
    assert cs["ch03.robust_only_pgd"].verdict == "not_testable"
    assert cs["ch03.robust_only_clean_shortfall"].failed_preconditions[0].measured == 1
    assert cs["ch03.robust_only_tradeoff"].verdict != "not_testable"
    # a trivial adversarially trained machine does not test the remedy
    trivial = [_run((0.865, 0.05), (0.84, 0.6), (0.84, 0.6), (0.6, 0.67), (0.645, 0.645)) for _ in spread]
    assert _claims(trivial)["ch03.kernel_at_vs_standard"].verdict == "not_testable"


def test_cifar_values_modal_name_ties_go_to_the_first_seed():
    def run(tag):
        final = SimpleNamespace(clean=np.array([0.9, 0.8, 0.8, 0.7, 0.6]), standard=np.array([0.0, 0.5, 0.5, 0.6, 0.4]),
                                pgd=np.array([0.0, 0.5, 0.5, 0.6, 0.4]))
        return SimpleNamespace(final=final, rows=[{"fgsm": 0.1}], choice_rows=ROWS, qualified=True, early=5,
                               best={"family": "(a) threshold", "tag": tag},
                               trade={"family": "(c) top-k robust", "tag": "k=4"})

    p = params()
    for order in (["γ=0.1", "γ=0.05", "γ=0.2"], ["γ=0.05", "γ=0.2", "γ=0.1"]):
        v = ch.cifar_values(p, [run(t) for t in order])
        assert v["best_robust_only_name"] == f"(a) threshold {order[0]}" and v["best_robust_only_name_count"] == 1
    v = ch.cifar_values(p, [run(t) for t in ["γ=0.1", "γ=0.05", "γ=0.05"]])
    assert v["best_robust_only_name"] == "(a) threshold γ=0.05" and v["best_robust_only_name_count"] == 2
    assert v["trade_choice_name"] == "(c) top-k robust k=4" and v["trade_choice_name_count"] == 3
    assert v["trade_shortfall_eval"] == pytest.approx(ch.shortfall(0.8, 0.5, 0.9))
    assert v["trade_shortfall_choice"] == pytest.approx(0.0)  # γ=0.3 of ROWS


def test_tables_intervals_stay_in_range():
    """Accuracies near 1 over 3 seeds: a t half-width would pass 1; the tables' logit-t intervals do not."""
    rows = lambda v: [{"family": "top", "tag": "k=1", "n": 1, "clean": v, "pgd": 1 - v, "fgsm": 0.5,  # noqa: E731
                       "standard": float("nan")}]
    runs = [SimpleNamespace(rows=rows(v), final=SimpleNamespace(clean=np.full(len(ch.FINAL), v),
                                                               pgd=np.full(len(ch.FINAL), 1 - v),
                                                               standard=np.full(len(ch.FINAL), 1 - v)))
            for v in (0.99, 0.93, 1.0)]
    (fr,) = ch.frontier(runs)
    for iv in (fr["clean"], fr["pgd"]):
        assert 0 <= iv.low <= iv.estimate <= iv.high <= 1
    assert ch.frontier_rows(runs)[0][3] == fr["clean"].text()
    final = ch.final_rows(runs)
    assert len(final) == len(ch.FINAL) and all(len(r) == len(ch.FINAL_COLUMNS) for r in final)
    lo, hi = (float(t) for t in final[0][1].split("[")[1].rstrip("]").split(","))
    assert 0 <= lo <= hi <= 1 and hi < 1  # the t interval of these values is [0.88, 1.06]
