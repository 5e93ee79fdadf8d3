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


def _row(family, tag, n, clean, pgd):
    return dict(family=family, tag=tag, n=n, clean=clean, fgsm=pgd, pgd=pgd)


ROWS = [_row("(a) threshold", "γ=0.5", 0, 0.5, 1.0), _row("(a) threshold", "γ=0.3", 3, 0.7, 0.55),
        _row("(b) top-k eigenvalue", "k=1", 1, 0.9, 0.9), _row("(c) top-k robust", "k=4", 4, 0.8, 0.45),
        _row("full kernel", "all", 100, 0.9, 0.05)]


def test_best_robust_only_and_verdicts():
    best, qualified = ch.best_robust_only(params(robust_level=0.5), ROWS)
    assert best["tag"] == "γ=0.3" and qualified  # empty sets and family (b) are not candidates
    best, qualified = ch.best_robust_only(params(robust_level=0.6), ROWS)
    assert best["tag"] == "γ=0.3" and not qualified  # none reaches the level: the highest PGD accuracy
    assert ch.nontrivial_level(0.9) == pytest.approx(0.7)
    assert ch.robust_only_verdict(True, True).startswith("reaches a non-trivial")
    assert ch.robust_only_verdict(True, False).endswith("clean accuracy is trivial")
    assert ch.robust_only_verdict(False, False) == "does not keep its PGD accuracy at the level"
    assert ch.family_table(ROWS)[1] == ["(a) threshold", "γ=0.3", 3, 0.7, 0.55, 0.55]


def test_mnist_summary_picks_the_most_robust_robust_only_machine():
    p = params(mnist_eps=[0.1])
    values, table = ch.mnist_summary(p, {0.1: ROWS})
    assert values["mnist_most_robust_pgd_0"] == 0.55 and values["mnist_full_clean_0"] == 0.9
    assert table == [[0.1, 0.9, 0.05, "(a) threshold γ=0.3", 3, 0.7, 0.55]]


def _kt(at_pgd, std_pgd, n=200):
    import numpy as np
    from types import SimpleNamespace

    def sc(acc):
        c = np.zeros((2, n), bool)
        c[-1, :int(round(acc * n))] = True
        return SimpleNamespace(n_test=n, pgd_correct=c)

    return ch.KernelTraining(at=None, std=None, sc_at=sc(at_pgd), sc_std=sc(std_pgd))


def _claims(full, best, at_pgd, std_pgd):
    p = params()
    cs = ch.claims(p, dict(clean=full[0], pgd=full[1]), dict(family="(a) threshold", tag="γ=0.1", n=24,
                                                           clean=best[0], pgd=best[1]), _kt(at_pgd, std_pgd))
    return {c.id: c for c in cs}


def test_claims_are_well_formed():
    from ntknb.claims import Claim

    cs = _claims((0.865, 0.05), (0.84, 0.59), 0.67, 0.645)
    assert list(cs) == ["ch03.full_kernel_not_robust", "ch03.robust_only_clean", "ch03.robust_only_pgd",
                        "ch03.kernel_at_vs_standard"]
    for c in cs.values():
        assert Claim.from_json(c.to_json()) == c and c.n_seeds == 1 and c.n_test == 200
        assert c.source == "tsilivis2022ntk" and c.low <= c.measured <= c.high
    assert cs["ch03.robust_only_clean"].threshold == pytest.approx(ch.nontrivial_level(0.865))
    assert cs["ch03.robust_only_pgd"].threshold == params().robust_level
    assert cs["ch03.kernel_at_vs_standard"].measured == pytest.approx(0.025)


def test_claim_verdicts_flip_across_the_thresholds():
    cs = _claims((0.865, 0.05), (0.84, 0.60), 0.67, 0.645)
    assert cs["ch03.full_kernel_not_robust"].verdict == "reproduced"
    assert cs["ch03.robust_only_clean"].verdict == "contradicted"  # 0.84 on 200 points: far above 0.68
    assert cs["ch03.robust_only_pgd"].verdict == "contradicted"  # Wilson [0.53, 0.66] above 0.5
    assert ch.claim_verdict_text(list(cs.values())).startswith("the paper's claim is contradicted")
    cs = _claims((0.865, 0.60), (0.60, 0.40), 0.80, 0.50)
    assert cs["ch03.full_kernel_not_robust"].verdict == "contradicted"
    assert cs["ch03.robust_only_clean"].verdict == "reproduced" and cs["ch03.robust_only_pgd"].verdict == "reproduced"
    assert cs["ch03.kernel_at_vs_standard"].verdict == "reproduced"  # AT right on every point standard gets right, +60
    assert ch.claim_verdict_text(list(cs.values())) == "the paper's claim is reproduced at this scale"
    cs = _claims((0.865, 0.50), (0.70, 0.52), 0.50, 0.50)
    assert cs["ch03.full_kernel_not_robust"].verdict == "inconclusive"
    assert cs["ch03.kernel_at_vs_standard"].verdict == "inconclusive"  # identical per-point results: [0, 0]
    assert ch.claim_verdict_text(list(cs.values())) == "the evidence is inconclusive at this scale"
