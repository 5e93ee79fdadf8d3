"""Tests for ntknb.chapters.ch02_eigenfeatures (chapter 02): schema and the values it glues."""

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from ntknb import runner
from ntknb.chapters import ch02_eigenfeatures as ch

NB = Path(__file__).resolve().parents[1] / "notebooks" / "02_eigenfeatures.py"


def params(**changes):
    defaults = {n: p.default for n, p in runner.notebook_parameters(runner.load_notebook(NB)).items()}
    return ch.Params.from_values({**defaults, **changes})


def test_params_rules():
    p = params()
    for change, name in [(dict(fc_architectures=["fc2"]), "fc_architectures"), (dict(conv_pool=3), "conv_pool"),
                         (dict(conv_n_train=p.n_features - 1), "conv_n_train"), (dict(classes=["a", 1]), "classes"),
                         (dict(mnist_architectures=["nope"]), r"mnist_architectures\[0\]"), (dict(paper_indices=[-1]), r"paper_indices\[0\]")]:
        with pytest.raises(ValueError, match=f"'{name}'"):
            params(**change)


def _sweep(clean, robust, indices=None, n_test=500):
    clean, robust = np.asarray(clean, float), np.asarray(robust, float)
    return SimpleNamespace(clean_accuracy=clean, robust_accuracy=robust, n_test=n_test,
                           indices=np.arange(clean.size) if indices is None else np.asarray(indices))


def test_best_useful_nonrobust():
    p = params(useful_above=0.5, nonrobust_below=0.1)
    sw = _sweep([0.9, 0.7, 0.8, 0.4], [0.5, 0.05, 0.02, 0.0], indices=[10, 11, 12, 13])
    assert ch.best_useful_nonrobust(p, sw) == (12, 0.8, 0.02)  # most useful among the non-robust
    assert ch.best_useful_nonrobust(p, _sweep([0.9], [0.5])) is None


def test_sweep_values_counts_and_rows():
    p = params(useful_above=0.5, nonrobust_below=0.1, mnist_useful_above=0.1, mnist_nonrobust_below=0.02)
    sw = _sweep([0.9, 0.7, 0.6, 0.4], [0.5, 0.3, 0.05, 0.0])  # robustness falls with the index
    msw = _sweep([0.5, 0.2, 0.05], [0.3, 0.01, 0.0])
    arch = SimpleNamespace(description="fc")
    values, rows = ch.sweep_values(p, {"fc1": dict(arch=arch, y_test=[0] * 5)}, {"fc1": dict(arch=arch, y_test=[0] * 7)},
                                   {"fc1": sw}, {"fc1": msw}, {"fc1": 0.8, "mnist_fc1": 0.9})
    assert values["useful_fc1"] == 3 and values["useful_nonrobust_fc1"] == 1
    # against chance on 500 points, Holm over 4 features: 0.9, 0.7, 0.6 are far above 0.5
    assert values["useful_sig_fc1"] == 3 and values["useful_nonrobust_sig_fc1"] == 1
    assert values["useful_mnist_fc1"] == 2 and values["useful_nonrobust_mnist_fc1"] == 1
    assert values["spearman_index_robustness_fc1"] == pytest.approx(-1.0)
    assert values["spearman_mean_cifar"] == pytest.approx(-1.0)
    assert rows[0][:4] == ["CIFAR-10 fc1", "fc", 5, 0.8] and rows[1][:4] == ["MNIST fc1", "fc", 7, 0.9]


def test_training_time_values():
    tt = ch.TrainingTime(idx_t=np.array([0, 4, 9]), times=np.array([1.0, 2.0, 3.0]),
                         clean=np.array([0.6, 0.8, 0.85, 0.9]), robust=np.array([0.5, 0.6, 0.2, 0.01]),
                         coherence=np.array([0.9, 0.5, 0.3, 0.2]), weights=None)
    v = ch.training_time_values(tt)
    assert v["robust_t_max"] == 0.6 and v["robust_t_argmax_index"] == 5 and v["robust_t_inf"] == 0.01
    assert v["clean_t_max"] == 0.85 and v["clean_t_inf"] == 0.9 and v["coherence_t_first"] == 0.9


def test_claims_are_well_formed_and_flip_at_the_thresholds():
    from types import SimpleNamespace

    from ntknb.claims import Claim

    p = params()
    idx = np.arange(60)
    falling = SimpleNamespace(indices=idx, robust_accuracy=np.linspace(0.6, 0.0, 60) + 0.01 * np.sin(idx), n_test=500)
    picked = {"early": (11, 0.62, 0.02, 0.7), "late": (301, 0.52, 0.0, 0.6)}  # held-out acc 0.62 and 0.52
    cs = {c.id: c for c in ch.claims(p, SimpleNamespace(robust=np.array([0.3, 0.02])), {"fc1": falling}, picked)}
    assert list(cs) == list(ch.CLAIM_THRESHOLDS)
    for c in cs.values():
        assert Claim.from_json(c.to_json()) == c and c.n_seeds == 1
        assert c.n_test == (p.n_test - ch.n_selection(p) if "useful" in c.id else 500)
    assert cs["ch02.useful_nonrobust_early"].verdict == "reproduced"  # 155 of 250 above 0.5: Wilson [0.56, 0.68]
    assert cs["ch02.useful_nonrobust_late"].verdict == "inconclusive"  # 130 of 250
    assert cs["ch02.useful_nonrobust_early"].threshold == p.useful_above
    assert cs["ch02.full_kernel_not_robust"].threshold == p.nonrobust_below
    assert cs["ch02.full_kernel_not_robust"].verdict == "reproduced"  # 0.02 on 500 images
    assert cs["ch02.robust_features_on_top"].verdict == "reproduced" and cs["ch02.robust_features_on_top"].measured < -0.9
    rising = SimpleNamespace(indices=idx, robust_accuracy=np.linspace(0.0, 0.6, 60), n_test=500)
    cs = {c.id: c for c in ch.claims(p, SimpleNamespace(robust=np.array([0.3, 0.3])), {"fc1": rising})}
    assert cs["ch02.full_kernel_not_robust"].verdict == "contradicted"
    assert cs["ch02.robust_features_on_top"].verdict == "contradicted"
    flat = SimpleNamespace(indices=idx, robust_accuracy=np.random.default_rng(0).uniform(size=60), n_test=500)
    cs = {c.id: c for c in ch.claims(p, SimpleNamespace(robust=np.array([0.1])), {"fc1": flat})}
    assert cs["ch02.robust_features_on_top"].verdict == "inconclusive"
    assert cs["ch02.full_kernel_not_robust"].verdict == "inconclusive"


def test_useful_significant_is_holm_corrected_against_chance():
    # 500 points: 0.54 (270 correct) has one-sided p = 0.04, not enough among 100 features; 0.6 (p < 1e-5) is
    sw = _sweep([0.6] + [0.54] * 99, [0.0] * 100)
    assert ch.useful_significant(sw, 0.5).tolist() == [True] + [False] * 99
    assert ch.useful_significant(_sweep([0.54], [0.0]), 0.5).tolist() == [True]  # alone it passes at 5 %


def test_held_out_accuracies_subtract_counts():
    assert ch._held_out([0.6], [0.8], 500, 250).tolist() == pytest.approx([0.4])
    assert ch.n_selection(params(n_test=501)) == 250
