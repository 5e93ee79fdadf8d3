"""Tests for ntknb.chapters.ch04_kernel_dynamics (chapter 04): schema, configs, the phases (plateau,
kernel-learning rate, lazy epoch before the decay), the claims built from the register (preconditions,
intervals inside their ranges, verdicts), the linearisation after k epochs on a tiny network, and the
records the page shows."""

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from ntknb import adversaries, metrics, stats
from ntknb.book.params import load_notebook, notebook_parameters
from ntknb.chapters import ch04_kernel_dynamics as ch
from ntknb.ntk_dynamics import KernelTrajectory

NB = Path(__file__).resolve().parents[1] / "notebooks" / "04_at_kernel_dynamics.py"


def params(**changes):
    defaults = {n: p.default for n, p in notebook_parameters(load_notebook(NB)).items()}
    return ch.Params.from_values({**defaults, **changes})


def test_params_rules():
    p = params()
    assert p.seeds == [p.seed + i for i in range(p.n_seeds)] and p.n_seeds >= 5 and p.n_test >= 500
    assert p.decay_epoch == p.lr_decay_epochs[0] and p.plateau_epochs == list(range(p.decay_epoch // 2 + 1,
                                                                                    p.decay_epoch + 1))
    assert params(tk_probe_per_class=64).logit_top_p == 50  # T&K's 20 of 2560, scaled to 640 x 10
    assert params(tk_probe_per_class=26).logit_top_p == 20 and params(tk_probe_per_class=1).logit_top_p == 1
    assert p.n_probe == 10 * p.probe_per_class and p.n_tk_probe == 10 * p.tk_probe_per_class
    for change, name in [(dict(modes=["standard", "fgsm"]), "modes"), (dict(modes=["standard", "pgdd"]), r"modes\[1\]"),
                         (dict(top_p=10 * p.probe_per_class + 1), "top_p"), (dict(lr_decay_epochs=[]), "lr_decay_epochs"),
                         (dict(eps_mnist=0.0), "eps_mnist"), (dict(batch_size=p.n_train + 1), "batch_size"),
                         (dict(n_monitor=p.n_test + 1), "n_monitor"), (dict(n_seeds=0), "n_seeds"),
                         (dict(cheap_at_clean_epochs=[]), "cheap_at_clean_epochs"),
                         (dict(linearize_epoch=p.epochs), "linearize_epoch"),
                         (dict(linearize_epoch=1, pgd_warm_start=1), "linearize_epoch"),
                         (dict(tk_probe_per_class=0), "tk_probe_per_class")]:
        with pytest.raises(ValueError, match=f"'{name}'"):
            params(**change)


def test_configs():
    p = params(augment="crop")
    c = ch.base_config(p, "pgd", 7)
    assert c.eps == p.eps_mnist and c.augment == "none" and c.seed == 7 and c.eval_batch_size == p.n_monitor
    assert c.training_adversary() == adversaries.PGD(p.eps_mnist, p.attack_steps)
    assert ch.base_config(params(dataset="cifar10", augment="crop"), "pgd", 0).augment == "crop"
    assert params(dataset="cifar10").eps == params().eps_cifar
    lin = ch.loo_config(p, "standard", 3)
    assert lin.epochs == p.loo_epochs and lin.learning_rate == p.loo_learning_rate
    assert lin.weight_decay == 0.0 and lin.lr_decay_epochs == () and lin.mode == "standard"


def test_warm_start_and_settings_records(tmp_path):
    p = params(pgd_warm_start=2)
    assert ch.base_config(p, "pgd", 0).clean_epochs == 2 and ch.base_config(p, "standard", 0).clean_epochs == 0
    assert ch.loo_config(p, "pgd", 0).clean_epochs == 0
    with pytest.raises(ValueError, match="'pgd_warm_start'"):
        params(pgd_warm_start=p.epochs)
    f = tmp_path / "s.jsonl"
    f.write_text('{"run": "a", "setting": {"lr": 0.05, "bs": 50}, "pgd_clean_acc": "0.1", "pgd_robust_acc": "0.1", '
                 '"note": "stuck"}\n\n')
    assert ch.settings_rows(f) == [["a", "lr 0.05, bs 50", "0.1", "0.1", "stuck"]]
    assert len(ch.settings_rows()) >= 3  # the chapter's own records


# ------------------------------------------------------------------ synthetic replicas


def _kernels(steps, scale=None):
    """2 x 2 PSD kernels K_t = s_t diag(cos θ_t, sin θ_t), θ_0 = 0.1, θ_t = θ_{t-1} + steps[t-1]: consecutive
    kernel distance exactly 1 - cos(steps[t-1]) (the two diagonal matrices are Frobenius-orthonormal), norm s_t."""
    theta = 0.1 + np.concatenate([[0.0], np.cumsum(steps)])
    assert theta.max() < np.pi / 2
    s = np.ones_like(theta) if scale is None else np.asarray(scale, float)
    return np.stack([si * np.diag([np.cos(t), np.sin(t)]) for si, t in zip(s, theta)])


def _steps_for(kd):
    """Angle steps that give the consecutive distances ``kd``."""
    return np.arccos(1 - np.asarray(kd, float))


def _traj(K, conc=None):
    T = len(K)
    m = {"clean.frob": np.array([metrics.frobenius_norm(k) for k in K]),
         "clean.ker": np.array([metrics.effective_rank(k) for k in K]),
         "clean.top_conc": np.array([metrics.concentration(k, 1) for k in K]),
         "clean.ks_cl": np.ones(T)}
    if conc is not None:
        m["clean.top_conc_logit"] = np.full(T, conc)
    return KernelTrajectory(epochs=np.arange(T), kernels={"clean": K}, metrics=m, labels=np.zeros(2, int), top_p=1)


def _tk(K, epochs, conc=None):
    t = _traj(K, conc)
    return KernelTrajectory(epochs=np.asarray(epochs), kernels=t.kernels, metrics=t.metrics, labels=t.labels, top_p=1)


def _report(rng, clean, robust, n):
    """A standard-evaluation report of ``n`` points: about ``clean`` correct, ``robust`` of them unbroken."""
    ok = rng.random(n) < clean
    rob = ok & (rng.random(n) < robust / clean)
    broken = np.where(~ok, "clean", np.where(rob, "", "apgd-ce"))
    return SimpleNamespace(robust=rob, broken_by=broken, robust_accuracy=float(rob.mean()),
                           clean_accuracy=float(ok.mean()))


#: A replica where every claim's regime is reached: both kernels plateau before the decay (standard
#: later), the second phase after it, the standard kernel 30 x larger, PGD-AT robust.
PHASE_KD = {"standard": [0.005, 0.003, 0.001] + [0.0008] * 7 + [0.00015] * 10 + [0.0004] * 5,
            "pgd": [0.005, 0.002] + [0.0002] * 18 + [0.0006] * 5}
ACC = dict(standard=(0.97, 0.30), early=(0.90, 0.50), pgd=(0.93, 0.75), linearised=(0.93, 0.75),
           loo_clean_on_std=(0.90, 0.20), loo_clean_on_adv=(0.90, 0.55), loo_at_on_std=(0.88, 0.60))


def _p():
    return params(epochs=25, lr_decay_epochs=[20], cheap_at_clean_epochs=[10], linearize_epoch=5, n_test=500,
                  n_seeds=5, probe_per_class=1, top_p=1)


def _seed_run(p, rng, kd=None, acc=None, conc=(0.6, 0.8), growth=30.0):
    kd, acc = dict(PHASE_KD, **(kd or {})), dict(ACC, **(acc or {}))
    k = p.cheap_at_clean_epochs[0]
    runs, tk = {}, {}
    for mode in ("standard", "pgd"):
        steps = _steps_for(np.asarray(kd[mode]) * rng.uniform(0.9, 1.1, len(kd[mode])))
        runs[mode] = (None, _traj(_kernels(steps)))
    k0 = _kernels([0.0])[0]
    tk["init"] = _tk(k0[None], [0])
    tk["standard"] = _tk(growth * rng.uniform(0.9, 1.1) * _kernels([0.3])[-1][None], [p.epochs], conc[0])
    tk["pgd"] = _tk(_kernels([0.6])[-1][None], [p.epochs], conc[1])
    tk[f"cheap{k}"] = _tk(_kernels([0.55])[-1][None], [p.epochs])
    acc[f"cheap{k}"] = acc["pgd"]
    robust = {key: _report(rng, c, r, p.n_test) for key, (c, r) in acc.items()}
    cheap = {k: SimpleNamespace(train_seconds=5.0)}
    runs["pgd"] = (SimpleNamespace(train_seconds=10.0), runs["pgd"][1])
    return ch.SeedRun(0, runs, tk, cheap, None, {}, robust, {"standard": (1.0, 2.0)})


def _runs(n=5, seed=0, **kw):
    p = _p()
    rng = np.random.default_rng(seed)
    return p, [_seed_run(p, rng, **kw) for _ in range(n)]


def _claims(**kw):
    p, runs = _runs(**kw)
    return {c.id: c for c in ch.claims(p, runs)}


def test_phases_measure_the_plateau_before_the_decay():
    p, runs = _runs(n=1)
    ph = ch._phases(runs[0].runs["standard"][1], p.decay_epoch)
    kd = runs[0].runs["standard"][1].consecutive_distances("clean")
    assert ph["kd"] == pytest.approx(kd)
    assert ph["rate"] == pytest.approx(kd[:20].max())
    assert ph["plateau"] == pytest.approx(kd[10:20].mean())  # epochs 11-20, not the early epochs 2-10
    assert ph["post"] == pytest.approx(kd[20:].mean())
    # lazy: the first epoch from which every KD up to the decay is below 0.1 x rate (0.0008 > 0.1 x 0.005 at
    # epochs 4-10, 0.00015 below from epoch 11): epoch 10; the decay's own change (epochs 21-25) is not seen
    assert ph["lazy"] == 10.0
    m = ch.seed_measurements(p, runs[0])
    assert m["lazy_adv"] == 2.0 and m["censored_std"] == 0.0
    adv = ch._phases(runs[0].runs["pgd"][1], 20)
    assert m["plateau_ratio_adv"] == pytest.approx(adv["plateau"] / adv["rate"]) and m["plateau_ratio_adv"] < 0.1
    assert m["decay_ratio_adv"] == pytest.approx(3.0, rel=0.15)
    assert m["rot_at_k"] == pytest.approx(adv["kd"][4] / adv["rate"]) and m["rot_at_k"] < 0.1  # KD in epoch k = 5
    moving = dict(PHASE_KD, standard=[0.001] * 20 + [0.0005] * 5)  # never lazy before the decay: censored at D
    m = ch.seed_measurements(p, _seed_run(p, np.random.default_rng(1), kd=moving))
    assert m["lazy_std"] == 20.0 and m["censored_std"] == 1.0


def test_measurements_against_direct_computation():
    p, runs = _runs(n=1)
    m = ch.seed_measurements(p, runs[0])
    sr = runs[0]
    k0, ks, ka = sr.tk["init"].kernel(0), sr.tk["standard"].final["clean"], sr.tk["pgd"].final["clean"]
    assert m["frob_ratio"] == pytest.approx(np.linalg.norm(ks) / np.linalg.norm(ka))
    assert m["move_adv"] == pytest.approx(metrics.kernel_distance(k0, ka))
    assert m["kd_std_to_at"] == pytest.approx(metrics.kernel_distance(ks, ka))
    assert m["ker_adv"] == sr.runs["pgd"][1].metrics["clean.ker"][p.decay_epoch]
    assert m["rob_pgd"] == sr.robust["pgd"].robust_accuracy and m["conc_adv"] == 0.8


def test_register_loads_and_matches_the_claims_built():
    from ntknb.claims import Claim

    specs = ch.claim_specs()
    cs = _claims()
    assert list(cs) == list(specs) and len(specs) == 14
    for cid, c in cs.items():
        s = specs[cid]
        assert (c.source, c.where, c.claim, c.paper, c.direction, c.threshold) == (
            s.source, s.where, s.claim, s.paper, s.direction, s.threshold)
        assert [pre.name for pre in c.preconditions] == [q["name"] for q in s.preconditions]
        assert Claim.from_json(c.to_json()) == c and c.n_seeds == 5
    assert cs["ch04.kernel_growth"].threshold == 10.0 and cs["ch04.decay_second_phase"].threshold == 2.0
    assert cs["ch04.pgd_at_more_robust"].n_test == 5 * 500 and cs["ch04.kernel_growth"].n_test is None
    assert not hasattr(ch, "CLAIM_THRESHOLDS") and not hasattr(ch, "claim_verdicts")


def test_verdicts_follow_the_data_in_the_registered_regime():
    cs = _claims()
    assert all(not c.failed_preconditions for c in cs.values()), [c.id for c in cs.values() if c.failed_preconditions]
    for cid in ("kernel_growth", "top_concentration", "rotation_distance", "lazy_earlier", "decay_second_phase",
                "pgd_at_more_robust", "at_costs_clean_accuracy", "tradeoff_standard_training", "cheap_at_keeps_robustness",
                "kd_tracks_robustness", "loo_robust_kernel", "linearised_matches_robust", "linearised_matches_clean"):
        assert cs[f"ch04.{cid}"].verdict == "reproduced", cid
    assert cs["ch04.kernel_growth"].measured == pytest.approx(30 * np.linalg.norm(_kernels([0.3])[-1])
                                                               / np.linalg.norm(_kernels([0.6])[-1]), rel=0.1)
    assert cs["ch04.lazy_earlier"].measured == pytest.approx(8.0)  # standard lazy at 10, PGD-AT at 2
    cs = _claims(growth=1.5, acc=dict(pgd=(0.95, 0.2), linearised=(0.80, 0.10)), conc=(0.8, 0.6))
    assert cs["ch04.kernel_growth"].verdict == "contradicted" and cs["ch04.kernel_growth"].high < 10
    assert cs["ch04.top_concentration"].verdict == "contradicted"
    assert cs["ch04.pgd_at_more_robust"].verdict == "contradicted"
    assert cs["ch04.linearised_matches_robust"].verdict == "contradicted"
    c = cs["ch04.at_costs_clean_accuracy"]  # PGD-AT buys no robustness here: the trade-off is not testable
    assert c.verdict == "not_testable" and [q.name for q in c.failed_preconditions] == ["at_gains_robustness"]


def test_preconditions_turn_verdicts_into_not_testable():
    cs = _claims(acc=dict(pgd=(0.12, 0.05)))  # PGD-AT stuck near chance
    for cid in ("kernel_growth", "rotation_distance", "pgd_at_more_robust", "cheap_at_keeps_robustness",
                "loo_robust_kernel", "linearised_matches_robust"):
        c = cs[f"ch04.{cid}"]
        assert c.verdict == "not_testable" and {q.name for q in c.failed_preconditions} & {"both_learn", "pgd_robust"}
    still = dict(PHASE_KD, pgd=[0.001] * 25)  # PGD-AT's kernel never slows down: no plateau, no rotation over
    cs = _claims(kd=still)
    assert cs["ch04.decay_second_phase"].verdict == "not_testable"
    assert [q.name for q in cs["ch04.decay_second_phase"].failed_preconditions] == ["pgd_plateau"]
    assert cs["ch04.lazy_earlier"].failed_preconditions[0].measured == 5.0  # 5 runs not lazy before the decay
    assert cs["ch04.linearised_matches_robust"].verdict == "not_testable"
    assert cs["ch04.kernel_growth"].verdict == "reproduced"  # standard plateau reached, PGD-AT's does not matter
    cs = _claims(conc=(0.995, 0.999))
    assert [q.name for q in cs["ch04.top_concentration"].failed_preconditions] == ["not_saturated"]
    cs = _claims(acc=dict(early=(0.5, 0.05)))  # nothing to trade after epoch 1
    assert [q.name for q in cs["ch04.tradeoff_standard_training"].failed_preconditions] == ["early_robust"]
    cs = _claims(acc=dict(loo_clean_on_adv=(0.12, 0.1)))
    assert [q.name for q in cs["ch04.loo_robust_kernel"].failed_preconditions] == ["linearised_learn"]


RANGES = {"kernel_growth": (0, np.inf), "decay_second_phase": (0, np.inf), "lazy_earlier": (-20, 20),
          "ker_robust_higher": (-9, 9)}  # KER lies in [1, n], n = 10 probe images: differences in [-(n-1), n-1]


@pytest.mark.parametrize("acc", [None, dict(standard=(1.0, 0.0), early=(0.999, 0.001), pgd=(0.999, 0.998),
                                            linearised=(0.999, 0.998))])
def test_intervals_stay_in_their_ranges(acc):
    p, runs = _runs(acc=acc)
    for c in ch.claims(p, runs):
        lo, hi = RANGES.get(c.id.split(".")[1], (-1, 1))
        assert lo <= c.low <= c.measured <= c.high <= hi, (c.id, c.low, c.high)
    for row in ch.accuracy_rows(p, runs):
        for text in row[1:]:
            est, low, high = (float(x) for x in text.replace("[", "").replace("]", "").replace(",", "").split())
            assert 0 <= low <= est <= high <= 1, row
    m = ch.measurements(p, runs)
    assert len(ch.measurement_table(p, m)) == 11
    with pytest.raises(ValueError, match="positive"):
        ch._geometric_interval([1.0, 0.0])


def test_undecided_rows_say_what_decided():
    p, runs = _runs(n=2, acc=dict(pgd=(0.12, 0.05)))
    cs = ch.claims(p, runs)
    rows = {r[0]: r for r in ch.undecided_rows(cs)}
    assert set(rows) == {c.id for c in cs if c.verdict in ("inconclusive", "not_testable")}
    assert "both_learn measured" in rows["ch04.rotation_distance"][2] and "needs > 0.55" in rows["ch04.rotation_distance"][2]
    p, runs = _runs(n=2)  # the regime reached, two seeds: wide intervals
    incon = [r for r in ch.undecided_rows(ch.claims(p, runs)) if r[1] == "inconclusive"]
    assert incon and all("2 seeds" in r[2] and "contains the threshold" in r[2] for r in incon)


def test_page_values_loo_anchor_and_budget(tmp_path):
    p, runs = _runs()
    v = ch.page_values(p, runs, ch.measurements(p, runs))
    assert v["cheap_time_frac"] == 0.5 and v["not_lazy_runs"] == 0.0
    assert v["rob_pgd"] == ch.pooled(runs, "pgd").estimate
    rows = ch.loo_anchor_rows(p, runs)
    assert rows[0][2] == "0.761" and "4/255" in rows[0][1] and rows[1][2] == ch.pooled(runs, "loo_at_on_std").text()
    assert ch.budget_rows(tmp_path / "none.json") == []
    (tmp_path / "b.json").write_text('{"measurements": [{"what": "x", "load": 1.5, "wall_s": 2.0}], '
                                     '"prediction": {"defaults": "d", "total_wall_s": 9, "method": "m"}}')
    assert ch.budget_rows(tmp_path / "b.json") == [["x", 1.5, 2.0, "–", ""], ["predicted, the defaults on an idle "
                                                                              "machine (d)", "–", 9, "–", "m"]]
    assert len(ch.budget_rows()) >= 10  # the chapter's own measurements
    assert [r[0] for r in ch.phase_rows(runs)] == ["standard"] and ch.phase_rows(runs)[0][3] == 5.0


def test_pooled_accuracies_use_every_point():
    p, runs = _runs(n=3)
    c = ch.correct(runs, "pgd", "clean")
    assert len(c) == 3 and all(len(x) == p.n_test for x in c)
    assert ch.pooled(runs, "pgd", "clean").estimate == pytest.approx(np.mean(np.concatenate(c)))
    assert ch.pooled(runs, "pgd").estimate == pytest.approx(np.mean([sr.robust["pgd"].robust for sr in runs]))
    with pytest.raises(ValueError, match="'kind'"):
        ch.correct(runs, "pgd", "adv")


# ------------------------------------------------------------------ the linearisation, on a tiny network


def test_linearised_continuation_starts_at_the_network():
    """After k epochs the linearisation at θ_k is the network at θ_k (outputs equal at the frozen weights), and
    continuing on it trains the remaining epochs of the schedule; at epoch 0 (θ_k = θ_0) likewise."""
    import jax

    from ntknb import models, training

    rng = np.random.default_rng(0)
    x, y = rng.random((20, 8, 8, 1)).astype(np.float32), rng.integers(0, 10, 20)
    model = models.CNN(num_classes=10, width=2, hidden=4)
    apply_fn = training.flax_apply_fn(model)
    params0, state0 = models.init_model(model, (8, 8, 1), seed=0)
    cfg = training.TrainConfig(mode="pgd", epochs=3, batch_size=10, learning_rate=0.05, lr_decay_epochs=(2,),
                               eps=0.1, attack_steps=1, eval_attack_steps=1, eval_batch_size=10, seed=0)
    lin0 = training.linearized_apply_fn(apply_fn, params0, state0)
    np.testing.assert_allclose(lin0(params0, state0, x, False)[0], apply_fn(params0, state0, x, False)[0], rtol=1e-5,
                               atol=1e-6)
    from ntknb import ntk_dynamics as nd

    snaps = nd.ParamsSnapshots([1])
    res = training.fit(apply_fn, params0, state0, x, y, x[:10], y[:10], cfg, callbacks=[snaps], progress=False)
    pk, sk = snaps.snapshots[1]
    out = ch.linearised_continuation(apply_fn, (pk, sk), res.config, 1, x, y, x[:10], y[:10])
    assert [r.epoch for r in out.history] == [1, 2] and out.config.lr_decay_epochs == (1,)
    assert out.config.learning_rate == cfg.learning_rate  # the decay after epoch 2 of 3 is still ahead
    # the model the continuation trained: at the frozen weights θ_k it is the network (not centred: not 0)
    np.testing.assert_allclose(out.apply_fn(pk, sk, x, False)[0], apply_fn(pk, sk, x, False)[0], rtol=1e-5, atol=1e-6)
    moved = jax.tree_util.tree_leaves(jax.tree_util.tree_map(lambda a, b: float(np.abs(a - b).max()), out.params, pk))
    assert max(moved) > 0  # it trained
    rep = ch._evaluate(SimpleNamespace(eps=0.1, eval_iter=2, n_test=10), apply_fn, (pk, sk),
                       SimpleNamespace(x_test=x[:10], labels_test=y[:10]), 0, linearised_at=(pk, sk), centered=False)
    net = ch._evaluate(SimpleNamespace(eps=0.1, eval_iter=2, n_test=10), apply_fn, (pk, sk),
                       SimpleNamespace(x_test=x[:10], labels_test=y[:10]), 0)
    assert rep.clean_accuracy == net.clean_accuracy  # at θ_k the linearised model predicts as the network


# ------------------------------------------------------------------ records


def _gpu_record(mode, seed, clean_last, suite=0.3):
    return {"dataset": "cifar10", "model": "resnet", "width": 32, "n_train": 10000, "n_test": 500, "n_monitor": 500,
            "batch_size": 128, "learning_rate": 0.1, "momentum": 0.9, "weight_decay": 0.0005, "eps": 4 / 255,
            "attack_steps": 3, "eval_attack_steps": 10, "clean_epochs": 0, "epochs": 2, "mode": mode, "seed": seed,
            "stage_sizes": [1, 1, 1, 1], "robust_acc": [0.1, 0.2], "clean_acc": [0.1, clean_last],
            "fgsm_train_acc": [0.0, 0.1, 0.2], "suite_robust_acc": suite, "suite_iter": 20, "device": "NVIDIA H200"}


def test_gpu_records(tmp_path):
    import json

    assert ch.gpu_pgd_records(tmp_path / "missing.jsonl") == []  # no file: no run
    s = ch.gpu_summary([])
    assert s["gpu_pgd_n"] == 0 and s["gpu_pgd_learned"] == 0 and np.isnan(s["gpu_pgd_robust"])
    assert ch.gpu_rows([]) == []
    f = tmp_path / "g.jsonl"
    recs = [_gpu_record("fgsm", 100, 0.5), _gpu_record("pgd", 100, 0.58, 0.32), _gpu_record("pgd", 101, 0.1, 0.1)]
    f.write_text("".join(json.dumps(r) + "\n" for r in recs))
    got = ch.gpu_pgd_records(f)
    assert [r.seed for r in got] == [100, 101]  # the FGSM-AT record is chapter 06's
    assert [ch.gpu_learned(r) for r in got] == [True, False]  # clean 0.1 is chance, not > 0.2
    rows = ch.gpu_rows(got)
    assert all(len(r) == len(ch.GPU_COLUMNS) for r in rows)
    assert rows[0][0] == "NVIDIA H200" and rows[0][3] == 0.58 and rows[0][5] == 0.32 and rows[1][-1] == "no"
    assert "ResNet(1,1,1,1) w32" in rows[0][2] and "4/255" in rows[0][2]
    s = ch.gpu_summary(got)
    assert s["gpu_pgd_n"] == 2 and s["gpu_pgd_learned"] == 1 and s["gpu_devices"] == "NVIDIA H200"
    assert s["gpu_pgd_clean"] == pytest.approx(0.34) and s["gpu_pgd_robust"] == pytest.approx(0.21)
    recorded = ch.gpu_pgd_records()  # the repository's file, if any: PGD-AT records only
    assert all(r.mode == "pgd" for r in recorded)


def test_seed_checks_of_the_repository_compare_with_the_claims():
    from ntknb.claims import seed_check_summary

    assert ch.load_seed_checks("/nonexistent/x.jsonl") == []
    recorded = ch.load_seed_checks()  # the repository's records, if any
    cs = list(_claims().values())
    rows, s = seed_check_summary(cs, recorded)
    assert s["runs"] == len(recorded) and all(len(r) == 4 for r in rows)
    assert all(set(c) >= {"id", "verdict", "measured", "low", "high", "n_seeds"} for r in recorded for c in r["claims"])


def test_stats_interval_text_is_the_one_format():
    assert not hasattr(ch, "_fmt_iv") and not hasattr(ch, "interval")
    iv = ch._geometric_interval([10.0, 100.0, 1000.0])
    assert iv.estimate == pytest.approx(100.0) and iv.low > 0 and iv.method == "log-t"
    assert iv.text(".3g") == stats.Interval(iv.estimate, iv.low, iv.high, 3, 0.95, "log-t").text(".3g")
