"""Chapter 05: BatchNorm with and without its buffers (``li2023rethinking`` Secs. 2 and 4,
Props. 1-2, Figs. 2-4).

Per seed, two PGD-AT networks (``madry2018towards``; a BatchNorm ResNet, ``he2016deep``,
``ioffe2015batch``) from the same initialisation, data order and attack starts, one per arm:

* **w buffer** — the usual BatchNorm: batch statistics in the training forward pass, running
  averages (the buffers) at evaluation and in the training attack
  (:func:`ntknb.training.flax_apply_fn`);
* **w/o buffer** — no buffers: every BatchNorm layer always normalises with the statistics of
  the current batch, in the training forward pass, in the training attack and at evaluation
  (:func:`ntknb.batchnorm.batch_stats_apply_fn`), as the paper describes it.

Each network is evaluated on the same test points: clean accuracy, the standard evaluation
(APGD-CE, APGD-DLR, PGD, worst case per example; :func:`ntknb.evaluation.robust_evaluation` for
w buffer, :func:`ntknb.batchnorm.batch_mode_evaluation` on exact evaluation batches for w/o
buffer) and two transfer attacks: the other arm's standard-evaluation points, and PGD points of
the same weights in the other BatchNorm mode. A white-box attack weaker than a transfer attack is
the mark of gradient masking (``carlini2019evaluating``). The robust accuracy of an arm is the
worst case per example over all of them. Also: the per-layer gap between batch and running
statistics (Theorem 2) of the w-buffer network, the w/o-buffer network's accuracy at several
evaluation batch sizes, and the kernel specialization matrices M_ks (``shan2021theory``) of both
arms.

The claims are built from the register ``notebooks/claims/05_bn_buffers.yaml`` (:data:`REGISTER`,
:func:`claim_specs`, ``Claim.from_register``): thresholds, directions, preconditions and their
justification live there, fixed before the runs that judge them. The Fig. 4 claims are
control-differenced (:func:`control_contrast`): the AE-NTK's gap in KS between the arms minus the
C-NTK's.

This module is the chapter's code; ``notebooks/05_bn_buffers.py`` only calls it:
:class:`Params` (the parameter schema), :func:`run_seeds`, the per-seed measurements
(:func:`measurements`), the claims (:func:`claims`), tables and figures.
"""

from __future__ import annotations

import dataclasses
import time
import warnings

import ntknb  # noqa: F401  (compat shim before neural_tangents)

import jax
import numpy as np

from ntknb import batchnorm, ntk_dynamics, replicas, schema, training
from ntknb.claims import REGISTER_DIR, Claim, load_register
from ntknb.validation import SEED_LIMIT

__all__ = ["Params", "ARMS", "KINDS", "POINTS", "train_config", "make_model", "model_size", "SeedRun", "run_seed",
           "run_seeds", "measurements", "control_contrast", "interval", "pooled", "accuracy_rows", "batch_size_rows",
           "ks_rows", "REGISTER", "claim_specs", "conditions", "claims", "abs_interval", "summary_text",
           "ACCURACY_COLUMNS", "BATCH_SIZE_COLUMNS", "SEED_COLUMNS", "headline_values", "plot_accuracy",
           "plot_gaps", "plot_ks", "seed_rows"]

#: The two arms (BatchNorm modes of :mod:`ntknb.batchnorm`) as the page names them.
ARMS = {"buffer": "w buffer", "batch": "w/o buffer"}
#: Kernels of the M_ks matrices: C-NTK under clean labels, AE-NTK under clean / adversarial labels.
KINDS = {"clean.CL": "C-NTK, CL", "adv.CL": "AE-NTK, CL", "adv.AL": "AE-NTK, AL"}
#: The NTK probe is drawn with seed ``seed + PROBE_SEED_OFFSET`` (:func:`probe_set`).
PROBE_SEED_OFFSET = 1000


@dataclasses.dataclass(frozen=True)
class Params(schema.Params):
    """The rules for the parameters of ``notebooks/05_bn_buffers.py`` (the defaults live in its
    ``parameters`` cell; field order = cell order)."""

    seed: int = schema.param(schema.Int(min=0, max=SEED_LIMIT - 1))
    n_seeds: int = schema.param(schema.Int(min=1, max=20))
    dataset: str = schema.param(schema.Choice(["mnist", "cifar10"]))
    downsample: int = schema.param(schema.Int(min=1, max=4))
    n_train: int = schema.param(schema.Int(min=20))
    n_test: int = schema.param(schema.Int(min=10))
    width: int = schema.param(schema.Int(min=1, max=schema.MAX_WIDTH))
    stage_sizes: list = schema.param(schema.List(schema.Int(min=1, max=128), min_length=1, max_length=6))
    epochs: int = schema.param(schema.Int(min=1, max=schema.MAX_EPOCHS))
    batch_size: int = schema.param(schema.Int(min=2, max=schema.Ref("n_train")))
    learning_rate: float = schema.param(schema.Float(min=0.0, min_inclusive=False))
    momentum: float = schema.param(schema.Float(min=0.0, max=1.0, max_inclusive=False))
    weight_decay: float = schema.param(schema.Float(min=0.0))
    lr_decay_epochs: list = schema.param(schema.List(schema.Int(min=1, max=schema.Ref("epochs", -1)), max_length=4,
                                                     increasing=True))
    lr_decay_factor: float = schema.param(schema.Float(min=0.0, max=1.0, min_inclusive=False))
    augment: str = schema.param(schema.Choice(training.AUGMENTATIONS))
    eps: float = schema.param(schema.Float(min=0.0, max=1.0, min_inclusive=False))
    attack_steps: int = schema.param(schema.Int(min=1, max=schema.MAX_ATTACK_STEPS))
    eval_iter: int = schema.param(schema.Int(min=1, max=schema.MAX_ATTACK_STEPS))
    eval_attack_steps: int = schema.param(schema.Int(min=1, max=schema.MAX_ATTACK_STEPS))
    eval_batch_size: int = schema.param(schema.Int(min=2, max=schema.Ref("n_test")))
    batch_sizes: list = schema.param(schema.List(schema.Int(min=2), min_length=2, max_length=5, increasing=True))
    masking_points: int = schema.param(schema.Int(min=0, max=schema.Ref("n_test")))
    probe_per_class: int = schema.param(schema.Int(min=1, max=100))
    ks_epochs: list = schema.param(schema.List(schema.Int(min=1, max=schema.Ref("epochs")), min_length=1,
                                               max_length=6, increasing=True))

    def derived_seeds(self) -> dict:
        return {"the probe's seed (seed + 1000)": self.seed + PROBE_SEED_OFFSET}

    def check(self) -> None:
        from ntknb import data

        data.check_task_sizes(self.dataset, train=[("n_train", self.n_train)], test=[("n_test", self.n_test)])
        side = {"mnist": 28, "cifar10": 32}[self.dataset]
        if side % self.downsample:
            raise ValueError(f"parameter 'downsample'={self.downsample} must divide the image side {side} of "
                             f"{self.dataset}")
        if self.n_test % self.eval_batch_size:
            raise ValueError(f"parameter 'eval_batch_size'={self.eval_batch_size} must divide n_test={self.n_test}")
        if any(self.n_test % b for b in self.batch_sizes):
            raise ValueError(f"parameter 'batch_sizes' must hold divisors (>= 2) of n_test={self.n_test}, "
                             f"got {self.batch_sizes}")

    @property
    def seeds(self) -> list:
        """The seeds of the replicas: ``seed, seed + 1, ...`` (``n_seeds`` of them)."""
        return [self.seed + i for i in range(self.n_seeds)]


def train_config(p: Params, seed: int) -> "training.TrainConfig":
    """PGD-AT's :class:`ntknb.training.TrainConfig` for replica ``seed`` (data order, attack starts).
    The per-epoch monitor of :func:`ntknb.training.fit` uses PGD-``eval_attack_steps``."""
    return training.TrainConfig(
        mode="pgd", epochs=p.epochs, batch_size=p.batch_size, learning_rate=p.learning_rate, momentum=p.momentum,
        weight_decay=p.weight_decay, lr_decay_epochs=tuple(p.lr_decay_epochs), lr_decay_factor=p.lr_decay_factor,
        eps=p.eps, attack_steps=p.attack_steps, eval_attack_steps=p.eval_attack_steps,
        eval_batch_size=p.eval_batch_size, augment="none" if p.dataset == "mnist" else p.augment, seed=int(seed),
    )


def make_model(p: Params, n_classes: int = 10):
    """The chapter's BatchNorm ResNet."""
    from ntknb import models

    return models.make_model("resnet", n_classes, width=p.width, stage_sizes=tuple(p.stage_sizes))


def model_size(params0, state0) -> tuple:
    """(number of parameters, number of BatchNorm layers)."""
    n_params = sum(int(np.prod(q.shape)) for q in jax.tree_util.tree_leaves(params0))
    n_bn = sum(1 for path, _ in jax.tree_util.tree_flatten_with_path(state0["batch_stats"])[0] if path[-1].key == "mean")
    return n_params, n_bn


# ---------------------------------------------------------------------------------- runs


@dataclasses.dataclass
class SeedRun:
    """One replica: both arms trained and evaluated on the same ``n_test`` points.

    Per-point arrays are ``(n_test,)`` bool (correct / robust).

    Attributes:
      seed: the replica's seed (data subsample, initialisation, data order, attack starts).
      history: ``{arm: TrainResult}`` (per-epoch monitor: clean / PGD accuracy on the first
        evaluation batch of test points, in the arm's own mode).
      suite: ``{arm: RobustReport}``, the standard evaluation (white-box, in the arm's mode).
      transfer: ``{arm: per point}``, correct on the *other arm's* standard-evaluation points
        (in the arm's own mode, exact evaluation batches).
      surrogate: ``{arm: per point}``, correct on PGD points of the *same weights in the other
        BatchNorm mode* (for w/o buffer: its weights with its running averages).
      gaps: ``{"clean" | "adversarial": LayerGap}`` of the w-buffer network
        (:func:`ntknb.batchnorm.bn_statistics_gap`; adversarial: its standard-evaluation points).
      by_batch_size: ``{b: (clean, PGD accuracy)}`` of the w/o-buffer network at evaluation batch
        ``b`` (PGD-``eval_attack_steps`` on exact batches), and ``"buffer"``: the w-buffer
        network's (clean, PGD accuracy) under the same attack.
      ks: ``{(arm, kind, epoch): M_ks}`` (``kind`` in :data:`KINDS`).
      train_seconds: parameter-update time of both arms; seconds: the whole replica;
      timings: ``{phase: (wall seconds, CPU seconds of this process)}``: ``"training"`` (both
        arms, with the per-epoch monitor and the kernels), ``"standard evaluation"``,
        ``"transfer"``, ``"statistics gap"``, ``"batch sizes"`` (and ``"masking checks"``).
      masking: the :class:`ntknb.masking.MaskingReport` of the w-buffer network (first replica
        only; ``None`` otherwise).
    """

    seed: int
    history: dict
    suite: dict
    transfer: dict
    surrogate: dict
    gaps: dict
    by_batch_size: dict
    ks: dict
    train_seconds: float
    seconds: float
    timings: dict = dataclasses.field(default_factory=dict)
    masking: object = None

    def clean(self, arm: str) -> np.ndarray:
        """Per-point clean correctness of ``arm`` (w/o buffer: in its exact evaluation batches)."""
        return self.suite[arm].broken_by != "clean"

    def robust(self, arm: str) -> np.ndarray:
        """Per-point robustness of ``arm``: worst case over its standard evaluation and both transfers."""
        return self.suite[arm].robust & self.transfer[arm] & self.surrogate[arm]


def run_seed(p: Params, model, ds, probe, seed: int, masking: bool = False) -> SeedRun:
    """Both arms of replica ``seed`` (see the module docstring), trained and evaluated; ``ds``
    already downsampled (:func:`ntknb.data.downsample`). The w/o-buffer arm's kernels are computed at the
    last epoch of ``ks_epochs`` only (its kernel is one block over the whole probe set, the
    costliest part of the replica); the w-buffer arm's at every epoch of ``ks_epochs``.
    ``masking=True`` adds the gradient-masking checks of the w-buffer network
    (:func:`masking_report`)."""
    from ntknb import data, evaluation, models

    t0 = time.perf_counter()
    timings, clock = {}, [time.perf_counter(), time.process_time()]

    def lap(name):
        now = [time.perf_counter(), time.process_time()]
        timings[name] = (now[0] - clock[0], now[1] - clock[1])
        clock[:] = now

    task = data.make_task(ds, n_train=p.n_train, n_test=p.n_test, seed=seed)
    x, y = np.asarray(task.x_test, np.float32), np.asarray(task.labels_test)
    b = p.eval_batch_size
    params0, state0 = models.init_model(model, task.x_train.shape[1:], seed=seed)
    history, nets, ks, train_seconds = {}, {}, {}, 0.0
    for arm in ARMS:
        tracker = batchnorm.BNKernelTracker(model, arm, *probe, p.eps, attack_steps=p.eval_attack_steps,
                                            epochs=p.ks_epochs if arm == "buffer" else p.ks_epochs[-1:],
                                            top_p=min(10, len(probe[1])), seed=seed)
        run = training.fit(batchnorm.bn_apply_fn(model, arm), params0, state0, task.x_train, task.labels_train,
                           x[:b], y[:b], train_config(p, seed), callbacks=[tracker], progress=False)
        history[arm], nets[arm] = run, (run.params, run.state)
        train_seconds += run.train_seconds
        ks.update({(arm, kind, e): m[kind] for e, m in tracker.ks_matrices.items() for kind in KINDS if kind in m})
    lap("training")
    suite = {"buffer": evaluation.robust_evaluation(batchnorm.mode_predict(model, "buffer"), x, y, p.eps, seed=seed,
                                                    n_iter=p.eval_iter, batch_size=b, params=nets["buffer"]),
             "batch": batchnorm.batch_mode_evaluation(model, *nets["batch"], x, y, p.eps, b, seed=seed,
                                                      n_iter=p.eval_iter)}
    lap("standard evaluation")
    other = {"buffer": "batch", "batch": "buffer"}
    transfer, surrogate = {}, {}
    for arm in ARMS:
        transfer[arm] = batchnorm.batch_predictions(model, arm, *nets[arm], suite[other[arm]].x_adv, b) == y
        x_sur = batchnorm.adversarial_examples(model, other[arm], *nets[arm], x, y, p.eps, p.eval_attack_steps, b,
                                               seed=seed)
        surrogate[arm] = batchnorm.batch_predictions(model, arm, *nets[arm], x_sur, b) == y
    lap("transfer")
    gaps = {kind: batchnorm.bn_statistics_gap(model, *nets["buffer"], xx, b)
            for kind, xx in (("clean", x), ("adversarial", suite["buffer"].x_adv))}
    lap("statistics gap")
    by_bs = {bs: batchnorm.evaluate_modes(model, *nets["batch"], x, y, p.eps, p.eval_attack_steps, bs,
                                          modes=("batch",), seed=seed)["batch"] for bs in p.batch_sizes}
    by_bs["buffer"] = batchnorm.evaluate_modes(model, *nets["buffer"], x, y, p.eps, p.eval_attack_steps, b,
                                               modes=("buffer",), seed=seed)["buffer"]
    lap("batch sizes")
    rep = None
    if masking and p.masking_points:
        rep = masking_report(p, model, *nets["buffer"], x, y, seed)
        lap("masking checks")
    return SeedRun(int(seed), history, suite, transfer, surrogate, gaps, by_bs, ks, train_seconds,
                   time.perf_counter() - t0, timings, rep)


def masking_report(p: Params, model, params, state, x, y, seed: int):
    """:func:`ntknb.masking.gradient_masking_checks` of the w-buffer network on the first
    ``masking_points`` test points (radii 0, eps/2, eps, 2 eps and 1; FGSM; zero gradients; the
    standard evaluation's settings). The w/o-buffer network has no per-example predict for
    these checks; its check is the transfer from the other arm (``ch05.no_masking_transfer``)."""
    from ntknb import masking

    apply_fn = batchnorm.bn_apply_fn(model, "buffer")
    predict = jax.jit(lambda xb: apply_fn(params, state, xb, False)[0])
    n = p.masking_points
    return masking.gradient_masking_checks(predict, x[:n], y[:n], p.eps, eps_grid=[0.0, p.eps / 2, p.eps, 2 * p.eps],
                                           seed=seed, n_iter=p.eval_iter, batch_size=n)


def probe_set(p: Params, ds) -> tuple:
    """``probe_per_class`` test images per class (one probe for every replica, drawn with seed
    ``seed + PROBE_SEED_OFFSET``, i.e. ``seed + 1000``), sorted by class: the points of the empirical NTK."""
    idx = ntk_dynamics.balanced_probe(ds.labels_test, p.probe_per_class, ds.n_classes, seed=p.seed + PROBE_SEED_OFFSET)
    return np.asarray(ds.x_test[idx], np.float32), np.asarray(ds.labels_test[idx], np.int64)


def run_seeds(p: Params, model, ds) -> list:
    """:func:`run_seed` for every seed of :attr:`Params.seeds` on ``ds`` (already downsampled:
    :func:`ntknb.data.downsample`), the masking checks for the first seed only, through
    :func:`ntknb.replicas.run_replicas`: one after the other on one device, spread over the devices
    and ``jax.distributed`` processes when there are several (the same numbers). Every compiled
    function (training steps, attacks, kernels) is compiled once per device and reused by the
    replicas run there. With several devices in one process the replicas run in threads, so a
    replica's ``timings`` CPU seconds are the whole process's."""
    probe = probe_set(p, ds)
    first = p.seeds[0]
    return replicas.run_replicas(lambda s: run_seed(p, model, ds, probe, s, masking=(s == first)), p.seeds)


# --------------------------------------------------------------------------- measurements


def _ks(m) -> float:
    """KS = Tr(M_ks) / k (nan-aware: a class absent from the adversarial labels gives a nan column)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-nan diagonal: nan, said by the value
        return float(np.nanmean(np.diag(m)))


#: The per-point correctness of :class:`SeedRun` behind each accuracy (``(n_test,)`` bool per arm).
POINTS = {"clean": lambda r, arm: r.clean(arm), "suite": lambda r, arm: r.suite[arm].robust,
          "transfer": lambda r, arm: r.transfer[arm], "surrogate": lambda r, arm: r.surrogate[arm],
          "robust": lambda r, arm: r.robust(arm)}


def control_contrast(m: dict, labels: str, epoch: int) -> np.ndarray:
    """Per seed, the AE-NTK's specialization gap between the arms minus the C-NTK's (the control
    of ``ch05.fig4_fainter_cl_vs_cntk`` / ``..._al_vs_cntk``, line 151 of ``li2023rethinking``):
    ``(KS_AE,w − KS_AE,w/o) − (KS_C,w − KS_C,w/o)``, the AE-NTK under ``labels`` (``"CL"`` or
    ``"AL"``), the C-NTK under clean labels, both at ``epoch``; from the keys
    ``ks_<kind>_<w|wo>_<epoch>`` of :func:`measurements` ``m``. Shape ``(n_seeds,)``."""
    if labels not in ("CL", "AL"):
        raise ValueError(f"parameter 'labels' must be one of ['CL', 'AL'], got {labels!r}")
    ks = lambda kind, tag: np.asarray(m[f"ks_{kind}_{tag}_{epoch}"], float)  # noqa: E731
    return (ks(f"adv.{labels}", "w") - ks(f"adv.{labels}", "wo")) - (ks("clean.CL", "w") - ks("clean.CL", "wo"))


def measurements(p: Params, runs: list) -> dict:
    """The quantities the tables and claims use: ``{name: (n_seeds,) array}`` (one value per
    replica), and ``points_<k>_<w|wo>`` ``(n_seeds, n_test)`` bool, the per-point correctness behind
    each accuracy ``k`` of :data:`POINTS` (for intervals pooled over seeds and points)."""
    arr = lambda f: np.array([f(r) for r in runs], dtype=float)  # noqa: E731
    m = {}
    first, last = p.ks_epochs[0], p.ks_epochs[-1]
    for arm, tag in (("buffer", "w"), ("batch", "wo")):
        for k, get in POINTS.items():
            m[f"points_{k}_{tag}"] = np.array([get(r, arm) for r in runs], dtype=bool)
            m[f"{k}_{tag}"] = m[f"points_{k}_{tag}"].mean(axis=1)
        for kind in KINDS:
            for e in p.ks_epochs:
                if all((arm, kind, e) in r.ks for r in runs):  # w/o buffer: the last epoch only
                    m[f"ks_{kind}_{tag}_{e}"] = arr(lambda r: _ks(r.ks[arm, kind, e]))
    m["clean_gap"] = m["clean_w"] - m["clean_wo"]
    m["robust_gap"] = m["robust_w"] - m["robust_wo"]
    m["masking_wo"] = m["suite_wo"] - m["transfer_wo"]
    m["gap_clean"] = arr(lambda r: r.gaps["clean"].norm_gap.mean())
    m["gap_adv"] = arr(lambda r: r.gaps["adversarial"].norm_gap.mean())
    m["gap_ratio"] = m["gap_adv"] / m["gap_clean"]
    m["gap_first_clean"] = arr(lambda r: r.gaps["clean"].norm_gap[0])
    m["gap_first_adv"] = arr(lambda r: r.gaps["adversarial"].norm_gap[0])
    for bs in p.batch_sizes:
        m[f"bs_clean_{bs}"] = arr(lambda r: r.by_batch_size[bs][0])
        m[f"bs_pgd_{bs}"] = arr(lambda r: r.by_batch_size[bs][1])
    m["bs_pgd_w"] = arr(lambda r: r.by_batch_size["buffer"][1])
    m["bs_pgd_change"] = m[f"bs_pgd_{p.batch_sizes[-1]}"] - m[f"bs_pgd_{p.batch_sizes[0]}"]
    m["monitor_pgd_w_first"] = arr(lambda r: _at_epoch(r.history["buffer"], "robust_acc", first))
    m["ks_cntk_min"] = np.minimum(m[f"ks_clean.CL_w_{last}"], m[f"ks_clean.CL_wo_{last}"])
    m["ks_cntk_diff"] = m[f"ks_clean.CL_w_{last}"] - m[f"ks_clean.CL_wo_{last}"]
    m["ks_ae_cl_diff"] = m[f"ks_adv.CL_w_{last}"] - m[f"ks_adv.CL_wo_{last}"]
    m["ks_ae_al_diff"] = m[f"ks_adv.AL_w_{last}"] - m[f"ks_adv.AL_wo_{last}"]
    m["ks_ae_cl_vs_cntk"] = control_contrast(m, "CL", last)
    m["ks_ae_al_vs_cntk"] = control_contrast(m, "AL", last)
    m["ks_al_minus_cl_first"] = m[f"ks_adv.AL_w_{first}"] - m[f"ks_adv.CL_w_{first}"]
    return m


def _at_epoch(history, column: str, epoch: int) -> float:
    """The per-epoch monitor's ``column`` at ``epoch`` (:class:`ntknb.training.TrainResult`)."""
    epochs = list(history.column("epoch"))
    return float(history.column(column)[epochs.index(epoch)])


def interval(values, bounds=None):
    """Mean over the replicas with its 95 % interval (:func:`ntknb.stats.mean_interval`): the t
    interval for an unbounded quantity (a KS value, a ratio), the logit-t interval inside
    ``bounds`` for one with a range (``(0, 1)``: an accuracy per seed; ``(-1, 1)``: a difference of
    two accuracies on the same points)."""
    from ntknb import stats

    return stats.mean_interval(np.asarray(values, float), bounds=bounds)


def pooled(points):
    """An accuracy pooled over the seeds and their points, with its 95 % cluster-robust logit
    interval inside [0, 1] (:func:`ntknb.stats.pooled_proportion_interval`); ``points``:
    ``(n_seeds, n_test)`` bool."""
    from ntknb import stats

    return stats.pooled_proportion_interval(np.asarray(points, bool))


ACCURACY_COLUMNS = ["arm", "clean", "standard evaluation (white-box)", "transfer from the other arm",
                    "transfer from the same weights, other BN mode", "robust (worst case)"]


def accuracy_rows(m: dict) -> list:
    """Accuracies pooled over the replicas and their test points, 95 % intervals inside [0, 1]
    (:func:`pooled`; :data:`ACCURACY_COLUMNS`)."""
    return [[label] + [pooled(m[f"points_{k}_{tag}"]).text() for k in POINTS]
            for label, tag in (("w buffer", "w"), ("w/o buffer", "wo"))]


SEED_COLUMNS = ["seed", "clean w", "clean w/o", "robust w", "robust w/o", "robust w − w/o", "seconds"]


def seed_rows(runs: list) -> list:
    """One row per replica: clean and robust accuracy of both arms, the gap, the replica's time."""
    return [[r.seed, r.clean("buffer").mean(), r.clean("batch").mean(), r.robust("buffer").mean(),
             r.robust("batch").mean(), r.robust("buffer").mean() - r.robust("batch").mean(), r.seconds]
            for r in runs]


BATCH_SIZE_COLUMNS = ["evaluation batch", "clean w/o", "PGD w/o", "PGD w (same attack)", "PGD w − w/o"]


def batch_size_rows(p: Params, m: dict) -> list:
    """Per evaluation batch size: the w/o-buffer network's clean and PGD accuracy and the gap to
    the w-buffer network under the same attack (means over the replicas; logit-t intervals inside
    [0, 1] for the accuracies, inside [-1, 1] for the paired gap)."""
    acc = lambda v: interval(v, (0, 1)).text()  # noqa: E731
    return [[bs, acc(m[f"bs_clean_{bs}"]), acc(m[f"bs_pgd_{bs}"]), acc(m["bs_pgd_w"]),
             interval(m["bs_pgd_w"] - m[f"bs_pgd_{bs}"], (-1, 1)).text()] for bs in p.batch_sizes]


def ks_rows(p: Params, m: dict) -> list:
    """KS per kernel and arm at every epoch of ``ks_epochs`` (means over the replicas, 95 % t
    intervals: KS has no upper bound; "–" where not computed: the w/o-buffer arm's kernels before
    the last epoch), then the gaps w − w/o at the last epoch and the control contrasts of
    :func:`control_contrast` (in the last column)."""
    rows = [[label, ARMS[arm]] + [interval(m[f"ks_{kind}_{tag}_{e}"]).text() if f"ks_{kind}_{tag}_{e}" in m else "–"
                                  for e in p.ks_epochs]
            for kind, label in KINDS.items() for arm, tag in (("buffer", "w"), ("batch", "wo"))]
    pad = ["–"] * (len(p.ks_epochs) - 1)
    rows += [[label, "w − w/o"] + pad + [interval(m[key]).text()]
             for key, label in (("ks_cntk_diff", KINDS["clean.CL"]), ("ks_ae_cl_diff", KINDS["adv.CL"]),
                                ("ks_ae_al_diff", KINDS["adv.AL"]))]
    rows += [[f"{KINDS[kind]} − {KINDS['clean.CL']}", "(w − w/o) − (w − w/o)"] + pad + [interval(m[key]).text()]
             for key, kind in (("ks_ae_cl_vs_cntk", "adv.CL"), ("ks_ae_al_vs_cntk", "adv.AL"))]
    return rows


def ks_panels(p: Params, runs: list) -> dict:
    """Mean over the replicas of M_ks at the last tracked epoch, per kernel and arm, for
    :func:`ntknb.plotting.plot_specialization_matrices` (empty classes of the adversarial labels
    are ignored in the mean)."""
    last = p.ks_epochs[-1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a class no replica predicts: a blank column
        return {(ARMS[arm], label): np.nanmean([r.ks[arm, kind, last] for r in runs], axis=0)
                for arm in ARMS for kind, label in KINDS.items()}


def plot_ks(p: Params, runs: list):
    """:func:`ntknb.plotting.plot_specialization_matrices` of :func:`ks_panels`, its colour bar
    labelled in plain text (a mathtext label makes matplotlib look up math fonts this machine
    lacks, and log a warning under the cell)."""
    from ntknb import plotting

    fig = plotting.plot_specialization_matrices(ks_panels(p, runs))
    fig.axes[-1].set_ylabel("M_ks (mean over replicas)")  # the colour bar, added last
    return fig


def plot_accuracy(p: Params, runs: list):
    """Per-epoch monitor of both arms (thin lines: replicas; thick: mean), clean and PGD accuracy."""
    from matplotlib.ticker import MaxNLocator

    from ntknb import plotting

    fig, axes = plotting.new_figure(ncols=2, sharey=True)
    colours = {"buffer": "C0", "batch": "C1"}
    for ax, (col, title) in zip(axes, (("clean_acc", "clean"), ("robust_acc", f"PGD-{p.eval_attack_steps}"))):
        for arm, label in ARMS.items():
            curves = np.array([r.history[arm].column(col) for r in runs])
            epochs = runs[0].history[arm].column("epoch")
            for c in curves:
                ax.plot(epochs, c, color=colours[arm], alpha=0.3, lw=0.8)
            ax.plot(epochs, curves.mean(0), color=colours[arm], lw=2, label=label)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(f"{title} (first {p.eval_batch_size} test points)")
    axes[0].set_ylabel("accuracy")
    axes[0].legend()
    return fig


def plot_gaps(runs: list):
    """Per-layer rms change of the normalised activations of the w-buffer network (mean over replicas)."""
    from ntknb import plotting

    fig, ax = plotting.new_figure(width=4.6, height=3.1)
    plotting.plot_layer_gaps(ax, {f"{kind} batches": np.mean([r.gaps[kind].norm_gap for r in runs], 0)
                                  for kind in ("clean", "adversarial")},
                             ylabel="rms of normalised-activation change", title="PGD-AT, w buffer")
    return fig


def headline_values(p: Params, m: dict) -> dict:
    """The glued numbers of the text (means over the replicas)."""
    mean = lambda k: float(np.mean(m[k]))  # noqa: E731
    v = {f"{k}_acc_{tag}_buffer": mean(f"{k}_{tag}") for k in ("clean", "robust", "suite", "transfer", "surrogate")
         for tag in ("w", "wo")}
    v.update(clean_gap=mean("clean_gap"), robust_gap=mean("robust_gap"), norm_gap_clean=mean("gap_clean"),
             norm_gap_adv=mean("gap_adv"), norm_gap_ratio=mean("gap_ratio"),
             first_layer_gap_clean=mean("gap_first_clean"), first_layer_gap_adv=mean("gap_first_adv"),
             bs_smallest=p.batch_sizes[0], bs_largest=p.batch_sizes[-1],
             bs_pgd_smallest=mean(f"bs_pgd_{p.batch_sizes[0]}"), bs_pgd_largest=mean(f"bs_pgd_{p.batch_sizes[-1]}"),
             bs_pgd_w=mean("bs_pgd_w"), ks_first_epoch=p.ks_epochs[0], ks_last_epoch=p.ks_epochs[-1],
             ks_cntk_gap=mean("ks_cntk_diff"), ks_ae_cl_gap=mean("ks_ae_cl_diff"), ks_ae_al_gap=mean("ks_ae_al_diff"),
             ks_ae_cl_vs_cntk=mean("ks_ae_cl_vs_cntk"), ks_ae_al_vs_cntk=mean("ks_ae_al_vs_cntk"))
    return v


# ---------------------------------------------------------------------------------- claims

#: The chapter's claim register (issue 28): every claim's id, the paper's words and where they
#: stand, threshold, direction, preconditions and why, fixed before the runs that judge them.
REGISTER = REGISTER_DIR / "05_bn_buffers.yaml"
#: Classes of both datasets (MNIST, CIFAR-10): the probe holds ``N_CLASSES * probe_per_class`` images.
N_CLASSES = 10


def claim_specs() -> dict:
    """``{id: ClaimSpec}`` of :data:`REGISTER` (:func:`ntknb.claims.load_register`), in register order."""
    return load_register(REGISTER)


def abs_interval(iv) -> tuple:
    """``(|estimate|, low, high)`` of the absolute value of a quantity with interval
    ``[iv.low, iv.high]``: its image under |.| (low 0 when the interval contains 0)."""
    lo, hi = float(iv.low), float(iv.high)
    top = max(abs(lo), abs(hi))
    bottom = 0.0 if lo <= 0.0 <= hi else min(abs(lo), abs(hi))
    return abs(float(iv.estimate)), bottom, top


def scale_text(p: Params) -> str:
    side = {"mnist": 28, "cifar10": 32}[p.dataset] // p.downsample
    return (f"{p.dataset} {side}x{side}, {p.n_train} train, ResNet{tuple(p.stage_sizes)} width {p.width}, "
            f"PGD-{p.attack_steps} AT {p.epochs} epochs, eps {p.eps:.3g}, evaluation batch {p.eval_batch_size}, "
            f"{p.n_seeds} seeds x {p.n_test} test points")


def conditions(p: Params, m: dict) -> dict:
    """The measured value of every precondition name of :data:`REGISTER` (means over the seeds;
    an accuracy's mean over the seeds is its mean over seeds and points, every seed having
    ``n_test`` points)."""
    mean = lambda k: float(np.mean(m[k]))  # noqa: E731
    last = p.ks_epochs[-1]
    return {"both_arms_learn": min(mean("clean_w"), mean("clean_wo")), "w_buffer_learns": mean("clean_w"),
            "wo_buffer_learns": mean("clean_wo"), "w_buffer_robust_above_bar": mean("robust_w"),
            "wo_white_box_above_tolerance": mean("suite_wo"),
            "adversarial_labels_differ": mean("monitor_pgd_w_first"),
            "w_buffer_ae_kernel_specialises.CL": mean(f"ks_adv.CL_w_{last}"),
            "w_buffer_ae_kernel_specialises.AL": mean(f"ks_adv.AL_w_{last}")}


def claims(p: Params, m: dict) -> list:
    """The chapter's claims, in register order, built from :data:`REGISTER` (words, thresholds,
    directions, preconditions and their justification live there) with :func:`measurements` ``m``:

    * per-seed differences of two accuracies on the same points (``prop1_clean_close``, through
      :func:`abs_interval`; ``prop2_robust_lower``, ``no_masking_transfer``,
      ``theorem2_batch_size``): logit-t interval over the seeds inside [-1, 1];
    * KS quantities and the statistics-gap ratio (unbounded): t interval over the seeds; the
      Fig. 4 claims on :func:`control_contrast`.

    ``n_test``: the test points behind the claim (``n_seeds * n_test``; for the kernel claims
    the probe's ``N_CLASSES * probe_per_class`` test images, one probe for every seed).
    Preconditions from :func:`conditions`."""
    specs = claim_specs()
    k = int(np.asarray(m["clean_w"]).size)
    points, probe = k * p.n_test, N_CLASSES * p.probe_per_class
    scale = scale_text(p)
    kernels = f"{scale}; kernels on a probe of {probe} test images"
    first, last = p.ks_epochs[0], p.ks_epochs[-1]
    cond = conditions(p, m)

    def claim(cid, iv, n_test, scale_=scale, absolute=False, **renamed):
        est, low, high = abs_interval(iv) if absolute else (iv.estimate, iv.low, iv.high)
        names = [q["name"] for q in specs[cid].preconditions]
        measured = {n: cond[renamed.get(n, n)] for n in names}
        return Claim.from_register(specs[cid], measured=est, low=low, high=high, n_seeds=k, n_test=n_test,
                                   scale=scale_, conditions=measured)

    diff = lambda key: interval(m[key], (-1, 1))  # noqa: E731
    out = [
        claim("ch05.prop1_clean_close", diff("clean_gap"), points, absolute=True),
        claim("ch05.prop2_robust_lower", diff("robust_gap"), points),
        claim("ch05.props_statistics_gap", interval(m["gap_ratio"]), points),
        claim("ch05.fig3_cntk_aligned", interval(m["ks_cntk_min"]), probe, f"{kernels}, epoch {last}"),
        claim("ch05.fig4_fainter_cl_vs_cntk", interval(control_contrast(m, "CL", last)), probe,
              f"{kernels}, epoch {last}", w_buffer_ae_kernel_specialises="w_buffer_ae_kernel_specialises.CL"),
        claim("ch05.fig4_fainter_al_vs_cntk", interval(control_contrast(m, "AL", last)), probe,
              f"{kernels}, epoch {last}", w_buffer_ae_kernel_specialises="w_buffer_ae_kernel_specialises.AL"),
        claim("ch05.fig4_al_earlier", interval(m["ks_al_minus_cl_first"]), probe, f"{kernels}, epoch {first}"),
        claim("ch05.no_masking_transfer", diff("masking_wo"), points),
        claim("ch05.theorem2_batch_size", diff("bs_pgd_change"), points,
              f"{scale}; PGD-{p.eval_attack_steps} in batches of {p.batch_sizes[-1]} and {p.batch_sizes[0]}"),
    ]
    order = list(specs)
    return sorted(out, key=lambda c: order.index(c.id))


def summary_text(p: Params, m: dict) -> str:
    """The headline numbers (the cell nbval compares)."""
    return "\n".join([
        f"seeds {p.seeds}, n_test {p.n_test} each",
        f"clean acc w / w/o buffer:  {np.mean(m['clean_w']):.3f} / {np.mean(m['clean_wo']):.3f}",
        f"robust acc w / w/o buffer: {np.mean(m['robust_w']):.3f} / {np.mean(m['robust_wo']):.3f}",
        f"w/o buffer: white-box {np.mean(m['suite_wo']):.3f}, transfer {np.mean(m['transfer_wo']):.3f}, "
        f"same weights with buffers {np.mean(m['surrogate_wo']):.3f}",
        f"norm gap clean / adversarial: {np.mean(m['gap_clean']):.3f} / {np.mean(m['gap_adv']):.3f}",
    ])
