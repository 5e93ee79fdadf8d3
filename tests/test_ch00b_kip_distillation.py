"""Tests for ntknb.chapters.ch00b_kip_distillation (chapter 00b): the parameter rules, the
standardisation, the finite network against the kernel it should approach, the claims built
from synthetic results with known verdicts, and a small end-to-end run (slow)."""

from pathlib import Path

import numpy as np
import pytest

from ntknb import stats
from ntknb.book.params import load_notebook, notebook_parameters
from ntknb.chapters import ch00b_kip_distillation as ch
from ntknb.claims import VERDICTS

NB = Path(__file__).resolve().parents[1] / "notebooks" / "00b_kip_distillation.py"


def params(**changes):
    defaults = {n: p.default for n, p in notebook_parameters(load_notebook(NB)).items()}
    return ch.Params.from_values({**defaults, **changes})


def test_params_rules():
    p = params()
    assert p.seeds == list(range(p.seed, p.seed + p.n_seeds)) and p.eps("mnist") == p.eps_mnist
    for change, name in [(dict(datasets=["mnist", "mnist"]), "datasets"), (dict(datasets=["svhn"]), "datasets"),
                         (dict(support_sizes=[15]), "support_sizes"), (dict(support_sizes=[100, 10]), "support_sizes"),
                         (dict(advkip_datasets=["cifar10"], datasets=["mnist"]), "advkip_datasets"),
                         (dict(advkip_support=50), "advkip_support"), (dict(target_batch=20000), "target_batch"),
                         (dict(n_pool=1005), "n_pool"), (dict(n_robust=2000), "n_robust"),
                         (dict(eps_mnist=0.0), "eps_mnist"), (dict(kernel="fc9"), "kernel"),
                         (dict(kip_dtype="float16"), "kip_dtype"), (dict(n_curve=500), "n_curve"),
                         (dict(seed=2**32), "seed"), (dict(support_sizes=[10, 20000]), "support_sizes")]:
        with pytest.raises(ValueError, match=name):
            params(**change)
    assert params(advkip_datasets=[]).advkip_datasets == []


def test_standardize_roundtrip_and_hashable():
    rng = np.random.default_rng(0)
    x = rng.random((20, 4, 4, 3)).astype(np.float32)
    std = ch.Standardize.fit(x)
    z = std.numpy(x)
    assert np.allclose(z.mean(axis=(0, 1, 2)), 0, atol=1e-5) and np.allclose(z.std(axis=(0, 1, 2)), 1, atol=1e-4)
    assert np.allclose(std.invert(z), x, atol=1e-6)
    import jax.numpy as jnp

    assert np.allclose(np.asarray(std(jnp.asarray(x))), z, atol=1e-6)
    assert std == ch.Standardize.fit(x) and hash(std) == hash(ch.Standardize.fit(x))


def test_curve_steps_and_natural_subset():
    steps = ch.curve_steps(params(kip_steps=100, n_curve=6))
    assert steps[0] == 0 and steps[-1] == 100 and len(steps) <= 6 and steps == sorted(set(steps))
    assert ch.curve_steps(params(kip_steps=3, n_curve=4)) == [0, 1, 2, 3]
    assert ch.curve_steps(params(kip_steps=50, n_curve=2)) == [0, 50]
    labels = np.tile(np.arange(10), 7)[np.random.default_rng(1).permutation(70)]
    idx = ch._natural_subset(labels, 30)
    assert len(idx) == 30 and np.array_equal(np.bincount(labels[idx]), np.full(10, 3))


def test_train_network_fits_and_approaches_the_kernel_machine():
    """A wide centred network trained by GD on a few points fits them and predicts close to
    the NTK kernel machine (the lazy regime the chapter relies on)."""
    from ntknb import kip

    p = params(net_width=4096, net_steps=2000)
    rng = np.random.default_rng(2)
    xs = rng.standard_normal((20, 4, 4, 1)).astype(np.float32)
    ys = (np.eye(10)[np.arange(20) % 10] - 0.1).astype(np.float32)
    predict, loss = ch.train_network(p, xs, ys, seed=0)
    assert loss < 1e-3
    xt = rng.standard_normal((30, 4, 4, 1)).astype(np.float32)
    f_net = np.asarray(predict(xt))
    f_ker = kip.predict(ch._network(4096).kernel_fn, xs, ys, xt, reg=0.0)
    assert np.corrcoef(f_net.ravel(), f_ker.ravel())[0, 1] > 0.9


def _fake_kip_results(p, gain):
    rng = np.random.default_rng(3)
    out = {}
    for name in p.datasets:
        out[name] = {}
        for size in p.support_sizes:
            nat = 0.3 + 0.01 * rng.standard_normal(p.n_seeds)
            acc = np.stack([nat, nat + gain / 2, nat + gain + 0.005 * rng.standard_normal(p.n_seeds)], axis=1)
            out[name][size] = {
                "acc": acc, "steps": [0, 10, p.kip_steps],
                "correct_nat": [rng.random(p.n_test) < 0.3 for _ in range(p.n_seeds)],
                "correct_kip": [rng.random(p.n_test) < 0.3 + gain for _ in range(p.n_seeds)],
                "cond_nat": np.full(p.n_seeds, 100.0), "cond_kip": np.full(p.n_seeds, 200.0),
                "f32_agree": np.ones(p.n_seeds), "seconds": np.ones(p.n_seeds),
                "x_nat": [np.zeros((size, 4, 4, 1))] * p.n_seeds, "x_kip": [np.zeros((size, 4, 4, 1))] * p.n_seeds,
                "y": [np.eye(10)[np.arange(size) % 10] - 0.1] * p.n_seeds, "losses": np.zeros((p.n_seeds, 3)),
            }
    return out


def _fake_adv_results(p, robust_gain):
    rng = np.random.default_rng(4)
    r = {}
    for kind in ("kernel", "net"):
        for m, base in (("natural", 0.3), ("kip", 0.4), ("advkip", 0.4 + robust_gain)):
            r[f"{kind}_{m}_robust"] = base + 0.01 * rng.standard_normal(p.n_seeds)
            r[f"{kind}_{m}_clean"] = {"natural": 0.75, "kip": 0.9, "advkip": 0.88}[m] + 0.01 * rng.standard_normal(
                p.n_seeds)
    r["eps"] = 0.1
    return {"mnist": r}


def test_claims_are_well_formed_and_verdicts_follow_the_data():
    p = params(n_seeds=4)
    kr = _fake_kip_results(p, gain=0.16)
    cl = ch.build_claims(p, kr, _fake_adv_results(p, robust_gain=0.2))
    assert len({c.id for c in cl}) == len(cl) == 4 + 1 + 5
    assert all(c.verdict in VERDICTS for c in cl)
    by = {c.id: c for c in cl}
    assert by["ch00b.kip_gain_cifar10_100"].verdict == "reproduced"
    assert by["ch00b.kip_anchor_gain"].verdict == "reproduced"  # 0.16 > 0.112
    assert by["ch00b.advkip_vs_kip_robust_mnist"].verdict == "reproduced"
    assert by["ch00b.advkip_vs_natural_clean_mnist"].verdict == "reproduced"
    # a KIP set no better than natural, an Adv-KIP set less robust than KIP: contradicted
    cl2 = {c.id: c for c in ch.build_claims(p, _fake_kip_results(p, gain=-0.1),
                                            _fake_adv_results(p, robust_gain=-0.2))}
    assert cl2["ch00b.kip_gain_mnist_10"].verdict == "contradicted"
    assert cl2["ch00b.advkip_vs_kip_robust_mnist"].verdict == "contradicted"
    # no CIFAR-10 / no Adversarial KIP: no anchor claim, no Adv-KIP claims
    p_m = params(n_seeds=4, datasets=["mnist"], advkip_datasets=[])
    ids = [c.id for c in ch.build_claims(p_m, _fake_kip_results(p_m, 0.1), None)]
    assert ids == ["ch00b.kip_gain_mnist_10", "ch00b.kip_gain_mnist_100"]


def test_values_tables_and_summary():
    p = params(n_seeds=3)
    kr = _fake_kip_results(p, gain=0.16)
    kv = ch.kip_values(p, kr)
    assert kv["kip_headline_dataset"] == "cifar10" and kv["kip_headline_size"] == 100
    assert kv["kip_acc_distilled"] == pytest.approx(kr["cifar10"][100]["acc"][:, -1].mean())
    assert kv["kip_gain_low"] < kv["kip_gain"] < kv["kip_gain_high"]
    assert "<table>" in ch.kip_table(p, kr).data
    ar = _fake_adv_results(p, 0.2)
    from ntknb.masking import MaskingReport

    ar["mnist"]["masking"] = MaskingReport(
        eps=0.1, n=10, eps_grid=(0.0, 0.1), accuracy_vs_eps=(0.9, 0.6), falls_with_eps=True, large_eps=1.0,
        accuracy_large_eps=0.0, reaches_zero=True, single_step_accuracy=0.7, iterative_accuracy=0.6,
        iterative_stronger=True, transfer_accuracy=0.8, whitebox_stronger=True, zero_grad_fraction=0.0,
        zero_grad_ok=True, tol=0.01, zero_tol=0.05, max_zero_grad=0.01)
    ar["mnist"].update(seconds=np.ones(3), net_loss=np.full(9, 1e-4), x_advkip=[np.zeros((100, 4, 4, 1))] * 3)
    av = ch.advkip_values(p, ar)
    assert av["advkip_robust_acc"] == pytest.approx(np.mean(ar["mnist"]["kernel_advkip_robust"]))
    assert av["kip_robust_acc"] == pytest.approx(np.mean(ar["mnist"]["kernel_kip_robust"]))
    assert av["mnist_adv_vs_kip"] == av["adv_vs_kip"] and av["masking_passed"] == "passed"
    assert ch.advkip_values(p, {}) == {} and ch.plot_robustness(p, {}) is None
    text = ch.summary_text({**kv, **av})
    assert "KIP (cifar10, |S| = 100)" in text and "Adv-KIP" in text
    assert "Adv-KIP" not in ch.summary_text(kv)
    iv = stats.mean_interval(ar["mnist"]["kernel_advkip_robust"] - ar["mnist"]["kernel_kip_robust"])
    assert av["adv_vs_kip_low"] == pytest.approx(iv.low)


@pytest.mark.slow
def test_small_end_to_end_run():
    """Both studies on tiny sizes: shapes, ranges, and that KIP lowers its own loss."""
    p = params(n_seeds=2, support_sizes=[10, 20], n_pool=400, n_test=100, kip_steps=8, target_batch=100, n_curve=3,
               advkip_support=20, advkip_steps=3, advkip_target_batch=50, n_robust=20, attack_iters=3, net_steps=10,
               net_width=64)
    d = ch.load_datasets(p)
    kr = ch.kip_study(p, d)
    r = kr["mnist"][20]
    assert r["acc"].shape == (2, 3) and np.all((0 <= r["acc"]) & (r["acc"] <= 1))
    assert r["x_kip"][0].shape == (20, 28, 28, 1) and r["losses"].shape == (2, 8)
    assert np.all(r["f32_agree"] > 0.9) and np.all(r["cond_kip"] >= 1)
    ar = ch.advkip_study(p, d, kr)
    a = ar["mnist"]
    for kind in ("kernel", "net"):
        for m in ("natural", "kip", "advkip"):
            assert np.all(a[f"{kind}_{m}_robust"] <= a[f"{kind}_{m}_clean"] + 1e-12)
    assert a["masking"] is not None and len(a["x_advkip"]) == 2
    assert len(ch.build_claims(p, kr, ar)) == 4 + 5  # no anchor claim without |S| = 100
