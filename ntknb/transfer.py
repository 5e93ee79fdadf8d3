"""Transfer of NTK ("training-free") adversarial examples to wide networks.

``tsilivis2022ntk``, Sec. 3 and Fig. 4: a wide network in NTK parameterisation,
trained by full-batch gradient descent with a small learning rate on
``L = ½·mean((f - y)²)`` (the "lazy" regime), is compared along training with the
kernel predictor of Eq. (7) *at the same time* ``t = steps × learning_rate``:

* clean accuracy of both, and how often they predict the same class;
* per test point, the cosine similarity between the input gradient of the loss of the
  network and of the kernel predictor (Fig. 4 top);
* robust accuracy of the network under its own white-box FGSM / PGD and under the same
  attacks computed from the kernel predictor alone (Eq. (8), the kernel attack; Fig. 4
  bottom), and of the kernel machine under its own attack.

The network compared with Eq. (7) is the **centred** network ``g_θ(x) = f_θ(x) - f_θ0(x)``
(footnote 2 of the paper): Eq. (7) is the *mean* over initialisations, whereas ``f_θ0``
is a random function of order one at any width. With ``centre=True`` (default) the
network is also *trained* as ``g_θ`` — gradient descent on ``½·mean((f_θ(X) - f_θ0(X) - Y)²)``,
i.e. ``f_θ`` fitted to the shifted targets ``Y + f_θ0(X)`` — so that as width → ∞ its
outputs converge to Eq. (7) exactly (Lee et al. 2019, linearised dynamics with f_0 = 0),
and the model that is attacked (white-box or by transfer) is ``g_θ``. With ``centre=False``
the plain network ``f_θ`` is trained and attacked (its initial function then stays in
the predictions and the match with Eq. (7) is only up to that random function).

Losses: binary tasks (labels ±1, shape ``(n, 1)``) use the logistic loss
:func:`ntknb.attacks.binary_cross_entropy_pm1` on the scalar output, so the kernel FGSM is
exactly Eq. (8), ``x̃ = x - y·eps·sign(∇ₓ f_t(x))``; multi-class tasks (centred one-hot)
use softmax cross-entropy :func:`ntknb.attacks.cross_entropy` on the k outputs.

Everything here is built from the shared pieces: :class:`ntknb.kernel_machines.KernelModel`
(the kernel predictor of an architecture on a task, of gradient flow or of discrete gradient
descent), :func:`ntknb.lazy.train_network` (the centred wide network trained by full-batch
gradient descent), :mod:`ntknb.kernels` (Gram matrices, batched jitted
:func:`~ntknb.kernels.predictor_input_gradients`) and :mod:`ntknb.attacks` (FGSM / PGD and
the kernel attack).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any, Callable

import ntknb  # noqa: F401  (compat shim before neural_tangents)

import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from ntknb import attacks as A
from ntknb import kernels as K
from ntknb.architectures import Architecture
from ntknb.kernel_machines import KernelModel, loss_name_for
from ntknb.lazy import TrainedNetwork, train_network

__all__ = [
    "ATTACKS",
    "TransferCurves",
    "cosine_similarity",
    "evaluate_transfer",
    "kernel_attack",
    "network_attack",
    "width_sweep",
    "cross_architecture",
]

#: Attacks evaluated by :func:`evaluate_transfer`.
ATTACKS = ("fgsm", "pgd")


# --------------------------------------------------------------------------- helpers


def cosine_similarity(a, b, eps: float = 1e-30) -> np.ndarray:
    """Per-example cosine similarity of ``a`` and ``b`` (both ``(n, ...)``), flattened: ``(n,)``.

    A row where either vector is exactly zero gets ``nan`` (the angle is undefined).
    """
    a = np.asarray(a, np.float64).reshape(np.shape(a)[0], -1)
    b = np.asarray(b, np.float64).reshape(np.shape(b)[0], -1)
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same shape; got {a.shape} and {b.shape}")
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.sum(a * b, axis=1) / (na * nb)
    out[(na <= eps) | (nb <= eps)] = np.nan
    return out


# --------------------------------------------------------------------------- kernel side


def kernel_attack(kernel: KernelModel, t: float, x, y, eps: float, attack: str = "fgsm",
                  pgd_steps: int = 10, predict_fn: Callable | None = None, **kwargs) -> jnp.ndarray:
    """The kernel (training-free) attack of ``tsilivis2022ntk``, Eq. (8).

    FGSM (or PGD) on the loss of the kernel predictor ``f_t`` at time ``t`` — a thin use of
    :func:`ntknb.attacks.kernel_fgsm` / :func:`ntknb.attacks.kernel_pgd`. For binary labels
    FGSM gives ``x̃ = x - y·eps·sign(∇ₓ f_t(x))`` (then clipped to [0, 1]). Needs only the
    architecture (through its kernel) and the training data.

    Args:
      kernel: a :class:`KernelModel`. t: training time. x: ``(m, ...)``; y: ``(m, k)``.
      eps: l∞ radius. attack: ``"fgsm"`` or ``"pgd"``. pgd_steps: PGD iterations.
      predict_fn: ``kernel.predict_fn(t)`` if already built (reuses its compilation).
      kwargs: passed to the attack (``clip``, ``batch_size``, ``step_size``...).
    """
    if attack not in ATTACKS:
        raise ValueError(f"attack must be one of {list(ATTACKS)}; got {attack!r}")
    f_t = kernel.predict_fn(t) if predict_fn is None else predict_fn
    loss = loss_name_for(y)
    if attack == "fgsm":
        return A.kernel_fgsm(f_t, x, y, eps, loss=loss, **kwargs)
    return A.kernel_pgd(f_t, x, y, eps, loss=loss, steps=pgd_steps, **kwargs)


# --------------------------------------------------------------------------- network side


def network_attack(net: TrainedNetwork, i: int, x, y, eps: float, attack: str = "fgsm",
                   pgd_steps: int = 10, predict_fn: Callable | None = None, **kwargs) -> jnp.ndarray:
    """White-box FGSM / PGD on the network at checkpoint ``i`` (full access to its weights).

    ``predict_fn``: ``x -> outputs`` (default ``net.predict_fn(i)``), or, with ``params=`` among
    the ``kwargs``, ``(params, x) -> outputs`` (:func:`ntknb.attacks.pgd`: one compilation for
    every checkpoint and network of one form)."""
    if attack not in ATTACKS:
        raise ValueError(f"attack must be one of {list(ATTACKS)}; got {attack!r}")
    f = net.predict_fn(i) if predict_fn is None else predict_fn
    loss_fn = A.predictor_loss(f, loss_name_for(y))
    if attack == "fgsm":
        return A.fgsm(loss_fn, x, y, eps, **kwargs)
    return A.pgd(loss_fn, x, y, eps, steps=pgd_steps, **kwargs)


# --------------------------------------------------------------------------- evaluation


def _predicted_class(f) -> np.ndarray:
    f = np.asarray(f)
    return (f[:, 0] > 0).astype(int) if f.shape[1] == 1 else np.argmax(f, axis=1)


@dataclasses.dataclass(frozen=True)
class TransferCurves:
    """Network vs kernel predictor along training (one row per checkpoint).

    Attributes:
      steps, times: ``(c,)`` checkpoint steps and ``t = step × η``.
      eps: ``(e,)`` l∞ radii.
      train_loss_net, train_loss_kernel: ``(c,)`` ½·mean((f - Y)²) on the training set.
      clean_acc_net, clean_acc_kernel: ``(c,)`` test accuracy.
      agreement: ``(c,)`` fraction of test points where both predict the same class.
      output_rel_distance: ``(c,)`` ``‖g(X_test) - f_t(X_test)‖ / ‖f_t(X_test)‖``.
      cos_sim: ``(c, m)`` per-test-point cosine similarity of ∇ₓL of network and kernel.
      robust_acc: mapping ``(model, source, attack) -> (c, e)`` accuracy of ``model``
        (``"net"`` or ``"kernel"``) on adversarial examples computed from ``source``
        (``"net"``: white-box on the network; ``"kernel"``: Eq. (8) from the kernel) with
        ``attack`` in :data:`ATTACKS`. ``("kernel", "net", ·)`` is not computed.
      relative_weight_change: ``(c,)`` ``‖θ_t - θ_0‖ / ‖θ_0‖``.
      info: settings (network, kernel, width, η, centre, n_train, n_test, loss, ...).
    """

    steps: np.ndarray
    times: np.ndarray
    eps: np.ndarray
    train_loss_net: np.ndarray
    train_loss_kernel: np.ndarray
    clean_acc_net: np.ndarray
    clean_acc_kernel: np.ndarray
    agreement: np.ndarray
    output_rel_distance: np.ndarray
    cos_sim: np.ndarray
    robust_acc: Mapping[tuple, np.ndarray]
    relative_weight_change: np.ndarray
    info: Mapping[str, Any]

    @property
    def cos_sim_mean(self) -> np.ndarray:
        """``(c,)`` mean over test points (ignoring undefined ones)."""
        return np.nanmean(self.cos_sim, axis=1)

    @property
    def cos_sim_std(self) -> np.ndarray:
        return np.nanstd(self.cos_sim, axis=1)

    def cos_sim_quantiles(self, q=(0.1, 0.5, 0.9)) -> np.ndarray:
        """``(len(q), c)`` quantiles over test points."""
        return np.nanquantile(self.cos_sim, q, axis=1)

    def robust(self, model: str, source: str, attack: str) -> np.ndarray:
        """``(c, e)`` robust accuracy; see ``robust_acc``."""
        key = (model, source, attack)
        if key not in self.robust_acc:
            raise ValueError(f"(model, source, attack) must be one of {sorted(self.robust_acc)}; got {key!r}")
        return self.robust_acc[key]

    def eps_index(self, eps: float) -> int:
        """Index of ``eps`` in the grid (to 1e-9)."""
        hits = np.flatnonzero(np.abs(self.eps - float(eps)) < 1e-9)
        if not hits.size:
            raise ValueError(f"eps must be one of {self.eps.tolist()}; got {eps!r}")
        return int(hits[0])

    def final(self, eps: float, attack: str = "fgsm") -> dict:
        """Headline numbers at the last checkpoint for one ``eps`` and ``attack``."""
        j = self.eps_index(eps)
        out = {
            "t": float(self.times[-1]),
            "clean_acc_net": float(self.clean_acc_net[-1]),
            "clean_acc_kernel": float(self.clean_acc_kernel[-1]),
            "agreement": float(self.agreement[-1]),
            "cos_sim_mean": float(self.cos_sim_mean[-1]),
            "cos_sim_std": float(self.cos_sim_std[-1]),
            "output_rel_distance": float(self.output_rel_distance[-1]),
            "relative_weight_change": float(self.relative_weight_change[-1]),
        }
        for (model, source, att), acc in self.robust_acc.items():
            if att == attack:
                out[f"robust_acc_{model}_by_{source}"] = float(acc[-1, j])
        return out


# Longer than 80 lines of code (tests/test_structure.py): one table of attacks x radii x checkpoints,
# its nested loops share the adversarial points of each cell (white-box, transferred, kernel on kernel).
def evaluate_transfer(net: TrainedNetwork, kernel: KernelModel, x_test, y_test, eps: Sequence[float],
                      attacks: Sequence[str] = ATTACKS, pgd_steps: int = 10,
                      pgd_eps: Sequence[float] | None = None,
                      checkpoints: Sequence[int] | None = None, white_box: bool = True,
                      kernel_self: bool = True, grad_batch_size: int | None = 256,
                      progress: bool = True, description: str = "network vs NTK") -> TransferCurves:
    """Compare a trained network with the kernel predictor at the same times (Fig. 4).

    For each checkpoint ``i`` (time ``t_i``): clean accuracies and agreement, per-point cosine
    similarity of the input gradients of the loss (kernel side for all test points in one
    batched jitted pass, :func:`ntknb.kernels.predictor_input_gradients`), and for each
    ``eps`` and attack: the network under its own white-box attack, the network under the
    kernel attack of Eq. (8) computed at ``t_i`` (transfer), and the kernel machine under
    its own attack.

    Args:
      net: from :func:`train_network`. kernel: from :meth:`KernelModel.build` (any
        architecture: a different one gives a cross-architecture transfer).
      x_test: ``(m, H, W, C)``; y_test: ``(m, k)`` (same encoding as training).
      eps: l∞ radii (each >= 0). attacks: subset of :data:`ATTACKS`.
      pgd_steps: PGD iterations (step size ``2.5·eps/pgd_steps``, no random start).
      pgd_eps: the radii (a subset of ``eps``) at which PGD is run (default: all of ``eps``;
        PGD costs ``pgd_steps`` gradients); other entries of the PGD rows are ``nan``.
      checkpoints: indices into ``net.run`` to evaluate (default all).
      white_box: also compute the white-box attack on the network.
      kernel_self: also report the kernel machine under its own attack.
    """
    eps = np.asarray([float(e) for e in eps], dtype=float)
    if eps.ndim != 1 or eps.size == 0 or np.any(~np.isfinite(eps)) or np.any(eps < 0):
        raise ValueError(f"eps must be a non-empty list of finite numbers >= 0; got {eps.tolist()}")
    pgd_eps = eps if pgd_eps is None else np.asarray([float(e) for e in pgd_eps], dtype=float)
    if any(not np.any(np.abs(eps - e) < 1e-12) for e in pgd_eps):
        raise ValueError(f"pgd_eps must be a subset of eps={eps.tolist()}; got {pgd_eps.tolist()}")
    attacks = tuple(attacks)
    if not attacks or any(a not in ATTACKS for a in attacks):
        raise ValueError(f"attacks must be a non-empty subset of {list(ATTACKS)}; got {list(attacks)}")
    x_test = jnp.asarray(x_test, jnp.float32)
    y_test = jnp.asarray(y_test, jnp.float32)
    if x_test.shape[0] != y_test.shape[0]:
        raise ValueError(f"x_test and y_test must have the same number of rows; got {x_test.shape[0]} and {y_test.shape[0]}")
    if y_test.shape[1] != kernel.n_outputs or y_test.shape[1] != net.arch.out_dim:
        raise ValueError(f"y_test has {y_test.shape[1]} columns; the network has {net.arch.out_dim} outputs "
                         f"and the kernel was fitted on {kernel.n_outputs}")
    n_ckpt = len(net.run.params)
    idx = list(range(n_ckpt)) if checkpoints is None else [int(i) % n_ckpt for i in checkpoints]
    loss = loss_name_for(y_test)
    labels = _predicted_class(y_test)
    k_test_train = jnp.asarray(K.kernel_matrix(kernel.kernel_fn, x_test, kernel.x_train, kind=kernel.kind))

    def acc(f):
        return float(np.mean(_predicted_class(f) == labels))

    rows = {name: [] for name in ("train_loss_net", "train_loss_kernel", "clean_acc_net", "clean_acc_kernel",
                                  "agreement", "output_rel_distance", "cos_sim", "rwc")}
    keys = []
    for attack in attacks:
        if white_box:
            keys.append(("net", "net", attack))
        keys.append(("net", "kernel", attack))
        if kernel_self:
            keys.append(("kernel", "kernel", attack))
    robust = {k: np.full((len(idx), eps.size), np.nan) for k in keys}

    for row, i in enumerate(tqdm(idx, desc=description, disable=not progress, leave=False)):
        t = float(net.run.times[i])
        g = net.predict_fn(i)
        f_t = kernel.predict_fn(t)
        out_net = np.asarray(g(x_test))
        out_ker = np.asarray(k_test_train @ kernel.weights(t))
        rows["train_loss_net"].append(float(net.run.losses[i]))
        rows["train_loss_kernel"].append(kernel.train_loss(t))
        rows["clean_acc_net"].append(acc(out_net))
        rows["clean_acc_kernel"].append(acc(out_ker))
        rows["agreement"].append(float(np.mean(_predicted_class(out_net) == _predicted_class(out_ker))))
        den = np.linalg.norm(out_ker)
        rows["output_rel_distance"].append(float(np.linalg.norm(out_net - out_ker) / den) if den > 0 else np.nan)
        grad_net = net.loss_gradients(i, x_test, y_test)
        grad_ker = kernel.loss_gradients(t, x_test, y_test, batch_size=grad_batch_size)
        rows["cos_sim"].append(cosine_similarity(grad_net, grad_ker))
        rows["rwc"].append(net.relative_weight_change(i))
        for j, e in enumerate(eps):
            for attack in attacks:
                if attack == "pgd" and not np.any(np.abs(pgd_eps - e) < 1e-12):
                    continue
                x_k = kernel_attack(kernel, t, x_test, y_test, e, attack, pgd_steps, predict_fn=f_t)
                robust[("net", "kernel", attack)][row, j] = acc(g(x_k))
                if kernel_self:
                    robust[("kernel", "kernel", attack)][row, j] = acc(f_t(x_k))
                if white_box:
                    x_n = network_attack(net, i, x_test, y_test, e, attack, pgd_steps, predict_fn=g)
                    robust[("net", "net", attack)][row, j] = acc(g(x_n))

    steps = np.asarray(net.run.steps)[idx]
    info = {
        "network": net.arch.name, "network_description": net.arch.description,
        "width": net.arch.hyperparameters.get("width", net.arch.hyperparameters.get("channels")),
        "kernel": kernel.name, "learning_rate": net.learning_rate, "centre": net.centre,
        "n_train": int(kernel.x_train.shape[0]), "n_test": int(x_test.shape[0]), "loss": loss,
        "pgd_steps": int(pgd_steps), "pgd_eps": pgd_eps.tolist(),
    }
    return TransferCurves(
        steps=steps, times=np.asarray(net.run.times, dtype=float)[idx], eps=eps,
        train_loss_net=np.asarray(rows["train_loss_net"]), train_loss_kernel=np.asarray(rows["train_loss_kernel"]),
        clean_acc_net=np.asarray(rows["clean_acc_net"]), clean_acc_kernel=np.asarray(rows["clean_acc_kernel"]),
        agreement=np.asarray(rows["agreement"]), output_rel_distance=np.asarray(rows["output_rel_distance"]),
        cos_sim=np.stack(rows["cos_sim"]), robust_acc=robust,
        relative_weight_change=np.asarray(rows["rwc"]), info=info,
    )


# --------------------------------------------------------------------------- sweeps


def width_sweep(arch_factory: Callable[[int], Architecture], widths: Sequence[int], kernel: KernelModel,
                x_test, y_test, learning_rate: float, steps: int, eps: Sequence[float],
                attacks: Sequence[str] = ATTACKS, pgd_steps: int = 10, pgd_eps: Sequence[float] | None = None,
                seed: int = 0, centre: bool = True, pretrained: Mapping[int, TrainedNetwork] | None = None,
                progress: bool = True) -> list[TransferCurves]:
    """The transfer at the time ``t = steps × η`` for networks of several widths.

    ``arch_factory(width)`` builds the network (e.g. ``lambda w: get_architecture("fc1",
    width=w)``); every width shares the kernel (width-independent), η, seed and data.
    ``pretrained[width]``, if given, is a network of that width already trained with the same
    η and seed that has a checkpoint at ``steps`` (it is evaluated there instead of being
    retrained). Returns one single-checkpoint :class:`TransferCurves` per width, in order.
    """
    widths = [int(w) for w in widths]
    if not widths or any(w < 1 for w in widths):
        raise ValueError(f"widths must be a non-empty list of positive integers; got {widths}")
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"steps must be a positive integer; got {steps!r}")
    pretrained = dict(pretrained or {})
    out = []
    for w in tqdm(widths, desc="width sweep", disable=not progress, leave=False):
        if w in pretrained:
            net = pretrained[w]
            hits = np.flatnonzero(np.asarray(net.run.steps) == int(steps))
            if not hits.size or not math.isclose(net.learning_rate, float(learning_rate), rel_tol=1e-9):
                raise ValueError(f"pretrained[{w}] must be trained with learning_rate={learning_rate} and have "
                                 f"a checkpoint at step {steps}; it has steps {np.asarray(net.run.steps).tolist()}")
            idx = int(hits[0])
        else:
            net = train_network(arch_factory(w), kernel.x_train, kernel.y_train, learning_rate, [int(steps)],
                                seed=seed, centre=centre, progress=progress, description=f"GD width {w}")
            idx = 0
        out.append(evaluate_transfer(net, kernel, x_test, y_test, eps, attacks=attacks, pgd_steps=pgd_steps,
                                     pgd_eps=pgd_eps, checkpoints=[idx], progress=False))
    return out


def cross_architecture(nets: Mapping[str, TrainedNetwork], kernels: Mapping[str, KernelModel], x_test, y_test,
                       eps: float, attack: str = "fgsm", pgd_steps: int = 10,
                       checkpoints: Mapping[str, int] | None = None) -> dict:
    """Robust accuracy of each network under each architecture's kernel attack (Eq. 8).

    Network ``name`` is evaluated at checkpoint ``checkpoints.get(name, -1)`` (default: its
    last) and every kernel predictor at that checkpoint's time ``t``, so networks trained
    with different learning rates are each compared at their own ``t``.
    Returns ``{"t": {net: t}, "clean": {net: acc}, "white_box": {net: acc},
    "transfer": {net: {kernel: acc}}, "cos_sim": {net: {kernel: mean cosine similarity of
    the loss gradients}}}``.
    """
    if attack not in ATTACKS:
        raise ValueError(f"attack must be one of {list(ATTACKS)}; got {attack!r}")
    checkpoints = dict(checkpoints or {})
    res = {"t": {}, "clean": {}, "white_box": {}, "transfer": {}, "cos_sim": {}}
    for nname, net in nets.items():
        i = int(checkpoints.get(nname, -1)) % len(net.run.params)
        res["t"][nname] = float(net.times[i])
        res["transfer"][nname], res["cos_sim"][nname] = {}, {}
        for j, (kname, kern) in enumerate(kernels.items()):
            c = evaluate_transfer(net, kern, x_test, y_test, [eps], attacks=[attack], pgd_steps=pgd_steps,
                                  checkpoints=[i], white_box=(j == 0), kernel_self=False, progress=False)
            if j == 0:
                res["white_box"][nname] = float(c.robust("net", "net", attack)[-1, 0])
                res["clean"][nname] = float(c.clean_acc_net[-1])
            res["transfer"][nname][kname] = float(c.robust("net", "kernel", attack)[-1, 0])
            res["cos_sim"][nname][kname] = float(c.cos_sim_mean[-1])
    return res
