"""Chapter 02: eigen-features of the NTK predictor — usefulness, robustness, training time.

``tsilivis2022ntk`` Sec. 4: the kernel predictor splits into eigen-features
``f^(i)(x) = Theta(x, X) v_i c_i`` (Eq. 9) whose loss gradients add up to the predictor's
(Eq. 10); each feature's usefulness (clean accuracy) and robustness (FGSM accuracy on its own
loss) are measured for several fully connected and convolutional NTKs on binary CIFAR-10 and
on MNIST, and along the training time t of Eq. 7.

The sweeps, the full kernel's robustness and the Fig. 5 picks are repeated for ``n_seeds`` data
subsamples (:func:`seed_run`, one :class:`SeedRun` each); the illustrations (Eq. 10, the feature
gradients, the training-time study, the published-notebook comparison) use the first seed. Each seed
also holds ``n_heldout`` held-out images (by default unused training images of the two classes,
disjoint from its training images: :func:`split_training_indices`) on which the depth-1 kernel's
features are judged useful (:func:`useful_count`, the population test) and the Fig. 5 picks reported.
The claims' words, thresholds, directions and preconditions are registered in
``notebooks/claims/02_eigenfeatures.yaml`` (:data:`REGISTER`), before the runs that judge them.

This module is the chapter's code; ``notebooks/02_eigenfeatures.py`` only calls it:
:class:`Params` (the parameter schema), :func:`seed_run`, :func:`pooled`, :func:`sweep_values`,
:func:`training_time_study`, :func:`paper_comparison`, :func:`claims` and the tables, figures
and values the page glues.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from pathlib import Path

import numpy as np

from ntknb import architectures, attacks, data, features, kernel_machines, kernels, paths, records, schema
from ntknb.validation import SEED_LIMIT
from ntknb.claims import REGISTER_DIR, Claim, load_register, seed_check_mismatch

__all__ = ["Params", "REFERENCE", "USEFUL_ABOVE", "NONROBUST_BELOW", "spearman_index_robustness", "count_useful_nonrobust", "split_training_indices", "load_tasks", "fit_kernel", "kernel_settings", "feature_sum_errors",
           "full_accuracies", "full_kernel_fgsm", "eq10_study", "plot_eq10", "sweep_all", "SeedRun", "seed_run",
           "pooled", "sweep_values", "plot_usefulness", "top5_gradients", "late_study", "training_time_study",
           "plot_training_time", "training_time_values", "paper_comparison", "summary_text", "Pick",
           "feature_pvalues", "UsefulCount", "useful_count", "population_values", "REGISTER", "claim_specs", "claims", "SEED_CHECK_FILE", "load_seed_check", "conv_resolution_runs", "spearman_over_seeds", "useful_significant", "best_useful_nonrobust", "fig5", "fig5_values",
           "OURS_COLUMNS", "SWEEP_COLUMNS"]

_ARCH = architectures.ARCHITECTURE_NAMES
#: The published notebook's printed output (``tsilivis2022ntk``'s code): accuracy and FGSM accuracy
#: of the full kernel and of its features 0, 1, 3, 10, 25, 1500 (its own indexing) — the reference
#: this page compares with.
REFERENCE = {"full kernel": (0.81, 0.02), 0: (0.50, 0.50), 1: (0.68, 0.49), 3: (0.61, 0.44), 10: (0.59, 0.25),
             25: (0.51, 0.07), 1500: (0.47, 0.00)}
#: CIFAR-10 (two balanced classes): a feature is *useful* if its accuracy exceeds this (chance,
#: ``tsilivis2022ntk`` Sec. 2.2 and Fig. 2: "> 0.5-usefulness") and *non-robust* if its FGSM accuracy
#: is below :data:`NONROBUST_BELOW` (Sec. 2.2: "gamma-robust only for gamma = 0 or very close to 0").
#: Constants, not parameters: the registered claims use them (``notebooks/claims/02_eigenfeatures.yaml``).
USEFUL_ABOVE = 0.5
NONROBUST_BELOW = 0.1


@dataclasses.dataclass(frozen=True)
class Params(schema.Params):
    """The rules for the parameters of ``notebooks/02_eigenfeatures.py`` (the defaults live in
    its ``parameters`` cell; field order = cell order)."""

    seed: int = schema.param(schema.Int(min=0, max=SEED_LIMIT - 1))
    n_seeds: int = schema.param(schema.Int(min=1, max=100))
    classes: list = schema.param(schema.List(min_length=2, max_length=2))  # CIFAR-10 class names (check)
    n_train: int = schema.param(schema.Int(min=20))
    n_test: int = schema.param(schema.Int(min=2))
    n_features: int = schema.param(schema.Int(min=2, max=schema.Ref("n_train")))
    eps: float = schema.param(schema.Float(min=0.0, max=1.0))
    fc_architectures: list = schema.param(schema.List(schema.Choice(_ARCH), min_length=1))
    conv_architectures: list = schema.param(schema.List(schema.Choice(_ARCH)))
    conv_pool: int = schema.param(schema.Choice([1, 2, 4, 8]))
    conv_n_train: int = schema.param(schema.Int(min=schema.Ref("n_features")))
    conv_n_test: int = schema.param(schema.Int(min=2))
    late_stride: int = schema.param(schema.Int(min=1))
    n_heldout: int = schema.param(schema.Int(min=2))
    heldout_split: str = schema.param(schema.Choice(["train", "test"]))
    mnist_architectures: list = schema.param(schema.List(schema.Choice(_ARCH)))
    mnist_n_train: int = schema.param(schema.Int(min=schema.Ref("n_features")))
    mnist_n_test: int = schema.param(schema.Int(min=10))
    mnist_eps: float = schema.param(schema.Float(min=0.0, max=1.0))
    mnist_useful_above: float = schema.param(schema.Float(min=0.0, max=1.0))
    mnist_nonrobust_below: float = schema.param(schema.Float(min=0.0, max=1.0))
    n_times: int = schema.param(schema.Int(min=2, max=schema.Ref("n_train")))  # times on a log grid of 1..n_train
    paper_indices: list = schema.param(schema.List(schema.Int(min=0), min_length=1))
    test_batch_size: int = schema.param(schema.Int(min=1))
    feature_batch_size: int = schema.param(schema.Int(min=1))
    conv_test_batch_size: int = schema.param(schema.Int(min=1))
    conv_feature_batch_size: int = schema.param(schema.Int(min=1))
    conv_train_batch_size: int = schema.param(schema.Int(min=1))
    kernel_batch_size: int = schema.param(schema.Int(min=1))
    conv_kernel_batch_size: int = schema.param(schema.Int(min=1))

    def check(self) -> None:
        if any(not isinstance(c, str) for c in self.classes):
            raise ValueError(f"parameter 'classes' must be a list of 2 CIFAR-10 class names, got {self.classes!r}")
        # the three tasks of every replica and the held-out images (load_tasks)
        if self.heldout_split == "train":
            data.check_task_sizes("cifar10", self.classes, train=[("n_train", self.n_train), (
                "n_train + n_heldout", self.n_train + self.n_heldout)], test=[("n_test", self.n_test)])
        else:
            data.check_task_sizes("cifar10", self.classes, train=[("n_train", self.n_train)],
                                  test=[("n_test + n_heldout", self.n_test + self.n_heldout)])
        data.check_task_sizes("cifar10", self.classes, train=[("conv_n_train", self.conv_n_train)],
                              test=[("conv_n_test", self.conv_n_test)])
        data.check_task_sizes("mnist", train=[("mnist_n_train", self.mnist_n_train)],
                              test=[("mnist_n_test", self.mnist_n_test)])
        if "fc1" not in self.fc_architectures:
            raise ValueError(f"parameter 'fc_architectures' must contain 'fc1' (the published-notebook "
                             f"comparison and the training-time analysis use it), got {self.fc_architectures!r}")

    @property
    def seeds(self) -> list:
        """The seeds of the data subsamples: ``seed, seed + 1, ..., seed + n_seeds - 1``."""
        return [self.seed + i for i in range(self.n_seeds)]


def split_training_indices(labels, class_indices, n_train: int, n_heldout: int, seed: int) -> tuple:
    """``(train, heldout)``: disjoint, class-balanced index arrays into a split with class labels
    ``labels`` (``(N,)`` int): per class of ``class_indices`` a seeded permutation of its images,
    the first ``n_train / k`` for training and the next ``n_heldout / k`` held out (``k`` classes).
    ``train`` is sorted, ``heldout`` shuffled (classes interleaved)."""
    labels, k = np.asarray(labels), len(class_indices)
    rng = np.random.default_rng([seed, 2])  # its own stream: not make_task's draws of the same seed
    per_train, per_held = n_train // k, n_heldout // k
    train, held = [], []
    for c in class_indices:
        pool = rng.permutation(np.flatnonzero(labels == c))
        if per_train + per_held > pool.size:
            raise ValueError(f"parameters n_train + n_heldout must be at most {k * pool.size} ({k} x {pool.size} "
                             f"images of class {c}), got {n_train + n_heldout}")
        train.append(pool[:per_train])
        held.append(pool[per_train:per_train + per_held])
    return np.sort(np.concatenate(train)), rng.permutation(np.concatenate(held))


def load_tasks(p: Params, seed: int, cifar=None, mnist=None) -> tuple:
    """(binary CIFAR-10 task, its held-out images ``(x (n_heldout, 32, 32, 3), y (n_heldout, 1) +-1)``,
    the task's smaller copy for the conv kernels, 10-class MNIST task) of one seed. The task's
    ``n_test`` test images are the sweep's; the held-out images (the usefulness test and Fig. 5,
    :func:`useful_count`, :func:`late_study`) are, with ``heldout_split="train"``, training images of
    the two classes that the task does not train on (:func:`split_training_indices`), with
    ``"test"`` further test images."""
    cifar = data.load_dataset("cifar10") if cifar is None else cifar
    classes = tuple(p.classes)
    if p.heldout_split == "train":
        cls = [cifar.class_names.index(c) for c in classes]
        train, held = split_training_indices(cifar.labels_train, cls, p.n_train, p.n_heldout, seed)
        pool = dataclasses.replace(cifar, x_train=cifar.x_train[train], labels_train=cifar.labels_train[train])
        task = data.make_task(pool, classes=classes, n_train=p.n_train, n_test=p.n_test, seed=seed)
        y_held = np.where(cifar.labels_train[held] == cls[1], 1.0, -1.0).astype(np.float32)[:, None]
        heldout = (np.ascontiguousarray(cifar.x_train[held], dtype=np.float32), y_held)
    else:
        task = data.make_task(cifar, classes=classes, n_train=p.n_train, n_test=p.n_test + p.n_heldout, seed=seed)
        heldout = (task.x_test[p.n_test:], task.y_test[p.n_test:])
        task = dataclasses.replace(task, x_test=task.x_test[:p.n_test], y_test=task.y_test[:p.n_test],
                                   labels_test=task.labels_test[:p.n_test])
    conv_task = data.make_task(cifar, classes=tuple(p.classes), n_train=p.conv_n_train, n_test=p.conv_n_test,
                               seed=seed)
    mnist = data.load_dataset("mnist") if mnist is None else mnist
    mnist_task = data.make_task(mnist, classes=None, n_train=p.mnist_n_train, n_test=p.mnist_n_test, seed=seed)
    return task, heldout, conv_task, mnist_task


@functools.lru_cache(maxsize=None)
def _architecture(name: str, out_dim: int):
    """One :class:`ntknb.architectures.Architecture` per (name, out_dim), shared by the seeds, so
    the jitted kernel, sweep and attack functions (static in ``kernel_fn``) compile once."""
    return architectures.get_architecture(name, out_dim=out_dim)


def fit_kernel(name: str, x_train, y_train, x_test, out_dim: int = 1, batch_size: int = 256) -> dict:
    """The analytic NTK predictor of architecture ``name`` (:class:`ntknb.kernel_machines.KernelModel`,
    float64 Gram matrix, eigendecomposed) and its test-train kernel, as the chapter's setting dict."""
    arch = _architecture(name, out_dim)
    model = kernel_machines.KernelModel.build(arch, x_train, y_train, batch_size=batch_size, dtype=np.float64)
    return dict(arch=arch, pred=model.predictor, k_test=model.test_kernel(x_test), x_train=model.x_train,
                x_test=x_test)


def kernel_settings(p: Params, task, conv_task, mnist_task) -> tuple:
    """``(settings, mnist_settings)``: per architecture, its fitted kernel, test labels, radius
    and batch sizes (conv kernels see images average-pooled by ``conv_pool``)."""
    settings = {}
    for name in p.fc_architectures:
        settings[name] = dict(fit_kernel(name, task.x_train, task.y_train, task.x_test,
                                         batch_size=p.kernel_batch_size),
                              y_test=task.y_test, eps=p.eps, tbs=p.test_batch_size, fbs=p.feature_batch_size,
                              trbs=None)
    conv_x_train = data.average_pool(conv_task.x_train, p.conv_pool)
    conv_x_test = data.average_pool(conv_task.x_test, p.conv_pool)
    for name in p.conv_architectures:
        settings[name] = dict(fit_kernel(name, conv_x_train, conv_task.y_train, conv_x_test,
                                         batch_size=p.conv_kernel_batch_size),
                              y_test=conv_task.y_test, eps=p.eps, tbs=p.conv_test_batch_size,
                              fbs=p.conv_feature_batch_size, trbs=p.conv_train_batch_size)
    mnist_settings = {}
    for name in p.mnist_architectures:
        mnist_settings[name] = dict(fit_kernel(name, mnist_task.x_train, mnist_task.y_train, mnist_task.x_test,
                                               out_dim=10, batch_size=p.kernel_batch_size),
                                    y_test=mnist_task.y_test, eps=p.mnist_eps, tbs=p.test_batch_size,
                                    fbs=p.feature_batch_size, trbs=None)
    return settings, mnist_settings


def _all(settings: dict, mnist_settings: dict) -> dict:
    return {**settings, **{f"mnist_{k}": v for k, v in mnist_settings.items()}}


def feature_sum_errors(settings: dict, mnist_settings: dict) -> dict:
    """``max |sum_i f^(i) - f_inf|`` per kernel (Eq. 9 check)."""
    return {name: features.feature_sum_error(s["pred"], s["k_test"]) for name, s in _all(settings, mnist_settings).items()}


def full_accuracies(settings: dict, mnist_settings: dict) -> dict:
    """Clean test accuracy of each full predictor f_inf."""
    return {name: attacks.accuracy(s["pred"].predict(s["k_test"]), s["y_test"])
            for name, s in _all(settings, mnist_settings).items()}


def full_kernel_fgsm(p: Params, s: dict) -> float:
    """FGSM accuracy of the full predictor ``f_inf`` of setting ``s`` under the kernel attack
    (Eq. 8, :func:`ntknb.attacks.kernel_fgsm`) on its test images."""
    alpha = np.asarray(s["pred"].weights(np.inf), np.float32)
    f = kernels.make_predict_fn(s["arch"].kernel_fn, s["x_train"], alpha)
    x_adv = attacks.kernel_fgsm(f, s["x_test"], s["y_test"], s["eps"], batch_size=p.test_batch_size)
    return attacks.accuracy(f(x_adv), s["y_test"])


def eq10_study(p: Params, fc1: dict, task) -> tuple:
    """Eq. (10) on the first 4 test images (depth-1 kernel): ``(decomposition, contributions
    (n, 4) l1 norms of alpha_i grad L(f^(i)), share of the first n_features features)``."""
    decomp = features.loss_gradient_decomposition(fc1["arch"].kernel_fn, fc1["x_train"], fc1["pred"],
                                                  task.x_test[:4], task.y_test[:4])
    contrib = np.abs(decomp["alpha"].reshape(decomp["alpha"].shape + (1, 1, 1))
                     * decomp["feature_loss_grads"]).sum(axis=(2, 3, 4))  # (n, m) l1 norms
    return decomp, contrib, float(np.mean(contrib[:p.n_features].sum(0) / contrib.sum(0)))


def plot_eq10(contrib):
    from ntknb import plotting

    fig, ax = plotting.new_figure(width=5.0)
    for j in range(contrib.shape[1]):
        ax.loglog(np.arange(1, contrib.shape[0] + 1), contrib[:, j], lw=0.6, alpha=0.8, label=f"test image {j}")
    ax.set_xlabel("feature index i")
    ax.set_ylabel(r"$\|\alpha_i \nabla_x L(f^{(i)})\|_1$")
    ax.set_title("Eq. (10): each feature's share of the loss gradient (fc1)", fontsize=9)
    ax.legend(fontsize=7)
    return fig


def _sweep(p: Params, s: dict, indices):
    return features.feature_sweep(s["arch"].kernel_fn, s["x_train"], s["pred"], s["x_test"], s["y_test"], s["eps"],
                                  indices=indices, test_batch_size=s["tbs"], feature_batch_size=s["fbs"],
                                  train_batch_size=s["trbs"])


def sweep_all(p: Params, settings: dict, mnist_settings: dict) -> tuple:
    """``(sweeps, mnist_sweeps)``: usefulness and robustness of the first ``n_features``
    features of every kernel (:func:`ntknb.features.feature_sweep`); prints each sweep's time."""
    sweeps, mnist_sweeps = {}, {}
    for name, s in settings.items():
        sweeps[name] = _sweep(p, s, range(p.n_features))
        print(f"{name:6s} swept {p.n_features} features x {len(s['y_test'])} test images in "
              f"{sweeps[name].seconds:.1f} s")
    for name, s in mnist_settings.items():
        mnist_sweeps[name] = _sweep(p, s, range(p.n_features))
        print(f"mnist {name:6s} swept in {mnist_sweeps[name].seconds:.1f} s")
    return sweeps, mnist_sweeps


@dataclasses.dataclass
class SeedRun:
    """One data subsample (seed) of the chapter's experiment.

    ``sweeps`` / ``mnist_sweeps``: the first ``n_features`` features of every kernel on the
    seed's test images; ``full_clean``: clean accuracy of every full predictor (MNIST kernels as
    ``mnist_<name>``); ``full_fgsm``: the fc1 predictor's kernel-FGSM accuracy; ``sum_error``:
    the largest ``|sum_i f^(i) - f_inf|``; ``late``: fc1's later features on the sweep's images;
    ``picked``: :func:`late_study`'s Fig. 5 picks (:class:`Pick` or ``None``); ``heldout_signs``:
    ``(n_features, n_heldout)`` sign of fc1's feature ``f^(i)`` on each held-out image (-1, 0, +1),
    ``heldout_labels``: ``(n_heldout,)`` their labels (+-1), for :func:`useful_count`."""

    seed: int
    sweeps: dict
    mnist_sweeps: dict
    full_clean: dict
    full_fgsm: float
    sum_error: float
    late: object
    picked: dict
    heldout_signs: np.ndarray
    heldout_labels: np.ndarray


def seed_run(p: Params, seed: int, cifar=None, mnist=None) -> tuple:
    """The experiment of one seed (:class:`SeedRun`): subsample, fit every kernel, sweep its first
    ``n_features`` features, attack the full fc1 predictor, and pick Fig. 5's features. Returns
    ``(run, (task, settings, mnist_settings))``; the second item is what the first seed's
    illustrations need (drop it for the other seeds, it holds the kernels)."""
    task, (x_held, y_held), conv_task, mnist_task = load_tasks(p, seed, cifar, mnist)
    settings, mnist_settings = kernel_settings(p, task, conv_task, mnist_task)
    sums = feature_sum_errors(settings, mnist_settings)
    sweeps, mnist_sweeps = sweep_all(p, settings, mnist_settings)
    fc1 = settings["fc1"]
    k_held = kernels.kernel_matrix(fc1["arch"].kernel_fn, x_held, fc1["x_train"], batch_size=p.kernel_batch_size,
                                   dtype=np.float64)
    late, picked = late_study(p, fc1, (x_held, y_held, k_held), sweeps["fc1"])
    signs = np.sign(np.asarray(fc1["pred"].eigen_features(k_held, range(p.n_features)))[:, :, 0]).astype(np.int8)
    run = SeedRun(seed, sweeps, mnist_sweeps, full_accuracies(settings, mnist_settings),
                  full_kernel_fgsm(p, fc1), max(sums.values()), late, picked, signs, y_held[:, 0].astype(np.int8))
    return run, (task, settings, mnist_settings)


def pooled(sweeps: list):
    """The sweeps of one kernel over the seeds pooled per eigen-index: the accuracy of feature
    ``i`` over all seeds' test images (each seed's feature ``i`` on its own images);
    ``eigenvalues`` are the first seed's, ``n_test`` the total."""
    n = np.array([sw.n_test for sw in sweeps], float)
    mean = lambda attr: np.sum([getattr(sw, attr) * k for sw, k in zip(sweeps, n)], axis=0) / n.sum()  # noqa: E731
    return dataclasses.replace(sweeps[0], clean_accuracy=mean("clean_accuracy"), robust_accuracy=mean("robust_accuracy"),
                               n_test=int(n.sum()), seconds=float(sum(sw.seconds for sw in sweeps)))


def _runs_sweeps(runs: list) -> dict:
    """``{kernel: [sweep of each seed]}``, MNIST kernels as ``mnist_<name>``."""
    out = {}
    for run in runs:
        for name, sw in {**run.sweeps, **{f"mnist_{k}": v for k, v in run.mnist_sweeps.items()}}.items():
            out.setdefault(name, []).append(sw)
    return out


SWEEP_COLUMNS = ["task / kernel", "architecture", "test images (all seeds)", "accuracy of f_inf",
                 "Spearman(index, robustness)", "95 % interval", "useful features", "useful non-robust", "useful (BH)",
                 "useful non-robust (BH)"]


def feature_pvalues(correct, n: int, chance: float) -> np.ndarray:
    """``(p,)`` one-sided exact binomial p-values ``P[Bin(n, chance) >= k_i]`` of "feature ``i``
    is more accurate than ``chance``" for ``correct`` ``(p,)`` = ``k_i`` of ``n`` points right
    (:func:`ntknb.stats.binomial_test_greater`, vectorised). A feature at chance exceeds ``chance``
    about half the time on any number of points; this test does not."""
    from scipy import stats as st

    k = np.asarray(correct)
    if np.any(k < 0) or np.any(k > n) or n < 1:
        raise ValueError(f"parameter 'correct' must hold counts between 0 and n = {n}, got {k.tolist()}")
    return st.binom.sf(k - 1, n, chance)


def useful_significant(sw, chance: float, q: float = 0.05) -> np.ndarray:
    """``(p,)`` bool: features whose accuracy on the sweep's ``n_test`` points is above ``chance``
    at false-discovery rate ``q`` (Benjamini-Hochberg over the swept features, one-sided exact
    binomial p-values, :func:`feature_pvalues`)."""
    from scipy import stats as st

    n = int(sw.n_test)
    pvals = feature_pvalues(np.round(np.asarray(sw.clean_accuracy) * n).astype(int), n, chance)
    return st.false_discovery_control(pvals, method="bh") <= q


def spearman_index_robustness(sweep: features.FeatureSweep) -> float:
    """Spearman rank correlation between eigen-index and robust accuracy (negative: robustness
    lies at the top of the spectrum, ``tsilivis2022ntk`` Sec. 4)."""
    from scipy.stats import spearmanr

    r = spearmanr(sweep.indices, sweep.robust_accuracy).statistic
    return float(r) if np.isfinite(r) else float("nan")


def count_useful_nonrobust(sweep: features.FeatureSweep, useful_above: float, nonrobust_below: float) -> int:
    """Features with ``clean_accuracy > useful_above`` and ``robust_accuracy < nonrobust_below``."""
    return int(np.sum((sweep.clean_accuracy > useful_above)
                      & (sweep.robust_accuracy < nonrobust_below)))


def spearman_over_seeds(sweeps: list):
    """The Spearman correlation of eigen-index and robustness over the seeds' sweeps of one kernel
    (:class:`ntknb.stats.Interval`): the mean of the per-seed correlations with its Student-t
    interval, clipped to [-1, 1] (the range of a correlation)."""
    from ntknb import stats

    iv = stats.mean_interval([spearman_index_robustness(sw) for sw in sweeps])
    return dataclasses.replace(iv, low=max(-1.0, iv.low), high=min(1.0, iv.high))


def sweep_values(p: Params, runs: list, descriptions: dict) -> tuple:
    """``(glued values, table rows)`` of the sweeps of all seeds: per kernel the mean over seeds of
    the Spearman correlation of index and robustness (with its t half-width), and the useful and
    useful-but-non-robust feature counts of the sweep pooled over the seeds (:func:`pooled`): by
    the 0.5 rule and at false-discovery rate 5 % (:func:`useful_significant`), on the sweep's
    points. ``descriptions``: ``{kernel: architecture description}``."""
    values, rows = {}, []
    for name, sws in _runs_sweeps(runs).items():
        mnist = name.startswith("mnist_")
        above, below = (p.mnist_useful_above, p.mnist_nonrobust_below) if mnist else (USEFUL_ABOVE, NONROBUST_BELOW)
        sw = pooled(sws)
        iv = spearman_over_seeds(sws)
        rho = values[f"spearman_index_robustness_{name}"] = iv.estimate
        values[f"spearman_low_{name}"], values[f"spearman_high_{name}"] = iv.low, iv.high
        count = values[f"useful_nonrobust_{name}"] = count_useful_nonrobust(sw, above, below)
        useful = values[f"useful_{name}"] = int(np.sum(sw.clean_accuracy > above))
        sig = useful_significant(sw, above)
        n_sig = values[f"useful_sig_{name}"] = int(np.sum(sig))
        n_sig_nr = values[f"useful_nonrobust_sig_{name}"] = int(np.sum(sig & (sw.robust_accuracy < below)))
        full = float(np.mean([run.full_clean[name] for run in runs]))
        label = f"MNIST {name[6:]}" if mnist else f"CIFAR-10 {name}"
        rows.append([label, descriptions[name], int(sw.n_test), full, rho, f"[{iv.low:.2f}, {iv.high:.2f}]", useful,
                     count, n_sig, n_sig_nr])
    values["spearman_mean_cifar"] = float(np.mean([values[f"spearman_index_robustness_{k}"] for k in runs[0].sweeps]))
    return values, rows


@dataclasses.dataclass(frozen=True)
class UsefulCount:
    """The population test of "many useful, non-robust features" (:func:`useful_count`; counts of
    features). ``significant``: ``K``, the non-robust features above chance at level ``alpha``;
    ``null_mean`` / ``null_quantile``: ``K``'s mean and ``confidence`` quantile ``c`` when no
    feature is useful (label permutations); ``low = max(0, K - c)``, the lower confidence bound
    on the number of useful non-robust features; ``estimate``: ``K - null_mean`` clipped to
    ``[low, high]``; ``high``: the number of non-robust features. ``pvalues``: per feature;
    ``bh``: features above chance at false-discovery rate ``alpha`` (Benjamini-Hochberg over all
    swept features); ``n_points``: held-out points pooled over the seeds; ``nonrobust``: the set
    ``S``, ``(p,)`` bool."""

    n_features: int
    n_nonrobust: int
    significant: int
    null_mean: float
    null_quantile: float
    low: float
    estimate: float
    high: float
    pvalues: np.ndarray
    bh: np.ndarray
    n_points: int
    nonrobust: np.ndarray


def useful_count(signs: list, labels: list, nonrobust, chance: float = 0.5, alpha: float = 0.05,
                 confidence: float = 0.95, n_perm: int = 2000, seed: int = 0) -> UsefulCount:
    """How many of the non-robust features are useful (``tsilivis2022ntk`` Sec. 4, Fig. 2: "a large
    amount of useful, yet non-robust features"), tested against chance as a population.

    ``signs``: per seed a ``(p, m_s)`` array, the sign (-1, 0, +1) of that seed's feature ``i`` on
    its ``m_s`` held-out points; ``labels``: per seed ``(m_s,)`` +-1; ``nonrobust``: ``(p,)`` bool
    (the set ``S``). Feature ``i`` is right on a point where sign times label is positive; its
    count ``k_i`` over all seeds' points (``N``) gives the one-sided exact binomial p-value
    ``P[Bin(N, chance) >= k_i]`` (:func:`feature_pvalues`). ``K = #{i in S: p_i <= alpha}`` is the
    useful features of ``S`` found significant plus the chance ones found significant; the
    second is bounded by ``K``'s distribution when no feature of ``S`` is useful, drawn from
    ``n_perm`` permutations of the labels within each seed (exact under that null; it keeps the
    features' dependence through the shared points). With ``c`` its ``confidence`` quantile, the
    number ``m1`` of useful features of ``S`` satisfies ``m1 >= K - c`` with probability at least
    ``confidence`` (a single-threshold bound in the manner of Meinshausen & Rice 2006)."""
    from scipy import stats as st

    signs = [np.asarray(g, np.float32) for g in signs]
    labels = [np.asarray(y, np.float32).reshape(-1) for y in labels]
    nonrobust = np.asarray(nonrobust, bool)
    if not signs or len(signs) != len(labels) or any(g.ndim != 2 or g.shape != (nonrobust.size, y.size)
                                                    for g, y in zip(signs, labels)):
        raise ValueError("parameters 'signs' / 'labels' must be one (p, m_s) array and one (m_s,) array per seed, "
                         f"p = len(nonrobust) = {nonrobust.size}")
    if any(not np.all(np.isin(y, (-1.0, 1.0))) for y in labels):
        raise ValueError("parameter 'labels' must hold +-1 labels")
    n = int(sum(y.size for y in labels))
    right = lambda ys: sum((np.abs(g).sum(1)[:, None] + g @ y) / 2 for g, y in zip(signs, ys))  # noqa: E731 (p, B)
    counts = np.rint(right([y[:, None] for y in labels])[:, 0]).astype(int)
    pvals = feature_pvalues(counts, n, chance)
    rng = np.random.default_rng(seed)
    null = []
    for b0 in range(0, n_perm, 250):  # 250 permutations at a time: (m_s, 250) labels per seed
        ys = [rng.permuted(np.broadcast_to(y[:, None], (y.size, min(250, n_perm - b0))), axis=0) for y in labels]
        null.append((feature_pvalues(np.rint(right(ys)[nonrobust]).astype(int), n, chance) <= alpha).sum(0))
    null = np.concatenate(null)
    sig = int(np.sum(pvals[nonrobust] <= alpha))
    c = float(np.quantile(null, confidence, method="higher"))
    low, high = max(0.0, sig - c), float(nonrobust.sum())
    est = min(max(sig - float(null.mean()), low), high)
    bh = st.false_discovery_control(pvals, method="bh") <= alpha
    return UsefulCount(int(nonrobust.size), int(high), sig, float(null.mean()), c, low, est, high, pvals, bh, n,
                       nonrobust)


def _useful_count(runs: list) -> UsefulCount:
    """:func:`useful_count` of fc1's swept features: non-robust by FGSM accuracy pooled over the
    seeds' sweep images, useful on the seeds' held-out images."""
    sweep = pooled([run.sweeps["fc1"] for run in runs])
    return useful_count([run.heldout_signs for run in runs], [run.heldout_labels for run in runs],
                        sweep.robust_accuracy < NONROBUST_BELOW, chance=USEFUL_ABOVE)


def population_values(runs: list) -> dict:
    """Glued numbers of the population test (:func:`useful_count`, fc1): counts of features."""
    uc = _useful_count(runs)
    return {"pop_n_heldout": uc.n_points, "pop_nonrobust": uc.n_nonrobust, "pop_significant": uc.significant,
            "pop_null_mean": uc.null_mean, "pop_null_quantile": uc.null_quantile, "pop_low": uc.low,
            "pop_estimate": uc.estimate, "pop_bh": int(uc.bh.sum()), "pop_bh_nonrobust": int(np.sum(uc.bh & uc.nonrobust)),
            "pop_fraction_low": uc.low / uc.n_features}


def plot_usefulness(sweeps: dict, useful_above: float, nonrobust_below: float, title: str, limit=None):
    """Features in usefulness-robustness space, one panel per kernel."""
    from ntknb import plotting

    fig, axes = plotting.new_figure(ncols=len(sweeps), width=3.0, height=3.0, squeeze=False)
    for ax, (name, sw) in zip(axes[0], sweeps.items()):
        plotting.plot_usefulness_robustness(ax, sw.robust_accuracy, sw.clean_accuracy, sw.eigenvalues,
                                            title=f"{title}, {name}", useful_above=useful_above,
                                            nonrobust_below=nonrobust_below)
        if limit is not None:
            ax.set_ylim(*limit)
            ax.set_xlim(*limit)
    return fig


def top5_gradients(p: Params, settings: dict, task, image_index: int = 0):
    """Input gradients of the first five features of every kernel at one test image (figure)."""
    from ntknb import plotting

    x_img_full = task.x_test[image_index:image_index + 1]
    x_img_conv = data.average_pool(x_img_full, p.conv_pool)
    grid = {}
    for name, s in settings.items():
        x_img = x_img_conv if name in p.conv_architectures else x_img_full
        g = features.feature_input_gradients(s["arch"].kernel_fn, s["x_train"], s["pred"], x_img, indices=range(5),
                                             train_batch_size=s["trbs"])
        grid[name] = [x_img[0]] + [plotting.gradient_to_image(g[i, 0]) for i in range(5)]
    return plotting.plot_image_grid(grid, col_titles=["image"] + [f"feature {i}" for i in range(1, 6)])


def best_useful_nonrobust(sw):
    """(index, accuracy, FGSM accuracy) of the most useful non-robust feature of ``sw``
    (:data:`USEFUL_ABOVE`, :data:`NONROBUST_BELOW`), or None."""
    ok = (sw.clean_accuracy > USEFUL_ABOVE) & (sw.robust_accuracy < NONROBUST_BELOW)
    if not ok.any():
        return None
    j = np.flatnonzero(ok)[np.argmax(sw.clean_accuracy[ok])]
    return int(sw.indices[j]), float(sw.clean_accuracy[j]), float(sw.robust_accuracy[j])


@dataclasses.dataclass(frozen=True)
class Pick:
    """A Fig. 5 feature of one seed, picked on the sweep's images and reported on held-out ones:
    ``index`` (0-based), ``accuracy`` / ``fgsm`` on the held-out images, ``picked_accuracy`` on
    the sweep's images, ``correct``: ``(n_heldout,)`` bool per held-out image."""

    index: int
    accuracy: float
    fgsm: float
    picked_accuracy: float
    correct: np.ndarray


def late_study(p: Params, fc1: dict, heldout: tuple, early) -> tuple:
    """Fig. 5 for one seed: every ``late_stride``-th later feature of fc1 swept on the sweep's
    images; the most useful non-robust feature early (``early``: the sweep of the first
    ``n_features``) and late in the spectrum is **picked on the sweep's images** and reported on
    the seed's held-out images ``heldout = (x, y, Theta(x, X))`` (the best of many features is
    flattered by the images it was picked on): accuracy from Eq. 9 on each image, FGSM accuracy
    from :func:`ntknb.features.feature_sweep`. Returns ``(late sweep, {"early" | "late":
    :class:`Pick` or None})``."""
    x_held, y_held, k_held = heldout
    kw = dict(test_batch_size=p.test_batch_size, feature_batch_size=p.feature_batch_size)
    sweep = lambda idx, x, y: features.feature_sweep(fc1["arch"].kernel_fn, fc1["x_train"], fc1["pred"],  # noqa: E731
                                                     x, y, p.eps, indices=idx, **kw)
    late = sweep(np.arange(p.n_features, p.n_train, p.late_stride), fc1["x_test"], fc1["y_test"])
    picks = {where: best_useful_nonrobust(sw) for where, sw in (("early", early), ("late", late))}
    found = [pk[0] for pk in picks.values() if pk is not None]
    if not found:
        return late, dict.fromkeys(picks)
    held = sweep(found, x_held, y_held)
    right = np.asarray(fc1["pred"].eigen_features(k_held, found))[:, :, 0] * np.asarray(y_held)[None, :, 0] > 0
    picked = {}
    for where, pk in picks.items():
        j = found.index(pk[0]) if pk is not None else None
        picked[where] = None if pk is None else Pick(pk[0], float(right[j].mean()), float(held.robust_accuracy[j]),
                                                     pk[1], right[j])
    return late, picked


def fig5_values(runs: list) -> dict:
    """Glued numbers of the late sweeps (pooled over the seeds) and of the Fig. 5 picks of all seeds."""
    late = pooled([run.late for run in runs])
    values = {"late_useful_nonrobust_fc1": count_useful_nonrobust(late, USEFUL_ABOVE, NONROBUST_BELOW),
              "late_swept": len(late), "late_useful_fc1": int(np.sum(late.clean_accuracy > USEFUL_ABOVE)),
              "late_useful_sig_fc1": int(np.sum(useful_significant(late, USEFUL_ABOVE)))}
    for where in ("early", "late"):
        pks = [run.picked[where] for run in runs if run.picked[where] is not None]
        values[f"fig5_{where}_n_picked"] = len(pks)
        values[f"fig5_{where}_indices"] = ", ".join(str(pk.index + 1) for pk in pks) or "none"
        if pks:
            values.update({f"fig5_{where}_acc": float(np.mean([pk.accuracy for pk in pks])),
                           f"fig5_{where}_fgsm": float(np.mean([pk.fgsm for pk in pks])),
                           f"fig5_{where}_acc_sel": float(np.mean([pk.picked_accuracy for pk in pks]))})
    return values


def fig5(fc1: dict, task, picked: dict):
    """Input gradients of the first seed's picked features on 4 test images (figure or None);
    the row titles give the held-out accuracies."""
    from ntknb import plotting

    rows = {}
    for where, pk in picked.items():
        if pk is None:
            print(f"no useful non-robust feature {where} in the spectrum at these thresholds")
            continue
        imgs = task.x_test[:4]
        g = features.feature_input_gradients(fc1["arch"].kernel_fn, fc1["x_train"], fc1["pred"], imgs,
                                             indices=[pk.index])[0]
        rows[f"{where}: #{pk.index + 1}\nacc {pk.accuracy:.2f} / FGSM {pk.fgsm:.2f}"] = [
            plotting.gradient_to_image(g[j]) for j in range(len(imgs))]
    return plotting.plot_image_grid(rows, col_titles=[f"test image {j}" for j in range(4)], cell=1.6) if rows else None


@dataclasses.dataclass
class TrainingTime:
    """The predictor f_t of fc1 along training time (Eq. 7): at ``times`` and at t = inf (last)."""

    idx_t: np.ndarray  #: 0-based eigen-indices whose time scale N / lambda_i defines ``times``
    times: np.ndarray
    clean: np.ndarray  #: (len(times) + 1,) clean accuracy
    robust: np.ndarray  #: FGSM accuracy (kernel attack, Eq. 8)
    coherence: np.ndarray  #: mean gradient coherence of grad_x L(f_t)
    weights: np.ndarray  #: feature weights 1 - exp(-lambda_i t / N) per time


def training_time_study(p: Params, fc1: dict) -> TrainingTime:
    """:class:`TrainingTime` of the fc1 setting on its test images (Eq. 7; kernel FGSM, Eq. 8)."""
    pred1 = fc1["pred"]
    x_test, y_test = fc1["x_test"], fc1["y_test"]
    lam1 = np.asarray(pred1.eigenvalues)
    idx_t = np.unique(np.round(np.geomspace(1, p.n_train, p.n_times)).astype(int)) - 1
    times = pred1.normalization / lam1[idx_t]
    clean_t, robust_t, coher_t = [], [], []
    for t in list(times) + [np.inf]:
        alpha_t = np.asarray(pred1.weights(t), np.float32)
        f_t = kernels.make_predict_fn(fc1["arch"].kernel_fn, fc1["x_train"], alpha_t)
        clean_t.append(attacks.accuracy(f_t(x_test), y_test))
        x_adv = attacks.kernel_fgsm(f_t, x_test, y_test, p.eps, batch_size=p.test_batch_size)
        robust_t.append(attacks.accuracy(f_t(x_adv), y_test))
        grads = kernels.predictor_input_gradients(fc1["arch"].kernel_fn, fc1["x_train"], alpha_t, x_test,
                                                  loss=attacks.binary_cross_entropy_pm1, y=y_test,
                                                  batch_size=p.test_batch_size)
        coher_t.append(float(np.mean(features.gradient_coherence(grads))))
    clean_t, robust_t, coher_t = map(np.asarray, (clean_t, robust_t, coher_t))
    weights_t = features.training_time_weights(lam1, times, pred1.normalization)
    return TrainingTime(idx_t, times, clean_t, robust_t, coher_t, weights_t)


def plot_training_time(p: Params, tt: TrainingTime):
    from ntknb import plotting

    fig, axes = plotting.new_figure(ncols=3, width=3.4, height=3.0)
    for j, w in enumerate(tt.weights):
        axes[0].semilogx(np.arange(1, p.n_train + 1), w, color=plotting.plt.cm.viridis(j / len(tt.times)), lw=0.9)
    axes[0].set_xlabel("feature index i")
    axes[0].set_ylabel(r"weight $1 - e^{-\lambda_i t/N}$")
    axes[0].set_title("feature weights along training", fontsize=9)
    axes[1].semilogx(tt.times, tt.clean[:-1], "o-", ms=3, label="clean")
    axes[1].semilogx(tt.times, tt.robust[:-1], "s-", ms=3, label=f"FGSM, eps {p.eps * 255:.0f}/255")
    axes[1].set_xlabel("t")
    axes[1].set_ylabel("accuracy of $f_t$")
    axes[1].legend(fontsize=7)
    axes[1].set_title("accuracy-robustness trade-off", fontsize=9)
    axes[2].semilogx(tt.times, tt.coherence[:-1], "o-", ms=3)
    axes[2].set_xlabel("t")
    axes[2].set_ylabel("gradient coherence")
    axes[2].set_title(r"coherence of $\nabla_x L(f_t)$", fontsize=9)
    return fig


def training_time_values(tt: TrainingTime) -> dict:
    j_best = int(np.argmax(tt.robust[:-1]))
    return {"robust_t_max": tt.robust[:-1].max(), "robust_t_argmax_index": int(tt.idx_t[j_best]) + 1,
            "robust_t_first": tt.robust[0], "robust_t_inf": tt.robust[-1], "clean_t_first": tt.clean[0],
            "clean_t_max": tt.clean[:-1].max(), "clean_t_inf": tt.clean[-1], "coherence_t_first": tt.coherence[0],
            "coherence_t_inf": tt.coherence[-1]}


OURS_COLUMNS = ["published feature", "published accuracy", "published FGSM", "ours #i accuracy", "ours #i FGSM",
                "ours #(i+1) accuracy", "ours #(i+1) FGSM"]


def paper_comparison(p: Params, fc1: dict, tt: TrainingTime) -> tuple:
    """The published notebook's features (``paper_indices``, its own indexing) side by side with ours
    read as our (1-based) index i and i+1, and the full kernel; the mean absolute difference between
    published and our (accuracy, FGSM accuracy) under each reading, over the published features with
    i >= 1 (``index_mad_same``, ``index_mad_plus1``). Returns ``(glued values, rows, acc_of)``."""
    idx_paper = [i for i in p.paper_indices if i + 1 <= p.n_train]
    both = sorted({i - 1 for i in idx_paper if i >= 1} | {i for i in idx_paper})
    sw = features.feature_sweep(fc1["arch"].kernel_fn, fc1["x_train"], fc1["pred"], fc1["x_test"], fc1["y_test"],
                                p.eps, indices=both, test_batch_size=p.test_batch_size)
    acc_of = {int(j) + 1: (a, r) for j, a, r in zip(sw.indices, sw.clean_accuracy, sw.robust_accuracy)}
    nan = (float("nan"), float("nan"))
    values = {"ours_full_clean": tt.clean[-1], "ours_full_fgsm": tt.robust[-1]}
    rows = [["full kernel", *REFERENCE["full kernel"], tt.clean[-1], tt.robust[-1], tt.clean[-1], tt.robust[-1]]]
    diff = {"same": [], "plus1": []}
    for i in idx_paper:
        same, plus = acc_of.get(i, nan), acc_of[i + 1]
        values.update({f"ours_feature{i + 1}_clean": plus[0], f"ours_feature{i + 1}_fgsm": plus[1]})
        if i >= 1:
            values.update({f"ours_feature{i}_clean": same[0], f"ours_feature{i}_fgsm": same[1]})
        ref = REFERENCE.get(i, nan)
        rows.append([f"feature {i}", *ref, *same, *plus])
        if i in REFERENCE and i >= 1:
            diff["same"].append(np.abs(np.subtract(ref, same)))
            diff["plus1"].append(np.abs(np.subtract(ref, plus)))
    if diff["same"]:
        values.update({"index_mad_same": float(np.mean(diff["same"])), "index_mad_plus1": float(np.mean(diff["plus1"]))})
    return values, rows, acc_of


def summary_text(runs: list, eq10_relative_error, tt: TrainingTime, acc_of) -> str:
    """The headline checks and numbers (the cell nbval compares): sweeps pooled over the seeds,
    the fc1 full kernel and features of the first seed."""
    lines = [f"max |sum of features - f_inf| < 1e-9 (all seeds): {max(run.sum_error for run in runs) < 1e-9}",
             f"Eq. (10) relative error below 1e-3:                {eq10_relative_error < 1e-3}"]
    for name, sws in _runs_sweeps(runs).items():
        sw = pooled(sws)
        rho = spearman_over_seeds(sws).estimate
        lines.append(f"{name:10s} Spearman(index, robustness) {rho:+.2f} ({len(sws)} seeds), "
                     f"mean acc {sw.clean_accuracy.mean():.2f}, mean FGSM acc {sw.robust_accuracy.mean():.2f}")
    lines.append(f"fc1 full kernel (first seed): accuracy {tt.clean[-1]:.2f}, FGSM accuracy {tt.robust[-1]:.2f}")
    lines.append("fc1 features (first seed; our index: acc / FGSM): "
                 + ", ".join(f"{i}: {acc_of[i][0]:.2f}/{acc_of[i][1]:.2f}" for i in sorted(acc_of)))
    return "\n".join(lines)


# ---------------------------------------------------------------------------------- claims

#: The chapter's claim register (issue 29): every claim's id, the paper's words and where they
#: stand, threshold, direction, preconditions and why, fixed before the runs that judge them.
REGISTER = REGISTER_DIR / "02_eigenfeatures.yaml"


def claim_specs() -> dict:
    """``{id: ClaimSpec}`` of :data:`REGISTER` (:func:`ntknb.claims.load_register`), in register order."""
    return load_register(REGISTER)


def _claim(spec, interval, **fields) -> Claim:
    return Claim.from_register(spec, measured=interval.estimate, low=interval.low, high=interval.high, **fields)


def claims(p: Params, runs: list) -> list:
    """The chapter's claims, in register order, built from :data:`REGISTER` (words, thresholds,
    directions, preconditions and their justification live there) with what the :class:`SeedRun`
    of every seed measured. Precondition ``kernel_learns_task``: the kernel's full predictor's
    clean accuracy, mean over the seeds.

    * ``ch02.full_kernel_not_robust``: logit-t interval (inside [0, 1]) over the seeds of the fc1
      predictor's kernel-FGSM accuracy.
    * ``ch02.robust_features_on_top.<kernel>``: :func:`spearman_over_seeds`.
    * ``ch02.useful_nonrobust_count``: :func:`useful_count` of fc1 (fractions of the swept features).
    * ``ch02.fig5_early_useful`` / ``ch02.fig5_late_useful``: the held-out accuracy of each seed's
      :class:`Pick`, pooled with the seeds as clusters (:func:`ntknb.stats.pooled_proportion_interval`);
      no claim where no seed found a pick."""
    from ntknb import stats

    specs = claim_specs()
    k = len(runs)
    seeds = f"{k} seed{'s' if k != 1 else ''} ({', '.join(str(r.seed) for r in runs)})"
    scale = f"CIFAR-10 {' vs '.join(p.classes)}, {p.n_train} train, fc1 analytic NTK, FGSM eps {p.eps * 255:.0f}/255"
    learns = {name: float(np.mean([run.full_clean[name] for run in runs])) for name in runs[0].full_clean}
    fc1_learns = {"kernel_learns_task": learns["fc1"]}
    out = [_claim(specs["ch02.full_kernel_not_robust"], stats.mean_interval([run.full_fgsm for run in runs], bounds=(0, 1)),
                  n_seeds=k, n_test=p.n_test * k, scale=f"{scale}; {seeds}", conditions=fc1_learns)]
    sizes = {"": (p.n_train, p.n_test, p.eps, "CIFAR-10"), "mnist_": (p.mnist_n_train, p.mnist_n_test, p.mnist_eps,
                                                                      "MNIST 10 classes")}
    for name, sws in _runs_sweeps(runs).items():
        mnist = name.startswith("mnist_")
        arch = name[6:] if mnist else name
        n_train, n_test, eps, task = sizes["mnist_" if mnist else ""]
        if not mnist and name in p.conv_architectures:
            n_train, n_test = p.conv_n_train, p.conv_n_test
            task = f"CIFAR-10, images pooled {p.conv_pool}x ({32 // p.conv_pool}x{32 // p.conv_pool})"
        out.append(_claim(specs[f"ch02.robust_features_on_top.{name}"], spearman_over_seeds(sws), n_seeds=k,
                          n_test=n_test * k, conditions={"kernel_learns_task": learns[name]},
                          scale=f"{task}, {n_train} train, {arch} analytic NTK, FGSM eps {eps:.4g}; first "
                                f"{p.n_features} features; {seeds}"))
    uc = _useful_count(runs)
    frac = lambda v: v / uc.n_features  # noqa: E731
    out.append(Claim.from_register(
        specs["ch02.useful_nonrobust_count"], measured=frac(uc.estimate), low=frac(uc.low), high=frac(uc.high),
        n_seeds=k, n_test=uc.n_points, conditions=fc1_learns,
        scale=f"{scale}; first {uc.n_features} features: {uc.n_nonrobust} non-robust (FGSM accuracy pooled over "
              f"{p.n_test * k} sweep images), {uc.significant} of them above chance at the 5 % level on "
              f"{uc.n_points} held-out images ({p.n_heldout} per seed, {p.heldout_split} split; with none useful: mean "
              f"{uc.null_mean:.1f}, 95 % quantile {uc.null_quantile:g}); {seeds}"))
    for where in ("early", "late"):
        pks = [(run.seed, run.picked[where]) for run in runs if run.picked[where] is not None]
        if not pks:
            continue
        out.append(_claim(
            specs[f"ch02.fig5_{where}_useful"], stats.pooled_proportion_interval([pk.correct for _, pk in pks]),
            n_seeds=len(pks), n_test=sum(pk.correct.size for _, pk in pks), conditions=fc1_learns,
            scale=f"{scale}; features {', '.join(str(pk.index + 1) for _, pk in pks)} (seeds "
                  f"{', '.join(str(s) for s, _ in pks)}), {p.n_heldout} held-out images per seed "
                  f"({p.heldout_split} split), seeds as clusters"))
    order = list(specs)
    return sorted(out, key=lambda c: order.index(c.id))


#: The claims of runs with a never-used base seed (``scripts/seed_check.py 02_eigenfeatures 6000``),
#: one JSON record a run (:func:`ntknb.records.seed_check_record`) under ``notebooks/data/`` (issue 15,
#: "done when"); the page sets them beside its own (:func:`ntknb.claims.seed_check_rows`).
SEED_CHECK_FILE = records.seed_check_file("02_eigenfeatures")
#: The recorded cost of the conv sweeps per resolution (:func:`conv_resolution_runs`).
CONV_RESOLUTION_FILE = paths.DATA / "02_eigenfeatures_conv_resolution.json"


def conv_resolution_runs(path=CONV_RESOLUTION_FILE) -> list:
    """The recorded cost of the conv sweeps per resolution (:data:`CONV_RESOLUTION_FILE`, the measurement
    behind the default ``conv_pool``): one dict per run."""
    return json.loads(Path(path).read_text())["runs"]


def load_seed_check(parameters: dict, path=SEED_CHECK_FILE) -> dict | None:
    """The latest recorded never-used-seed run (:data:`SEED_CHECK_FILE`, :func:`ntknb.records.load_seed_checks`)
    at ``parameters`` (the page's parameters, name -> value), the base seed apart
    (:func:`ntknb.claims.seed_check_mismatch` empty), or ``None`` if none is recorded at them: a run at
    other parameters tests other settings, and the Results page names it without comparing it."""
    runs = records.load_seed_checks(path)
    same = [r for r in runs if not seed_check_mismatch(r, parameters)]
    return same[-1] if same else None
