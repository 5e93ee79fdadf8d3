"""Tests for ntknb.chapters.ch01_transfer_attacks (chapter 01): schema and the values it glues."""

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from ntknb.book.params import load_notebook, notebook_parameters
from ntknb.chapters import ch01_transfer_attacks as ch

NB = Path(__file__).resolve().parents[1] / "notebooks" / "01_transfer_attacks.py"


def params(**changes):
    defaults = {n: p.default for n, p in notebook_parameters(load_notebook(NB)).items()}
    return ch.Params.from_values({**defaults, **changes})


def test_params_rules():
    p = params()
    assert p.cifar_eps_255 == [2.0, 4.0, 8.0] and p.headline_eps_255 == 8.0
    assert p.seeds == list(range(p.seed, p.seed + p.n_seeds)) and p.n_seeds >= 3
    assert p.n_seeds * p.sweep_n_test >= 1000 and p.n_seeds * p.mnist_n_test >= 1000 and max(p.sweep_widths) >= 8192
    # the MNIST claim's radius lies strictly between the stored run's 0.1 (white-box 0.57) and 0.3 (white-box 0)
    assert 0.1 < p.mnist_claim_eps < 0.3 and p.mnist_radii == sorted({*p.mnist_eps, p.mnist_claim_eps})
    for change, name in [(dict(cifar_pgd_eps_255=[3]), "cifar_pgd_eps_255"), (dict(headline_eps_255=3), "headline_eps_255"),
                         (dict(mnist_pgd_eps=[0.25]), "mnist_pgd_eps"), (dict(sweep_steps=p.cifar_train_steps + 1), "sweep_steps"),
                         (dict(cross_kernels=["nope"]), r"cross_kernels\[0\]"), (dict(progress=1), "progress"),
                         (dict(n_seeds=0), "n_seeds"), (dict(sweep_checkpoints=[50, 10]), "sweep_checkpoints"),
                         (dict(sweep_widths=[64, 64]), "sweep_widths"), (dict(mnist_n_test=334), "mnist_n_test"),
                         (dict(sweep_n_test=333), "sweep_n_test"), (dict(mnist_claim_eps=1.5), "mnist_claim_eps")]:
        with pytest.raises(ValueError, match=f"'{name}'"):
            params(**change)


def _runs(p, transfer_extra, n=400, white=100, k=3, kernel=50, spread=0):
    """Fake replicas of ch.seed_sweep: per seed ``n`` points, ``white`` survive every white-box
    attack (``white + spread * seed``), and the kernel attacks leave ``transfer_extra[width]`` more."""
    runs = []
    for s in range(k):
        correct, cos, w = {}, {}, white + spread * s
        for step in p.sweep_checkpoints:
            for attack in ch.SWEEP_ATTACKS:
                correct["kernel", attack, 0, step] = np.arange(n) < kernel
            for j, width in enumerate(p.sweep_widths):
                cos[width, step] = 0.5 + 0.1 * j
                correct["clean", "", width, step] = np.arange(n) < 300
                for attack in ch.SWEEP_ATTACKS:
                    correct["white", attack, width, step] = np.arange(n) < w
                    correct["transfer", attack, width, step] = np.arange(n) < w + transfer_extra[width]
        runs.append(ch.SeedSweep(s, 1.5, correct, cos))
    return runs


def test_sweep_values_and_lazy_from_width():
    p = params(sweep_widths=[64, 256, 1024], sweep_checkpoints=[10, 30])
    runs = _runs(p, {64: 80, 256: 4, 1024: 0})
    rows, v = ch.sweep_values(p, runs)
    assert [(r[0], r[1]) for r in rows] == [(64, 10), (64, 30), (256, 10), (256, 30), (1024, 10), (1024, 30)]
    assert len(rows[0]) == len(ch.SWEEP_COLUMNS) and np.isnan(rows[0][9]) and rows[1][9] == 0.25
    assert rows[1][5:9] == [0.25, 0.45, 0.25, 0.45] and rows[1][3] == pytest.approx(0.5)
    assert v["sweep_n_points"] == 1200 and v["sweep_t"] == 45.0 and v["std_kernel_self"] == 0.125
    assert v["gap_std_widest"] == 0.0 and v["gap_std_narrowest"] == pytest.approx(0.2)
    assert v["lazy_from_width_standard"] == v["lazy_from_width_pgd"] == v["lazy_from_width_fgsm"] == "width 256"
    assert v["gap_fgsm_widest"] == 0.0 and v["sweep_cos_widest_min"] == pytest.approx(0.7)
    assert ch.lazy_from_width(p, runs, "pgd") == 256
    assert ch.lazy_from_width(p, _runs(p, {64: 0, 256: 80, 1024: 0}), "pgd") == 1024  # every wider width counts
    assert ch.lazy_from_width(p, _runs(p, {64: 0, 256: 0, 1024: 80}), "standard") is None


def test_mnist_values_measure_the_claim_radius_too():
    p = params(mnist_eps=[0.1, 0.3], mnist_pgd_eps=[0.1], mnist_claim_eps=0.2)
    final = lambda e, attack: {"robust_acc_net_by_net": 1 - e - (attack == "pgd") * 0.1,  # noqa: E731
                               "robust_acc_net_by_kernel": 1 - e / 2, "robust_acc_kernel_by_kernel": 0.5}
    curves = SimpleNamespace(times=[1.0, 9.0], cos_sim_mean=[0.1, 0.6], clean_acc_net=[0.5, 0.9],
                             clean_acc_kernel=[0.5, 0.88], agreement=[1.0, 0.95], final=final)
    v, rows = ch.mnist_values(p, curves)
    assert [(r[0], r[1]) for r in rows] == [("0.1", "FGSM"), ("0.1", "PGD"), ("0.2", "FGSM"), ("0.3", "FGSM")]
    assert v["mnist_claim_eps_g"] == 0.2 and v["mnist_white_box_claim"] == pytest.approx(0.8)
    assert v["mnist_ntk_transfer_claim"] == pytest.approx(0.9) and v["mnist_white_box_eps0p2"] == pytest.approx(0.8)


def test_cross_values():
    p = params(cross_kernels=["fc1", "fc2"])
    cross = {"clean": {"a": 0.9, "b": 0.8}, "white_box": {"a": 0.1, "b": 0.2},
             "transfer": {"a": {"fc1": 0.3, "fc2": 0.4}, "b": {"fc1": 0.5, "fc2": 0.6}},
             "cos_sim": {"a": {"fc1": 0.7, "fc2": 0.6}, "b": {"fc1": 0.5, "fc2": 0.9}},
             "kernel_cos": np.array([0.5, np.nan, 1.0, 0.9, 0.8, 0.7, 0.6, 0.6, 0.6, 0.6, 0.6])}
    rows, v = ch.cross_values(p, cross)
    assert rows[1] == ["b", 0.8, 0.2, 0.5, 0.6, 0.5, 0.9]
    assert v["kernel_cos_fc1_fc2"] == pytest.approx(0.69) and v["kernel_cos_fc1_fc2_q10"] == pytest.approx(0.59)
    assert (v["cross_fc1_by_fc2"], v["cross_fc2_by_fc1"], v["cross_fc2_clean"]) == (0.4, 0.5, 0.8)
    assert ch.cross_columns(p)[3:] == ["fc1 NTK-attack", "fc2 NTK-attack", "cos sim vs fc1", "cos sim vs fc2"]


def _mnist(white_box):
    """Fake first-seed MNIST curves: the white-box FGSM leaves ``white_box`` at every radius."""
    return SimpleNamespace(final=lambda eps, attack: {"robust_acc_net_by_net": white_box})


def test_the_register_declares_every_claim_with_its_preconditions():
    specs = ch.claim_specs()
    assert list(specs) == ["ch01.ntk_transfer_cifar", "ch01.ntk_transfer_mnist", "ch01.as_effective_as_white_box",
                           "ch01.as_effective_as_white_box_pgd", "ch01.as_effective_as_white_box_fgsm",
                           "ch01.gradient_alignment"]
    assert all(s.source == "tsilivis2022ntk" and s.justification for s in specs.values())
    pre = {cid: [(q["name"], q["direction"], q["threshold"]) for q in s.preconditions] for cid, s in specs.items()}
    assert pre["ch01.ntk_transfer_cifar"] == [("late_in_training", "greater", 1000.0)]
    assert pre["ch01.ntk_transfer_mnist"] == [("radius_discriminates", "greater", 0.0)]
    assert {(specs[c].direction, specs[c].threshold) for c in ch.GAP_CLAIMS.values()} == {("less", 0.05)}
    assert (specs["ch01.gradient_alignment"].direction, specs["ch01.gradient_alignment"].threshold) == ("greater", 0.8)


def test_claims_are_well_formed_and_flip_at_the_threshold():
    from ntknb.claims import Claim

    specs = ch.claim_specs()
    late = params(sweep_widths=[64, 1024], sweep_checkpoints=[10, 700])  # t = 700 x 1.5 = 1050
    cs = {c.id: c for c in ch.claims(late, _runs(late, {64: 80, 1024: 0}, white=4), [0.30, 0.28, 0.33], _mnist(0.2))}
    assert list(cs) == list(specs)
    for c in cs.values():
        assert Claim.from_json(c.to_json()) == c and c.n_seeds == 3 and c.source == "tsilivis2022ntk"
        assert (c.direction, c.threshold, c.claim) == (specs[c.id].direction, specs[c.id].threshold, specs[c.id].claim)
    assert cs["ch01.ntk_transfer_cifar"].n_test == 1200 and cs["ch01.ntk_transfer_mnist"].n_test == 3 * late.mnist_n_test
    assert cs["ch01.ntk_transfer_cifar"].measured == pytest.approx(0.01)  # widest width, last checkpoint
    assert cs["ch01.ntk_transfer_cifar"].preconditions[0].measured == pytest.approx(1050.0)
    assert cs["ch01.ntk_transfer_cifar"].verdict == "reproduced"
    assert cs["ch01.ntk_transfer_mnist"].verdict == "contradicted"  # 0.30 +- 0.06 over 3 seeds
    assert [c.verdict for c in ch.claims(late, _runs(late, {64: 0, 1024: 0}, white=36, spread=2), [0.0, 0.2, 0.1],
                                         _mnist(0.2))][:2] == ["inconclusive", "inconclusive"]
    # early in training (t = 30 x 1.5 = 45) the CIFAR claim is not testable, whatever its interval;
    # a radius where the white-box FGSM already leaves 0 makes the MNIST claim not testable
    p = params(sweep_widths=[64, 1024], sweep_checkpoints=[10, 30])
    early = {c.id: c for c in ch.claims(p, _runs(p, {64: 80, 1024: 0}, white=4), [0.0] * 3, _mnist(0.0))}
    assert early["ch01.ntk_transfer_cifar"].verdict == "not_testable"
    assert early["ch01.ntk_transfer_cifar"].failed_preconditions[0].measured == pytest.approx(45.0)
    assert early["ch01.ntk_transfer_mnist"].verdict == "not_testable"
    assert early["ch01.ntk_transfer_mnist"].failed_preconditions[0].name == "radius_discriminates"
    for extra, verdict in ((0, "reproduced"), (80, "contradicted"), (20, "inconclusive")):
        cs = {c.id: c for c in ch.claims(p, _runs(p, {64: 0, 1024: extra}), [0.0] * 3, _mnist(0.1))}
        for cid in ch.GAP_CLAIMS.values():
            assert cs[cid].verdict == verdict and cs[cid].measured == pytest.approx(extra / 400)


def test_gradient_alignment_is_the_smallest_mean_cosine_over_the_checkpoints():
    p = params(sweep_widths=[64, 1024], sweep_checkpoints=[10, 30])

    def aligned(first, last, step=0.01):
        runs = _runs(p, {64: 0, 1024: 0})
        for s, r in enumerate(runs):
            r.cos[1024, 10], r.cos[1024, 30] = first + step * s, last + step * s
        return {c.id: c for c in ch.claims(p, runs, [0.0] * 3, _mnist(0.1))}["ch01.gradient_alignment"]

    c = aligned(0.95, 0.9)
    assert c.measured == pytest.approx(0.91) and c.verdict == "reproduced" and -1 < c.low < c.high < 1
    assert aligned(0.5, 0.95).verdict == "contradicted"  # one checkpoint far below 0.8 is enough
    assert aligned(0.8, 0.9, step=0.05).verdict == "inconclusive"


def test_kernel_dynamics_picks_discrete_or_flow_predictor():
    from ntknb import kernel_machines
    from ntknb.architectures import get_architecture

    rng = np.random.default_rng(0)
    x = rng.uniform(size=(6, 2, 2, 1)).astype(np.float32)
    y = np.where(rng.normal(size=(6, 1)) > 0, 1.0, -1.0)
    k = kernel_machines.KernelModel.build(get_architecture("fc1", width=8), x, y)
    lr = 0.9 * kernel_machines.max_stable_learning_rate(k.k_train_train)
    assert ch.kernel_dynamics(params(kernel_dynamics="discrete"), k, lr).learning_rate == pytest.approx(lr)
    assert ch.kernel_dynamics(params(kernel_dynamics="flow"), k, lr).learning_rate is None
    with pytest.raises(ValueError, match="kernel_dynamics"):
        params(kernel_dynamics="euler")


def test_time_text_prints_whole_numbers_not_exponents():
    from ntknb.chapters import ch01_transfer_attacks as ch

    assert [ch.time_text(t) for t in (1.27, 16.5, 189.3, 1155.2)] == ["1.27", "16.5", "189", "1155"]
