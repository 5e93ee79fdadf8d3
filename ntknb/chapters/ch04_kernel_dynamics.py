"""Chapter 04: empirical NTK dynamics under standard and adversarial training.

The chapter trains a small CNN with standard training and PGD-AT (``madry2018towards``; FGSM-AT
``goodfellow2015explaining`` and TRADES ``zhang2019theoretically`` on request) over several seeds,
tracks its empirical NTK (:mod:`ntknb.ntk_dynamics`) and measures, as :class:`ntknb.claims.Claim`
records built from the chapter's claim register (:data:`REGISTER`, ``notebooks/claims/04_at_kernel_dynamics.yaml``),
the kernel growth, concentration, rotation and laziness of ``tsilivis2022ntk`` Sec. 5, its
linearisation after a few epochs, the accuracy-robustness trade-offs, the KD / KER phases and the
cheaper adversarial training of ``li2023rethinking`` Secs. 3 and 5, and the central experiment of
``loo2022evolution``: clean training of the (centred) linearised network on the frozen kernel of a
standard and of an adversarially trained network.

Two probe sets of held-out images carry the kernels: the *per-epoch probe* (``probe_per_class`` per
class), whose C-NTK is computed after every epoch (the phases: consecutive kernel distance KD,
lazy epoch, KER, KS, heat map, polar plot), and *T&K's probe* (``tk_probe_per_class`` per class,
about 256 images as in ``tsilivis2022ntk`` Fig. 6), whose kernel with all logit pairs is computed
only at the initialisation and at the end (norm growth, concentration of the per-logit kernel,
rotation d(Θ_0, Θ_f), KD to the PGD-AT kernel): on a 2-core CPU that kernel and its 2600 x 2600
spectrum cost about as much as a PGD-AT epoch (``notebooks/data/04_budget.json``).

Phases (the register's definitions): the *plateau* of a run is the second half of the epochs before
the first learning-rate decay ``D`` (epochs ``D // 2 + 1 .. D``); its *kernel-learning rate* is its
largest consecutive KD before the decay; its kernel is *lazy* at epoch ``t`` when ``KD(t-1, t)`` is
below :data:`LAZY_FRACTION` of that rate.

This module is the chapter's code; ``notebooks/04_at_kernel_dynamics.py`` only calls it:
:class:`Params` (the parameter schema), the runs (:func:`load_data`, :func:`run_seed`,
:func:`run_seeds`), the per-seed measurements (:func:`seed_measurements`), the claims
(:func:`claims`), tables and figures, and the records the page shows: the PGD-AT settings runs
(:func:`settings_rows`), the recorded CIFAR-10 GPU runs (:func:`gpu_pgd_records`, :func:`gpu_rows`), the
chapter's budget measurements (:func:`budget_rows`) and the chapter at seeds never used before
(:data:`SEED_CHECK_FILE`, :func:`load_seed_checks`).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import time
from pathlib import Path

import ntknb  # noqa: F401  (compat shim before neural_tangents)

import jax
import numpy as np

from ntknb import data, metrics, paths, records, replicas, stats, training
from ntknb import ntk_dynamics as nd
from ntknb import schema
from ntknb.claims import REGISTER_DIR, Claim, load_register
from ntknb.validation import SEED_LIMIT

__all__ = ["Params", "LABEL", "MODELS", "base_config", "loo_config", "load_data", "make_model", "SeedRun",
           "run_seed", "run_seeds", "linearised_continuation", "seed_measurements", "measurements",
           "correct", "pooled", "page_values", "measurement_table", "accuracy_rows", "claims", "undecided_rows", "REGISTER",
           "claim_specs", "LAZY_FRACTION", "SATURATION_GAP", "LEARNS", "CHANCE", "TRADEOFF_EPOCH",
           "masking_report", "TK_LOGIT_TOP_P", "TK_LOGIT_SIZE", "LOO_ANCHOR", "loo_anchor_rows",
           "gpu_pgd_records", "gpu_learned", "gpu_rows", "gpu_summary", "BUDGET_FILE", "budget_rows", "phase_rows",
           "SEED_CHECK_FILE", "load_seed_checks",
           "ACCURACY_COLUMNS", "BUDGET_COLUMNS", "GPU_COLUMNS", "GPU_LEARNED_CLEAN", "LOO_COLUMNS",
           "MEASUREMENT_COLUMNS", "PHASE_COLUMNS", "SETTINGS_COLUMNS", "UNDECIDED_COLUMNS", "plot_accuracies",
           "plot_growth_and_concentration", "plot_kd_ker_ks", "plot_loo", "settings_rows"]

MODES = ["standard", "fgsm", "pgd", "trades"]
#: The training modes, as the page names them.
LABEL = {"standard": "standard", "fgsm": "FGSM-AT", "pgd": "PGD-AT", "trades": "TRADES"}
#: tsilivis2022ntk Fig. 6b: concentration on the top 20 eigenvalues of the kernel of a batch of 256 images
#: x 10 logits (a 2560 x 2560 per-logit kernel); the chapter keeps the same fraction of the spectrum.
TK_LOGIT_TOP_P, TK_LOGIT_SIZE = 20, 2560
#: The per-epoch probe of replica ``seed`` is drawn with seed ``seed + PROBE_SEED_OFFSET``, T&K's probe with
#: ``seed + TK_PROBE_SEED_OFFSET`` (:func:`load_data`; below the first, so the largest derived seed stays
#: ``seed + n_seeds - 1 + 10**6``).
PROBE_SEED_OFFSET, TK_PROBE_SEED_OFFSET = 10**6, 10**6 // 2

# The register's constants (notebooks/claims/04_at_kernel_dynamics.yaml; not parameters: a parameter could
# move a registered bar after the register).
#: A kernel is lazy at epoch t when KD(t-1, t) is below this fraction of the run's kernel-learning rate.
LAZY_FRACTION = 0.1
#: Saturation guard of ``ch04.top_concentration``: concentrations above 1 - SATURATION_GAP cannot show a difference.
SATURATION_GAP = 0.01
#: "Learns the task": clean accuracy above halfway between chance and perfect (chapter 05's reading).
LEARNS = 0.55
#: Chance on the ten classes.
CHANCE = 0.1
#: The early checkpoint of ``ch04.tradeoff_standard_training``: the first epoch.
TRADEOFF_EPOCH = 1
#: Loo et al.'s headline number (abstract): PGD-AT on a fixed kernel, robust accuracy under PGD.
LOO_ANCHOR = {"robust_accuracy": 0.761, "eps": 4 / 255, "dataset": "CIFAR-10", "network": "ResNet-18",
              "attack": "PGD-20", "phase_2": "100 epochs of the linearised model at lr 0.01 (run_exp.py)"}


@dataclasses.dataclass(frozen=True)
class Params(schema.Params):
    """The rules for the parameters of ``notebooks/04_at_kernel_dynamics.py`` (the defaults
    live in its ``parameters`` cell; field order = cell order)."""

    seed: int = schema.param(schema.Int(min=0, max=SEED_LIMIT - 1))
    n_seeds: int = schema.param(schema.Int(min=1, max=20))
    dataset: str = schema.param(schema.Choice(["cifar10", "mnist"]))
    n_train: int = schema.param(schema.Int(min=20))
    n_test: int = schema.param(schema.Int(min=10))
    n_monitor: int = schema.param(schema.Int(min=1, max=schema.Ref("n_test")))
    probe_per_class: int = schema.param(schema.Int(min=1, max=100))
    tk_probe_per_class: int = schema.param(schema.Int(min=1, max=100))
    width: int = schema.param(schema.Int(min=1, max=schema.MAX_WIDTH))
    hidden: int = schema.param(schema.Int(min=1, max=schema.MAX_WIDTH))
    epochs: int = schema.param(schema.Int(min=2, max=schema.MAX_EPOCHS))
    lr_decay_epochs: list = schema.param(schema.List(schema.Int(min=1, max=schema.Ref("epochs", -1)), max_length=4,
                                                     increasing=True))
    lr_decay_factor: float = schema.param(schema.Float(min=0.0, max=1.0, min_inclusive=False))
    learning_rate: float = schema.param(schema.Float(min=0.0, min_inclusive=False))
    momentum: float = schema.param(schema.Float(min=0.0, max=1.0, max_inclusive=False))
    weight_decay: float = schema.param(schema.Float(min=0.0))
    batch_size: int = schema.param(schema.Int(min=1, max=schema.Ref("n_train")))
    augment: str = schema.param(schema.Choice(training.AUGMENTATIONS))
    eps_cifar: float = schema.param(schema.Float(min=0.0, max=1.0, min_inclusive=False))
    eps_mnist: float = schema.param(schema.Float(min=0.0, max=1.0, min_inclusive=False))
    attack_steps: int = schema.param(schema.Int(min=1, max=schema.MAX_ATTACK_STEPS))
    pgd_warm_start: int = schema.param(schema.Int(min=0, max=schema.Ref("epochs", -1)))
    eval_attack_steps: int = schema.param(schema.Int(min=1, max=schema.MAX_ATTACK_STEPS))
    eval_iter: int = schema.param(schema.Int(min=1, max=schema.MAX_ATTACK_STEPS))
    trades_beta: float = schema.param(schema.Float(min=0.0))
    modes: list = schema.param(schema.List(schema.Choice(MODES), min_length=2))
    top_p: int = schema.param(schema.Int(min=1, max=schema.Ref("probe_per_class", scale=10)))
    cheap_at_clean_epochs: list = schema.param(schema.List(schema.Int(min=1, max=schema.Ref("epochs", -1)),
                                                           min_length=1))
    linearize_epoch: int = schema.param(schema.Int(min=1, max=schema.Ref("epochs", -1)))
    loo_epochs: int = schema.param(schema.Int(min=1, max=schema.MAX_EPOCHS))
    loo_learning_rate: float = schema.param(schema.Float(min=0.0, min_inclusive=False))

    def derived_seeds(self) -> dict:
        return {"the probe sets' seeds (seed + n_seeds - 1 + 10**6)": self.seed + self.n_seeds - 1 + PROBE_SEED_OFFSET}

    def check(self) -> None:
        data.check_task_sizes(self.dataset, train=[("n_train", self.n_train)], test=[("n_test", self.n_test)])
        if "standard" not in self.modes or "pgd" not in self.modes:
            raise ValueError(f"parameter 'modes' must contain 'standard' and 'pgd', got {self.modes!r}")
        if not self.lr_decay_epochs:
            raise ValueError("parameter 'lr_decay_epochs' must hold at least one epoch (the phases are measured "
                             "before and after the first decay), got []")
        if self.pgd_warm_start >= self.linearize_epoch:
            raise ValueError(f"parameter 'linearize_epoch' must be after the clean warm start (pgd_warm_start = "
                             f"{self.pgd_warm_start}): the network is linearised during PGD-AT, got "
                             f"{self.linearize_epoch}")

    @property
    def eps(self) -> float:
        """The l-inf radius of :attr:`dataset`."""
        return {"cifar10": self.eps_cifar, "mnist": self.eps_mnist}[self.dataset]

    @property
    def seeds(self) -> list:
        """The seeds of the replicas: ``seed, seed + 1, ...`` (``n_seeds`` of them)."""
        return [self.seed + i for i in range(self.n_seeds)]

    @property
    def decay_epoch(self) -> int:
        """The first learning-rate decay ``D``: the end of the first phase."""
        return self.lr_decay_epochs[0]

    @property
    def plateau_epochs(self) -> list:
        """The plateau: the second half of the epochs before the decay, ``D // 2 + 1 .. D``."""
        return list(range(self.decay_epoch // 2 + 1, self.decay_epoch + 1))

    @property
    def n_probe(self) -> int:
        """Images of the per-epoch probe (10 classes)."""
        return 10 * self.probe_per_class

    @property
    def n_tk_probe(self) -> int:
        """Images of T&K's probe (10 classes)."""
        return 10 * self.tk_probe_per_class

    @property
    def logit_top_p(self) -> int:
        """The cutoff of the per-logit concentration on T&K's probe: their top 20 of 2560, scaled to
        this probe's ``n_tk_probe * 10`` eigenvalues (at least 1)."""
        return max(1, int(round(TK_LOGIT_TOP_P * self.n_tk_probe * 10 / TK_LOGIT_SIZE)))


def base_config(p: Params, mode: str, seed: int) -> "training.TrainConfig":
    """The :class:`ntknb.training.TrainConfig` of ``mode`` for replica ``seed`` (no augmentation on MNIST); the
    adversarial modes start with ``pgd_warm_start`` clean epochs (a warm start: from a random initialisation
    PGD-AT can stick at a constant prediction, see ``notebooks/data/04_pgd_at_settings.jsonl``)."""
    return training.TrainConfig(
        mode=mode, epochs=p.epochs, batch_size=p.batch_size, learning_rate=p.learning_rate, momentum=p.momentum,
        weight_decay=p.weight_decay, lr_decay_epochs=tuple(p.lr_decay_epochs), lr_decay_factor=p.lr_decay_factor,
        eps=p.eps, attack_steps=p.attack_steps, eval_attack_steps=p.eval_attack_steps,
        trades_beta=p.trades_beta, augment="none" if p.dataset == "mnist" else p.augment,
        eval_batch_size=p.n_monitor, seed=seed,
        clean_epochs=p.pgd_warm_start if mode in ("fgsm", "pgd", "trades") else 0,
    )


def loo_config(p: Params, mode: str, seed: int) -> "training.TrainConfig":
    """Training of a linearised model (``loo2022evolution``): ``loo_epochs`` epochs of ``mode`` at the
    constant rate ``loo_learning_rate``, no weight decay (it would pull the weights towards 0, not
    towards the expansion point)."""
    return base_config(p, mode, seed).replace(epochs=p.loo_epochs, learning_rate=p.loo_learning_rate,
                                              lr_decay_epochs=(), weight_decay=0.0, clean_epochs=0)


@dataclasses.dataclass
class ChapterData:
    """One replica's data: its subsample of the dataset and its two probe sets."""

    task: object  #: :class:`ntknb.data.Task`
    x_probe: np.ndarray  #: (10 probe_per_class, H, W, C), the per-epoch probe
    labels_probe: np.ndarray
    x_tk: np.ndarray  #: (10 tk_probe_per_class, H, W, C), T&K's probe
    labels_tk: np.ndarray


def load_data(p: Params, seed: int, dataset=None) -> ChapterData:
    """The subsample and probe sets of replica ``seed``; the probes are class-balanced held-out images drawn
    from the whole test split with ``seed + PROBE_SEED_OFFSET`` (per-epoch probe) and ``seed +
    TK_PROBE_SEED_OFFSET`` (T&K's probe); they may overlap each other and the test subsample (they measure
    the kernel, not accuracy). ``dataset``: an already loaded :class:`ntknb.data.Dataset`."""
    ds = dataset if dataset is not None else data.load_dataset(p.dataset)
    task = data.make_task(ds, n_train=p.n_train, n_test=p.n_test, seed=seed)
    probes = []
    for per_class, offset in ((p.probe_per_class, PROBE_SEED_OFFSET), (p.tk_probe_per_class, TK_PROBE_SEED_OFFSET)):
        idx = nd.balanced_probe(ds.labels_test, per_class, num_classes=ds.n_classes, seed=seed + offset)
        probes += [ds.x_test[idx], ds.labels_test[idx].astype(np.int64)]
    return ChapterData(task, *probes)


def make_model(p: Params):
    """The 7-layer CNN of the chapter (10 classes)."""
    from ntknb import models

    return models.CNN(num_classes=10, width=p.width, hidden=p.hidden)


#: The models each replica evaluates, in table order: key -> page label (``cheap{k}`` added per k).
MODELS = {"standard": "standard", "early": f"standard, after epoch {TRADEOFF_EPOCH}", "pgd": "PGD-AT",
          "linearised": "PGD-AT, linearised after k epochs",
          "loo_clean_on_std": "linearised at standard, clean training",
          "loo_clean_on_adv": "linearised at PGD-AT, clean training",
          "loo_at_on_std": "linearised at standard, PGD-AT"}


@dataclasses.dataclass
class SeedRun:
    """Everything one replica measured.

    Attributes:
      seed: the replica's seed.
      runs: ``{mode: (TrainResult, KernelTrajectory)}``, the C-NTK of the per-epoch probe at every epoch.
      tk: ``{mode | "cheap{k}": KernelTrajectory}`` on T&K's probe at the last epoch (``top_conc_logit`` for
        the modes), and ``"init"``: its kernel at epoch 0, taken once (every run of a replica starts from
        the same initialisation, ``init_seed = seed``).
      cheap: ``{k: TrainResult}`` of "clean for k epochs, then PGD-AT".
      linearised: the :class:`ntknb.training.TrainResult` of PGD-AT on the network linearised after
        ``linearize_epoch`` epochs of PGD-AT (:func:`linearised_continuation`).
      loo: ``{"clean_on_std" | "clean_on_adv" | "at_on_std": TrainResult}``: the centred linearised
        network at the final weights of standard training / PGD-AT, trained cleanly or with PGD-AT.
      robust: ``{model key of MODELS (cheap: "cheap{k}"): RobustReport}`` on the replica's test points.
      timings: ``{phase: (wall seconds, CPU seconds of the process)}``.
      masking: the :class:`ntknb.masking.MaskingReport` of the PGD-AT network (first replica only) or None.
    """

    seed: int
    runs: dict
    tk: dict
    cheap: dict
    linearised: object
    loo: dict
    robust: dict
    timings: dict = dataclasses.field(default_factory=dict)
    masking: object = None


def _predict(res):
    apply_fn, params, state = res.apply_fn, res.params, res.state
    return jax.jit(lambda x: apply_fn(params, state, x, False)[0])


@functools.lru_cache(maxsize=8)
def _network_predict(apply_fn):
    """``predict((params, state), x)`` of the network ``apply_fn``: one function per network, so the
    standard evaluation compiles once for every model and replica of it (``params=`` of
    :func:`ntknb.evaluation.robust_evaluation`)."""
    return lambda ps, x: apply_fn(ps[0], ps[1], x, False)[0]


@functools.lru_cache(maxsize=8)
def _linearized_predict(apply_fn, centered: bool):
    """``predict((params, params0, state0), x)`` of the (``centered``) linearisation of ``apply_fn`` at
    ``params0`` (:func:`ntknb.training.linearized_apply_fn`), the expansion point a dynamic argument: one
    compilation for every linearised model of a kind."""
    def predict(ps, x):
        params, params0, state0 = ps
        return training.linearized_apply_fn(apply_fn, params0, state0, centered=centered)(params, state0, x, False)[0]

    return predict


def _evaluate(p: Params, apply_fn, ps, task, seed: int, linearised_at=None, centered: bool = True):
    """The standard evaluation (:func:`ntknb.evaluation.robust_evaluation`) on the replica's test points of
    the network ``apply_fn`` at ``ps = (params, state)``, or, with ``linearised_at = (params0, state0)``, of
    its (``centered``) linearisation at ``params0`` with parameters ``ps[0]``."""
    from ntknb import evaluation

    if linearised_at is None:
        predict = _network_predict(apply_fn)
    else:
        predict, ps = _linearized_predict(apply_fn, centered), (ps[0], *linearised_at)
    return evaluation.robust_evaluation(predict, task.x_test, task.labels_test, p.eps, seed=seed,
                                        n_iter=p.eval_iter, batch_size=p.n_test, params=ps)


def linearised_continuation(apply_fn, snapshot, config, start_epoch: int, x_train, labels_train, x_monitor,
                            labels_monitor):
    """``tsilivis2022ntk`` Sec. 5's linearisation "after a few initial epochs": the network ``apply_fn`` at
    ``snapshot = (params_k, state_k)``, its weights after ``start_epoch`` = k epochs of ``config``, is frozen
    into its linearisation f(θ_k, x) + J(θ_k, x)(θ − θ_k) (:func:`ntknb.training.linearized_apply_fn`, not
    centred: at θ = θ_k it is the network) and trained for the remaining ``config.epochs - k`` epochs of
    the same schedule (:func:`ntknb.ntk_dynamics.continue_config`: decays at the same total epochs, the mode
    of ``config``, attacks on the linearised model; a fresh momentum buffer). Returns its
    :class:`ntknb.training.TrainResult` (history epochs renumbered from 1; epoch ``i`` is epoch ``k + i``
    of the full run)."""
    params_k, state_k = snapshot
    return nd.train_linearized(apply_fn, params_k, state_k, x_train, labels_train, x_monitor, labels_monitor,
                               nd.continue_config(config, start_epoch), progress=False, centered=False)


class _Clock:
    """Wall and process CPU seconds of each phase of :func:`run_seed`."""

    def __init__(self):
        self.timings, self._t = {}, (time.perf_counter(), time.process_time())

    def lap(self, name: str) -> None:
        now = (time.perf_counter(), time.process_time())
        self.timings[name] = (now[0] - self._t[0], now[1] - self._t[1])
        self._t = now


def run_seed(p: Params, model, seed: int, dataset=None, masking: bool = False) -> SeedRun:
    """One replica (seed ``seed``): every mode with the C-NTK of the per-epoch probe tracked each epoch and
    T&K's probe at the start and the end, the cheap schedules, PGD-AT linearised after ``linearize_epoch``
    epochs (:func:`linearised_continuation`), Loo et al.'s linearised runs, and the standard evaluation
    (:func:`ntknb.evaluation.robust_evaluation`, APGD-CE / APGD-DLR / PGD, ``eval_iter`` iterations) of every
    model on the replica's ``n_test`` points (the standard network also at its weights after
    :data:`TRADEOFF_EPOCH`); ``masking=True`` adds the gradient-masking checks of the PGD-AT network. The
    per-epoch accuracies (``TrainResult.history``) are a monitor on the first ``n_monitor`` test points under
    PGD-``eval_attack_steps``."""
    clock = _Clock()
    d = load_data(p, seed, dataset)
    t = d.task
    x_mon, y_mon = t.x_test[:p.n_monitor], t.labels_test[:p.n_monitor]
    apply_fn = training.flax_apply_fn(model)

    tk = {}

    def train(cfg, per_epoch: bool, logit: bool, snapshot_epochs=(), name=""):
        def tk_tracker(epochs, logit_top_p=None):
            return nd.KernelTracker(apply_fn, d.x_tk, d.labels_tk, eps=p.eps, track_adv=False, epochs=epochs,
                                    top_p=p.top_p, seed=cfg.seed, logit_top_p=logit_top_p)

        tracker = nd.KernelTracker(apply_fn, d.x_probe, d.labels_probe, eps=p.eps, track_adv=False,
                                   epochs=None if per_epoch else [], top_p=p.top_p, seed=cfg.seed)
        final = tk_tracker([p.epochs], p.logit_top_p if logit else None)
        init = tk_tracker([0] if "init" not in tk else [])  # the initial kernel once: every run starts there
        snaps = nd.ParamsSnapshots(snapshot_epochs)
        res = training.train_model(model, t.x_train, t.labels_train, x_mon, y_mon, cfg, init_seed=seed,
                                   callbacks=[tracker, final, init, snaps], progress=False, description=name)
        tk.setdefault("init", init.trajectory())
        tk[name] = final.trajectory()
        clock.lap(name)
        return res, tracker.trajectory(), snaps.snapshots

    runs, snapshots = {}, {}
    for m in p.modes:
        snap = {"standard": [TRADEOFF_EPOCH], "pgd": [p.linearize_epoch]}.get(m, [])
        res, traj, snapshots[m] = train(base_config(p, m, seed), True, True, snap, m)
        runs[m] = (res, traj)
    cheap = {}
    for k in p.cheap_at_clean_epochs:
        cheap[k], _, _ = train(base_config(p, "pgd", seed).replace(clean_epochs=k), False, False,
                               name=f"cheap{k}")
    pgd_res = runs["pgd"][0]
    lin = linearised_continuation(apply_fn, snapshots["pgd"][p.linearize_epoch], pgd_res.config, p.linearize_epoch,
                                  t.x_train, t.labels_train, x_mon, y_mon)
    clock.lap("linearised")
    loo, loo_base = {}, {}
    for name, (start, mode) in {"clean_on_std": ("standard", "standard"), "clean_on_adv": ("pgd", "standard"),
                                "at_on_std": ("standard", "pgd")}.items():
        r = loo_base[name] = runs[start][0]
        loo[name] = nd.train_linearized(r.apply_fn, r.params, r.state, t.x_train, t.labels_train, x_mon, y_mon,
                                        loo_config(p, mode, seed), progress=False, centered=True)
    clock.lap("loo")
    net = lambda res: (res.params, res.state)  # noqa: E731
    robust = {"standard": _evaluate(p, apply_fn, net(runs["standard"][0]), t, seed),
              "early": _evaluate(p, apply_fn, snapshots["standard"][TRADEOFF_EPOCH], t, seed),
              "pgd": _evaluate(p, apply_fn, net(pgd_res), t, seed)}
    robust.update({f"cheap{k}": _evaluate(p, apply_fn, net(r), t, seed) for k, r in cheap.items()})
    clock.lap("evaluation (networks)")
    robust["linearised"] = _evaluate(p, apply_fn, net(lin), t, seed, linearised_at=snapshots["pgd"][p.linearize_epoch],
                                     centered=False)
    robust.update({f"loo_{k}": _evaluate(p, apply_fn, net(r), t, seed, linearised_at=net(loo_base[k]))
                   for k, r in loo.items()})
    clock.lap("evaluation (linearised)")
    rep = masking_report(p, pgd_res, t, seed) if masking else None
    if masking:
        clock.lap("masking checks")
    return SeedRun(seed, runs, tk, cheap, lin, loo, robust, clock.timings, rep)


def masking_report(p: Params, res, task, seed: int, n: int = 100):
    """:func:`ntknb.masking.gradient_masking_checks` of ``res`` on the first ``n`` test points (radii
    0, eps/2, eps, 2 eps; the standard evaluation's settings)."""
    from ntknb import masking

    n = min(n, len(task.labels_test))
    return masking.gradient_masking_checks(_predict(res), task.x_test[:n], task.labels_test[:n], p.eps,
                                           eps_grid=[0.0, p.eps / 2, p.eps, 2 * p.eps], seed=seed,
                                           n_iter=p.eval_iter, batch_size=n)


def run_seeds(p: Params, model) -> list:
    """:func:`run_seed` for every seed of :attr:`Params.seeds` (the dataset loaded once; the
    gradient-masking checks on the first replica), through :func:`ntknb.replicas.run_replicas`: one
    after the other on one device, spread over the devices and ``jax.distributed`` processes when
    there are several (the same numbers)."""
    ds = data.load_dataset(p.dataset)
    first = p.seeds[0]
    return replicas.run_replicas(lambda s: run_seed(p, model, s, ds, masking=(s == first)), p.seeds)


SETTINGS_COLUMNS = ["run", "setting", "PGD-AT clean acc.", "PGD-AT robust acc.", "note"]


def settings_rows(path=records.SETTINGS_FILE) -> list:
    """The recorded PGD-AT settings runs of this chapter (:data:`ntknb.records.SETTINGS_FILE`: one JSON
    record per run with its setting and measured PGD-AT accuracies), one row of :data:`SETTINGS_COLUMNS` each."""
    rows = []
    for r in records.load_settings_records(path):
        setting = ", ".join(f"{k} {v}" for k, v in r["setting"].items())
        rows.append([r["run"], setting, r["pgd_clean_acc"], r["pgd_robust_acc"], r["note"]])
    return rows


# ------------------------------------------------------------------------------ recorded GPU runs

#: The rule for "PGD-AT learned": final clean accuracy of the per-epoch monitor above twice chance (10 classes).
GPU_LEARNED_CLEAN = 0.2
GPU_COLUMNS = ["device", "seed", "setting", "final clean acc. (monitor)", "final PGD-10 acc. (monitor)",
               "robust acc., standard evaluation", "learned"]


def gpu_pgd_records(path=records.GPU_SEARCH_FILE) -> list[records.SearchRecord]:
    """The PGD-AT runs (``mode == "pgd"``) of the recorded CIFAR-10 GPU runs (default
    :data:`ntknb.records.GPU_SEARCH_FILE`, read by :func:`ntknb.records.load_search_records`); ``[]`` when
    the file does not exist (no run recorded yet)."""
    return [r for r in records.load_search_records(path, missing_ok=True) if r.mode == "pgd"]


def gpu_learned(record: records.SearchRecord) -> bool:
    """Whether PGD-AT learned in ``record``: final monitor clean accuracy > :data:`GPU_LEARNED_CLEAN`."""
    return bool(record.clean_acc[-1] > GPU_LEARNED_CLEAN)


def _gpu_setting(r: records.SearchRecord) -> str:
    net = (f"ResNet({','.join(map(str, r.stage_sizes))}) w{r.width}" if r.model == "resnet"
           else f"{r.model} w{r.width}")
    return (f"{r.dataset}, {net}, {r.n_train} images, {r.epochs} epochs, lr {r.learning_rate:g}, "
            f"PGD-{r.attack_steps} AT at eps {r.eps * 255:.3g}/255, clean warm start {r.clean_epochs}")


def _or_nan(value) -> float:
    return float("nan") if value is None else value


def gpu_rows(runs: list[records.SearchRecord]) -> list:
    """One row of :data:`GPU_COLUMNS` per recorded GPU PGD-AT run (NaN: not measured)."""
    return [[r.device or "?", r.seed, _gpu_setting(r), r.clean_acc[-1], r.robust_acc[-1],
             _or_nan(r.suite_robust_acc), "yes" if gpu_learned(r) else "no"] for r in runs]


def gpu_summary(runs: list[records.SearchRecord]) -> dict:
    """Numbers of the GPU section: runs (``gpu_pgd_n``), runs that learned (``gpu_pgd_learned``), the means of
    the final monitor clean accuracy and of the standard-evaluation robust accuracy (``gpu_pgd_clean``,
    ``gpu_pgd_robust``; NaN without runs) and the devices (``gpu_devices``)."""
    clean = [r.clean_acc[-1] for r in runs]
    rob = [r.suite_robust_acc for r in runs if r.suite_robust_acc is not None]
    return {"gpu_pgd_n": len(runs), "gpu_pgd_learned": sum(gpu_learned(r) for r in runs),
            "gpu_pgd_clean": float(np.mean(clean)) if clean else float("nan"),
            "gpu_pgd_robust": float(np.mean(rob)) if rob else float("nan"),
            "gpu_devices": ", ".join(sorted({r.device or "?" for r in runs})) or "none"}


# ------------------------------------------------------------------------------ never-used seeds

#: The chapter at base seeds never used before (one record a run: :func:`ntknb.records.seed_check_record`,
#: compared by :func:`ntknb.claims.seed_check_summary`).
SEED_CHECK_FILE = records.seed_check_file("04_at_kernel_dynamics")


def load_seed_checks(path=SEED_CHECK_FILE) -> list:
    """The records of :data:`SEED_CHECK_FILE` (:func:`ntknb.records.load_seed_checks`; ``[]`` when there is none)."""
    return records.load_seed_checks(path)


#: The chapter's measured costs (the profile of issue 28 before the defaults were chosen, and the
#: per-phase timings of runs at the defaults).
BUDGET_FILE = paths.DATA / "04_budget.json"
BUDGET_COLUMNS = ["measurement", "load average (1 min)", "wall s", "CPU s", "note"]


def budget_rows(path=BUDGET_FILE) -> list:
    """One row of :data:`BUDGET_COLUMNS` per measurement of :data:`BUDGET_FILE` (``"measurements"``: a list of
    ``{"what", "load", "wall_s", "cpu_s", "note"}``; "–" where a time was not taken), then the predicted
    wall time of the defaults (``"prediction"``); ``[]`` without the file."""
    path = Path(path)
    if not path.is_file():
        return []
    record = json.loads(path.read_text())
    rows = [[r["what"], r.get("load", "–"), r.get("wall_s", "–"), r.get("cpu_s", "–"), r.get("note", "")]
            for r in record["measurements"]]
    pred = record.get("prediction")
    if pred:
        rows.append([f"predicted, the defaults on an idle machine ({pred['defaults']})", "–", pred["total_wall_s"], "–",
                     pred["method"]])
    return rows


PHASE_COLUMNS = ["phase", "first replica: wall s", "first replica: CPU s", "all replicas: wall s"]


def phase_rows(seed_runs: list) -> list:
    """One row of :data:`PHASE_COLUMNS` per phase of :func:`run_seed` (:attr:`SeedRun.timings`): the first
    replica's wall-clock and process CPU seconds (compilations included) and the wall seconds summed over
    the replicas."""
    first = seed_runs[0].timings
    return [[name, w, c, sum(sr.timings.get(name, (0.0, 0.0))[0] for sr in seed_runs)]
            for name, (w, c) in first.items()]


# ------------------------------------------------------------------------------ measurements


#: Kernel distances are clipped to [KD_FLOOR, 1]: rounding gives about -1e-16 for equal kernels (outside the
#: range [0, 1] the intervals respect), and a frozen kernel (a network stuck at a constant prediction) would
#: otherwise make the ratios of distances 0 / 0.
KD_FLOOR = 1e-12


def _kd(k1, k2) -> float:
    """:func:`ntknb.metrics.kernel_distance`, clipped to ``[KD_FLOOR, 1]``."""
    return float(np.clip(metrics.kernel_distance(k1, k2), KD_FLOOR, 1.0))


def _phases(traj, decay: int) -> dict:
    """The phase quantities of one run's per-epoch trajectory (``decay``: the first decay ``D``): the
    kernel-learning ``rate`` (largest consecutive KD before the decay), the ``plateau`` (mean KD over epochs
    ``D // 2 + 1 .. D``), ``post`` (mean KD over the epochs after the decay), ``kd`` itself
    (``kd[t-1] = KD(t-1, t)``) and the ``lazy`` epoch before the decay (:func:`ntknb.metrics.lazy_epoch` with
    the bar ``LAZY_FRACTION * rate``, ``until = D``; NaN when the kernel is not lazy before the decay). Distances
    are clipped to ``[KD_FLOOR, 1]`` (:func:`_kd`)."""
    kd = np.clip(traj.consecutive_distances("clean"), KD_FLOOR, 1.0)
    rate = float(np.max(kd[:decay]))
    return dict(kd=kd, rate=rate, plateau=float(np.mean(kd[decay // 2:decay])), post=float(np.mean(kd[decay:])),
                lazy=metrics.lazy_epoch(kd, LAZY_FRACTION * rate, until=decay))


def _unit(v) -> float:
    """A fraction clipped to [0, 1] (a concentration can round to 1 + 1e-16)."""
    return float(np.clip(v, 0.0, 1.0))


def seed_measurements(p: Params, sr: SeedRun) -> dict:
    """The per-replica quantities the claims and tables use (floats): on T&K's probe the final norms
    (``frob_*``), per-logit concentrations (``conc_*``), distances from the initial kernel (``move_*``) and
    to the PGD-AT kernel (``kd_*_to_at``); on the per-epoch probe the phases of each arm (:func:`_phases`:
    ``rate_*``, ``plateau_*``, ``plateau_ratio_*`` = plateau / rate, ``decay_ratio_*`` = post / plateau,
    ``lazy_*`` censored at the decay with ``censored_*``, ``kd_first_post_*``), KER at the decay and at the
    end, ``rot_at_k`` (PGD-AT's KD in epoch ``linearize_epoch`` / its rate); accuracies ``clean_<key>``,
    ``rob_<key>`` of every evaluated model."""
    d, k_lin = p.decay_epoch, p.linearize_epoch
    ts, ta = sr.tk["standard"], sr.tk["pgd"]
    k0, k_std, k_at = sr.tk["init"].kernel(0), ts.final["clean"], ta.final["clean"]
    out = dict(
        frob_init=metrics.frobenius_norm(k0), frob_std=metrics.frobenius_norm(k_std),
        frob_adv=metrics.frobenius_norm(k_at),
        conc_std=_unit(ts.metrics["clean.top_conc_logit"][-1]), conc_adv=_unit(ta.metrics["clean.top_conc_logit"][-1]),
        move_std=_kd(k0, k_std), move_adv=_kd(k0, k_at), kd_std_to_at=_kd(k_std, k_at),
    )
    out["frob_ratio"] = out["frob_std"] / out["frob_adv"]
    for k in p.cheap_at_clean_epochs:
        out[f"kd_cheap{k}_to_at"] = _kd(sr.tk[f"cheap{k}"].final["clean"], k_at)
    for tag, mode in (("std", "standard"), ("adv", "pgd")):
        tr = sr.runs[mode][1]
        ph = _phases(tr, d)
        out.update({f"rate_{tag}": ph["rate"], f"plateau_{tag}": ph["plateau"], f"post_{tag}": ph["post"],
                    f"plateau_ratio_{tag}": ph["plateau"] / ph["rate"], f"decay_ratio_{tag}": ph["post"] / ph["plateau"],
                    f"lazy_{tag}": float(d) if np.isnan(ph["lazy"]) else ph["lazy"],
                    f"censored_{tag}": float(np.isnan(ph["lazy"])), f"kd_first_post_{tag}": float(ph["kd"][d]),
                    f"ker_{tag}": tr.metrics["clean.ker"][d], f"ker_{tag}_final": tr.metrics["clean.ker"][-1]})
        if mode == "pgd":
            out["rot_at_k"] = float(ph["kd"][k_lin - 1]) / ph["rate"]
    for key, rep in sr.robust.items():
        out[f"rob_{key}"] = rep.robust_accuracy
        out[f"clean_{key}"] = rep.clean_accuracy
    return out


def measurements(p: Params, seed_runs: list) -> dict:
    """``{name: (n_seeds,) array}`` of :func:`seed_measurements` over the replicas."""
    per = [seed_measurements(p, sr) for sr in seed_runs]
    return {k: np.array([m[k] for m in per], dtype=float) for k in per[0]}


def correct(seed_runs: list, key: str, kind: str = "robust") -> list:
    """Per replica, the ``(n_test,)`` 0/1 correctness of model ``key`` under the standard evaluation:
    ``kind="robust"`` (no attack broke the point) or ``"clean"`` (the clean prediction is right)."""
    if kind not in ("robust", "clean"):
        raise ValueError(f"parameter 'kind' must be 'robust' or 'clean', got {kind!r}")
    rep = [sr.robust[key] for sr in seed_runs]
    return [np.asarray(r.robust, float) if kind == "robust" else (np.asarray(r.broken_by) != "clean").astype(float)
            for r in rep]


def pooled(seed_runs: list, key: str, kind: str = "robust") -> "stats.Interval":
    """The accuracy of model ``key`` pooled over the replicas and their points, inside [0, 1]
    (:func:`ntknb.stats.pooled_proportion_interval`, seeds as clusters)."""
    return stats.pooled_proportion_interval(correct(seed_runs, key, kind))


def _geometric_interval(values) -> "stats.Interval":
    """Geometric mean of positive per-replica values with the t interval of their log10 mapped back
    (inside (0, inf); ``method "log-t"``)."""
    v = np.asarray(values, float)
    if np.any(v <= 0):
        raise ValueError(f"parameter 'values' must be positive (ratios), got {v.tolist()}")
    iv = stats.mean_interval(np.log10(v))
    return stats.Interval(10 ** iv.estimate, 10 ** iv.low, 10 ** iv.high, iv.n, iv.confidence, "log-t", iv.se)


def page_values(p: Params, seed_runs: list, m: dict) -> dict:
    """The numbers the page's prose glues (name -> float): pooled clean and robust accuracies of every
    evaluated model (``clean_<key>``, ``rob_<key>``), geometric means over the replicas of the norm ratio
    and the phase ratios, means of the lazy epochs, of the PGD-AT KD in the linearisation epoch relative to
    its rate, of the final KDs to the PGD-AT kernel, the number of runs not lazy before the decay, and the
    cheap schedule's share of full PGD-AT's update time (``cheap_time_frac``)."""
    k = p.cheap_at_clean_epochs[0]
    out = {}
    for key in seed_runs[0].robust:
        out[f"rob_{key}"] = pooled(seed_runs, key).estimate
        out[f"clean_{key}"] = pooled(seed_runs, key, "clean").estimate
    for key in ("frob_ratio", "plateau_ratio_std", "plateau_ratio_adv", "decay_ratio_std", "decay_ratio_adv"):
        out[key] = _geometric_interval(m[key]).estimate
    for key in ("lazy_std", "lazy_adv", "rot_at_k", "kd_std_to_at", f"kd_cheap{k}_to_at", "ker_std", "ker_adv",
                "conc_std", "conc_adv", "move_std", "move_adv"):
        out[key.replace(f"cheap{k}", "cheap")] = float(np.mean(m[key]))
    out["not_lazy_runs"] = float(np.sum(m["censored_std"]) + np.sum(m["censored_adv"]))
    out["cheap_time_frac"] = float(np.mean([sr.cheap[k].train_seconds / sr.runs["pgd"][0].train_seconds
                                            for sr in seed_runs]))
    return out


ACCURACY_COLUMNS = ["model", "clean acc. (pooled [95% CI])", "robust acc., APGD-CE/DLR + PGD (pooled [95% CI])"]


def accuracy_rows(p: Params, seed_runs: list) -> list:
    """One row of :data:`ACCURACY_COLUMNS` per evaluated model: accuracies pooled over the replicas and their
    points (:func:`pooled`)."""
    keys = ["standard", "early", "pgd"] + [f"cheap{k}" for k in p.cheap_at_clean_epochs] + [
        "linearised", "loo_clean_on_std", "loo_clean_on_adv", "loo_at_on_std"]
    label = dict(MODELS, **{f"cheap{k}": f"clean {k} epochs, then PGD-AT" for k in p.cheap_at_clean_epochs},
                 linearised=f"PGD-AT, linearised after {p.linearize_epoch} epochs")
    return [[label[k], pooled(seed_runs, k, "clean").text(), pooled(seed_runs, k).text()] for k in keys]


MEASUREMENT_COLUMNS = ["quantity", "standard", "PGD-AT"]


def measurement_table(p: Params, m: dict) -> list:
    """The kernel quantities of standard training and PGD-AT side by side: means over the replicas with 95%
    intervals inside each quantity's range (logit-t on [0, 1] for distances and concentrations, [0, D] for
    the lazy epoch, [1, n] for KER; geometric means for norms and ratios)."""
    d, n = p.decay_epoch, p.n_probe
    iv = lambda key, bounds=None: stats.mean_interval(m[key], bounds=bounds)  # noqa: E731
    geo = lambda key: _geometric_interval(m[key])  # noqa: E731
    pl = p.plateau_epochs
    rows = [
        [f"Frobenius norm of the final traced C-NTK ({p.n_tk_probe}-image probe)", geo("frob_std"), geo("frob_adv")],
        [f"top-{p.logit_top_p} concentration of the final per-logit kernel ({p.n_tk_probe} x 10)",
         iv("conc_std", (0, 1)), iv("conc_adv", (0, 1))],
        ["distance moved, d(Θ_0, Θ_final)", iv("move_std", (0, 1)), iv("move_adv", (0, 1))],
        [f"kernel-learning rate: largest consecutive KD before the decay ({n}-image probe)",
         iv("rate_std", (0, 1)), iv("rate_adv", (0, 1))],
        [f"mean consecutive KD on the plateau (epochs {pl[0]}-{pl[-1]})", iv("plateau_std", (0, 1)),
         iv("plateau_adv", (0, 1))],
        ["plateau KD / kernel-learning rate", geo("plateau_ratio_std"), geo("plateau_ratio_adv")],
        [f"consecutive KD in epoch {d + 1} (right after the decay)", iv("kd_first_post_std", (0, 1)),
         iv("kd_first_post_adv", (0, 1))],
        [f"mean consecutive KD after the decay (epochs {d + 1}-{p.epochs}) / plateau", geo("decay_ratio_std"),
         geo("decay_ratio_adv")],
        [f"lazy epoch before the decay (KD < {LAZY_FRACTION:g} x rate up to epoch {d}; {d} = not lazy)",
         iv("lazy_std", (0, d)), iv("lazy_adv", (0, d))],
        [f"KER at the decay (epoch {d})", iv("ker_std", (1, n)), iv("ker_adv", (1, n))],
        [f"KER at the end (epoch {p.epochs})", iv("ker_std_final", (1, n)), iv("ker_adv_final", (1, n))],
    ]
    fmt = [".4g", ".4f", ".3f", ".3f", ".4f", ".3f", ".4f", ".3f", ".2f", ".2f", ".2f"]
    return [[q, a.text(f), b.text(f)] for (q, a, b), f in zip(rows, fmt)]


# ---------------------------------------------------------------------------------- claims

#: The chapter's claim register (issue 28): every claim's id, the paper's words and where they stand,
#: threshold, direction, preconditions and why, fixed before the runs that judge them.
REGISTER = REGISTER_DIR / "04_at_kernel_dynamics.yaml"


def claim_specs() -> dict:
    """``{id: ClaimSpec}`` of :data:`REGISTER` (:func:`ntknb.claims.load_register`), in register order."""
    return load_register(REGISTER)


def claims(p: Params, seed_runs: list, m: dict | None = None) -> list:
    """The chapter's claims, in register order, built from :data:`REGISTER` (words, thresholds, directions,
    preconditions and their justification live there) with what the replicas measured (``m``: the
    :func:`measurements` of ``seed_runs``, computed when not given). Per-seed differences of accuracies,
    distances and concentrations get the logit-t interval in [-1, 1], of lazy epochs in [-D, D], of KER in
    [-(n-1), n-1] (:func:`ntknb.stats.mean_interval`); ratios are geometric means (t interval of the
    log10); the precondition accuracies are pooled over seeds and points (:func:`pooled`)."""
    m = measurements(p, seed_runs) if m is None else m
    specs = claim_specs()
    k_seeds = len(seed_runs)
    points = p.n_test * k_seeds
    k, d, n = p.cheap_at_clean_epochs[0], p.decay_epoch, p.n_probe
    diff = lambda a, b, bound=1.0: stats.mean_interval(m[a] - m[b], bounds=(-bound, bound))  # noqa: E731
    base = (f"{p.dataset}, {p.n_train} train, CNN width {p.width}, {p.epochs} epochs (decay after {d}), "
            f"PGD-{p.attack_steps} AT after {p.pgd_warm_start} clean warm-start epoch(s), eps {p.eps:.4g}")
    ev = f"standard evaluation (APGD-CE/APGD-DLR/PGD, {p.eval_iter} iterations, worst case per point)"
    tk_scale = f"{base}; T&K's probe of {p.n_tk_probe} images, at the end of training"
    ph_scale = f"{base}; per-epoch probe of {n} images, plateau epochs {p.plateau_epochs[0]}-{d}"
    acc_scale = f"{base}; {ev}, {k_seeds} seeds x {p.n_test} points"
    clean = lambda key: pooled(seed_runs, key, "clean").estimate  # noqa: E731
    robust = lambda key: pooled(seed_runs, key).estimate  # noqa: E731
    both_learn = {"both_learn": min(clean("standard"), clean("pgd"))}
    pgd_robust = {"pgd_robust": robust("pgd")}
    rotation = {"rotation_over": float(np.mean(m["rot_at_k"]))}
    built = {
        "ch04.kernel_growth": (_geometric_interval(m["frob_ratio"]), tk_scale, None,
                               {"standard_plateau": float(np.mean(m["plateau_ratio_std"])), **both_learn}),
        "ch04.top_concentration": (diff("conc_adv", "conc_std"), tk_scale, None,
                                   {"not_saturated": float(np.min(np.r_[m["conc_std"], m["conc_adv"]])), **both_learn}),
        "ch04.rotation_distance": (diff("move_adv", "move_std"), tk_scale, None, both_learn),
        "ch04.lazy_earlier": (diff("lazy_std", "lazy_adv", d), ph_scale, None,
                              {"lazy_before_decay": float(np.sum(m["censored_std"]) + np.sum(m["censored_adv"])),
                               **both_learn}),
        "ch04.decay_second_phase": (_geometric_interval(m["decay_ratio_adv"]), f"{ph_scale}, epochs {d + 1}-{p.epochs} "
                                    "after it", None, {"pgd_plateau": float(np.mean(m["plateau_ratio_adv"])),
                                                       **both_learn}),
        "ch04.ker_robust_higher": (diff("ker_adv", "ker_std", n - 1), ph_scale, None,
                                   {"plateau_both": float(max(np.mean(m["plateau_ratio_std"]),
                                                              np.mean(m["plateau_ratio_adv"]))), **both_learn}),
        "ch04.pgd_at_more_robust": (diff("rob_pgd", "rob_standard"), acc_scale, points, both_learn),
        "ch04.at_costs_clean_accuracy": (diff("clean_pgd", "clean_standard"), acc_scale, points,
                                         {"at_gains_robustness": float(np.mean(m["rob_pgd"] - m["rob_standard"])),
                                          **both_learn}),
        "ch04.tradeoff_standard_training": (diff("rob_standard", "rob_early"),
                                            f"{acc_scale}; epoch {TRADEOFF_EPOCH} against epoch {p.epochs}", points,
                                            {"clean_gained": float(np.mean(m["clean_standard"] - m["clean_early"])),
                                             "early_robust": robust("early")}),
        "ch04.cheap_at_keeps_robustness": (diff(f"rob_cheap{k}", "rob_pgd"), f"{acc_scale}; clean for {k} epochs",
                                           points, {**pgd_robust, **both_learn}),
        "ch04.kd_tracks_robustness": (diff("kd_std_to_at", f"kd_cheap{k}_to_at"), f"{tk_scale}; clean for {k} epochs",
                                      None, {"cheap_more_robust": float(np.mean(m[f"rob_cheap{k}"] - m["rob_standard"]))}),
        "ch04.loo_robust_kernel": (diff("rob_loo_clean_on_adv", "rob_loo_clean_on_std"),
                                   f"{acc_scale}; centred linearisation trained cleanly for {p.loo_epochs} epochs at lr "
                                   f"{p.loo_learning_rate:g}", points,
                                   {**pgd_robust, "linearised_learn": min(clean("loo_clean_on_std"),
                                                                          clean("loo_clean_on_adv"))}),
        "ch04.linearised_matches_robust": (diff("rob_linearised", "rob_pgd"),
                                           f"{acc_scale}; linearised after {p.linearize_epoch} epochs", points,
                                           {**rotation, **pgd_robust}),
        "ch04.linearised_matches_clean": (diff("clean_linearised", "clean_pgd"),
                                          f"{acc_scale}; linearised after {p.linearize_epoch} epochs", points,
                                          {**rotation, **both_learn}),
    }
    if set(built) != set(specs):
        raise ValueError(f"the chapter builds {sorted(built)} but {REGISTER.name} registers {sorted(specs)}")
    out = []
    for cid, spec in specs.items():
        iv, scale, n_test, conditions = built[cid]
        out.append(Claim.from_register(spec, measured=iv.estimate, low=iv.low, high=iv.high, n_seeds=k_seeds,
                                       n_test=n_test, scale=scale, conditions=conditions))
    return out


UNDECIDED_COLUMNS = ["claim", "verdict", "what decided it"]


def undecided_rows(claims_: list) -> list:
    """One row of :data:`UNDECIDED_COLUMNS` per claim the run did not decide: for ``not_testable`` the
    precondition(s) not met with their values; for ``inconclusive`` the interval, its width and the sample
    behind it (seeds, test points) against the threshold."""
    rows = []
    for c in claims_:
        if c.verdict == "not_testable":
            rows.append([c.id, c.verdict, "; ".join(f"{pre.name} measured {pre.measured:.3g}, needs "
                                                    f"{pre.requirement_text}" for pre in c.failed_preconditions)])
        elif c.verdict == "inconclusive":
            width = c.high - c.low
            rows.append([c.id, c.verdict, f"the interval {c.interval_text.split(' ', 1)[1]} (width {width:.3g}, "
                         f"{c.counts_text}) contains the threshold {c.threshold:g}"])
    return rows


LOO_COLUMNS = ["run", "setting", "robust accuracy"]


def loo_anchor_rows(p: Params, seed_runs: list) -> list:
    """Loo et al.'s headline number (:data:`LOO_ANCHOR`) beside this chapter's PGD-AT on the frozen standard
    kernel (pooled over seeds and points): two rows of :data:`LOO_COLUMNS`, described, not compared by a
    claim (one number of another network and data set)."""
    a = LOO_ANCHOR
    return [["loo2022evolution (abstract)", f"{a['dataset']}, {a['network']}, PGD-AT on a fixed kernel, eps "
             f"{a['eps'] * 255:.0f}/255, {a['attack']}; phase 2: {a['phase_2']}", f"{a['robust_accuracy']:.3f}"],
            ["this chapter", f"{p.dataset}, CNN width {p.width}, PGD-{p.attack_steps} AT of the centred linearisation "
             f"at the standard network, eps {p.eps:.3g}, {p.loo_epochs} epochs at lr {p.loo_learning_rate:g}; "
             f"standard evaluation, {len(seed_runs)} seeds x {p.n_test} points", pooled(seed_runs, "loo_at_on_std").text()]]


# ---------------------------------------------------------------------------------- figures


def _mean_curves(ax, seed_runs, p, key, label_fmt, logy=False, diff=False):
    for m in p.modes:
        ys = []
        for sr in seed_runs:
            tr = sr.runs[m][1]
            y = tr.consecutive_distances("clean") if diff else tr.metrics[key]
            x = tr.epochs[1:] if diff else tr.epochs
            ax.plot(x, y, "-", lw=0.6, alpha=0.35, color=f"C{MODES.index(m)}")
            ys.append(y)
        ax.plot(x, np.mean(ys, 0), "o-", ms=3, color=f"C{MODES.index(m)}", label=label_fmt.format(LABEL[m]))
    for e in p.lr_decay_epochs:
        ax.axvline(e, color="grey", ls="--", lw=0.8)
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel("epoch")


def plot_accuracies(p: Params, seed_runs: list):
    """Per-epoch monitor accuracies (first ``n_monitor`` test points, PGD-``eval_attack_steps``), every
    replica thin and their mean thick: clean (left) and robust (right); PGD-AT linearised after
    ``linearize_epoch`` epochs dashed."""
    from ntknb import plotting

    fig, axes = plotting.new_figure(ncols=2, width=4.0, height=3.0)
    for col, ax in zip(("clean_acc", "robust_acc"), axes):
        for m in p.modes:
            c = f"C{MODES.index(m)}"
            ys = [sr.runs[m][0].column(col) for sr in seed_runs]
            ep = seed_runs[0].runs[m][0].column("epoch")
            for y in ys:
                ax.plot(ep, y, "-", lw=0.6, alpha=0.35, color=c)
            ax.plot(ep, np.mean(ys, 0), "o-", ms=3, color=c, label=LABEL[m])
        ys = [sr.linearised.column(col) for sr in seed_runs]
        ax.plot(p.linearize_epoch + seed_runs[0].linearised.column("epoch"), np.mean(ys, 0), "--", color="k", lw=1.2,
                label=f"PGD-AT linearised after {p.linearize_epoch}")
    axes[0].set(title="clean accuracy (monitor)", xlabel="epoch")
    axes[1].set(title=f"PGD-{p.eval_attack_steps} accuracy (monitor)", xlabel="epoch")
    axes[0].legend(fontsize=7)
    return fig


def plot_growth_and_concentration(p: Params, seed_runs: list):
    """``tsilivis2022ntk`` Fig. 6 on the per-epoch probe: Frobenius norm of the traced C-NTK and
    top-``top_p`` concentration of the traced kernel per epoch (replicas thin, mean thick)."""
    from ntknb import plotting

    fig, axes = plotting.new_figure(ncols=2, width=4.0, height=3.0)
    _mean_curves(axes[0], seed_runs, p, "clean.frob", "{}", logy=True)
    axes[0].set(title="Frobenius norm", ylabel=r"$\|\hat\Theta_t\|_F$")
    _mean_curves(axes[1], seed_runs, p, "clean.top_conc", "{}")
    axes[1].set(title=f"traced kernel: top-{p.top_p} concentration")
    axes[0].legend(fontsize=7)
    return fig


def plot_kd_ker_ks(p: Params, seed_runs: list):
    """"Rethinking" Sec. 3, Fig. 1: consecutive KD, KER and KS (clean labels) of the C-NTK per epoch; the
    plateau epochs shaded."""
    from ntknb import plotting

    fig, axes = plotting.new_figure(ncols=3, width=3.3, height=2.8)
    _mean_curves(axes[0], seed_runs, p, None, "{}", logy=True, diff=True)
    axes[0].set(title="KD(t-1, t)")
    _mean_curves(axes[1], seed_runs, p, "clean.ker", "{}")
    axes[1].set(title="KER")
    _mean_curves(axes[2], seed_runs, p, "clean.ks_cl", "{}")
    axes[2].set(title="KS (clean labels)")
    for ax in axes:
        ax.axvspan(p.plateau_epochs[0] - 0.5, p.decay_epoch + 0.5, color="grey", alpha=0.12, lw=0)
    axes[0].legend(fontsize=7)
    return fig


def plot_loo(p: Params, seed_runs: list):
    """Robust accuracy (standard evaluation) of the networks and the linearised models: per replica (dots) and
    pooled over replicas and points (bars with their 95% interval)."""
    from ntknb import plotting

    keys = ["standard", "pgd", "loo_clean_on_std", "loo_clean_on_adv", "loo_at_on_std"]
    labels = ["standard", "PGD-AT", "lin. at std,\nclean", "lin. at PGD-AT,\nclean", "lin. at std,\nPGD-AT"]
    fig, ax = plotting.new_figure(width=6.0, height=3.0)
    for i, k in enumerate(keys):
        iv = pooled(seed_runs, k)
        ax.bar(i, iv.estimate, color=f"C{i}", alpha=0.6, yerr=[[iv.estimate - iv.low], [iv.high - iv.estimate]],
               capsize=3)
        v = [sr.robust[k].robust_accuracy for sr in seed_runs]
        ax.plot(np.full(len(v), i), v, "k.", ms=4)
    ax.set_xticks(range(len(keys)))
    ax.set_xticklabels(labels, fontsize=7)
    ax.set(ylabel="robust accuracy", title=f"standard evaluation, eps = {p.eps:.3g}")
    return fig
