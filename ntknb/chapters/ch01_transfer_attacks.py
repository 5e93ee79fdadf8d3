"""Chapter 01: attacks on the NTK transfer to the wide network it describes.

``tsilivis2022ntk`` Sec. 3 and Fig. 4: a wide fully connected network trained by full-batch
gradient descent stays close to its NTK predictor, and adversarial examples computed on the
kernel (Eq. 8, no access to the network) transfer to it; on binary CIFAR-10 and MNIST, along
training time, across widths and across architectures.

This module is the chapter's code; ``notebooks/01_transfer_attacks.py`` only calls it:
:class:`Params` (the parameter schema), :func:`cifar_run`, :func:`mnist_run`, :func:`width_sweep`,
:func:`cross_study` and the values and tables the page glues. The headline numbers and the
claims come from the replicas of :func:`seed_sweep` (``n_seeds`` data subsamples and network
initialisations) and :func:`mnist_seed_finals`; the single-seed runs of Sections 1-2 show the
curves along training. The claims' words, thresholds, directions and preconditions are registered in
``notebooks/claims/01_transfer_attacks.yaml`` (:data:`REGISTER`), before the runs that judge them.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from ntknb import architectures, data, evaluation, kernel_machines, lazy, schema, transfer
from ntknb.claims import REGISTER_DIR, Claim, load_register
from ntknb.training import log_spaced_steps
from ntknb.validation import SEED_LIMIT

__all__ = ["Params", "fc1", "fc2", "kernel_dynamics", "cifar_run", "cifar_values", "dynamics_gap", "cifar_rows",
           "mnist_run", "mnist_values", "mnist_seed_finals", "seed_sweep", "sweep_values", "lazy_from_width",
           "cross_study", "cross_values", "summary_text", "REGISTER", "claim_specs", "GAP_CLAIMS", "claims",
           "CIFAR_COLUMNS", "MNIST_COLUMNS", "SWEEP_COLUMNS", "cross_columns"]


#: The CIFAR-10 classes of Sections 1 and 3: airplane (-1) vs automobile (+1).
CIFAR_PAIR = ("airplane", "automobile")


@dataclasses.dataclass(frozen=True)
class Params(schema.Params):
    """The rules for the parameters of ``notebooks/01_transfer_attacks.py`` (the defaults live
    in its ``parameters`` cell; field order = cell order)."""

    seed: int = schema.param(schema.Int(min=0, max=SEED_LIMIT - 1))
    n_seeds: int = schema.param(schema.Int(min=1, max=100))
    progress: bool = schema.param(schema.Bool())
    lr_fraction: float = schema.param(schema.Float(min=0.0, max=1.0, min_inclusive=False, max_inclusive=False))
    kernel_dynamics: str = schema.param(schema.Choice(["discrete", "flow"]))
    n_checkpoints: int = schema.param(schema.Int(min=2, max=1000))
    pgd_steps: int = schema.param(schema.Int(min=1, max=schema.MAX_ATTACK_STEPS))
    eval_iters: int = schema.param(schema.Int(min=1, max=schema.MAX_ATTACK_STEPS))
    cifar_n_train: int = schema.param(schema.Int(min=4, max=10000))
    cifar_n_test: int = schema.param(schema.Int(min=2, max=2000))
    cifar_width: int = schema.param(schema.Int(min=1, max=schema.MAX_WIDTH))
    cifar_train_steps: int = schema.param(schema.Int(min=2, max=schema.MAX_STEPS))
    cifar_eps_255: list = schema.param(schema.List(schema.Float(min=0.0, max=255.0), min_length=1))
    cifar_pgd_eps_255: list = schema.param(schema.List(schema.Float()))
    headline_eps_255: float = schema.param(schema.Float())
    mnist_n_train: int = schema.param(schema.Int(min=10, max=60000))
    mnist_n_test: int = schema.param(schema.Int(min=10, max=10000))
    mnist_width: int = schema.param(schema.Int(min=1, max=schema.MAX_WIDTH))
    mnist_train_steps: int = schema.param(schema.Int(min=2, max=schema.MAX_STEPS))
    mnist_eps: list = schema.param(schema.List(schema.Float(min=0.0, max=1.0), min_length=1))
    mnist_pgd_eps: list = schema.param(schema.List(schema.Float()))
    mnist_claim_eps: float = schema.param(schema.Float(min=0.0, max=1.0))
    sweep_n_train: int = schema.param(schema.Int(min=4, max=10000))
    sweep_n_test: int = schema.param(schema.Int(min=2, max=2000))
    sweep_widths: list = schema.param(schema.List(schema.Int(min=1, max=schema.MAX_WIDTH), min_length=2))
    sweep_checkpoints: list = schema.param(schema.List(schema.Int(min=1, max=schema.MAX_STEPS), min_length=1))
    sweep_steps: int = schema.param(schema.Int(min=1, max=schema.Ref("cifar_train_steps")))
    cross_width: int = schema.param(schema.Int(min=1, max=schema.MAX_WIDTH))
    cross_kernels: list = schema.param(schema.List(schema.Choice(architectures.ARCHITECTURE_NAMES), min_length=1))

    def check(self) -> None:
        from ntknb import data

        data.check_task_sizes("cifar10", CIFAR_PAIR, train=[("cifar_n_train", self.cifar_n_train),
                                                      ("sweep_n_train", self.sweep_n_train)],
                              test=[("cifar_n_test", self.cifar_n_test), ("sweep_n_test", self.sweep_n_test)])
        data.check_task_sizes("mnist", train=[("mnist_n_train", self.mnist_n_train)],
                              test=[("mnist_n_test", self.mnist_n_test)])
        for name, v in (("sweep_widths", self.sweep_widths), ("sweep_checkpoints", self.sweep_checkpoints)):
            if list(v) != sorted(set(v)):
                raise ValueError(f"parameter {name!r} must be strictly increasing, got {list(v)!r}")
        for name, sub, full in (("cifar_pgd_eps_255", self.cifar_pgd_eps_255, self.cifar_eps_255),
                                ("mnist_pgd_eps", self.mnist_pgd_eps, self.mnist_eps)):
            bad = [e for e in sub if e not in full]
            if bad:
                raise ValueError(f"parameter {name!r}: every item must be one of {full!r}, got {bad!r}")
        if self.headline_eps_255 not in self.cifar_eps_255:
            raise ValueError(f"parameter 'headline_eps_255' must be one of cifar_eps_255={self.cifar_eps_255}, "
                             f"got {self.headline_eps_255}")


    @property
    def mnist_radii(self) -> list:
        """The FGSM radii of the MNIST run: ``mnist_eps`` and the claim's ``mnist_claim_eps``, sorted
        (a preset that leaves the claim's radius out of ``mnist_eps`` still measures it)."""
        return sorted({*self.mnist_eps, self.mnist_claim_eps})

    @property
    def seeds(self) -> list:
        """The seeds of the replicas: ``seed, seed + 1, ..., seed + n_seeds - 1`` (data subsample
        and network initialisation)."""
        return [self.seed + i for i in range(self.n_seeds)]


@functools.lru_cache(maxsize=None)
def fc1(width: int, out_dim: int = 1):
    """The one-hidden-layer fully connected network of the chapter (one object per width, so the
    replicas of :func:`seed_sweep` share the compilations of its functions)."""
    return architectures.get_architecture("fc1", width=width, out_dim=out_dim)


def fc2(width: int, out_dim: int = 1):
    """The two-hidden-layer fully connected network (cross-architecture transfer)."""
    return architectures.get_architecture("fc2", width=width, out_dim=out_dim)


def kernel_dynamics(p: Params, kernel, lr: float):
    """The kernel predictor the networks are compared with: of discrete gradient descent with the
    networks' step ``lr`` and step count (``kernel_dynamics = "discrete"``), or of gradient flow,
    Eq. (7) of ``tsilivis2022ntk`` (``"flow"``). At ``lr_fraction`` near 1 the two differ along the
    top eigen-directions, where ``lr * lambda / N`` is not small."""
    return kernel.with_learning_rate(lr if p.kernel_dynamics == "discrete" else None)


@dataclasses.dataclass
class CifarRun:
    """The CIFAR-10 run: NTKs, learning rate, checkpoints, the trained fc1 and its transfer curves."""

    kernels: dict  #: name -> kernel_machines.KernelModel (fc1, fc2 and the cross kernels)
    lr: float
    steps: np.ndarray
    net: object
    curves: object  #: transfer.TransferCurves


def cifar_run(p: Params, cifar) -> CifarRun:
    """Gradient descent on fc1 of width ``cifar_width`` at ``lr_fraction`` of the largest stable
    step (the smallest over fc1 and fc2), and attacks on the network and on its NTK along training
    (:func:`ntknb.transfer.evaluate_transfer`)."""
    kernels = {name: kernel_machines.KernelModel.build(architectures.get_architecture(name), cifar.x_train,
                                                       cifar.y_train)
               for name in dict.fromkeys(["fc1", "fc2", *p.cross_kernels])}
    lr = p.lr_fraction * min(kernel_machines.max_stable_learning_rate(kernels[name].k_train_train)
                             for name in ("fc1", "fc2"))
    kernels = {name: kernel_dynamics(p, k, lr) for name, k in kernels.items()}
    steps = np.union1d(log_spaced_steps(p.cifar_train_steps, p.n_checkpoints, include_zero=False), [p.sweep_steps])
    print(f"learning rate {lr:.3f}; t from {steps[0] * lr:.2f} to {steps[-1] * lr:.0f}")
    net = lazy.train_network(fc1(p.cifar_width), cifar.x_train, cifar.y_train, lr, steps, seed=p.seed,
                             progress=p.progress, description=f"GD fc1 width {p.cifar_width}")
    curves = transfer.evaluate_transfer(net, kernels["fc1"], cifar.x_test, cifar.y_test,
                                        [e / 255 for e in p.cifar_eps_255],
                                        pgd_eps=[e / 255 for e in p.cifar_pgd_eps_255], pgd_steps=p.pgd_steps,
                                        progress=p.progress, description="CIFAR: network vs NTK")
    return CifarRun(kernels, lr, steps, net, curves)


def cifar_values(p: Params, run: CifarRun) -> dict:
    """The CIFAR-10 numbers the page glues (at the headline radius, final checkpoint, and the
    extremes of the transfer gap along training)."""
    c = run.curves
    final = c.final(p.headline_eps_255 / 255, "fgsm")
    v = {"cifar_lr": run.lr, "cifar_t_final": final["t"], "cifar_width": p.cifar_width,
         "headline_eps_255": p.headline_eps_255, "cos_sim_final": final["cos_sim_mean"],
         "cos_sim_final_std": final["cos_sim_std"], "cos_sim_first": c.cos_sim_mean[0],
         "cos_sim_min": np.min(c.cos_sim_mean), "cos_sim_max": np.max(c.cos_sim_mean),
         "clean_acc_net": final["clean_acc_net"], "clean_acc_kernel": final["clean_acc_kernel"],
         "agreement_final": final["agreement"], "agreement_min": np.min(c.agreement),
         "output_rel_distance_final": final["output_rel_distance"],
         "weight_change_final": final["relative_weight_change"],
         "robust_acc_white_box": final["robust_acc_net_by_net"],
         "robust_acc_ntk_transfer": final["robust_acc_net_by_kernel"],
         "robust_acc_kernel_self": final["robust_acc_kernel_by_kernel"]}
    if p.headline_eps_255 in p.cifar_pgd_eps_255:
        pgd_final = c.final(p.headline_eps_255 / 255, "pgd")
        v.update(robust_acc_white_box_pgd=pgd_final["robust_acc_net_by_net"],
                 robust_acc_ntk_transfer_pgd=pgd_final["robust_acc_net_by_kernel"],
                 robust_acc_kernel_self_pgd=pgd_final["robust_acc_kernel_by_kernel"])
    j = c.eps_index(p.headline_eps_255 / 255)
    gap = c.robust("net", "kernel", "fgsm")[:, j] - c.robust("net", "net", "fgsm")[:, j]
    v.update(transfer_gap_max=np.max(gap), transfer_gap_max_t=c.times[int(np.argmax(gap))],
             transfer_gap_min=np.min(gap), transfer_gap_min_t=c.times[int(np.argmin(gap))])
    return v


def dynamics_gap(run: CifarRun, cifar) -> dict:
    """Relative distance ``‖g - f‖ / ‖g‖`` of the trained network's test outputs to the kernel
    predictor of discrete gradient descent (same step and step count) and to that of gradient
    flow (Eq. 7) at the final checkpoint: which of the two the network follows."""
    g = np.asarray(run.net.predict_fn(len(run.net.run.params) - 1)(cifar.x_test))
    t = float(run.net.times[-1])
    k = run.kernels["fc1"]
    k_test = np.asarray(k.test_kernel(cifar.x_test))
    out = {}
    for name, lr in (("discrete", run.lr), ("flow", None)):
        f = k_test @ np.asarray(k.with_learning_rate(lr).weights(t))
        out[f"output_distance_{name}"] = float(np.linalg.norm(g - f) / np.linalg.norm(g))
    return out


def time_text(t: float) -> str:
    """Training time t (= steps x learning rate) as a table prints it: three significant digits
    below 100, whole numbers above (``1155``, never ``1.16e+03``)."""
    return f"{t:.0f}" if abs(t) >= 100 else f"{t:.3g}"


CIFAR_COLUMNS = ["t", "cos sim", "clean net", "clean NTK", "agreement", "net white-box", "net NTK-attack",
                 "NTK own attack"]


def cifar_rows(p: Params, run: CifarRun) -> list:
    c = run.curves
    j = c.eps_index(p.headline_eps_255 / 255)
    return [[time_text(t), cs, a_n, a_k, ag, wb, tr, ks]
            for t, cs, a_n, a_k, ag, wb, tr, ks in zip(
                c.times, c.cos_sim_mean, c.clean_acc_net, c.clean_acc_kernel, c.agreement,
                c.robust("net", "net", "fgsm")[:, j], c.robust("net", "kernel", "fgsm")[:, j],
                c.robust("kernel", "kernel", "fgsm")[:, j])]


def mnist_run(p: Params, mnist):
    """The same on 10-class MNIST with its own learning rate; returns the transfer curves."""
    kernel = kernel_machines.KernelModel.build(fc1(p.mnist_width, 10), mnist.x_train, mnist.y_train)
    lr = p.lr_fraction * kernel_machines.max_stable_learning_rate(kernel.k_train_train, 10)
    kernel = kernel_dynamics(p, kernel, lr)
    steps = log_spaced_steps(p.mnist_train_steps, p.n_checkpoints, include_zero=False)
    print(f"learning rate {lr:.2f}; t from {steps[0] * lr:.1f} to {steps[-1] * lr:.0f}")
    net = lazy.train_network(fc1(p.mnist_width, 10), mnist.x_train, mnist.y_train, lr, steps, seed=p.seed,
                             progress=p.progress, description=f"GD fc1 width {p.mnist_width}")
    return transfer.evaluate_transfer(net, kernel, mnist.x_test, mnist.y_test, p.mnist_radii, pgd_eps=p.mnist_pgd_eps,
                                      pgd_steps=p.pgd_steps, progress=p.progress, description="MNIST: network vs NTK")


MNIST_COLUMNS = ["eps", "attack", "net white-box", "net NTK-attack", "NTK own attack"]


def mnist_values(p: Params, curves) -> tuple:
    """``(glued values, table rows)`` of the MNIST run (final checkpoint, every radius of
    :attr:`Params.mnist_radii`; the white-box and NTK-transfer FGSM accuracies at the claim's
    radius ``mnist_claim_eps`` also as ``mnist_white_box_claim`` / ``mnist_ntk_transfer_claim``)."""
    claim = curves.final(p.mnist_claim_eps, "fgsm")
    v = {"mnist_t_final": curves.times[-1], "mnist_cos_sim_final": curves.cos_sim_mean[-1],
         "mnist_clean_acc_net": curves.clean_acc_net[-1], "mnist_clean_acc_kernel": curves.clean_acc_kernel[-1],
         "mnist_agreement_final": curves.agreement[-1], "mnist_claim_eps_g": p.mnist_claim_eps,
         "mnist_white_box_claim": claim["robust_acc_net_by_net"],
         "mnist_ntk_transfer_claim": claim["robust_acc_net_by_kernel"]}
    rows = []
    for e in p.mnist_radii:
        f = curves.final(e, "fgsm")
        key = f"{e:g}".replace(".", "p")
        v[f"mnist_white_box_eps{key}"] = f["robust_acc_net_by_net"]
        v[f"mnist_ntk_transfer_eps{key}"] = f["robust_acc_net_by_kernel"]
        rows.append([f"{e:g}", "FGSM", f["robust_acc_net_by_net"], f["robust_acc_net_by_kernel"],
                     f["robust_acc_kernel_by_kernel"]])
        if e in p.mnist_pgd_eps:
            g = curves.final(e, "pgd")
            v[f"mnist_white_box_pgd_eps{key}"] = g["robust_acc_net_by_net"]
            v[f"mnist_ntk_transfer_pgd_eps{key}"] = g["robust_acc_net_by_kernel"]
            rows.append([f"{e:g}", "PGD", g["robust_acc_net_by_net"], g["robust_acc_net_by_kernel"],
                         g["robust_acc_kernel_by_kernel"]])
    return v, rows


@functools.lru_cache(maxsize=None)
def _centred_net(apply_fn):
    """``(params, params0), x -> f_params(x) - f_params0(x)``, the centred network of
    :class:`ntknb.lazy.TrainedNetwork` with its weights as an argument (one object per network
    form, so :func:`ntknb.evaluation.robust_evaluation` reuses its compilation)."""
    return lambda params, x: lazy.network_outputs(apply_fn, True, params[0], params[1], x)


def _correct(f, y) -> np.ndarray:
    """Per-point correctness ``(n,)`` of outputs ``f (n, 1)`` for labels ±1 ``y (n, 1)``."""
    return np.asarray(f)[:, 0] * np.asarray(y)[:, 0] > 0


#: The attacks of the seed sweep, per (width, checkpoint): the paper's FGSM and PGD (white-box on
#: the network, and transferred from the kernel), and at the last checkpoint the standard
#: evaluation (:func:`ntknb.evaluation.robust_evaluation`) of the network and the network on the
#: kernel's worst-case points of the standard evaluation.
SWEEP_ATTACKS = ("fgsm", "pgd", "standard")


@dataclasses.dataclass
class SeedSweep:
    """One replica of :func:`seed_sweep` (one data subsample, one initialisation per width).

    ``correct[(who, attack, width, step)]`` is the ``(n_test,)`` per-point correctness of the
    network of ``width`` at checkpoint ``step`` under the ``attack`` computed on ``who``
    (``"white"``: its own gradients; ``"transfer"``: the kernel predictor at the same time);
    ``correct[("kernel", attack, 0, step)]`` that of the kernel predictor under its own attack;
    ``("clean", "", width, step)`` the clean correctness. ``"standard"`` entries exist at the last
    checkpoint only. ``cos[(width, step)]``: mean cosine similarity of the loss input gradients of
    network and kernel predictor."""

    seed: int
    lr: float
    correct: dict
    cos: dict


def seed_sweep(p: Params, dataset, progress: bool = False) -> list:
    """The replicas behind the chapter's headline numbers and claims (``tsilivis2022ntk`` Sec. 3,
    Fig. 4): for each seed of :attr:`Params.seeds`, a class-balanced CIFAR-10 subsample of
    ``sweep_n_train`` / ``sweep_n_test`` images, the fc1 NTK predictor (discrete GD or flow:
    :func:`kernel_dynamics`, step ``lr_fraction`` of fc1's stability limit) and fc1 networks of
    every ``sweep_widths`` trained by full-batch GD (initialised with that seed); at every
    ``sweep_checkpoints`` step, FGSM and PGD-``pgd_steps`` white-box, transferred from the kernel
    (Eq. 8) and on the kernel itself, at the headline radius; at the last checkpoint also the
    standard evaluation (``eval_iters`` iterations) of network and kernel, and the network on the
    kernel's worst-case points. The replicas run one after the other: on the CPU batching them
    with ``jax.vmap`` does not pay (:mod:`ntknb.replicas`)."""
    eps = p.headline_eps_255 / 255
    last = p.sweep_checkpoints[-1]
    out = []
    for seed in p.seeds:
        task = data.make_task(dataset, CIFAR_PAIR, n_train=p.sweep_n_train, n_test=p.sweep_n_test,
                              seed=seed)
        x, y = task.x_test, task.y_test
        kernel = kernel_machines.KernelModel.build(fc1(1), task.x_train, task.y_train)
        lr = p.lr_fraction * kernel_machines.max_stable_learning_rate(kernel.k_train_train)
        kernel = kernel_dynamics(p, kernel, lr)
        correct, cos, k_adv, k_grad = {}, {}, {}, {}
        for step in p.sweep_checkpoints:
            t = step * lr
            f_t = kernel.predict_fn(t)
            k_grad[step] = kernel.loss_gradients(t, x, y)
            for attack in ("fgsm", "pgd"):
                k_adv[attack, step] = transfer.kernel_attack(kernel, t, x, y, eps, attack, p.pgd_steps, predict_fn=f_t)
            if step == last:
                rep = evaluation.robust_evaluation(f_t, x, y, eps, seed=seed, n_iter=p.eval_iters)
                k_adv["standard", step] = rep.x_adv
            for attack in SWEEP_ATTACKS:
                if (attack, step) in k_adv:
                    correct["kernel", attack, 0, step] = _correct(f_t(k_adv[attack, step]), y)
        for width in p.sweep_widths:
            net = lazy.train_network(fc1(width), task.x_train, task.y_train, lr, p.sweep_checkpoints, seed=seed,
                                     progress=progress, description=f"seed {seed}, GD fc1 width {width}")
            for i, step in enumerate(p.sweep_checkpoints):
                g = net.predict_fn(i)
                correct["clean", "", width, step] = _correct(g(x), y)
                cos[width, step] = float(np.nanmean(transfer.cosine_similarity(net.loss_gradients(i, x, y),
                                                                               k_grad[step])))
                # the weights as a dynamic argument: one compilation per width for every checkpoint
                # and seed, not one per network with its weights compiled in as constants
                f_net, theta = _centred_net(net.arch.apply_fn), (net.run.params[i], net.params0)
                for attack in ("fgsm", "pgd"):
                    correct["white", attack, width, step] = _correct(
                        g(transfer.network_attack(net, i, x, y, eps, attack, p.pgd_steps, predict_fn=f_net,
                                                  params=theta)), y)
                    correct["transfer", attack, width, step] = _correct(g(k_adv[attack, step]), y)
                if step == last:
                    correct["white", "standard", width, step] = evaluation.robust_evaluation(
                        f_net, x, y, eps, seed=seed, n_iter=p.eval_iters, params=theta).robust
                    correct["transfer", "standard", width, step] = _correct(g(k_adv["standard", step]), y)
        out.append(SeedSweep(seed, float(lr), correct, cos))
    return out


def _pooled(runs: list, key: tuple) -> np.ndarray:
    """Per-point correctness of ``key`` over all replicas, concatenated ``(n_seeds * n_test,)``."""
    return np.concatenate([r.correct[key] for r in runs])


def _gap(p: Params, runs: list, attack: str, width: int, step: int):
    """Paired comparison (:func:`ntknb.stats.paired_comparison`) of transfer against white-box on
    the same points of all replicas: ``difference`` = accuracy left by the kernel attack minus
    accuracy left by the white-box attack."""
    from ntknb import stats

    return stats.paired_comparison(_pooled(runs, ("transfer", attack, width, step)),
                                   _pooled(runs, ("white", attack, width, step)), seed=p.seed)


SWEEP_COLUMNS = ["width", "step", "t", "cos sim", "clean", "white-box FGSM", "NTK-attack FGSM", "white-box PGD",
                 "NTK-attack PGD", "white-box std", "NTK-attack std", "gap PGD [95 %]", "gap std [95 %]"]


def sweep_values(p: Params, runs: list) -> tuple:
    """``(table rows, glued values)`` of :func:`seed_sweep`: accuracies pooled over the replicas'
    points (means over seeds), per width and checkpoint; the transfer gap (NTK attack minus
    white-box) with its paired interval; the kernel under its own attacks; the widest width at the
    last checkpoint as the headline."""
    last = p.sweep_checkpoints[-1]
    lr = float(np.mean([r.lr for r in runs]))
    acc = lambda key: float(np.mean(_pooled(runs, key)))  # noqa: E731
    iv = lambda c: c.difference.text("+.3f")  # noqa: E731
    rows = []
    for width in p.sweep_widths:
        for step in p.sweep_checkpoints:
            std = step == last
            rows.append([width, step, time_text(step * lr), float(np.mean([r.cos[width, step] for r in runs])),
                         acc(("clean", "", width, step)),
                         *[acc((who, a, width, step)) for a in ("fgsm", "pgd") for who in ("white", "transfer")],
                         *[acc((who, "standard", width, step)) if std else np.nan for who in ("white", "transfer")],
                         iv(_gap(p, runs, "pgd", width, step)), iv(_gap(p, runs, "standard", width, step)) if std else "—"])
    w = p.sweep_widths[-1]
    gap_std, gap_pgd = _gap(p, runs, "standard", w, last), _gap(p, runs, "pgd", w, last)
    v = {"sweep_n_points": len(_pooled(runs, ("clean", "", w, last))), "sweep_lr": lr, "sweep_t": last * lr,
         "sweep_width_narrowest": p.sweep_widths[0], "sweep_width_widest": w,
         "sweep_cos_narrowest": float(np.mean([r.cos[p.sweep_widths[0], last] for r in runs])),
         "sweep_cos_widest": float(np.mean([r.cos[w, last] for r in runs])),
         "clean_widest": acc(("clean", "", w, last)),
         "std_white_box": acc(("white", "standard", w, last)), "std_transfer": acc(("transfer", "standard", w, last)),
         "std_kernel_self": acc(("kernel", "standard", 0, last)),
         "pgd_white_box": acc(("white", "pgd", w, last)), "pgd_transfer": acc(("transfer", "pgd", w, last)),
         "pgd_kernel_self": acc(("kernel", "pgd", 0, last)),
         "fgsm_white_box": acc(("white", "fgsm", w, last)), "fgsm_transfer": acc(("transfer", "fgsm", w, last)),
         "gap_std_widest": gap_std.difference.estimate, "gap_std_widest_low": gap_std.difference.low,
         "gap_std_widest_high": gap_std.difference.high, "gap_pgd_widest": gap_pgd.difference.estimate,
         "gap_pgd_widest_low": gap_pgd.difference.low, "gap_pgd_widest_high": gap_pgd.difference.high,
         "gap_std_narrowest": _gap(p, runs, "standard", p.sweep_widths[0], last).difference.estimate,
         "std_white_box_narrowest": acc(("white", "standard", p.sweep_widths[0], last))}
    gap_fgsm, cos_min = _gap(p, runs, "fgsm", w, last), _cos_min_interval(p, runs)
    v.update(gap_fgsm_widest=gap_fgsm.difference.estimate, gap_fgsm_widest_low=gap_fgsm.difference.low,
             gap_fgsm_widest_high=gap_fgsm.difference.high, sweep_cos_widest_min=cos_min.estimate,
             sweep_cos_widest_min_low=cos_min.low, sweep_cos_widest_min_high=cos_min.high)
    for attack in ("fgsm", "pgd", "standard"):
        w0 = lazy_from_width(p, runs, attack)
        v[f"lazy_from_width_{attack}"] = "none of the widths" if w0 is None else f"width {w0}"
    return rows, v


def _cos_min_interval(p: Params, runs: list):
    """Logit-t interval (range -1 to 1) over the replicas of the widest network's smallest mean
    gradient cosine similarity over the sweep's checkpoints (``ch01.gradient_alignment``)."""
    from ntknb import stats

    w = p.sweep_widths[-1]
    return stats.mean_interval([min(r.cos[w, step] for step in p.sweep_checkpoints) for r in runs], bounds=(-1.0, 1.0))


def lazy_from_width(p: Params, runs: list, attack: str) -> int | None:
    """The smallest width from which the kernel attack is "as effective as" the white-box one at the
    last checkpoint — the upper end of the paired interval of the gap below the registered threshold
    of the attack's claim (:data:`GAP_CLAIMS`, :func:`claim_specs`) at that width and every wider
    one — or ``None`` if not even at the widest."""
    threshold = claim_specs()[GAP_CLAIMS[attack]].threshold
    found = None
    for width in reversed(p.sweep_widths):
        if _gap(p, runs, attack, width, p.sweep_checkpoints[-1]).difference.high >= threshold:
            break
        found = width
    return found


def mnist_seed_finals(p: Params, dataset, first) -> list:
    """Per seed of :attr:`Params.seeds`, the network's accuracy under the NTK-transfer FGSM at the
    claim's radius ``mnist_claim_eps`` at the final checkpoint (``first``: the curves of
    :func:`mnist_run` for the first seed; the other seeds are trained to ``mnist_train_steps`` and
    evaluated there only)."""
    e = p.mnist_claim_eps
    accs = [first.final(e, "fgsm")["robust_acc_net_by_kernel"]]
    for seed in p.seeds[1:]:
        task = data.make_task(dataset, None, n_train=p.mnist_n_train, n_test=p.mnist_n_test, seed=seed)
        kernel = kernel_machines.KernelModel.build(fc1(p.mnist_width, 10), task.x_train, task.y_train)
        lr = p.lr_fraction * kernel_machines.max_stable_learning_rate(kernel.k_train_train, 10)
        kernel = kernel_dynamics(p, kernel, lr)
        net = lazy.train_network(fc1(p.mnist_width, 10), task.x_train, task.y_train, lr, [p.mnist_train_steps],
                                 seed=seed, progress=False)
        c = transfer.evaluate_transfer(net, kernel, task.x_test, task.y_test, [e], attacks=["fgsm"], white_box=False,
                                       kernel_self=False, progress=False)
        accs.append(c.final(e, "fgsm")["robust_acc_net_by_kernel"])
    return [float(a) for a in accs]


def cross_study(p: Params, cifar, run: CifarRun) -> dict:
    """fc2 of width ``cross_width`` trained for ``sweep_steps``; attacks of each of
    ``cross_kernels``' NTKs on fc1 (at the same checkpoint) and fc2
    (:func:`ntknb.transfer.cross_architecture`)."""
    net2 = lazy.train_network(fc2(p.cross_width), cifar.x_train, cifar.y_train, run.lr, [p.sweep_steps],
                              seed=p.seed, progress=p.progress, description=f"GD fc2 width {p.cross_width}")
    name1 = f"fc1 (width {p.cifar_width})"
    res = transfer.cross_architecture(
        {name1: run.net, f"fc2 (width {p.cross_width})": net2},
        {name: run.kernels[name] for name in p.cross_kernels}, cifar.x_test, cifar.y_test, p.headline_eps_255 / 255,
        checkpoints={name1: int(np.flatnonzero(run.steps == p.sweep_steps)[0])})
    t = float(net2.times[-1])
    grads = {name: run.kernels[name].loss_gradients(t, cifar.x_test, cifar.y_test) for name in ("fc1", "fc2")}
    res["kernel_cos"] = transfer.cosine_similarity(grads["fc1"], grads["fc2"])  # (n_test,) fc1 vs fc2 NTK
    return res


def cross_columns(p: Params) -> list:
    return ["network", "clean", "white-box", *[f"{k} NTK-attack" for k in p.cross_kernels],
            *[f"cos sim vs {k}" for k in p.cross_kernels]]


def cross_values(p: Params, cross: dict) -> tuple:
    """``(table rows, glued values)`` of the cross-architecture transfer."""
    rows = [[net_name, cross["clean"][net_name], cross["white_box"][net_name],
             *[cross["transfer"][net_name][k] for k in p.cross_kernels],
             *[cross["cos_sim"][net_name][k] for k in p.cross_kernels]] for net_name in cross["clean"]]
    names = list(cross["clean"])
    v = {"cross_fc1_by_fc2": cross["transfer"][names[0]]["fc2"], "cross_fc1_by_fc1": cross["transfer"][names[0]]["fc1"],
         "cross_fc2_by_fc1": cross["transfer"][names[1]]["fc1"], "cross_fc2_by_fc2": cross["transfer"][names[1]]["fc2"],
         "cross_fc1_white_box": cross["white_box"][names[0]], "cross_fc2_white_box": cross["white_box"][names[1]],
         "cross_fc2_clean": cross["clean"][names[1]], "cross_width": p.cross_width,
         "kernel_cos_fc1_fc2": float(np.nanmean(cross["kernel_cos"])),
         "kernel_cos_fc1_fc2_q10": float(np.nanquantile(cross["kernel_cos"], 0.1))}
    return rows, v


def summary_text(p: Params, run: CifarRun, sweep_rows: list) -> str:
    """The headline numbers, rounded (the cell nbval compares)."""
    final = run.curves.final(p.headline_eps_255 / 255, "fgsm")
    lines = [f"CIFAR airplane/automobile, fc1 width {p.cifar_width}, t = {final['t']:.0f}, "
             f"FGSM eps = {p.headline_eps_255:g}/255 (seed {p.seed})"]
    for name in ("cos_sim_mean", "clean_acc_net", "clean_acc_kernel", "robust_acc_net_by_net",
                 "robust_acc_net_by_kernel"):
        lines.append(f"  {name:26s} {final[name]:.2f}")
    lines.append(f"seed sweep ({p.n_seeds} seeds x {p.sweep_n_test} points; width, step, cos sim, white-box PGD, "
                 "NTK-attack PGD, white-box std, NTK-attack std):")
    for row in sweep_rows:
        lines.append(f"  {row[0]:6d} {row[1]:5d} {row[3]:.2f} {row[7]:.2f} {row[8]:.2f} {row[9]:.2f} {row[10]:.2f}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------- claims

#: The chapter's claim register (issue 29): every claim's id, the paper's words and where they
#: stand, threshold, direction, preconditions and why, fixed before the runs that judge them.
REGISTER = REGISTER_DIR / "01_transfer_attacks.yaml"

#: The "as effective as white-box" claim of each attack of the sweep (:func:`lazy_from_width`
#: uses its registered threshold).
GAP_CLAIMS = {"standard": "ch01.as_effective_as_white_box", "pgd": "ch01.as_effective_as_white_box_pgd",
              "fgsm": "ch01.as_effective_as_white_box_fgsm"}


def claim_specs() -> dict:
    """``{id: ClaimSpec}`` of :data:`REGISTER` (:func:`ntknb.claims.load_register`), in register order."""
    return load_register(REGISTER)


def _claim(spec, interval, **fields) -> Claim:
    return Claim.from_register(spec, measured=interval.estimate, low=interval.low, high=interval.high, **fields)


def claims(p: Params, runs: list, mnist_accs: list, mnist_curves) -> list:
    """The chapter's claims, in register order, built from :data:`REGISTER` (words, thresholds,
    directions, preconditions and their justification live there) with what the run measured: the
    replicas of :func:`seed_sweep` (``runs``), the per-seed MNIST accuracies of
    :func:`mnist_seed_finals` (``mnist_accs``) and the first seed's MNIST curves of :func:`mnist_run`
    (``mnist_curves``: its white-box FGSM at ``mnist_claim_eps``, precondition
    ``radius_discriminates``).

    * ``ch01.ntk_transfer_cifar``: Student-t interval over the seeds of the widest network's
      accuracy under the NTK FGSM at the last checkpoint; precondition ``late_in_training``: the
      last checkpoint's t (steps x mean learning rate over the seeds).
    * ``ch01.ntk_transfer_mnist``: the same over ``mnist_accs``.
    * ``ch01.as_effective_as_white_box`` (standard evaluation), ``..._pgd``, ``..._fgsm`` (the
      paper's comparison, Eqs. 2 and 8): paired bootstrap of the gap NTK attack minus white-box over
      the points of all seeds, widest network, last checkpoint.
    * ``ch01.gradient_alignment``: logit-t interval over the seeds of the widest network's smallest
      mean gradient cosine similarity over the checkpoints."""
    from ntknb import stats

    specs = claim_specs()
    w, last, k = p.sweep_widths[-1], p.sweep_checkpoints[-1], len(runs)
    n = len(_pooled(runs, ("clean", "", w, last)))
    t = last * float(np.mean([r.lr for r in runs]))
    base = (f"CIFAR-10 airplane vs automobile, {p.sweep_n_train} train, fc1 width {w}, {last} GD steps (t = {t:.0f}; "
            f"{p.kernel_dynamics} kernel predictor)")
    points = f"{k} seeds x {n // k} points"
    scale = f"{base}, eps {p.headline_eps_255:g}/255, {points}"
    e = p.mnist_claim_eps
    out = [
        _claim(specs["ch01.ntk_transfer_cifar"],
               stats.mean_interval([np.mean(r.correct["transfer", "fgsm", w, last]) for r in runs]),
               n_seeds=k, n_test=n, scale=f"{scale}, FGSM", conditions={"late_in_training": t}),
        _claim(specs["ch01.ntk_transfer_mnist"], stats.mean_interval(mnist_accs), n_seeds=len(mnist_accs),
               n_test=len(mnist_accs) * p.mnist_n_test,
               scale=f"MNIST 10 classes, {p.mnist_n_train} train, fc1 width {p.mnist_width}, {p.mnist_train_steps} GD "
                     f"steps, FGSM eps {e:g}, {len(mnist_accs)} seeds x {p.mnist_n_test} points",
               conditions={"radius_discriminates": float(mnist_curves.final(e, "fgsm")["robust_acc_net_by_net"])})]
    what = {"standard": f"standard evaluation ({p.eval_iters} iterations) of network and kernel",
            "pgd": f"PGD-{p.pgd_steps}", "fgsm": "FGSM (Eqs. 2 and 8)"}
    for attack, cid in GAP_CLAIMS.items():
        out.append(_claim(specs[cid], _gap(p, runs, attack, w, last).difference, n_seeds=k, n_test=n,
                          scale=f"{scale}, {what[attack]}"))
    out.append(_claim(specs["ch01.gradient_alignment"], _cos_min_interval(p, runs), n_seeds=k, n_test=n,
                      scale=f"{base}, {points}, minimum over the checkpoints at steps "
                            f"{', '.join(map(str, p.sweep_checkpoints))}"))
    order = list(specs)
    return sorted(out, key=lambda c: order.index(c.id))
