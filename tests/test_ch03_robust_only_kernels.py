"""Tests for ntknb.chapters.ch03_robust_only_kernels (chapter 03): schema, the "best"
robust-only machine, verdicts and summaries."""

from pathlib import Path

import pytest

from ntknb import runner
from ntknb.chapters import ch03_robust_only_kernels as ch

NB = Path(__file__).resolve().parents[1] / "notebooks" / "03_robust_only_kernels.py"


def params(**changes):
    defaults = {n: p.default for n, p in runner.notebook_parameters(runner.load_notebook(NB)).items()}
    return ch.Params.from_values({**defaults, **changes})


def test_params_rules_and_checkpoints():
    p = params(at_steps=60, at_checkpoints=[5, 60])
    assert p.evaluated_checkpoints == [5, 60]
    q = params(at_steps=60, at_checkpoints=[5, 10])
    assert q.at_checkpoints == [5, 10] and q.evaluated_checkpoints == [5, 10, 60]  # the parameter is not edited
    for change, name in [(dict(classes=["airplane"]), "classes"), (dict(classes=["airplane", 3]), "classes"),
                         (dict(robust_k=[p.n_features + 1]), r"robust_k\[0\]"), (dict(at_checkpoints=[61]), r"at_checkpoints\[0\]"),
                         (dict(architecture="nope"), "architecture"), (dict(n_features=p.mnist_n_train + 1, n_train=5000),
                                                                       "n_features")]:
        with pytest.raises(ValueError, match=f"'{name}'"):
            params(**change)


def _row(family, tag, n, clean, pgd, standard=float("nan")):
    return dict(family=family, tag=tag, n=n, clean=clean, fgsm=pgd, pgd=pgd, standard=standard, S=list(range(n)))


ROWS = [_row("(a) threshold", "γ=0.5", 0, 0.5, 1.0), _row("(a) threshold", "γ=0.3", 3, 0.7, 0.55),
        _row("(b) top-k eigenvalue", "k=1", 1, 0.9, 0.9), _row("(c) top-k robust", "k=4", 4, 0.8, 0.45),
        _row("full kernel", "all", 100, 0.9, 0.05)]


def test_best_robust_only_and_levels():
    best, qualified = ch.best_robust_only(params(robust_level=0.5), ROWS)
    assert best["tag"] == "γ=0.3" and qualified  # empty sets and family (b) are not candidates
    best, qualified = ch.best_robust_only(params(robust_level=0.6), ROWS)
    assert best["tag"] == "γ=0.3" and not qualified  # none reaches the level: the highest PGD accuracy
    assert ch.nontrivial_level(0.9) == pytest.approx(0.7)
    p = params()
    assert p.seeds == [p.seed + i for i in range(p.n_seeds)] and p.standard == {"n_iter": p.eval_iters}
    with pytest.raises(ValueError, match="'n_seeds'"):
        params(n_seeds=0)


def test_mnist_summary_picks_the_most_robust_robust_only_machine():
    p = params(mnist_eps=[0.1])
    values, table = ch.mnist_summary(p, {0.1: ROWS})
    assert values["mnist_most_robust_pgd_0"] == 0.55 and values["mnist_full_clean_0"] == 0.9
    assert table == [[0.1, 0.9, 0.05, "(a) threshold γ=0.3", 3, 0.7, 0.55]]


def _run(full, best, at, early, n=400, rows=ROWS):
    """A replica with the given (clean, standard-evaluation robust) accuracies of the four final
    machines; per-point robustness with the given counts (AT's robust points include early's)."""
    import numpy as np
    from types import SimpleNamespace

    acc = np.array([full, best, at, early], float)
    correct = np.zeros((4, n), bool)
    for j, a in enumerate(acc[:, 1]):
        correct[j, :int(round(a * n))] = True
    final = SimpleNamespace(clean=acc[:, 0], pgd=acc[:, 1], standard=acc[:, 1], standard_correct=correct, n_test=n)
    return SimpleNamespace(final=final, rows=rows, best=dict(family="(a) threshold", tag="γ=0.3"))


def _claims(runs):
    return {c.id: c for c in ch.claims(params(), runs)}


def test_claims_are_well_formed():
    from ntknb.claims import Claim

    runs = [_run((0.865 + d, 0.05), (0.84, 0.59 + d), (0.7, 0.67), (0.7, 0.645)) for d in (-0.01, 0, 0.01)]
    cs = _claims(runs)
    assert list(cs) == ["ch03.full_kernel_not_robust", "ch03.robust_only_clean", "ch03.robust_only_pgd",
                        "ch03.robust_only_tradeoff", "ch03.kernel_at_vs_standard"]
    for c in cs.values():
        assert Claim.from_json(c.to_json()) == c and c.n_seeds == 3 and c.n_test == 1200
        assert c.source == "tsilivis2022ntk" and c.low <= c.measured <= c.high
    assert cs["ch03.robust_only_clean"].threshold == pytest.approx(ch.nontrivial_level(0.865))
    assert cs["ch03.robust_only_pgd"].threshold == params().robust_level
    assert cs["ch03.robust_only_pgd"].measured == pytest.approx(0.59)
    assert cs["ch03.kernel_at_vs_standard"].measured == pytest.approx(0.025)


def test_tradeoff_shortfall_is_the_best_robust_only_machine():
    p = params(robust_fraction=0.75)
    run = _run((0.9, 0.05), (0.7, 0.55), (0.7, 0.6), (0.7, 0.6))  # non-trivial level 0.7
    d, row = ch.tradeoff_shortfall(p, run)
    # γ=0.3: min(0.7 - 0.7, 0.55 - 0.525) = 0; k=4: min(0.1, 0.45 - 0.6) = -0.15
    assert row["tag"] == "γ=0.3" and d == pytest.approx(0.0)
    rows = [*ROWS[:-1], _row("(c) top-k robust", "k=8", 8, 0.8, 0.1, standard=0.7), ROWS[-1]]
    d, row = ch.tradeoff_shortfall(p, _run((0.9, 0.05), (0.7, 0.55), (0.7, 0.6), (0.7, 0.6), rows=rows))
    assert row["tag"] == "k=8" and d == pytest.approx(0.1)  # the standard evaluation where it ran


def test_claim_verdicts_flip_across_the_thresholds():
    spread = (-0.01, 0, 0.01)
    cs = _claims([_run((0.865, 0.05 + d), (0.84, 0.60 + d), (0.67, 0.67), (0.645, 0.645)) for d in spread])
    assert cs["ch03.full_kernel_not_robust"].verdict == "reproduced"
    assert cs["ch03.robust_only_clean"].verdict == "contradicted"
    assert cs["ch03.robust_only_pgd"].verdict == "contradicted"
    cs = _claims([_run((0.865, 0.60 + d), (0.60, 0.40 + d), (0.80, 0.80), (0.50, 0.50)) for d in spread])
    assert cs["ch03.full_kernel_not_robust"].verdict == "contradicted"
    assert cs["ch03.robust_only_clean"].verdict == "reproduced" and cs["ch03.robust_only_pgd"].verdict == "reproduced"
    assert cs["ch03.kernel_at_vs_standard"].verdict == "reproduced"  # AT right wherever standard is, +120 points
    cs = _claims([_run((0.865, 0.50 + d), (0.70, 0.52), (0.50, 0.50), (0.50, 0.50)) for d in (-0.1, 0, 0.1)])
    assert cs["ch03.full_kernel_not_robust"].verdict == "inconclusive"
    assert cs["ch03.kernel_at_vs_standard"].verdict == "inconclusive"  # identical per-point results: [0, 0]
    # tradeoff: every robust-only machine short of one bar -> reproduced; one above both -> contradicted
    assert cs["ch03.robust_only_tradeoff"].verdict == "contradicted"  # γ=0.3: 0.7 > 0.68 and 0.55 > 0.75 x 0.7
    low = [_row("(a) threshold", "γ=0.3", 3, 0.6, 0.55), _row("(c) top-k robust", "k=4", 4, 0.8, 0.45), ROWS[-1]]
    cs = _claims([_run((0.865 + d, 0.05), (0.6, 0.55), (0.7, 0.6), (0.7, 0.6), rows=low) for d in spread])
    assert cs["ch03.robust_only_tradeoff"].verdict == "reproduced"
    assert cs["ch03.robust_only_tradeoff"].measured == pytest.approx(0.6 - 0.6825)
    rows = [*ROWS[:-1], _row("(c) top-k robust", "k=8", 8, 0.85, 0.8), ROWS[-1]]
    cs = _claims([_run((0.865, 0.05), (0.85, 0.8 + d), (0.7, 0.6), (0.7, 0.6), rows=rows) for d in spread])
    assert cs["ch03.robust_only_tradeoff"].verdict == "contradicted"


def test_cifar_values_modal_name_ties_go_to_the_first_seed():
    from types import SimpleNamespace

    import numpy as np

    def run(tag):
        final = SimpleNamespace(clean=np.array([0.9, 0.8, 0.7, 0.6]), standard=np.array([0.0, 0.5, 0.6, 0.4]),
                                pgd=np.array([0.0, 0.5, 0.6, 0.4]))
        return SimpleNamespace(final=final, rows=[{"fgsm": 0.1}], best={"family": "(a) threshold", "tag": tag},
                               early=5)

    p = params()
    for order in (["γ=0.1", "γ=0.05", "γ=0.2"], ["γ=0.05", "γ=0.2", "γ=0.1"]):
        v = ch.cifar_values(p, [run(t) for t in order])
        assert v["best_robust_only_name"] == f"(a) threshold {order[0]}" and v["best_robust_only_name_count"] == 1
    v = ch.cifar_values(p, [run(t) for t in ["γ=0.1", "γ=0.05", "γ=0.05"]])
    assert v["best_robust_only_name"] == "(a) threshold γ=0.05" and v["best_robust_only_name_count"] == 2
