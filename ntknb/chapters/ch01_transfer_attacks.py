"""Chapter 01: attacks on the NTK transfer to the wide network it describes.

``tsilivis2022ntk`` Sec. 3 and Fig. 4: a wide fully connected network trained by full-batch
gradient descent stays close to its NTK predictor, and adversarial examples computed on the
kernel (Eq. 8, no access to the network) transfer to it; on binary CIFAR-10 and MNIST, along
training time, across widths and across architectures.

This module is the chapter's code; ``notebooks/01_transfer_attacks.py`` only calls it:
:class:`Params` (the parameter schema), :func:`cifar_run`, :func:`mnist_run`, :func:`width_sweep`,
:func:`cross_study` and the values and tables the page glues.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ntknb import architectures, kernel_machines, lazy, schema, transfer
from ntknb.training import log_spaced_steps
from ntknb.validation import SEED_LIMIT

__all__ = ["Params", "fc1", "fc2", "kernel_dynamics", "cifar_run", "cifar_values", "dynamics_gap", "standard_study", "cifar_rows",
           "mnist_run", "mnist_values", "width_sweep", "sweep_values", "cross_study", "cross_values", "summary_text",
           "CLAIM_THRESHOLDS", "claims"]


@dataclasses.dataclass(frozen=True)
class Params(schema.Params):
    """The rules for the parameters of ``notebooks/01_transfer_attacks.py`` (the defaults live
    in its ``parameters`` cell; field order = cell order)."""

    seed: int = schema.param(schema.Int(min=0, max=SEED_LIMIT - 1))
    progress: bool = schema.param(schema.Bool())
    lr_fraction: float = schema.param(schema.Float(min=0.0, max=1.0, min_inclusive=False, max_inclusive=False))
    kernel_dynamics: str = schema.param(schema.Choice(["discrete", "flow"]))
    n_checkpoints: int = schema.param(schema.Int(min=2))
    pgd_steps: int = schema.param(schema.Int(min=1))
    eval_iters: int = schema.param(schema.Int(min=1))
    cifar_n_train: int = schema.param(schema.Int(min=4, max=10000))
    cifar_n_test: int = schema.param(schema.Int(min=2, max=2000))
    cifar_width: int = schema.param(schema.Int(min=1))
    cifar_train_steps: int = schema.param(schema.Int(min=2))
    cifar_eps_255: list = schema.param(schema.List(schema.Float(min=0.0, max=255.0), min_length=1))
    cifar_pgd_eps_255: list = schema.param(schema.List(schema.Float()))
    headline_eps_255: float = schema.param(schema.Float())
    mnist_n_train: int = schema.param(schema.Int(min=10, max=60000))
    mnist_n_test: int = schema.param(schema.Int(min=10, max=10000))
    mnist_width: int = schema.param(schema.Int(min=1))
    mnist_train_steps: int = schema.param(schema.Int(min=2))
    mnist_eps: list = schema.param(schema.List(schema.Float(min=0.0, max=1.0), min_length=1))
    mnist_pgd_eps: list = schema.param(schema.List(schema.Float()))
    sweep_widths: list = schema.param(schema.List(schema.Int(min=1), min_length=2))
    sweep_steps: int = schema.param(schema.Int(min=1, max=schema.Ref("cifar_train_steps")))
    cross_width: int = schema.param(schema.Int(min=1))
    cross_kernels: list = schema.param(schema.List(schema.Choice(architectures.ARCHITECTURE_NAMES), min_length=1))

    def check(self) -> None:
        for name, sub, full in (("cifar_pgd_eps_255", self.cifar_pgd_eps_255, self.cifar_eps_255),
                                ("mnist_pgd_eps", self.mnist_pgd_eps, self.mnist_eps)):
            bad = [e for e in sub if e not in full]
            if bad:
                raise ValueError(f"parameter {name!r}: every item must be one of {full!r}, got {bad!r}")
        if self.headline_eps_255 not in self.cifar_eps_255:
            raise ValueError(f"parameter 'headline_eps_255' must be one of cifar_eps_255={self.cifar_eps_255}, "
                             f"got {self.headline_eps_255}")


def fc1(width: int, out_dim: int = 1):
    """The one-hidden-layer fully connected network of the chapter."""
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


def standard_study(p: Params, cifar, run: CifarRun) -> dict:
    """At the last checkpoint and the headline radius, the standard evaluation
    (:func:`ntknb.evaluation.robust_evaluation`: APGD-CE, APGD-margin, PGD, ``eval_iters``
    iterations each, worst case per point) of the network (white-box) and of the kernel predictor,
    and the network on the kernel's worst-case points (the strongest training-free transfer).
    Returns per-point robustness ``(n_test,)`` bool arrays and their accuracies."""
    from ntknb import evaluation

    i = len(run.net.run.params) - 1
    t, eps = float(run.net.times[i]), p.headline_eps_255 / 255
    net_f, ker_f = run.net.predict_fn(i), run.kernels["fc1"].predict_fn(t)
    kw = dict(seed=p.seed, n_iter=p.eval_iters)
    white = evaluation.robust_evaluation(net_f, cifar.x_test, cifar.y_test, eps, **kw)
    kernel = evaluation.robust_evaluation(ker_f, cifar.x_test, cifar.y_test, eps, **kw)
    y = np.asarray(cifar.y_test)[:, 0]
    transfer = np.asarray(net_f(kernel.x_adv))[:, 0] * y > 0
    return {"white_box": white.robust, "kernel_self": kernel.robust, "transfer": transfer,
            "std_white_box": float(white.robust_accuracy), "std_kernel_self": float(kernel.robust_accuracy),
            "std_transfer": float(np.mean(transfer)), "eval_iters": p.eval_iters}


CIFAR_COLUMNS = ["t", "cos sim", "clean net", "clean NTK", "agreement", "net white-box", "net NTK-attack",
                 "NTK own attack"]


def cifar_rows(p: Params, run: CifarRun) -> list:
    c = run.curves
    j = c.eps_index(p.headline_eps_255 / 255)
    return [[f"{t:.3g}", cs, a_n, a_k, ag, wb, tr, ks]
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
    return transfer.evaluate_transfer(net, kernel, mnist.x_test, mnist.y_test, p.mnist_eps, pgd_eps=p.mnist_pgd_eps,
                                      pgd_steps=p.pgd_steps, progress=p.progress, description="MNIST: network vs NTK")


MNIST_COLUMNS = ["eps", "attack", "net white-box", "net NTK-attack", "NTK own attack"]


def mnist_values(p: Params, curves) -> tuple:
    """``(glued values, table rows)`` of the MNIST run (final checkpoint, every radius)."""
    v = {"mnist_t_final": curves.times[-1], "mnist_cos_sim_final": curves.cos_sim_mean[-1],
         "mnist_clean_acc_net": curves.clean_acc_net[-1], "mnist_clean_acc_kernel": curves.clean_acc_kernel[-1],
         "mnist_agreement_final": curves.agreement[-1]}
    rows = []
    for e in p.mnist_eps:
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


def width_sweep(p: Params, cifar, run: CifarRun) -> list:
    """fc1 networks of ``sweep_widths`` trained for ``sweep_steps`` (the main run reused at its
    width), attacked at the headline radius: one ``TransferCurves`` per width."""
    return transfer.width_sweep(fc1, p.sweep_widths, run.kernels["fc1"], cifar.x_test, cifar.y_test, run.lr,
                                p.sweep_steps, [p.headline_eps_255 / 255], attacks=["fgsm"], seed=p.seed,
                                pretrained={p.cifar_width: run.net}, progress=p.progress)


SWEEP_COLUMNS = ["width", "weight change", "output distance", "cos sim", "clean net", "net white-box",
                 "net NTK-attack", "NTK own attack"]


def sweep_values(p: Params, sweep: list) -> tuple:
    """``(table rows, glued values)`` of the width sweep (narrowest / widest network, NTK-attack range)."""
    rows = []
    for r in sweep:
        f = r.final(p.headline_eps_255 / 255, "fgsm")
        rows.append([r.info["width"], f["relative_weight_change"], f["output_rel_distance"], f["cos_sim_mean"],
                     f["clean_acc_net"], f["robust_acc_net_by_net"], f["robust_acc_net_by_kernel"],
                     f["robust_acc_kernel_by_kernel"]])
    v = {"sweep_t": sweep[0].times[-1], "sweep_cos_narrowest": rows[0][3], "sweep_cos_widest": rows[-1][3],
         "sweep_width_narrowest": rows[0][0], "sweep_width_widest": rows[-1][0],
         "sweep_gap_narrowest": rows[0][6] - rows[0][5], "sweep_gap_widest": rows[-1][6] - rows[-1][5],
         "sweep_white_box_narrowest": rows[0][5], "sweep_white_box_widest": rows[-1][5],
         "sweep_kernel_self": rows[0][7], "sweep_ntk_min": min(r[6] for r in rows),
         "sweep_ntk_max": max(r[6] for r in rows)}
    return rows, v


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
             f"FGSM eps = {p.headline_eps_255:g}/255"]
    for name in ("cos_sim_mean", "clean_acc_net", "clean_acc_kernel", "robust_acc_net_by_net",
                 "robust_acc_net_by_kernel"):
        lines.append(f"  {name:26s} {final[name]:.2f}")
    lines.append("width sweep (width, cos sim, white-box, NTK attack):")
    for row in sweep_rows:
        lines.append(f"  {row[0]:6d} {row[3]:.2f} {row[5]:.2f} {row[6]:.2f}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------- claims
#
# Thresholds (issue 13), fixed before measuring: tsilivis2022ntk, Sec. 3 and Fig. 4 (bottom),
# report that attacks generated on the NTK predictor produce "a similar drop in accuracy
# throughout training as the networks 'own' white-box attacks, eventually driving robust
# accuracy to 0%" (CIFAR-10 car vs plane; MNIST in their Appendix, "similar conclusions").
# "Driven to 0%" is read as: the network's accuracy under the transferred NTK attack falls below
# 0.1 (at most one test point in ten survives) — on CIFAR-10 at the headline radius (FGSM, final
# checkpoint) and on MNIST at the largest FGSM radius. Wilson intervals on the attacked test
# points (one network). "Similar to white-box" would need the per-point results of both attacks
# for a paired interval; it is not a claim here yet.

# * ``ch01.as_effective_as_white_box`` (issue 15) — Sec. 3: the kernel attack is "as effective as"
#   the white-box attack in the lazy regime. Read as: the network's accuracy on the kernel's
#   worst-case points (standard evaluation of the kernel predictor) exceeds its accuracy under the
#   white-box standard evaluation by less than 0.05 (five test points in a hundred: "as effective"
#   leaves no room for a larger gap). Paired bootstrap over the test points (same points, same
#   network), final checkpoint, headline radius.

#: The thresholds above (direction, threshold).
CLAIM_THRESHOLDS = {"ch01.ntk_transfer_cifar": ("less", 0.1), "ch01.ntk_transfer_mnist": ("less", 0.1),
                    "ch01.as_effective_as_white_box": ("less", 0.05)}


def claims(p: Params, run: CifarRun, mnist_curves, std: dict | None = None) -> list:
    """The chapter's claims (:class:`ntknb.claims.Claim`; thresholds in the comment above
    :data:`CLAIM_THRESHOLDS`): the network's accuracy under the NTK-transfer FGSM attack on
    CIFAR-10 (headline radius) and on MNIST (largest radius), final checkpoints; given ``std``
    (:func:`standard_study`), transfer against white-box under the standard evaluation."""
    from ntknb import stats
    from ntknb.claims import Claim

    cifar = run.curves.final(p.headline_eps_255 / 255, "fgsm")["robust_acc_net_by_kernel"]
    e_mnist = max(p.mnist_eps)
    mnist = mnist_curves.final(e_mnist, "fgsm")["robust_acc_net_by_kernel"]
    th = CLAIM_THRESHOLDS
    words = "kernel-generated attacks ... eventually driving robust accuracy to 0%"
    out = []
    for cid, acc, n, where, scale in [
        ("ch01.ntk_transfer_cifar", cifar, p.cifar_n_test, "Sec. 3, Fig. 4 (bottom)",
         f"CIFAR-10 airplane vs automobile, {p.cifar_n_train} train, fc1 width {p.cifar_width}, "
         f"{p.cifar_train_steps} GD steps, FGSM eps {p.headline_eps_255:g}/255"),
        ("ch01.ntk_transfer_mnist", mnist, p.mnist_n_test, "Sec. 3 and Appendix (MNIST)",
         f"MNIST 10 classes, {p.mnist_n_train} train, fc1 width {p.mnist_width}, {p.mnist_train_steps} GD steps, "
         f"FGSM eps {e_mnist:g}")]:
        out.append(Claim.from_interval(
            stats.binomial_interval(int(round(float(acc) * n)), n), id=cid, source="tsilivis2022ntk", where=where,
            claim="Adversarial examples of the NTK predictor (no access to the network) drive the trained wide "
                  "network's accuracy to about 0 (below 0.1).",
            paper=words, direction=th[cid][0], threshold=th[cid][1], n_seeds=1, scale=scale))
    if std is not None:
        cid = "ch01.as_effective_as_white_box"
        paired = stats.paired_comparison(std["transfer"], std["white_box"], seed=p.seed)
        out.append(Claim.from_interval(
            paired.difference, id=cid, source="tsilivis2022ntk", where="Sec. 3, Fig. 4 (bottom)",
            claim="The training-free kernel attack is as effective as the white-box attack: the network's accuracy "
                  "on the kernel's worst-case points exceeds its white-box robust accuracy by less than 0.05.",
            paper="as effective as white-box attacks in the lazy regime", direction=th[cid][0],
            threshold=th[cid][1], n_seeds=1, n_test=int(np.size(std["transfer"])),
            scale=f"CIFAR-10, fc1 width {p.cifar_width}, final checkpoint, eps {p.headline_eps_255:g}/255, "
                  f"standard evaluation ({std['eval_iters']} iterations) of network and kernel"))
    return out
