"""Tests for ntknb.chapters.ch01_transfer_attacks (chapter 01): schema and the values it glues."""

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from ntknb import runner
from ntknb.chapters import ch01_transfer_attacks as ch

NB = Path(__file__).resolve().parents[1] / "notebooks" / "01_transfer_attacks.py"


def params(**changes):
    defaults = {n: p.default for n, p in runner.notebook_parameters(runner.load_notebook(NB)).items()}
    return ch.Params.from_values({**defaults, **changes})


def test_params_rules():
    p = params()
    assert p.cifar_eps_255 == [2.0, 4.0, 8.0] and p.headline_eps_255 == 8.0
    for change, name in [(dict(cifar_pgd_eps_255=[3]), "cifar_pgd_eps_255"), (dict(headline_eps_255=3), "headline_eps_255"),
                         (dict(mnist_pgd_eps=[0.2]), "mnist_pgd_eps"), (dict(sweep_steps=p.cifar_train_steps + 1), "sweep_steps"),
                         (dict(cross_kernels=["nope"]), r"cross_kernels\[0\]"), (dict(progress=1), "progress")]:
        with pytest.raises(ValueError, match=f"'{name}'"):
            params(**change)


def test_sweep_and_cross_values():
    p = params(headline_eps_255=8)
    finals = [dict(relative_weight_change=0.1, output_rel_distance=0.2, cos_sim_mean=c, clean_acc_net=0.8,
                   robust_acc_net_by_net=wb, robust_acc_net_by_kernel=tr, robust_acc_kernel_by_kernel=0.01)
              for c, wb, tr in ((0.5, 0.1, 0.5), (0.9, 0.2, 0.3))]
    sweep = [SimpleNamespace(info={"width": w}, times=np.array([1.0, 3.0]), final=lambda eps, kind, f=f: f)
             for w, f in zip((64, 4096), finals)]
    rows, v = ch.sweep_values(p, sweep)
    assert [r[0] for r in rows] == [64, 4096] and v["sweep_t"] == 3.0
    assert v["sweep_gap_narrowest"] == pytest.approx(0.4) and v["sweep_gap_widest"] == pytest.approx(0.1)
    assert (v["sweep_ntk_min"], v["sweep_ntk_max"], v["sweep_cos_widest"]) == (0.3, 0.5, 0.9)
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


def _curves(acc_by_eps):
    from types import SimpleNamespace

    return SimpleNamespace(final=lambda eps, attack="fgsm": {"robust_acc_net_by_kernel": acc_by_eps(eps)})


def test_claims_are_well_formed_and_flip_at_the_threshold():
    from types import SimpleNamespace

    from ntknb.claims import Claim

    p = params()
    seen = []
    run = SimpleNamespace(curves=_curves(lambda e: seen.append(("cifar", e)) or 0.02))
    cs = {c.id: c for c in ch.claims(p, run, _curves(lambda e: seen.append(("mnist", e)) or 0.30))}
    assert ("cifar", p.headline_eps_255 / 255) in seen and ("mnist", max(p.mnist_eps)) in seen
    assert list(cs) == list(ch.CLAIM_THRESHOLDS)[:2]  # the third needs the standard evaluation
    for c in cs.values():
        assert Claim.from_json(c.to_json()) == c and c.n_seeds == 1 and c.source == "tsilivis2022ntk"
        assert (c.direction, c.threshold) == ch.CLAIM_THRESHOLDS[c.id]
    assert cs["ch01.ntk_transfer_cifar"].n_test == p.cifar_n_test and cs["ch01.ntk_transfer_mnist"].n_test == p.mnist_n_test
    assert cs["ch01.ntk_transfer_cifar"].verdict == "reproduced"  # 0.02 on 200 points: Wilson high < 0.1
    assert cs["ch01.ntk_transfer_mnist"].verdict == "contradicted"  # 0.30: Wilson low > 0.1
    near = ch.claims(p, SimpleNamespace(curves=_curves(lambda e: 0.09)), _curves(lambda e: 0.11))
    assert [c.verdict for c in near] == ["inconclusive", "inconclusive"]


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


def test_as_effective_as_white_box_claim_flips_at_the_threshold():
    from ntknb.claims import Claim

    p = params()
    run = SimpleNamespace(curves=_curves(lambda eps: 0.05))
    mnist = _curves(lambda eps: 0.0)
    n = 400
    white = np.zeros(n, bool)
    white[:100] = True  # 0.25
    for extra, verdict in ((0, "reproduced"), (80, "contradicted"), (20, "inconclusive")):
        transfer = white.copy()
        transfer[100:100 + extra] = True  # transfer leaves `extra` more points: +0, +0.2, +0.05
        std = {"transfer": transfer, "white_box": white, "eval_iters": 20}
        c = {c.id: c for c in ch.claims(p, run, mnist, std)}["ch01.as_effective_as_white_box"]
        assert c.verdict == verdict and c.measured == pytest.approx(extra / n) and c.n_test == n
        assert Claim.from_json(c.to_json()) == c
