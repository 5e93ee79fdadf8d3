"""BatchNorm evaluation modes and the gap between batch and running statistics.

``li2023rethinking`` (Sec. 2, Theorem 2, and
Sec. 4, Figs. 2-4) compares two ways a trained network with BatchNorm can be evaluated:

* **"w buffer"** — the usual one: at evaluation every BatchNorm layer normalises with
  its *running* (exponential-moving-average) mean and variance, the "buffers" kept
  during training.  Each example is processed independently.
* **"w/o buffer"** — the buffers are dropped: every BatchNorm layer *always* normalises
  with the mean and variance of the current batch, at evaluation and inside the attack
  that generates the adversarial examples (the attack's gradient then flows through the
  batch statistics too).  Predictions depend on the other members of the batch.

Both modes are *apply functions* with the signature of :mod:`ntknb.training`,
``apply_fn(params, state, x, train) -> (logits, new_state)``, so they plug into
:func:`ntknb.training.make_evaluator` and :func:`ntknb.training.fit`, the attacks of
:mod:`ntknb.attacks`, and the empirical-NTK tracker of :mod:`ntknb.ntk_dynamics`
(:class:`BNKernelTracker` adds what batch statistics need there: one block over the whole
probe set, no per-example ``vmap``, and the specialization matrices M_ks).

In training mode (``train=True``) both modes are identical: batch statistics are used
and the running averages updated.  They differ only when ``train=False``.

Theorem 2 bounds the change of a C-Lipschitz f when the normalisation (x − Σ)/Π with
the full-data statistics is replaced by (x − Σ̃_i)/Π̃_i with those of a batch;
:func:`bn_statistics_gap` measures, per BatchNorm layer, the ingredients of that bound
on actual clean and adversarial batches.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, Optional, Sequence

import ntknb  # noqa: F401  (compat shim before neural_tangents)

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from ntknb import adversaries, attacks, metrics, training
from ntknb.ntk_dynamics import KernelTracker

__all__ = [
    "BN_MODES",
    "bn_apply_fn",
    "batch_stats_apply_fn",
    "ModeEvaluator",
    "evaluate_modes",
    "BNKernelTracker",
    "LayerGap",
    "bn_statistics_gap",
    "adversarial_examples",
    "mode_predict",
    "batch_predictions",
    "batch_mode_evaluation",
]

#: Evaluation modes: ``"buffer"`` ("w buffer", running averages) and ``"batch"``
#: ("w/o buffer", statistics of the current batch).
BN_MODES = ("buffer", "batch")


def batch_stats_apply_fn(model: nn.Module) -> Callable:
    """"w/o buffer" apply function: BatchNorm always uses the current batch's statistics.

    ``apply_fn(params, state, x, train) -> (logits (n, k), new_state)``.  The module is
    run with ``train=True`` (flax BatchNorm then normalises with the batch mean and the
    biased batch variance over the N, H, W axes); for ``train=True`` the updated running
    averages are returned as by :func:`ntknb.training.flax_apply_fn`, for ``train=False``
    they are discarded and ``state`` is returned unchanged.  Assumes ``train`` switches
    nothing but BatchNorm (true of :mod:`ntknb.models`).

    Equal (hashable) modules get the same function object (as :func:`ntknb.training.flax_apply_fn`),
    so compiled steps, evaluators and kernel functions keyed on it are reused across seeds.
    """
    try:
        return _batch_stats_apply_fn_cached(model)
    except TypeError:  # an unhashable module: a fresh function
        return _batch_stats_apply_fn(model)


def _batch_stats_apply_fn(model: nn.Module) -> Callable:

    def apply_fn(params, state, x, train):
        variables = {"params": params, **state}
        if not state:  # no BatchNorm: both modes coincide
            return model.apply(variables, x, train=train), state
        logits, updates = model.apply(variables, x, train=True, mutable=list(state))
        return logits, ({**state, **updates} if train else state)

    return apply_fn


_batch_stats_apply_fn_cached = functools.lru_cache(maxsize=64)(_batch_stats_apply_fn)


def bn_apply_fn(model: nn.Module, mode: str) -> Callable:
    """The apply function of ``model`` in BatchNorm ``mode`` (see :data:`BN_MODES`).

    ``"buffer"`` is :func:`ntknb.training.flax_apply_fn` (running averages at evaluation);
    ``"batch"`` is :func:`batch_stats_apply_fn` (batch statistics always).
    """
    if mode not in BN_MODES:
        raise ValueError(f"mode must be one of {BN_MODES}; got {mode!r}")
    return training.flax_apply_fn(model) if mode == "buffer" else batch_stats_apply_fn(model)


# ----------------------------------------------------------------------------- accuracies


_EVALUATORS: dict = {}


def _evaluator(model, mode, eps, steps, batch_size):
    """:func:`ntknb.training.make_evaluator` for ``model`` in ``mode``, one per setting
    (reused across runs of the same model object: compiled once)."""
    key = (id(model), mode, eps, steps, batch_size)
    if key not in _EVALUATORS or _EVALUATORS[key][0] is not model:
        _EVALUATORS[key] = (model, training.make_evaluator(bn_apply_fn(model, mode), eps, steps, batch_size))
    return _EVALUATORS[key][1]


class ModeEvaluator:
    """Training callback: clean and PGD accuracy of the current network in each BN mode.

    For every tracked epoch and every ``(split, mode)`` it runs
    :func:`ntknb.training.make_evaluator` with the mode's apply function: BatchNorm uses
    running averages ("buffer") or the statistics of each evaluation batch of
    ``batch_size`` examples ("batch"), in the clean forward pass and in every PGD step.
    Both modes use the same PGD random starts (same key per split and epoch).

    Args:
      model: the flax module being trained.
      splits: ``{name: (x (n, H, W, C), labels (n,))}``, e.g. ``{"train": ..., "test": ...}``;
        ``n`` must be a multiple of ``batch_size`` (all BN batches the same size).
      eps, steps: l∞ radius and number of PGD steps (α = 2.5·eps/steps, random start).
      batch_size: evaluation (and, in "batch" mode, normalisation) batch size.
      epochs: epochs to evaluate (``None``: all, including 0 = initialisation).
      seed: seeds the PGD random starts.

    After training, :attr:`history` is ``{(split, mode): {"epoch": [...], "clean": [...],
    "robust": [...]}}``; :meth:`curves` returns arrays.
    """

    def __init__(self, model, splits: dict, eps: float, steps: int, batch_size: int = 100,
                 epochs: Optional[Sequence[int]] = None, modes: Sequence[str] = BN_MODES, seed: int = 0):
        for mode in modes:
            if mode not in BN_MODES:
                raise ValueError(f"modes must be a subset of {BN_MODES}; got {mode!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1; got {batch_size!r}")
        self.splits = {}
        for name, (x, labels) in splits.items():
            x, labels = np.asarray(x, np.float32), np.asarray(labels)
            if x.shape[0] != labels.shape[0] or x.shape[0] % batch_size:
                raise ValueError(f"split {name!r}: need len(x) == len(labels), a multiple of "
                                 f"batch_size={batch_size}; got {x.shape[0]} and {labels.shape[0]}")
            self.splits[name] = (x, labels)
        self.modes = tuple(modes)
        self.epochs = None if epochs is None else set(int(e) for e in epochs)
        self.seed = int(seed)
        self.evaluators = {m: _evaluator(model, m, float(eps), int(steps), int(batch_size)) for m in self.modes}
        self.history = {(s, m): {"epoch": [], "clean": [], "robust": []} for s in self.splits for m in self.modes}

    def __call__(self, epoch: int, params: Any, state: dict) -> None:
        if self.epochs is not None and epoch not in self.epochs:
            return
        for s_idx, (name, (x, labels)) in enumerate(self.splits.items()):
            key = jax.random.fold_in(jax.random.fold_in(jax.random.PRNGKey(self.seed), epoch), s_idx)
            for mode in self.modes:
                clean, robust = self.evaluators[mode](params, state, x, labels, key)
                h = self.history[(name, mode)]
                h["epoch"].append(int(epoch))
                h["clean"].append(clean)
                h["robust"].append(robust)

    def curves(self, split: str, mode: str) -> dict:
        """``{"epoch", "clean", "robust"}`` arrays of ``split`` in ``mode``."""
        return {k: np.asarray(v) for k, v in self.history[(split, mode)].items()}


def evaluate_modes(model, params, state, x, labels, eps: float, steps: int, batch_size: int,
                   modes: Sequence[str] = BN_MODES, seed: int = 0) -> dict:
    """``{mode: (clean_acc, robust_acc)}`` of a trained network at one evaluation
    ``batch_size`` (see :class:`ModeEvaluator`; ``len(x)`` a multiple of ``batch_size``)."""
    ev = ModeEvaluator(model, {"x": (x, labels)}, eps, steps, batch_size=batch_size, modes=modes, seed=seed)
    ev(0, params, state)
    return {m: (ev.history[("x", m)]["clean"][0], ev.history[("x", m)]["robust"][0]) for m in modes}


# ---------------------------------------------------------------------- kernels (M_ks)


class BNKernelTracker(KernelTracker):
    """:class:`ntknb.ntk_dynamics.KernelTracker` for a BatchNorm mode, keeping M_ks.

    In ``"batch"`` mode the network's output on an example depends on the rest of the
    batch, so the empirical NTK is taken of the map θ ↦ f_θ(X_probe) with the *whole*
    probe set as one batch (``vmap_axes=None``, one block) — the kernel of the "w/o
    buffer" network, whose Jacobians include the dependence through the batch
    statistics; the probe PGD (of the parent class) also runs with batch statistics.
    In ``"buffer"`` mode the kernel is the usual per-example one.

    Besides the parent's metrics it stores the kernel specialization matrices
    (:func:`ntknb.metrics.specialization_matrix`, ``li2023rethinking`` Figs. 3-4):
    :attr:`ks_matrices` ``[epoch][name]`` with names ``"clean.CL"`` (C-NTK, clean
    labels), ``"adv.CL"`` and ``"adv.AL"`` (AE-NTK under clean labels and under the
    network's predictions on the adversarial probe images), each (k, k).

    Args:
      model: the flax module; mode: ``"buffer"`` or ``"batch"``; other arguments as
        :class:`ntknb.ntk_dynamics.KernelTracker`.
    """

    def __init__(self, model, mode: str, x_probe, labels_probe, eps: float, **kwargs):
        if mode not in BN_MODES:
            raise ValueError(f"mode must be one of {BN_MODES}; got {mode!r}")
        self.mode = mode
        if mode == "batch":
            kwargs["batch_size"] = None
        super().__init__(bn_apply_fn(model, mode), x_probe, labels_probe, eps, **kwargs)
        if mode == "batch":
            self.vmap_axes = None
        self.ks_matrices: dict[int, dict[str, np.ndarray]] = {}
        self._pending: list = []

    def full_kernel(self, params, state, x) -> np.ndarray:
        """The empirical NTK in this BN mode, (n, n, k, k)
        (:meth:`ntknb.ntk_dynamics.KernelTracker.full_kernel`, which the parent's per-epoch call and
        :meth:`per_logit_kernel` use); also keeps its diagonal blocks Θ^{i,i} (n, n, k), with the
        network's predictions on ``x``, for the M_ks matrices of this epoch."""
        full = super().full_kernel(params, state, x)
        preds = np.asarray(adversaries.predicted_class(self.apply_fn(params, state, jnp.asarray(x), False)[0]))
        self._pending.append((np.diagonal(full, axis1=2, axis2=3), preds))
        return full

    def __call__(self, epoch: int, params: Any, state: dict) -> None:
        self._pending = []
        super().__call__(epoch, params, state)
        if not self._pending:
            return
        labels = self.labels.astype(np.int64)
        out = {"clean.CL": metrics.specialization_matrix(self._pending[0][0], labels)}
        if len(self._pending) > 1:
            blocks, preds = self._pending[1]
            out["adv.CL"] = metrics.specialization_matrix(blocks, labels)
            out["adv.AL"] = metrics.specialization_matrix(blocks, preds.astype(np.int64))
        self.ks_matrices[int(epoch)] = out
        self._pending = []


# ---------------------------------------------------------- Theorem 2: statistics gap


@dataclasses.dataclass
class LayerGap:
    """Per-BatchNorm-layer distance between batch and running statistics.

    Every attribute is an array of shape (L,), one entry per BatchNorm layer in the
    order the forward pass calls them (depth), averaged over the batches:

    * ``mean_shift``: rms over channels of (μ_B − μ_R) / σ_R;
    * ``log_std_ratio``: rms over channels of log(σ_B / σ_R);
    * ``norm_gap``: rms over the batch's activations of
      (x − μ_B)/σ_B − (x − μ_R)/σ_R — how much the normalised activation (the argument
      of f in Theorem 2) changes when the running statistics (μ_R, σ_R²) are replaced by
      the batch's (μ_B, σ_B²), in units of a normalised activation;

    with σ² including BatchNorm's ε.  ``names`` are the layers' module paths.
    """

    names: list
    mean_shift: np.ndarray
    log_std_ratio: np.ndarray
    norm_gap: np.ndarray


def _lookup(tree: dict, path: Sequence[str]) -> dict:
    for p in path:
        tree = tree[p]
    return tree


def bn_statistics_gap(model: nn.Module, params, state: dict, x, batch_size: int) -> LayerGap:
    """Distance between each BatchNorm layer's batch statistics and its running averages.

    The network is run in "w/o buffer" mode (batch statistics everywhere, as the network
    evaluated without buffers sees them) on consecutive batches of ``batch_size`` of
    ``x`` (n, H, W, C) (``n`` a multiple of ``batch_size``); at each BatchNorm layer the
    mean and variance of its input over (N, H, W) are compared with the layer's running
    averages in ``state["batch_stats"]``. See :class:`LayerGap` for the measures.
    """
    x = jnp.asarray(x, jnp.float32)
    if x.shape[0] % batch_size or x.shape[0] == 0:
        raise ValueError(f"len(x)={x.shape[0]} must be a positive multiple of batch_size={batch_size}")
    if "batch_stats" not in state:
        raise ValueError("state has no 'batch_stats' collection: the model has no BatchNorm layer")
    fn, names = _gap_fn(model)
    vals = np.mean([np.asarray(fn(params, state, x[i:i + batch_size])) for i in range(0, x.shape[0], batch_size)],
                   axis=0)
    return LayerGap(names=list(names), mean_shift=vals[:, 0], log_std_ratio=vals[:, 1], norm_gap=vals[:, 2])


_GAP_FNS: dict = {}


def _gap_fn(model):
    """Jitted ``(params, state, x_batch) -> (L, 3)`` statistics gaps of ``model`` and the
    list the layer names are written into at tracing (one per model object)."""
    if id(model) in _GAP_FNS and _GAP_FNS[id(model)][0] is model:
        return _GAP_FNS[id(model)][1:]
    names: list = []

    @jax.jit
    def one_batch(params, state, xb):
        rows = []
        running = state["batch_stats"]

        def interceptor(next_fun, args, kwargs, context):
            mod = context.module
            if isinstance(mod, nn.BatchNorm) and context.method_name == "__call__":
                h = args[0]
                axes = tuple(range(h.ndim - 1))
                stats = _lookup(running, mod.path)
                mu_r, var_r = stats["mean"], stats["var"] + mod.epsilon
                mu_b = jnp.mean(h, axes)
                var_b = jnp.var(h, axes) + mod.epsilon
                sd_r, sd_b = jnp.sqrt(var_r), jnp.sqrt(var_b)
                gap = (h - mu_b) / sd_b - (h - mu_r) / sd_r
                rows.append(("/".join(mod.path),
                             jnp.sqrt(jnp.mean(((mu_b - mu_r) / sd_r) ** 2)),
                             jnp.sqrt(jnp.mean(jnp.log(sd_b / sd_r) ** 2)),
                             jnp.sqrt(jnp.mean(gap**2))))
            return next_fun(*args, **kwargs)

        with nn.intercept_methods(interceptor):
            model.apply({"params": params, **state}, xb, train=True, mutable=list(state))
        names[:] = [r[0] for r in rows]
        return jnp.stack([jnp.stack(r[1:]) for r in rows])  # (L, 3)

    _GAP_FNS[id(model)] = (model, one_batch, names)
    return one_batch, names


_ATTACK_FNS: dict = {}


def adversarial_examples(model, mode: str, params, state, x, labels, eps: float, steps: int,
                         batch_size: int, seed: int = 0) -> np.ndarray:
    """PGD examples (:func:`ntknb.attacks.pgd`, α = 2.5·eps/steps, random start) against
    the network in BatchNorm ``mode``, batch by batch (``batch_size``; in "batch" mode the
    attack moves the batch statistics too). Returns (n, H, W, C)."""
    key_ = (id(model), mode, float(eps), int(steps))
    if key_ not in _ATTACK_FNS or _ATTACK_FNS[key_][0] is not model:
        apply_fn = bn_apply_fn(model, mode)
        alpha = adversaries.pgd_step_size(eps, steps)

        @jax.jit
        def attack(params, state, xb, yb, key):
            ce = adversaries.network_loss(apply_fn, params, state)
            return attacks.pgd(ce, xb, yb, eps, step_size=alpha, steps=steps, random_start=True, key=key)

        _ATTACK_FNS[key_] = (model, attack)
    attack = _ATTACK_FNS[key_][1]
    x = jnp.asarray(x, jnp.float32)
    y = jnp.asarray(labels)
    key = jax.random.PRNGKey(seed)
    out = [attack(params, state, x[i:i + batch_size], y[i:i + batch_size], jax.random.fold_in(key, i))
           for i in range(0, x.shape[0], batch_size)]
    return np.asarray(jnp.concatenate(out))


# ------------------------------------------------ predictions and the standard evaluation


@functools.lru_cache(maxsize=64)
def _mode_predict(apply_fn: Callable) -> Callable:
    def predict(ps, x):
        return apply_fn(ps[0], ps[1], x, False)[0]

    return predict


def mode_predict(model: nn.Module, mode: str) -> Callable:
    """``predict(ps, x) -> logits (b, k)`` of ``model`` in BatchNorm ``mode``, with
    ``ps = (params, state)``: the ``predict`` / ``params`` pair of
    :func:`ntknb.evaluation.robust_evaluation`, e.g.
    ``robust_evaluation(mode_predict(model, "buffer"), x, y, eps, params=(params, state))``.
    One function object per (model, mode), so every trained network of one model shares one
    compilation of the attacks. (In ``"batch"`` mode the logits depend on the whole batch: see
    :func:`batch_mode_evaluation`.)"""
    return _mode_predict(bn_apply_fn(model, mode))


@functools.lru_cache(maxsize=64)
def _predicted_class_fn(apply_fn: Callable) -> Callable:
    return jax.jit(lambda params, state, xb: adversaries.predicted_class(apply_fn(params, state, xb, False)[0]))


def batch_predictions(model: nn.Module, mode: str, params, state: dict, x, batch_size: int) -> np.ndarray:
    """Predicted classes ``(n,)`` of the network in BatchNorm ``mode`` on consecutive batches
    of ``batch_size`` of ``x`` (``n`` a positive multiple of ``batch_size``): in ``"batch"``
    mode every batch is normalised with its own statistics."""
    x = jnp.asarray(x, jnp.float32)
    if x.shape[0] == 0 or x.shape[0] % batch_size:
        raise ValueError(f"len(x)={x.shape[0]} must be a positive multiple of batch_size={batch_size}")
    fn = _predicted_class_fn(bn_apply_fn(model, mode))
    return np.concatenate([np.asarray(fn(params, state, x[i:i + batch_size]))
                           for i in range(0, x.shape[0], batch_size)])


def _batch_seed(seed: int, i: int) -> int:
    return int(np.random.SeedSequence([int(seed), int(i)]).generate_state(1)[0]) % 2**31


def batch_mode_evaluation(model: nn.Module, params, state: dict, x, labels, eps: float, batch_size: int, *,
                          seed: int = 0, **kwargs: Any):
    """The standard robustness evaluation (:func:`ntknb.evaluation.robust_evaluation`: APGD-CE,
    APGD-DLR and PGD, worst case per example) of the network in ``"batch"`` mode ("w/o
    buffer"), one evaluation batch at a time.

    Without buffers a prediction depends on the rest of the batch, which
    :func:`~ntknb.evaluation.robust_evaluation` does not assume (it regroups the examples it
    still attacks into chunks). Here every consecutive batch of ``batch_size`` examples of
    ``x`` (``n`` a positive multiple of ``batch_size``) gets its own call, with
    ``skip_broken=False``: the clean pass normalises with the statistics of exactly that batch,
    and every attack perturbs the batch's examples together, each example's gradient flowing
    through the batch statistics (the white-box attack on the "w/o buffer" network). Two
    departures from the exact batch follow from ``robust_evaluation`` attacking only the
    correctly classified examples: during the attacks the batch's misclassified examples
    (already counted as errors) are replaced by copies of its last correctly classified one;
    and for ``batch_size`` above 255 a mostly misclassified batch may be attacked in a smaller
    chunk (its padding rule). An example is robust if it is correct in its clean batch and no
    iterate of any attack misclassifies it: the worst case per example, as in
    ``robust_evaluation``, so the attack may use a different perturbation of the batch for each
    example it breaks.

    Args:
      model, params, state: the network (``state`` with its ``batch_stats``, which this mode
        does not use).
      x: ``(n, H, W, C)`` in ``[0, 1]``; labels: ``(n,)`` integer classes; eps: l-inf radius.
      batch_size: the evaluation batch.
      seed: batch ``i`` is evaluated with a seed derived from ``(seed, i)``.
      kwargs: further arguments of ``robust_evaluation`` (``n_iter``, ``n_restarts``,
        ``pgd_steps``, ...; not ``skip_broken``, ``batch_size``, ``params``).

    Returns:
      a :class:`ntknb.evaluation.RobustReport` over the ``n`` examples; ``accuracy_after`` and
      ``attack_accuracy`` are means over the (equal-sized) batches; ``settings`` adds
      ``batch_size`` and ``bn_mode="batch"``.
    """
    from ntknb import evaluation

    bad = sorted(set(kwargs) & {"skip_broken", "batch_size", "params"})
    if bad:
        raise ValueError(f"batch_mode_evaluation sets {bad} itself")
    x = np.asarray(x, np.float32)
    labels = np.asarray(labels)
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1; got {batch_size!r}")
    if x.shape[0] == 0 or x.shape[0] % batch_size or labels.shape != (x.shape[0],):
        raise ValueError(f"need len(x) == len(labels), a positive multiple of batch_size={batch_size}; got "
                         f"{x.shape[0]} and {labels.shape}")
    predict = mode_predict(model, "batch")
    reports = [evaluation.robust_evaluation(predict, x[i:i + batch_size], labels[i:i + batch_size], eps,
                                            seed=_batch_seed(seed, i // batch_size), skip_broken=False,
                                            batch_size=batch_size, params=(params, state), **kwargs)
               for i in range(0, x.shape[0], batch_size)]
    r0 = reports[0]
    robust = np.concatenate([r.robust for r in reports])
    return evaluation.RobustReport(
        eps=r0.eps, n=int(x.shape[0]), k=r0.k,
        clean_accuracy=float(np.mean([r.clean_accuracy for r in reports])),
        robust_accuracy=float(robust.mean()), attacks=r0.attacks,
        accuracy_after={a: float(np.mean([r.accuracy_after[a] for r in reports])) for a in r0.accuracy_after},
        attack_accuracy={a: (None if r0.attack_accuracy[a] is None
                             else float(np.mean([r.attack_accuracy[a] for r in reports])))
                         for a in r0.attack_accuracy},
        robust=robust, margin=np.concatenate([r.margin for r in reports]),
        x_adv=np.concatenate([r.x_adv for r in reports]),
        broken_by=np.concatenate([r.broken_by for r in reports]),
        settings={**r0.settings, "seed": int(seed), "batch_size": int(batch_size), "bn_mode": "batch"},
    )
