"""Tests for ntknb.chapters.ch04_kernel_dynamics (chapter 04): schema, configs, measured
claims and the verdict sentences the page glues."""

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from ntknb import adversaries, runner
from ntknb.chapters import ch04_kernel_dynamics as ch

NB = Path(__file__).resolve().parents[1] / "notebooks" / "04_at_kernel_dynamics.py"


def params(**changes):
    defaults = {n: p.default for n, p in runner.notebook_parameters(runner.load_notebook(NB)).items()}
    return ch.Params.from_values({**defaults, **changes})


def test_params_rules():
    p = params()
    assert p.datasets == [p.dataset] + ([p.second_dataset] if p.second_dataset not in ("none", p.dataset) else [])
    assert params(second_dataset="none").datasets == [p.dataset]
    assert params(lr_decay_epochs=[]).lazy_until is None and p.lazy_until == p.lr_decay_epochs[0]
    for change, name in [(dict(modes=["standard", "fgsm"]), "modes"), (dict(modes=["standard", "pgdd"]), r"modes\[1\]"),
                         (dict(top_p=10 * p.probe_per_class + 1), "top_p"), (dict(linearize_epoch=p.epochs), "linearize_epoch"),
                         (dict(eps_mnist=0.0), "eps_mnist"), (dict(batch_size=p.n_train + 1), "batch_size")]:
        with pytest.raises(ValueError, match=f"'{name}'"):
            params(**change)


def test_base_config():
    p = params(augment="crop")
    mnist, cifar = ch.base_config(p, "mnist", "pgd"), ch.base_config(p, "cifar10", "fgsm")
    assert mnist.eps == p.eps_mnist and mnist.augment == "none" and cifar.augment == "crop"
    assert cifar.eps == p.eps_cifar and cifar.training_adversary() == adversaries.FGSM(p.eps_cifar)
    assert mnist.training_adversary() == adversaries.PGD(p.eps_mnist, p.attack_steps)
    assert mnist.lr_decay_epochs == tuple(p.lr_decay_epochs) and mnist.eval_batch_size == p.n_test


def _traj(frob, conc, kd):
    """A stand-in trajectory: norm / concentration per epoch and consecutive distances."""
    return SimpleNamespace(metrics={"clean.frob": np.asarray(frob), "clean.top_conc": np.asarray(conc)},
                           consecutive_distances=lambda kind="clean": np.asarray(kd),
                           lazy_epoch=lambda threshold, until=None: float(
                               next((t for t in range(1, (until or len(kd)) + 1)
                                     if all(d < threshold for d in kd[t - 1:until])), "nan")))


def test_kernel_measurements_and_lazy_verdicts():
    p = params(lazy_threshold=0.05, lr_decay_epochs=[4], epochs=6)
    runs = {("mnist", "standard"): (None, _traj([1, 4], [0.5, 0.8], [0.3, 0.2, 0.1, 0.01, 0.2, 0.01]), None),
            ("mnist", "pgd"): (None, _traj([1, 2], [0.5, 0.9], [0.3, 0.01, 0.01, 0.01, 0.1, 0.01]), None)}
    c = ch.kernel_measurements(p, runs, "mnist")
    assert c["frob_ratio"] == 2 and c["top_adv"] == 0.9 and c["lazy_adv"] == 2 and c["lazy_std"] == 4
    assert ch.lazy_verdict(c).startswith("The adversarial kernel becomes lazy earlier")
    assert ch.lazy_verdict(dict(c, lazy_std=np.nan, lazy_adv=np.nan)).startswith("Neither kernel")
    assert ch.lazy_verdict(dict(c, lazy_std=2.0, lazy_adv=2.0)).startswith("Both kernels")
    assert ch.lazy_verdict(dict(c, lazy_std=1.0, lazy_adv=3.0)).startswith("The standard kernel")
    pre, post = ch.kd_phases(runs[("mnist", "standard")][1], 4)
    assert pre == pytest.approx(np.mean([0.2, 0.1, 0.01])) and post == 0.2
    assert np.isnan(ch.kd_phases(runs[("mnist", "standard")][1], None)[1])
    assert "consistent with a second" in ch.decay_verdict(pre, post, 0.1, 0.05)
    assert "no second kernel-learning phase" in ch.decay_verdict(0.2, 0.1, 0.1, 0.05)


def test_accuracy_verdicts_and_texts():
    p = params()
    assert ch.at_verdict(p, 0.1, 0.5) == "PGD-AT is the more robust network, as expected."
    assert "NOT more robust" in ch.at_verdict(p, 0.5, 0.1)
    assert "adequate" in ch.strong_verdict(p, 0.1, 0.5, 0.08, 0.47) and "stays the more robust" in \
        ch.strong_verdict(p, 0.1, 0.5, 0.08, 0.47)
    assert "overstates" in ch.strong_verdict(p, 0.1, 0.5, 0.0, 0.3)
    assert ch.second_verdict("cifar10", 0.11).startswith("Caution") and ch.second_verdict("cifar10", 0.5) == ""
    assert "matches or beats" in ch.lin_verdict(p, 0.5, 0.4) and "stays below" in ch.lin_verdict(p, 0.3, 0.4)


def test_strong_robust_acc_is_worst_case_over_restarts():
    import jax.numpy as jnp

    w = jnp.asarray(np.random.default_rng(0).normal(size=(4, 2)).astype(np.float32))
    res = SimpleNamespace(params=w, state={}, apply_fn=lambda p, s, x, train: (x.reshape(x.shape[0], -1) @ p, s))
    x = np.random.default_rng(1).uniform(size=(32, 2, 2, 1)).astype(np.float32)
    labels = np.asarray(np.argmax(x.reshape(32, -1) @ np.asarray(w), 1))
    task = SimpleNamespace(x_test=x, labels_test=labels)
    assert ch.strong_robust_acc(res, task, 0.0, 0, 32, steps=1, restarts=1) == 1.0  # eps 0: clean accuracy
    one = ch.strong_robust_acc(res, task, 0.2, 0, 32, steps=5, restarts=1)
    two = ch.strong_robust_acc(res, task, 0.2, 0, 32, steps=5, restarts=2)
    assert two <= one < 1.0


def _kernel(rng, n, scale, top):
    """A PSD n x n kernel: ``top`` strong directions plus a weak rest, times ``scale``."""
    q, _ = np.linalg.qr(rng.normal(size=(n, n)))
    lam = np.r_[np.full(top, 10.0), np.full(n - top, 0.3)]
    return scale * (q * lam) @ q.T


def _claims(scale_std, scale_adv, top_std, top_adv, acc_std, acc_adv, n_test=200):
    p = params()
    rng = np.random.default_rng(0)
    n = 10 * p.probe_per_class
    runs = {(p.dataset, "standard"): (None, SimpleNamespace(final={"clean": _kernel(rng, n, scale_std, top_std)}), None),
            (p.dataset, "pgd"): (None, SimpleNamespace(final={"clean": _kernel(rng, n, scale_adv, top_adv)}), None)}
    ok_std, ok_adv = np.zeros(n_test, bool), np.zeros(n_test, bool)
    ok_std[:int(acc_std * n_test)] = True
    ok_adv[:int(acc_adv * n_test)] = True
    return {c.id: c for c in ch.claims(p, runs, ok_std, ok_adv)}


def test_claims_are_well_formed():
    from ntknb.claims import Claim

    cs = _claims(30.0, 1.0, 5, 30, 0.46, 0.80)
    assert list(cs) == list(ch.CLAIM_THRESHOLDS)
    for c in cs.values():
        assert Claim.from_json(c.to_json()) == c and c.n_seeds == 1
        assert (c.direction, c.threshold) == ch.CLAIM_THRESHOLDS[c.id]
    assert cs["ch04.kernel_growth"].threshold == 10.0  # "orders of magnitude", fixed in the module
    assert cs["ch04.kernel_growth"].measured == pytest.approx(30.0 * np.sqrt(5 * 100 + 95 * 0.09)
                                                              / np.sqrt(30 * 100 + 70 * 0.09), rel=1e-3)
    assert cs["ch04.top_concentration"].verdict == "inconclusive"  # no interval from one run
    assert cs["ch04.pgd_at_more_robust"].n_test == 200 and cs["ch04.kernel_growth"].n_test is None
    assert cs["ch04.pgd_at_more_robust"].measured == pytest.approx(0.34)


def test_claim_verdicts_flip_across_the_thresholds():
    cs = _claims(30.0, 1.0, 5, 20, 0.46, 0.80)  # standard norm > 10 x, adversarial more concentrated
    assert cs["ch04.kernel_growth"].verdict == "reproduced"
    assert cs["ch04.top_concentration"].measured > 0 and cs["ch04.top_concentration"].verdict == "inconclusive"
    assert cs["ch04.pgd_at_more_robust"].verdict == "reproduced"
    assert ch.growth_verdict(cs["ch04.kernel_growth"]).startswith("Claim `ch04.kernel_growth`: the standard kernel grows")
    cs = _claims(1.2, 1.0, 20, 5, 0.80, 0.46)  # the 1.16 of the issue: far from "orders of magnitude"
    assert cs["ch04.kernel_growth"].verdict == "contradicted"
    assert "NOT grow to ten times" in ch.growth_verdict(cs["ch04.kernel_growth"])
    assert cs["ch04.top_concentration"].measured < 0
    assert cs["ch04.pgd_at_more_robust"].verdict == "contradicted"
    meas = dict(top_std=0.995, top_adv=0.999, top_init=0.992)
    assert "saturated" in ch.conc_verdict(cs["ch04.top_concentration"], meas, 100, 20)
    assert "not resolved" in ch.conc_verdict(cs["ch04.top_concentration"], meas, 100, 20)
    cs = _claims(1.0, 1.0, 10, 10, 0.5, 0.5)
    assert cs["ch04.pgd_at_more_robust"].verdict == "inconclusive"  # identical per-point results
    assert cs["ch04.kernel_growth"].verdict == "contradicted" and cs["ch04.kernel_growth"].high < 10
