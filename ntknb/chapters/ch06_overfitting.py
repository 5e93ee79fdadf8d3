"""Chapter 06: catastrophic overfitting in single-step adversarial training, seen through the kernel.

``li2023rethinking`` Sec. 6 (Figs. 8-10): a network trained with FGSM-AT
(``goodfellow2015explaining``) can suddenly lose its robustness to multi-step attacks while its
accuracy on its own FGSM training examples stays high ("catastrophic overfitting",
``wong2020fast``, ``andriushchenko2020understanding``). The paper attributes it to *isotropic
shortcut features* in the one-step adversarial examples, plants such a shortcut on purpose with
batch-shared augmentation (``augment="crop_shared"`` of :class:`ntknb.training.TrainConfig`) and
removes it by adding *anisotropic noise to every sample* before the FGSM step (this module's
:class:`NoiseFGSM` adversary, :func:`anisotropic_noise` / :func:`noise_initialized_fgsm`).

This module is the chapter's code; the notebook ``notebooks/06_catastrophic_overfitting.py``
only calls it:

* :class:`Params` — the chapter's parameter schema (the rules for the notebook's
  ``parameters`` cell, checked by ``ntknb run`` before anything runs);
* :func:`anisotropic_noise`, :func:`noise_initialized_fgsm`, :class:`NoiseFGSM` — the noise
  initialisation and its adversary;
* :class:`AttackAccuracyMonitor` — a :func:`ntknb.training.fit` callback measuring the
  accuracy on FGSM examples of a fixed training subset after every epoch;
* :func:`detect_collapse` — the collapse criterion;
* :func:`run_variant` / :func:`run_seeds` — training runs (via
  :func:`ntknb.ntk_dynamics.train_and_track` or :func:`ntknb.training.train_model`);
  :func:`variant_config`, :func:`prepare_data`, :func:`run_all` — the chapter's runs;
* :func:`ae_specialization_matrix`, :func:`distance_to_reference` — kernel comparisons
  built on :mod:`ntknb.ntk_dynamics` and :mod:`ntknb.metrics`;
* :func:`evaluate_run` / :func:`evaluate_all` — the standard evaluation and gradient-masking
  checks of every single-step network; :func:`ks_over_seeds` — the Fig. 8 KS on every seed;
* :func:`judge_runs` — every single-step run judged by the strong end-state rule
  (:class:`ntknb.collapse.CollapseRule`, registered in ``notebooks/data/06_co_protocol.yaml``);
* the tables and summaries the page glues (``*_rows``, ``*_summary``: descriptions, no verdicts);
* :func:`claims` — the chapter's claims, the only place that judges (thresholds and guards above
  :data:`CLAIM_THRESHOLDS`);
* :func:`gpu_streams`, :func:`gpu_rows`, :func:`gpu_summary`, :func:`gpu_text`,
  :func:`plot_gpu_curves` — the recorded CIFAR-10 GPU runs (:data:`GPU_SEARCH_FILE`);
* :func:`search_run`, :func:`append_search_records`, :func:`search_table`,
  :func:`search_summary` — the recorded search for a setting that collapses
  (``scripts/co_search.py`` runs it; the chapter tabulates it).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional, Sequence

import ntknb  # noqa: F401  (compat shim before neural_tangents)

import jax
import jax.numpy as jnp
import numpy as np

from ntknb import adversaries, attacks, collapse, metrics, training
from ntknb import ntk_dynamics as nd
from ntknb import schema
from ntknb.validation import SEED_LIMIT, check_int

__all__ = [
    "Params",
    "CLAIM_THRESHOLDS",
    "claims",
    "anisotropic_noise",
    "noise_initialized_fgsm",
    "NoiseFGSM",
    "AttackAccuracyMonitor",
    "Collapse",
    "detect_collapse",
    "VariantRun",
    "run_variant",
    "run_seeds",
    "ae_specialization_matrix",
    "distance_to_reference",
    "SEARCH_SETTINGS",
    "check_search_setting",
    "search_run",
    "load_search_records",
    "append_search_records",
    "search_table",
    "search_summary",
    "evaluate_run",
    "evaluate_all",
    "ks_over_seeds",
    "GPU_SEARCH_FILE",
    "gpu_streams",
    "gpu_summary",
    "gpu_text",
    "judge_runs",
    "trained",
    "STRONG_COLUMNS",
    "strong_rows",
    "strong_summary",
    "strong_points",
    "difference_rows",
]


def anisotropic_noise(key, shape: Sequence[int], eps: float, scale: float = 1.0) -> jnp.ndarray:
    """Per-sample anisotropic Gaussian noise in the l∞ ball of radius ``eps``.

    ``li2023rethinking`` Sec. 6 proposes to "add some anisotropy noise into every sample inside
    each mini-batch" without giving its distribution; this is our reading of it.  Each
    sample i gets its own random diagonal covariance:

        δ_i = clip(σ_i ⊙ ξ_i, −eps, eps),   σ_i = scale · eps · u_i,
        u_i ~ U(0, 1)^d,   ξ_i ~ N(0, I_d)   (independent over i and coordinates),

    so the noise differs in scale from coordinate to coordinate and from sample to
    sample — unlike the uniform random start of FGSM-RS (``wong2020fast``), which draws
    every coordinate of every sample from the same U(−eps, eps).

    Args:
      key: ``jax.random`` key.
      shape: ``(n, ...)``; the first axis indexes samples.
      eps: l∞ radius (``>= 0``).
      scale: standard deviations are at most ``scale · eps`` (``> 0``).

    Returns:
      float32 array of ``shape`` with entries in ``[−eps, eps]``.
    """
    shape = tuple(int(s) for s in shape)
    if len(shape) < 1 or any(s < 0 for s in shape):
        raise ValueError(f"shape must be (n, ...) with non-negative sizes; got {shape!r}")
    if isinstance(eps, (int, float)) and not eps >= 0:
        raise ValueError(f"eps must be >= 0; got {eps!r}")
    if isinstance(scale, (int, float)) and not scale > 0:
        raise ValueError(f"scale must be > 0; got {scale!r}")
    k_scale, k_dir = jax.random.split(key)
    sigma = scale * eps * jax.random.uniform(k_scale, shape, jnp.float32)
    return jnp.clip(sigma * jax.random.normal(k_dir, shape, jnp.float32), -eps, eps)


def noise_initialized_fgsm(loss_fn: Callable, x, y, eps, step_size, noise_scale, key,
                           clip=(0.0, 1.0)) -> jnp.ndarray:
    """FGSM from ``x + δ`` with δ = :func:`anisotropic_noise` (``li2023rethinking`` Sec. 6):

        x~ = Proj_{B∞(x, eps) ∩ [0,1]}( x + δ + α · sign ∇_x L(x + δ, y) ),

    i.e. one step of :func:`ntknb.attacks.pgd` started at δ instead of at 0 or at a
    uniform random point (FGSM-RS).  Traceable (used inside the jitted training step).

    Args:
      loss_fn: per-example loss ``(x, y) -> (n,)``.
      x: (n, ...) inputs in ``clip``; y: labels.
      eps: l∞ radius; step_size: α; noise_scale: ``scale`` of :func:`anisotropic_noise`.
      key: ``jax.random`` key of the noise.
    """
    x = jnp.asarray(x)
    delta0 = anisotropic_noise(key, x.shape, eps, noise_scale).astype(x.dtype)
    eps = jnp.asarray(eps, x.dtype)
    step_size = jnp.asarray(step_size, x.dtype)
    return attacks._pgd_impl(loss_fn, x, y, eps, step_size, delta0, 1, clip)


@dataclasses.dataclass(frozen=True)
class NoiseFGSM:
    """The noise-initialised FGSM as an adversary of :func:`ntknb.training.fit`
    (``TrainConfig(mode="fgsm", adversary=NoiseFGSM(eps, step_size, noise_scale))``):
    :func:`noise_initialized_fgsm` with radius ``eps``, step ``step_size`` and noise scale
    ``noise_scale``."""

    eps: float
    step_size: float
    noise_scale: float = 1.0

    def __post_init__(self):
        if not self.eps >= 0:
            raise ValueError(f"eps must be >= 0; got {self.eps!r}")
        if not self.step_size > 0:
            raise ValueError(f"step_size must be > 0; got {self.step_size!r}")
        if not self.noise_scale > 0:
            raise ValueError(f"noise_scale must be > 0; got {self.noise_scale!r}")

    def __call__(self, loss_fn, x, y, key):
        return noise_initialized_fgsm(loss_fn, x, y, self.eps, self.step_size, self.noise_scale, key)


class AttackAccuracyMonitor:
    """:func:`ntknb.training.fit` callback: accuracy on single-step adversarial examples
    of a fixed set (e.g. training images) after every epoch, epoch 0 included.

    The attack is FGSM from x with step ``step_size`` (default ``eps``), projected on the
    ε-ball — the attack FGSM-AT trains on.  ``accuracies[i]`` belongs to ``epochs[i]``.
    """

    def __init__(self, apply_fn: Callable, x, labels, eps: float, step_size: Optional[float] = None,
                 batch_size: int = 500):
        self.x = jnp.asarray(x, jnp.float32)
        self.labels = jnp.asarray(np.asarray(labels))
        self.batch_size = int(batch_size)
        alpha = float(eps if step_size is None else step_size)

        @jax.jit
        def correct(params, state, xb, yb):
            ce = adversaries.network_loss(apply_fn, params, state)
            xa = attacks._pgd_impl(ce, xb, yb, jnp.asarray(eps, xb.dtype), jnp.asarray(alpha, xb.dtype),
                                   jnp.zeros_like(xb), 1, (0.0, 1.0))
            return jnp.sum(adversaries.predicted_class(apply_fn(params, state, xa, False)[0]) == yb)

        self._correct = correct
        self.epochs: list[int] = []
        self.accuracies: list[float] = []

    def __call__(self, epoch: int, params: Any, state: dict) -> None:
        n = self.x.shape[0]
        c = sum(int(self._correct(params, state, self.x[s:s + self.batch_size], self.labels[s:s + self.batch_size]))
                for s in range(0, n, self.batch_size))
        self.epochs.append(int(epoch))
        self.accuracies.append(c / n)


@dataclasses.dataclass(frozen=True)
class Collapse:
    """Result of :func:`detect_collapse` on a robust-accuracy curve (epochs 1..T).

    Attributes:
      collapsed: whether the curve collapsed.
      epoch: first collapsed epoch (1-based; 0 if none).
      peak: the running peak before ``epoch`` (the overall maximum if no collapse);
        peak_epoch: its epoch.
      low: lowest robust accuracy after ``peak_epoch`` (``peak`` if it is the last epoch).
      final: robust accuracy at the last epoch.
      recovered: collapsed, and the final accuracy is back to at least ``fraction · peak``.
    """

    collapsed: bool
    epoch: int
    peak: float
    peak_epoch: int
    low: float
    final: float
    recovered: bool


def detect_collapse(robust_acc: Sequence[float], fraction: float = 0.3, min_peak: float = 0.2) -> Collapse:
    """Catastrophic-overfitting criterion on per-epoch PGD robust test accuracy.

    Epoch t *collapses* if its robust accuracy falls below ``fraction`` times the best
    accuracy of the earlier epochs, p_t = max_{s<t} r_s, and p_t ≥ ``min_peak`` (a run that
    never became robust cannot collapse).  The first such epoch is reported.

    Args:
      robust_acc: (T,) robust accuracy after epochs 1..T.
      fraction: in (0, 1).
      min_peak: in [0, 1].
    """
    r = np.asarray(robust_acc, dtype=np.float64)
    if r.ndim != 1 or r.size == 0:
        raise ValueError(f"robust_acc must be a non-empty 1-d sequence; got shape {r.shape}")
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be in (0, 1); got {fraction!r}")
    if not 0 <= min_peak <= 1:
        raise ValueError(f"min_peak must be in [0, 1]; got {min_peak!r}")
    prev_max = np.maximum.accumulate(r)[:-1]  # p_t for t = 2..T
    hits = np.flatnonzero((r[1:] < fraction * prev_max) & (prev_max >= min_peak))
    if hits.size:
        t = int(hits[0]) + 1  # 0-based index of the collapsed epoch
        i = int(np.argmax(r[:t]))
    else:
        t, i = 0, int(np.argmax(r))
    after = r[i + 1:]
    collapsed = bool(hits.size)
    return Collapse(
        collapsed=collapsed,
        epoch=t + 1 if collapsed else 0,
        peak=float(r[i]),
        peak_epoch=i + 1,
        low=float(after.min()) if after.size else float(r[i]),
        final=float(r[-1]),
        recovered=bool(collapsed and r[-1] >= fraction * r[i]),
    )


@dataclasses.dataclass
class VariantRun:
    """One training run of the chapter.

    Attributes:
      result: the :class:`ntknb.training.TrainResult` (per-epoch clean / robust test accuracy).
      fgsm_train_acc: (T+1,) FGSM accuracy on the monitored training images, epochs 0..T.
      collapse: :func:`detect_collapse` of the robust test accuracy.
      trajectory: the :class:`ntknb.ntk_dynamics.KernelTrajectory` (``None`` if not tracked).
      strong: the :class:`ntknb.collapse.EpochMonitor` rows (epochs 0..T: clean, FGSM and strong-suite
        accuracy, loss gap, gradient alignment on fixed test points; ``None`` if not monitored).
    """

    result: Any
    fgsm_train_acc: np.ndarray
    collapse: Collapse
    trajectory: Optional[Any] = None
    strong: Optional[list] = None

    def strong_column(self, name: str) -> np.ndarray:
        """One column of :attr:`strong` (a name of :data:`ntknb.collapse.MONITOR_COLUMNS`)."""
        if self.strong is None:
            raise ValueError("this run had no strong monitor (run_variant(strong_points=...))")
        return np.asarray([r[name] for r in self.strong], float)

    @property
    def robust_acc(self) -> np.ndarray:
        return self.result.column("robust_acc")

    @property
    def clean_acc(self) -> np.ndarray:
        return self.result.column("clean_acc")

    def ended_overfitted(self, gap: float) -> bool:
        """End-state criterion: the final FGSM accuracy on the monitored training images exceeds
        the final PGD test accuracy by at least ``gap`` (in [0, 1])."""
        if not 0 <= gap <= 1:
            raise ValueError(f"gap must be in [0, 1]; got {gap!r}")
        return bool(self.fgsm_train_acc[-1] - self.robust_acc[-1] >= gap)


def run_variant(model, task, config: "training.TrainConfig", n_monitor: int = 500, probe=None,
                track_epochs: Optional[Sequence[int]] = None, probe_attack_steps: Optional[int] = None,
                top_p: int = 20, collapse_fraction: float = 0.3, collapse_min_peak: float = 0.2,
                init_seed: Optional[int] = None, monitor_step: Optional[float] = None, progress: bool = False,
                description: str = "", strong_points=None, strong_iter: int = 20) -> VariantRun:
    """Train ``model`` on ``task`` (an :class:`ntknb.data.Task`) with ``config``, monitoring
    the FGSM accuracy on the first ``n_monitor`` training images (step ``monitor_step``,
    default eps) and, if ``probe=(x_probe, labels_probe)``, the C-NTK / AE-NTK with
    :func:`ntknb.ntk_dynamics.train_and_track` at ``track_epochs``; with ``strong_points=(x, labels)``,
    also the strong per-epoch monitor :class:`ntknb.collapse.EpochMonitor` (suite of ``strong_iter``
    iterations) on them. ``init_seed`` defaults to ``config.seed``."""
    init_seed = config.seed if init_seed is None else init_seed
    n_monitor = min(int(n_monitor), task.x_train.shape[0])
    monitor = AttackAccuracyMonitor(training.flax_apply_fn(model), task.x_train[:n_monitor],
                                    task.labels_train[:n_monitor], config.eps, monitor_step)
    trajectory = None
    callbacks = [monitor]
    strong = None
    if strong_points is not None:
        strong = collapse.EpochMonitor(training.flax_apply_fn(model), *strong_points, config.eps, n_iter=strong_iter,
                                       seed=config.seed)
        callbacks.append(strong)
    if probe is None:
        result = training.train_model(model, task.x_train, task.labels_train, task.x_test, task.labels_test, config,
                                      init_seed=init_seed, callbacks=callbacks, progress=progress,
                                      description=description)
    else:
        x_probe, labels_probe = probe
        tracker = nd.KernelTracker(training.flax_apply_fn(model), x_probe, labels_probe, eps=config.eps,
                                   attack_steps=probe_attack_steps or config.eval_attack_steps,
                                   epochs=track_epochs, top_p=min(top_p, len(labels_probe)), seed=config.seed)
        result = training.train_model(model, task.x_train, task.labels_train, task.x_test, task.labels_test, config,
                                      init_seed=init_seed, callbacks=callbacks + [tracker], progress=progress,
                                      description=description)
        trajectory = tracker.trajectory()
    monitor_collapse = detect_collapse(result.column("robust_acc"), collapse_fraction, collapse_min_peak)
    return VariantRun(result=result, fgsm_train_acc=np.asarray(monitor.accuracies), collapse=monitor_collapse,
                      trajectory=trajectory, strong=None if strong is None else strong.rows)


def run_seeds(model_fn: Callable[[], Any], task_fn: Callable[[int], Any], config: "training.TrainConfig",
              seeds: Sequence[int], **kwargs) -> list:
    """:func:`run_variant` for each seed: ``task_fn(seed)`` gives the data subsample,
    ``config.replace(seed=seed)`` the data order / attack starts and the initialisation."""
    return [run_variant(model_fn(), task_fn(s), config.replace(seed=int(s)), **kwargs) for s in seeds]


def ae_specialization_matrix(result, x_probe, labels_probe, eps: float, attack_steps: int = 10,
                             seed: int = 0) -> np.ndarray:
    """Kernel specialization matrix M_ks of the final network's AE-NTK under clean labels
    (``li2023rethinking`` Fig. 8): the per-logit empirical NTK (:class:`ntknb.ntk_dynamics.KernelTracker`)
    on the network's own PGD examples of the probe images (``attack_steps`` steps, step
    2.5·eps/steps, random start), then :func:`ntknb.metrics.specialization_matrix` with the
    probe's clean labels.  Returns (k, k): row = logit, column = class."""
    tracker = nd.KernelTracker(result.apply_fn, x_probe, labels_probe, eps=eps, attack_steps=attack_steps,
                               top_p=1, seed=seed)
    x_adv, _, _ = tracker._attack(result.params, result.state, tracker.x, jnp.asarray(tracker.labels),
                                  jax.random.PRNGKey(seed))
    blocks = tracker.per_logit_kernel(result.params, result.state, x_adv)
    return metrics.specialization_matrix(blocks, tracker.labels)


def distance_to_reference(trajectory, reference, kind: str = "adv") -> np.ndarray:
    """Kernel distance KD(Θ_t, Θ_t^ref) (:func:`ntknb.metrics.kernel_distance`) between two
    :class:`ntknb.ntk_dynamics.KernelTrajectory` at each epoch both tracked (``li2023rethinking``
    Fig. 9b-c: the reference is the FGSM-AT model).  Returns ``(epochs, distances)``."""
    common = np.intersect1d(trajectory.epochs, reference.epochs)
    if common.size == 0:
        raise ValueError("the two trajectories share no tracked epoch")
    d = np.array([metrics.kernel_distance(trajectory.kernel(e, kind), reference.kernel(e, kind)) for e in common])
    return common, d


# --------------------------------------------------------------------------- settings search

#: The settings of one recorded search run (:func:`search_run`); ``stage_sizes`` only for the ResNet,
#: ``hidden`` only for the CNN.
SEARCH_SETTINGS = ("dataset", "model", "width", "n_train", "n_test", "n_monitor", "batch_size", "learning_rate",
                   "momentum", "weight_decay", "eps", "attack_steps", "eval_attack_steps", "clean_epochs", "epochs",
                   "mode", "seed")
SEARCH_CURVES = ("robust_acc", "clean_acc", "fgsm_train_acc")


def check_search_setting(setting) -> dict:
    if not isinstance(setting, dict):
        raise ValueError(f"setting must be a dict of {SEARCH_SETTINGS}; got {type(setting).__name__}")
    extra = {"cnn": "hidden", "resnet": "stage_sizes"}.get(setting.get("model"))
    if extra is None:
        raise ValueError(f"setting['model'] must be 'cnn' or 'resnet'; got {setting.get('model')!r}")
    missing = [k for k in SEARCH_SETTINGS + (extra,) if k not in setting]
    if missing:
        raise ValueError(f"setting lacks {missing}; a search setting has {SEARCH_SETTINGS + (extra,)}")
    if setting["mode"] not in ("standard", "fgsm", "pgd"):
        raise ValueError(f"setting['mode'] must be 'standard', 'fgsm' or 'pgd'; got {setting['mode']!r}")
    return {k: setting[k] for k in SEARCH_SETTINGS + (extra,)}


def search_run(setting: dict, dataset=None, progress: bool = False, suite_iter: int = 0) -> dict:
    """Train one setting of the catastrophic-overfitting search and record its curves.

    ``setting`` holds :data:`SEARCH_SETTINGS` plus ``hidden`` (CNN) or ``stage_sizes``
    (ResNet); the run is :func:`run_variant` of that model on ``data.make_task(dataset,
    n_train, n_test, seed)`` with ``TrainConfig(mode, epochs, ...)``, no augmentation,
    PGD-AT step ``2.5 eps / attack_steps``, FGSM step ``eps`` from ``x``.

    Args:
      setting: the settings (checked before any work).
      dataset: an already loaded :class:`ntknb.data.Dataset` (default: load ``setting["dataset"]``).
      suite_iter: if > 0, the final network is also evaluated on the ``n_test`` test points with the
        standard evaluation (:func:`ntknb.evaluation.robust_accuracy`, ``suite_iter`` iterations per
        attack, seed ``setting["seed"]``): a collapsed FGSM-AT network must score about 0 there too.

    Returns:
      the setting plus the per-epoch curves ``robust_acc`` (T,), ``clean_acc`` (T,) and
      ``fgsm_train_acc`` (T+1,), rounded to 4 decimals (a JSON-ready record); with ``suite_iter``
      also ``suite_robust_acc`` and ``suite_iter``.
    """
    from ntknb import data, evaluation, models

    s = check_search_setting(setting)
    suite_iter = check_int("suite_iter", suite_iter, min=0)
    ds = dataset if dataset is not None else data.load_dataset(s["dataset"])
    task = data.make_task(ds, n_train=s["n_train"], n_test=s["n_test"], seed=s["seed"])
    kwargs = ({"hidden": s["hidden"]} if s["model"] == "cnn" else {"stage_sizes": tuple(s["stage_sizes"])})
    model = models.make_model(s["model"], ds.n_classes, width=s["width"], **kwargs)
    config = training.TrainConfig(
        mode=s["mode"], epochs=s["epochs"], batch_size=s["batch_size"], learning_rate=s["learning_rate"],
        momentum=s["momentum"], weight_decay=s["weight_decay"], eps=s["eps"], attack_steps=s["attack_steps"],
        eval_attack_steps=s["eval_attack_steps"], eval_batch_size=s["n_test"], clean_epochs=s["clean_epochs"],
        seed=s["seed"])
    run = run_variant(model, task, config, n_monitor=s["n_monitor"], progress=progress)
    curves = (run.robust_acc, run.clean_acc, run.fgsm_train_acc)
    record = {**s, **{k: [round(float(v), 4) for v in c] for k, c in zip(SEARCH_CURVES, curves)}}
    if suite_iter:
        logits = run.result.logits_fn()
        acc = evaluation.robust_accuracy(logits, task.x_test, task.labels_test, s["eps"], seed=s["seed"],
                                         n_iter=suite_iter, params=run.result.params)
        record.update(suite_robust_acc=round(float(acc), 4), suite_iter=suite_iter)
    return record


def load_search_records(path) -> list:
    """The records of a search file (JSON lines, one :func:`search_run` record each;
    :func:`ntknb.report.load_records`)."""
    from ntknb import report

    return report.load_records(path)


def append_search_records(path, records: Sequence[dict]) -> None:
    """Append ``records`` to the JSON-lines file ``path`` atomically (the old file is replaced
    only once the new one is complete; :func:`ntknb.report.append_records`)."""
    from ntknb import report

    for rec in records:
        check_search_setting(rec)
    report.append_records(path, records)


def search_table(records: Sequence[dict], fraction: float = 0.3, min_peak: float = 0.2,
                 stuck_below: float = 0.15) -> list:
    """One summary row per recorded run of :func:`search_run`.

    Row: ``[setting, mode, seed, epochs, peak robust, final robust, final clean, final FGSM
    train acc., standard eval., outcome]`` (standard eval.: the record's ``suite_robust_acc``, NaN
    where it was not measured); the outcome is "stuck at chance" if the final clean accuracy is at
    most ``stuck_below``, else the :func:`detect_collapse` verdict (``fraction``, ``min_peak``).
    """
    if not 0 < stuck_below < 1:
        raise ValueError(f"stuck_below must be in (0, 1); got {stuck_below!r}")
    rows = []
    for rec in records:
        s = check_search_setting(rec)
        missing = [k for k in SEARCH_CURVES if k not in rec]
        if missing:
            raise ValueError(f"record lacks the curves {missing}")
        robust, clean, fgsm_train = (np.asarray(rec[k], float) for k in SEARCH_CURVES)
        if not (robust.size == clean.size == s["epochs"] and fgsm_train.size == s["epochs"] + 1):
            raise ValueError(f"record curves must have epochs={s['epochs']} entries (fgsm_train_acc one more); got "
                             f"{robust.size}, {clean.size}, {fgsm_train.size}")
        net = (f"CNN w{s['width']}/h{s['hidden']}" if s["model"] == "cnn"
               else f"ResNet{tuple(s['stage_sizes'])} w{s['width']}")
        setting = (f"{net}, ε {s['eps']:g}, lr {s['learning_rate']:g}, batch {s['batch_size']}, {s['n_train']} images"
                   + (f", {s['clean_epochs']} clean epoch(s) first" if s["clean_epochs"] else ""))
        c = detect_collapse(robust, fraction, min_peak)
        if clean[-1] <= stuck_below:
            outcome = "stuck at chance"
        elif c.collapsed:
            outcome = f"collapsed at epoch {c.epoch}" + (" (recovered)" if c.recovered else "")
        else:
            outcome = "no collapse"
        rows.append([setting, s["mode"], s["seed"], s["epochs"], float(robust.max()), float(robust[-1]),
                     float(clean[-1]), float(fgsm_train[-1]), float(rec.get("suite_robust_acc", np.nan)), outcome])
    return rows


def search_summary(records: Sequence[dict], rows: Sequence[list], min_seeds: int = 3) -> dict:
    """What a recorded search shows, from its records and their :func:`search_table` rows.

    Returns a dict with ``common`` (the settings shared by every record, e.g. ``n_test``),
    ``n_runs``, ``n_fgsm`` (FGSM-AT runs), ``n_collapsed`` / ``n_transient`` (FGSM-AT runs
    that collapsed / of those, recovered by the last epoch), ``n_stuck`` (runs stuck at
    chance), ``reliable``: the FGSM-AT settings run with at least ``min_seeds`` seeds that
    collapsed in every one of them, and ``settings``: one dict per (setting, mode), in the order of
    first appearance, with ``setting``, ``mode``, ``eps``, ``n_train``, ``epochs`` (the distinct
    values), ``seeds``, ``n_runs``, ``n_collapsed``,
    ``n_ended_collapsed`` (collapsed and not recovered by the last epoch), the means over its runs
    of the final ``robust`` / ``clean`` accuracy and of ``suite`` (the standard evaluation; NaN if
    no run has one; ``n_suite`` runs have it), and ``devices`` (the records' ``device``; "cpu"
    where a record has none: the runs made before the GPU runs ran on the CPU machine).
    """
    if len(records) != len(rows):
        raise ValueError(f"records and rows must have the same length; got {len(records)} and {len(rows)}")
    if isinstance(min_seeds, bool) or not isinstance(min_seeds, int) or min_seeds < 1:
        raise ValueError(f"min_seeds must be an integer >= 1; got {min_seeds!r}")
    keys = [k for k in SEARCH_SETTINGS if k not in ("mode", "seed")]
    common = {k: records[0][k] for k in keys if records and all(r[k] == records[0][k] for r in records)}
    fgsm = [r for r in rows if r[1] == "fgsm"]
    collapsed = [r for r in fgsm if r[-1].startswith("collapsed")]
    by_setting: dict = {}
    for r in fgsm:
        by_setting.setdefault(r[0], []).append(r[-1].startswith("collapsed"))
    groups: dict = {}
    for rec, r in zip(records, rows):
        groups.setdefault((r[0], r[1]), []).append((rec, r))
    settings = []
    for (name, mode), members in groups.items():
        suite = [r[8] for _, r in members if not np.isnan(r[8])]
        settings.append(dict(
            setting=name, mode=mode, eps=float(members[0][0]["eps"]), n_train=int(members[0][0]["n_train"]),
            epochs=sorted({int(rec["epochs"]) for rec, _ in members}), seeds=[r[2] for _, r in members],
            n_runs=len(members), n_collapsed=sum(r[-1].startswith("collapsed") for _, r in members),
            n_ended_collapsed=sum(r[-1].startswith("collapsed") and "recovered" not in r[-1] for _, r in members),
            robust=float(np.mean([r[5] for _, r in members])), clean=float(np.mean([r[6] for _, r in members])),
            suite=float(np.mean(suite)) if suite else float("nan"), n_suite=len(suite),
            devices=sorted({str(rec.get("device", "cpu")) for rec, _ in members})))
    return dict(common=common, n_runs=len(rows), n_fgsm=len(fgsm), n_collapsed=len(collapsed),
                n_transient=sum("recovered" in r[-1] for r in collapsed),
                n_stuck=sum(r[-1] == "stuck at chance" for r in rows),
                reliable=[k for k, v in by_setting.items() if len(v) >= min_seeds and all(v)], settings=settings)


# ----------------------------------------------------------------------------- the chapter

@dataclasses.dataclass(frozen=True)
class Params(schema.Params):
    """The rules for the parameters of ``notebooks/06_catastrophic_overfitting.py`` (the
    defaults live in its ``parameters`` cell; field order = cell order)."""

    seed: int = schema.param(schema.Int(min=0, max=SEED_LIMIT - 1))
    n_seeds: int = schema.param(schema.Int(min=1, max=20))
    dataset: str = schema.param(schema.Choice(["cifar10", "mnist"]))
    model_name: str = schema.param(schema.Choice(["cnn", "resnet"]))
    width: int = schema.param(schema.Int(min=1))
    hidden: int = schema.param(schema.Int(min=1))
    resnet_stages: list = schema.param(schema.List(schema.Int(min=1), min_length=1, max_length=6))
    n_train: int = schema.param(schema.Int(min=20))
    n_test: int = schema.param(schema.Int(min=10))
    n_monitor: int = schema.param(schema.Int(min=1, max=schema.Ref("n_train")))
    kernel_every: int = schema.param(schema.Int(min=1))
    probe_per_class: int = schema.param(schema.Int(min=1, max=100))
    epochs: int = schema.param(schema.Int(min=3))
    clean_epochs: int = schema.param(schema.Int(min=0, max=schema.Ref("epochs", -2)))
    learning_rate: float = schema.param(schema.Float(min=0.0, min_inclusive=False))
    lr_decay_epochs: list = schema.param(schema.List(schema.Int(min=1, max=schema.Ref("epochs", -1)), max_length=4,
                                                     increasing=True))
    lr_decay_factor: float = schema.param(schema.Float(min=0.0, max=1.0, min_inclusive=False))
    momentum: float = schema.param(schema.Float(min=0.0, max=1.0, max_inclusive=False))
    weight_decay: float = schema.param(schema.Float(min=0.0))
    batch_size: int = schema.param(schema.Int(min=1, max=schema.Ref("n_train")))
    eps: float = schema.param(schema.Float(min=0.0, max=1.0, min_inclusive=False))
    fgsm_step: float = schema.param(schema.Float(min=0.0, min_inclusive=False))
    noise_scale: float = schema.param(schema.Float(min=0.0, min_inclusive=False))
    nfgsm_noise: float = schema.param(schema.Float(min=0.0))
    attack_steps: int = schema.param(schema.Int(min=1))
    eval_attack_steps: int = schema.param(schema.Int(min=1))
    eval_n_test: int = schema.param(schema.Int(min=10, max=schema.Ref("n_test")))
    eval_iter: int = schema.param(schema.Int(min=1))
    strong_iter: int = schema.param(schema.Int(min=1, max=schema.Ref("eval_iter")))
    augment: str = schema.param(schema.Choice(["none", "crop", "crop_flip"]))
    shared_augment: str = schema.param(schema.Choice(["crop_shared", "crop_flip_shared"]))
    crop_padding: int = schema.param(schema.Int(min=1))
    collapse_fraction: float = schema.param(schema.Float(min=0.0, max=1.0, min_inclusive=False,
                                                         max_inclusive=False))
    collapse_min_peak: float = schema.param(schema.Float(min=0.0, max=1.0))
    co_gap: float = schema.param(schema.Float(min=0.0, max=1.0))
    stuck_below: float = schema.param(schema.Float(min=0.0, max=1.0, min_inclusive=False, max_inclusive=False))

    @property
    def seeds(self) -> list:
        """The seeds of the repeated runs: ``seed .. seed + n_seeds - 1``."""
        return [self.seed + i for i in range(self.n_seeds)]

    @property
    def track_epochs(self) -> list:
        """The epochs at which the kernel is computed: every ``kernel_every``-th and the last."""
        return sorted(set(range(0, self.epochs + 1, self.kernel_every)) | {self.epochs})


#: The training variants, as the page names them.
LABEL = {"standard": "standard", "fgsm": "FGSM-AT", "fgsm_rs": "FGSM-RS", "nfgsm": "N-FGSM", "noise": "noise-FGSM (ours)",
         "pgd": "PGD-AT", "pgd_shared": "PGD-AT, batch-shared aug."}
#: Variants repeated over every seed / run on the first seed only.
SEEDED_VARIANTS = ("fgsm", "fgsm_rs", "nfgsm", "noise")
FIRST_SEED_VARIANTS = ("standard", "pgd", "pgd_shared")


def setting_text(p: Params) -> str:
    """The one-line description of the page's setting (glued as ``setting_md``)."""
    return (f"{p.dataset}, {p.n_train} training images, "
            + (f"the CNN (width {p.width}, hidden {p.hidden})" if p.model_name == "cnn"
               else f"the BatchNorm ResNet {tuple(p.resnet_stages)} (width {p.width})")
            + f", ε = {p.eps:.4g}, learning rate {p.learning_rate:g}, batch {p.batch_size}, {p.epochs} epochs of which "
              f"{p.clean_epochs} clean")


def make_model(p: Params):
    """The chapter's network: the CNN of chapter 04 or a BatchNorm ResNet (10 classes)."""
    from ntknb import models

    if p.model_name == "cnn":
        return models.CNN(num_classes=10, width=p.width, hidden=p.hidden)
    return models.ResNet(num_classes=10, width=p.width, stage_sizes=tuple(p.resnet_stages))


def _variant_step(p: Params, variant: str) -> Optional[float]:
    """The FGSM step of the randomly started variants (``fgsm_step`` · eps); ``None`` = eps."""
    return (p.fgsm_step * p.eps) if variant in ("fgsm_rs", "noise") else None


def variant_config(p: Params, variant: str, s: int) -> "training.TrainConfig":
    """The :class:`ntknb.training.TrainConfig` of ``variant`` (a key of :data:`LABEL`) for seed ``s``:
    FGSM-AT from x, FGSM-RS (:class:`ntknb.adversaries.FGSM` with a random start), N-FGSM
    (:class:`ntknb.adversaries.NFGSM`, noise ``nfgsm_noise`` eps, step eps: ``dejorge2022make``),
    noise-FGSM (:class:`NoiseFGSM`), PGD-AT and PGD-AT with batch-shared augmentation; every
    adversarial run starts with ``clean_epochs`` clean epochs."""
    if variant not in LABEL:
        raise ValueError(f"variant must be one of {list(LABEL)}; got {variant!r}")
    mode = {"fgsm_rs": "fgsm", "nfgsm": "fgsm", "noise": "fgsm", "pgd_shared": "pgd"}.get(variant, variant)
    step = _variant_step(p, variant)
    adversary = {"fgsm_rs": lambda: adversaries.FGSM(p.eps, step, random_start=True),
                 "nfgsm": lambda: adversaries.NFGSM(p.eps, None, p.nfgsm_noise),
                 "noise": lambda: NoiseFGSM(p.eps, step, p.noise_scale)}.get(variant, lambda: None)()
    return training.TrainConfig(
        mode=mode, epochs=p.epochs, batch_size=p.batch_size, learning_rate=p.learning_rate, momentum=p.momentum,
        weight_decay=p.weight_decay, lr_decay_epochs=tuple(p.lr_decay_epochs), lr_decay_factor=p.lr_decay_factor,
        eps=p.eps, attack_steps=p.attack_steps, eval_attack_steps=p.eval_attack_steps, eval_batch_size=p.n_test,
        adversary=adversary, clean_epochs=0 if variant == "standard" else p.clean_epochs,
        augment=p.shared_augment if variant == "pgd_shared" else p.augment, crop_padding=p.crop_padding, seed=s,
    )


@dataclasses.dataclass
class ChapterData:
    """The data of the chapter's runs: one class-balanced subsample per seed and the probe set."""

    tasks: dict  #: seed -> :class:`ntknb.data.Task`
    probe: tuple  #: (x_probe, labels_probe), class-balanced held-out images sorted by class


def prepare_data(p: Params, ds) -> ChapterData:
    """Each seed's training / test subsample of ``ds`` and the probe set (seed ``seed + 1000``)."""
    from ntknb import data

    tasks = {s: data.make_task(ds, n_train=p.n_train, n_test=p.n_test, seed=s) for s in p.seeds}
    probe_idx = nd.balanced_probe(ds.labels_test, p.probe_per_class, num_classes=ds.n_classes, seed=p.seed + 1000)
    return ChapterData(tasks, (ds.x_test[probe_idx], ds.labels_test[probe_idx].astype(np.int64)))


def run_one(p: Params, d: ChapterData, variant: str, s: int, track: bool = False) -> VariantRun:
    """:func:`run_variant` of ``variant`` on seed ``s`` (kernel tracked on the probe if ``track``)."""
    return run_variant(make_model(p), d.tasks[s], variant_config(p, variant, s), n_monitor=p.n_monitor,
                       probe=d.probe if track else None, track_epochs=p.track_epochs,
                       collapse_fraction=p.collapse_fraction, collapse_min_peak=p.collapse_min_peak,
                       monitor_step=_variant_step(p, variant), description=f"{variant} seed {s}",
                       strong_points=strong_points(p, d, s) if variant in SEEDED_VARIANTS else None,
                       strong_iter=p.strong_iter)


def strong_points(p: Params, d: ChapterData, s: int) -> tuple:
    """The fixed test points of seed ``s``'s strong monitor and standard evaluation: the first
    ``eval_n_test`` of its test subsample, ``(x, labels)``."""
    task = d.tasks[s]
    n = min(p.eval_n_test, len(task.labels_test))
    return task.x_test[:n], task.labels_test[:n]


def run_all(p: Params, d: ChapterData) -> dict:
    """Every run of the page: ``{(variant, seed): VariantRun}``. The single-step variants on
    every seed (the first seed's FGSM-AT with the kernel tracked), then standard training,
    PGD-AT and batch-shared PGD-AT on the first seed, kernel tracked."""
    runs = {}
    for s in p.seeds:
        for v in SEEDED_VARIANTS:
            runs[(v, s)] = run_one(p, d, v, s, track=(s == p.seed and v == "fgsm"))
    for v in FIRST_SEED_VARIANTS:
        runs[(v, p.seed)] = run_one(p, d, v, p.seed, track=True)
    return runs


def evaluate_run(p: Params, run: VariantRun, task, seed: int):
    """The standard evaluation and the gradient-masking checks of a trained network
    (:func:`ntknb.masking.gradient_masking_checks`, ``carlini2019evaluating``; its suite is
    :func:`ntknb.evaluation.robust_evaluation`, APGD-CE / APGD-DLR / PGD of ``croce2020reliable``,
    ``eval_iter`` iterations each) on the first ``eval_n_test`` test points of ``task``, at the
    radii eps, 2 eps and 1. Catastrophic overfitting is gradient masking at the clean
    point (``wong2020fast``, ``andriushchenko2020understanding``): a collapsed network keeps a
    high single-step FGSM accuracy while the suite breaks it."""
    import functools

    from ntknb import masking

    n = min(p.eval_n_test, len(task.labels_test))
    predict = functools.partial(run.result.logits_fn(), run.result.params)  # x -> logits, evaluation mode
    return masking.gradient_masking_checks(predict, task.x_test[:n], task.labels_test[:n], p.eps,
                                           eps_grid=[p.eps, 2 * p.eps], seed=seed, n_iter=p.eval_iter,
                                           batch_size=n)


def evaluate_all(p: Params, d: ChapterData, runs: dict) -> dict:
    """:func:`evaluate_run` of every single-step run: ``{(variant, seed): MaskingReport}``."""
    return {(v, s): evaluate_run(p, runs[(v, s)], d.tasks[s], s) for v in SEEDED_VARIANTS for s in p.seeds}


def _interval_text(values) -> str:
    """``"0.123 [0.045, 0.201]"``: mean and Student-t interval over seeds (:func:`ntknb.stats.mean_interval`)."""
    from ntknb import stats

    iv = stats.mean_interval(np.asarray(values, float))
    return f"{iv.estimate:.3f} [{iv.low:.3f}, {iv.high:.3f}]"


def evaluation_columns(p: Params) -> list:
    """The header of :func:`evaluation_rows`."""
    return ["training", f"PGD-{p.eval_attack_steps} monitor, final ({p.n_test} points)",
            f"standard evaluation ({p.eval_n_test} points, {p.eval_iter} it.)",
            f"single-step FGSM ({p.eval_n_test} points)", "monitor − standard eval.", "masking checks passed"]


def evaluation_rows(p: Params, runs: dict, evals: dict) -> list:
    """Per single-step variant, mean [95% t interval] over the seeds: final PGD monitor accuracy,
    robust accuracy under the standard evaluation, accuracy under single-step FGSM (check 2 of
    the masking checks), the monitor minus the standard evaluation, and in how many seeds every
    gradient-masking check passed."""
    rows = []
    for v in SEEDED_VARIANTS:
        mon = np.array([runs[(v, s)].robust_acc[-1] for s in p.seeds], float)
        suite = np.array([evals[(v, s)].iterative_accuracy for s in p.seeds], float)
        single = [evals[(v, s)].single_step_accuracy for s in p.seeds]
        rows.append([LABEL[v], _interval_text(mon), _interval_text(suite), _interval_text(single),
                     _interval_text(mon - suite), f"{sum(evals[(v, s)].passed for s in p.seeds)} of {p.n_seeds}"])
    return rows


def evaluation_summary(p: Params, runs: dict, evals: dict) -> dict:
    """Section 5's numbers (glued under these names): per variant the mean standard-evaluation
    and single-step accuracy and the mean monitor minus standard evaluation; the paired
    differences of the standard evaluation between variants (:data:`DIFFERENCE_PAIRS`)."""
    suite = {v: np.array([evals[(v, s)].iterative_accuracy for s in p.seeds], float) for v in SEEDED_VARIANTS}
    out = {}
    for v, key in (("fgsm", "fgsm"), ("fgsm_rs", "rs"), ("nfgsm", "nfgsm"), ("noise", "noise")):
        mon = np.array([runs[(v, s)].robust_acc[-1] for s in p.seeds], float)
        out[f"co_{key}_suite_robust_acc"] = float(suite[v].mean())
        out[f"co_{key}_single_step_acc"] = float(np.mean([evals[(v, s)].single_step_accuracy for s in p.seeds]))
        out[f"co_{key}_monitor_minus_suite"] = float(np.mean(mon - suite[v]))
        out[f"co_{key}_n_masking_passed"] = int(sum(evals[(v, s)].passed for s in p.seeds))
    return out


DIFFERENCE_PAIRS = (("noise", "fgsm"), ("fgsm_rs", "fgsm"), ("nfgsm", "fgsm"), ("noise", "fgsm_rs"),
                    ("noise", "nfgsm"))


def difference_rows(p: Params, evals: dict, judged: dict) -> list:
    """Paired differences (same seed, same test points) of the standard-evaluation robust accuracy:
    ``[comparison, mean [95% t interval]]`` for each pair of :data:`DIFFERENCE_PAIRS`, over the seeds
    in which both arms trained (:func:`trained`); a pair with fewer than two such seeds reads
    "not compared" with the arm that failed."""
    rows = []
    for a, b in DIFFERENCE_PAIRS:
        keep = [s for s in p.seeds if trained(judged, a, s) and trained(judged, b, s)]
        if len(keep) < MIN_COLLAPSED:
            bad = [LABEL[v] for v in (a, b) if any(not trained(judged, v, s) for s in p.seeds)]
            rows.append([f"{LABEL[a]} − {LABEL[b]}", f"not compared: {' and '.join(bad)} failed to train "
                                                       f"(clean accuracy at chance) in {p.n_seeds - len(keep)} of "
                                                       f"{p.n_seeds} seeds"])
            continue
        diff = [evals[(a, s)].iterative_accuracy - evals[(b, s)].iterative_accuracy for s in keep]
        note = "" if len(keep) == p.n_seeds else f" ({len(keep)} of {p.n_seeds} seeds: both arms trained)"
        rows.append([f"{LABEL[a]} − {LABEL[b]}", _interval_text(diff) + note])
    return rows


COLLAPSE_COLUMNS = ["training", "seed", "peak robust", "at epoch", "lowest after peak", "final robust",
                    "final clean", "FGSM train acc. (at collapse, else final)", "collapsed"]


def collapse_rows(runs: dict) -> list:
    """One row of :data:`COLLAPSE_COLUMNS` per run."""
    rows = []
    for (v, s), r in runs.items():
        c = r.collapse
        rows.append([LABEL[v], s, c.peak, c.peak_epoch, c.low, c.final, r.clean_acc[-1],
                     r.fgsm_train_acc[c.epoch] if c.collapsed else r.fgsm_train_acc[-1],
                     f"epoch {c.epoch}" + (" (recovered)" if c.recovered else "") if c.collapsed else "no"])
    return rows


def fgsm_runs(p: Params, runs: dict, variant: str = "fgsm") -> list:
    """The runs of ``variant`` over the seeds, in seed order."""
    return [runs[(variant, s)] for s in p.seeds]


def fgsm_summary(p: Params, runs: dict) -> dict:
    """Section 1's numbers (glued under these names): FGSM-AT collapses (``co_n_collapsed``; of
    them not recovered by the last epoch, i.e. ending collapsed: ``co_fgsm_collapsed_count``), mean peak / final /
    lowest robust accuracy, final FGSM training and clean accuracy, recoveries, and how many
    FGSM-AT / FGSM-RS runs ended overfitted by the end-state criterion (gap ``co_gap``)."""
    fg = fgsm_runs(p, runs)
    return {
        "co_n_collapsed": sum(r.collapse.collapsed for r in fg),
        "co_fgsm_collapsed_count": sum(r.collapse.collapsed and not r.collapse.recovered for r in fg),
        "co_fgsm_peak_robust_acc": float(np.mean([r.collapse.peak for r in fg])),
        "co_fgsm_final_robust_acc": float(np.mean([r.robust_acc[-1] for r in fg])),
        "co_fgsm_low_robust_acc": float(np.mean([r.collapse.low for r in fg])),
        "co_fgsm_final_train_fgsm_acc": float(np.mean([r.fgsm_train_acc[-1] for r in fg])),
        "co_fgsm_final_clean_acc": float(np.mean([r.clean_acc[-1] for r in fg])),
        "co_n_recovered": sum(r.collapse.recovered for r in fg),
        "co_n_gap": sum(r.ended_overfitted(p.co_gap) for r in fg),
        "co_n_gap_rs": sum(r.ended_overfitted(p.co_gap) for r in fgsm_runs(p, runs, "fgsm_rs")),
    }


def plot_fgsm_runs(p: Params, runs: dict):
    """FGSM-AT over the seeds: PGD robust test and FGSM training accuracy (left), clean test
    accuracy (right). Returns the figure."""
    from ntknb import plotting

    fig, axes = plotting.new_figure(ncols=2, width=4.2, height=3.1)
    for s in p.seeds:
        r = runs[("fgsm", s)]
        ep = np.arange(1, p.epochs + 1)
        line, = axes[0].plot(ep, r.robust_acc, "o-", ms=3, label=f"seed {s}: PGD-{p.eval_attack_steps} test")
        axes[0].plot(np.arange(0, p.epochs + 1), r.fgsm_train_acc, "--", color=line.get_color(),
                     label=f"seed {s}: FGSM train")
        axes[1].plot(ep, r.clean_acc, "o-", ms=3, color=line.get_color(), label=f"seed {s}")
    axes[0].set(title="FGSM-AT: robust accuracy", xlabel="epoch", ylabel="accuracy", ylim=(-0.02, 1.02))
    axes[1].set(title="FGSM-AT: clean test accuracy", xlabel="epoch", ylim=(-0.02, 1.02))
    axes[0].legend(fontsize=6)
    axes[1].legend(fontsize=6)
    return fig


KERNEL_VARIANTS = ("standard", "fgsm", "pgd", "pgd_shared")


def specialization_matrices(p: Params, runs: dict, probe) -> dict:
    """``{variant: M_ks}`` of the final AE-NTK (clean labels) of the first seed's runs
    (:func:`ae_specialization_matrix`, PGD-``eval_attack_steps``)."""
    return {v: ae_specialization_matrix(runs[(v, p.seed)].result, *probe, eps=p.eps,
                                        attack_steps=p.eval_attack_steps, seed=p.seed) for v in KERNEL_VARIANTS}


def ks_strengths(mks: dict) -> dict:
    """KS strength (mean diagonal of M_ks) of each variant."""
    return {v: float(np.nanmean(np.diag(m))) for v, m in mks.items()}


def ks_over_seeds(p: Params, runs: dict, probe) -> dict:
    """KS strength of the final AE-NTK (clean labels) of FGSM-AT and FGSM-RS on every seed:
    ``{(variant, seed): KS}`` (the Fig. 8 comparison of collapsed and robust networks with seeds)."""
    return {(v, s): float(np.nanmean(np.diag(ae_specialization_matrix(
        runs[(v, s)].result, *probe, eps=p.eps, attack_steps=p.eval_attack_steps, seed=s))))
        for v in ("fgsm", "fgsm_rs") for s in p.seeds}


def plot_distances_to_fgsm(p: Params, runs: dict) -> dict:
    """Fig. 9b-c: KD of the standard, PGD-AT and batch-shared PGD-AT kernels to the FGSM-AT
    kernel (first seed) per tracked epoch, C-NTK (left) and AE-NTK (right), plotted.
    Returns ``{(variant, "clean" | "adv"): distances}``."""
    from ntknb import plotting

    ref = runs[("fgsm", p.seed)]
    fig, axes = plotting.new_figure(ncols=2, width=4.2, height=3.1)
    kd = {}
    for ax, kind, title in ((axes[0], "clean", "C-NTK"), (axes[1], "adv", "AE-NTK")):
        curves = {}
        for v in ("standard", "pgd", "pgd_shared"):
            ep, d = distance_to_reference(runs[(v, p.seed)].trajectory, ref.trajectory, kind)
            curves[LABEL[v]] = (ep, d)
            kd[(v, kind)] = d
        plotting.plot_curves(ax, curves, ylabel="KD to the FGSM-AT kernel", title=f"{title}: distance to FGSM-AT")
    return kd


def plot_shared_augmentation(p: Params, runs: dict):
    """Clean and PGD test accuracy of PGD-AT, batch-shared PGD-AT and FGSM-AT (first seed)."""
    from ntknb import plotting

    fig, ax = plotting.new_figure(width=5.0, height=3.2)
    ep = np.arange(1, p.epochs + 1)
    for v in ("pgd", "pgd_shared", "fgsm"):
        r = runs[(v, p.seed)]
        line, = ax.plot(ep, r.clean_acc, "-", label=f"{LABEL[v]}: clean")
        ax.plot(ep, r.robust_acc, "--", color=line.get_color(), label=f"{LABEL[v]}: PGD-{p.eval_attack_steps}")
    ax.set(xlabel="epoch", ylabel="test accuracy", title=f"Batch-shared augmentation (seed {p.seed})",
           ylim=(-0.02, 1.02))
    ax.legend(fontsize=6)
    return fig


def plot_all_variants(p: Params, runs: dict):
    """PGD robust test accuracy of every variant (single-step methods: mean over seeds, thin
    lines the seeds)."""
    from ntknb import plotting

    fig, ax = plotting.new_figure(width=5.6, height=3.4)
    ep = np.arange(1, p.epochs + 1)
    for v in SEEDED_VARIANTS:
        curves = np.stack([runs[(v, s)].robust_acc for s in p.seeds])
        line, = ax.plot(ep, curves.mean(0), "o-", ms=3, lw=2, label=f"{LABEL[v]} (mean of {p.n_seeds})")
        for c in curves:
            ax.plot(ep, c, "-", lw=0.6, alpha=0.5, color=line.get_color())
    for v in ("pgd", "pgd_shared", "standard"):
        ax.plot(ep, runs[(v, p.seed)].robust_acc, "s--", ms=3, label=LABEL[v])
    ax.set(xlabel="epoch", ylabel=f"PGD-{p.eval_attack_steps} robust test accuracy", ylim=(-0.02, 1.02),
           title=f"{p.dataset}, eps = {p.eps:.3g}")
    ax.legend(fontsize=6)
    return fig


def variant_stats(p: Params, runs: dict) -> dict:
    """Per single-step variant: mean final robust and clean accuracy and number collapsed."""
    stats = {}
    for v in SEEDED_VARIANTS:
        rs = fgsm_runs(p, runs, v)
        stats[v] = dict(final=float(np.mean([r.robust_acc[-1] for r in rs])),
                        clean=float(np.mean([r.clean_acc[-1] for r in rs])),
                        n_collapsed=int(sum(r.collapse.collapsed for r in rs)))
    return stats


def fix_summary(p: Params, runs: dict, stats: dict) -> dict:
    """Section 4's numbers (glued under these names)."""
    return {
        "co_noise_final_robust_acc": stats["noise"]["final"],
        "co_noise_final_clean_acc": stats["noise"]["clean"],
        "co_noise_n_collapsed": stats["noise"]["n_collapsed"],
        "co_rs_final_robust_acc": stats["fgsm_rs"]["final"],
        "co_rs_final_clean_acc": stats["fgsm_rs"]["clean"],
        "co_rs_n_collapsed": stats["fgsm_rs"]["n_collapsed"],
        "co_nfgsm_final_robust_acc": stats["nfgsm"]["final"],
        "co_nfgsm_final_clean_acc": stats["nfgsm"]["clean"],
        "co_nfgsm_n_collapsed": stats["nfgsm"]["n_collapsed"],
        "co_pgd_final_robust_acc": runs[("pgd", p.seed)].robust_acc[-1],
        "co_pgd_final_clean_acc": runs[("pgd", p.seed)].clean_acc[-1],
        "co_std_final_robust_acc": runs[("standard", p.seed)].robust_acc[-1],
    }


SEARCH_COLUMNS = ["setting", "training", "seed", "epochs", "peak robust", "final robust", "final clean",
                  "final FGSM train acc.", "standard eval.", "outcome"]


def search_common_text(found: dict) -> str:
    """The settings shared by every recorded search run, as Markdown."""
    return ", ".join(f"`{k}` = {v}" for k, v in found["common"].items())


def search_summary_text(found: dict) -> str:
    """What the recorded search shows (:func:`search_summary`), in one paragraph."""
    return (f"Of the {found['n_fgsm']} recorded FGSM-AT runs, {found['n_collapsed']} collapsed by the criterion of "
            f"section 1, {found['n_transient']} of them only transiently (recovered by the last epoch); "
            f"{found['n_stuck']} of all {found['n_runs']} runs never left a constant prediction. "
            + (f"Settings that collapsed in every one of at least three seeds: {'; '.join(found['reliable'])}."
               if found["reliable"] else "No FGSM-AT setting run with at least three seeds collapsed in all of them."))


def check_text(p: Params, runs: dict, ks: dict, stats: dict, judged: dict) -> str:
    """The page's short summary (the cell nbval compares)."""
    fg = fgsm_runs(p, runs)
    st = strong_summary(p, judged)
    return "\n".join([
        f"FGSM-AT ended collapsed (strong rule) in {st['co_fgsm_ended_collapsed']} of {p.n_seeds} seeds "
        f"(eps = {p.eps:.3f})",
        f"FGSM-AT PGD monitor, peak / final (mean):  {np.mean([r.collapse.peak for r in fg]):.2f} / "
        f"{np.mean([r.robust_acc[-1] for r in fg]):.2f}",
        f"final PGD monitor, FGSM-RS / N-FGSM / noise-FGSM: {stats['fgsm_rs']['final']:.2f} / "
        f"{stats['nfgsm']['final']:.2f} / {stats['noise']['final']:.2f}",
        f"final robust acc., PGD-AT / shared-aug PGD: {runs[('pgd', p.seed)].robust_acc[-1]:.2f} / "
        f"{runs[('pgd_shared', p.seed)].robust_acc[-1]:.2f}",
        f"KS (AE-NTK): standard {ks['standard']:.2f}, FGSM-AT {ks['fgsm']:.2f}, PGD-AT {ks['pgd']:.2f}",
    ])


# ---------------------------------------------------------------------------------- claims
#
# Thresholds, fixed before measuring; intervals are t intervals over the seeds of the single-step
# runs (Student t, ntknb.stats.mean_interval). Issue 27 replaced the weak PGD monitor by the strong
# end-state rule of ntknb.collapse.CollapseRule, whose three thresholds are registered (with their
# justification) in notebooks/data/06_co_protocol.yaml before any run that used them; the page
# passes that rule in (``rule``). For every single-step run on seed s, :func:`judge_runs` applies
# it to the per-epoch strong curve (suite of ``strong_iter`` iterations on the ``eval_n_test``
# points), the final standard evaluation (``eval_iter`` iterations, same points), single-step FGSM
# and clean accuracy on the same points.
#
# * ``ch06.fgsm_at_collapse`` — wong2020fast / andriushchenko2020understanding: FGSM-AT's robust
#   accuracy under a multi-step attack "falls to about zero" after a peak. Measured per seed as the
#   relative drop 1 - final strong / peak strong; the claim needs a drop above 1 - drop_fraction
#   (0.75 at the registered 0.25): the rule's own drop condition.
# * ``ch06.noise_beats_fgsm`` — li2023rethinking Sec. 6, Fig. 10: anisotropic noise before the FGSM
#   step prevents the collapse: standard-evaluation robust accuracy of noise-FGSM minus FGSM-AT (same
#   seed, same points), > 0.
# * ``ch06.rs_beats_fgsm`` — wong2020fast: a uniform random start prevents it too; FGSM-RS minus
#   FGSM-AT, > 0.
# * ``ch06.ks_collapsed_lower`` — li2023rethinking Sec. 6, Fig. 8: KS(FGSM-RS) - KS(FGSM-AT) of the
#   final AE-NTK, same seed, > 0 (FGSM-RS is the robust network of the same seed).
# * ``ch06.noise_fix_suite`` — Fig. 10 against a *collapsed* FGSM-AT: as noise_beats_fgsm, over the
#   seeds whose FGSM-AT ended collapsed.
# * ``ch06.shared_aug_collapse`` — Fig. 9a (TE-OF; here PGD-AT with batch-shared augmentation):
#   relative drop of its PGD monitor > 1 - drop_fraction. First seed only: unbounded interval.
#
# Preconditions (ntknb.claims.Precondition), fixed before measuring; when one fails the verdict is
# "not testable at this scale": (1) a claim about collapsed networks (ks_collapsed_lower,
# noise_fix_suite) is measured on the seeds whose FGSM-AT ended collapsed and needs at least
# MIN_COLLAPSED = 2 of them; (2) an arm that failed to train (final clean accuracy below chance +
# the rule's clean_margin) is never a comparison: a comparison is measured on the seeds in which
# both arms trained and needs at least MIN_COLLAPSED of them.

#: Directions and thresholds of the claims; ``None``: ``1 - rule.drop_fraction``.
CLAIM_THRESHOLDS = {"ch06.fgsm_at_collapse": ("greater", None), "ch06.noise_beats_fgsm": ("greater", 0.0),
                    "ch06.rs_beats_fgsm": ("greater", 0.0), "ch06.ks_collapsed_lower": ("greater", 0.0),
                    "ch06.noise_fix_suite": ("greater", 0.0), "ch06.shared_aug_collapse": ("greater", None)}
#: The fewest seeds a guarded claim is measured on.
MIN_COLLAPSED = 2


def judge_runs(p: Params, runs: dict, evals: dict, rule: collapse.CollapseRule) -> dict:
    """``{(variant, seed): ntknb.collapse.Judgement}`` of every single-step run by the strong end-state
    ``rule``: its per-epoch strong curve, the final standard evaluation, single-step FGSM and clean
    accuracy, all on the seed's ``eval_n_test`` points."""
    out = {}
    for v in SEEDED_VARIANTS:
        for s in p.seeds:
            r, e = runs[(v, s)], evals[(v, s)]
            out[(v, s)] = rule.judge(r.strong_column("strong_acc"), e.iterative_accuracy, e.single_step_accuracy,
                                     float(r.strong_column("clean_acc")[-1]), 10, epochs=r.strong_column("epoch"))
    return out


def trained(judged: dict, variant: str, seed: int) -> bool:
    """Whether the run learned (its judgement's ``"learned"`` condition held)."""
    return "learned" not in judged[(variant, seed)].failed


STRONG_COLUMNS = ["training", "seed", "peak strong (epoch)", "final strong", "final FGSM", "final clean",
                  "collapse epoch", "ended collapsed"]


def strong_rows(p: Params, judged: dict) -> list:
    """One row of :data:`STRONG_COLUMNS` per single-step run (its :func:`judge_runs` judgement);
    a run that did not learn reads "failed to train"."""
    rows = []
    for v in SEEDED_VARIANTS:
        for s in p.seeds:
            j = judged[(v, s)]
            state = "yes" if j.ended_collapsed else (
                "failed to train" if "learned" in j.failed else "no (" + ", ".join(j.failed) + ")")
            rows.append([LABEL[v], s, f"{j.peak:.3f} ({j.peak_epoch})", j.final_strong, j.final_fgsm, j.final_clean,
                         "—" if j.collapse_epoch is None else j.collapse_epoch, state])
    return rows


def strong_summary(p: Params, judged: dict) -> dict:
    """Numbers of the strong rule (glued under these names): per single-step variant ``key`` the
    runs that ended collapsed (``co_<key>_ended_collapsed``) and that failed to train
    (``co_<key>_n_failed``)."""
    out = {}
    for v, key in (("fgsm", "fgsm"), ("fgsm_rs", "rs"), ("nfgsm", "nfgsm"), ("noise", "noise")):
        out[f"co_{key}_ended_collapsed"] = int(sum(judged[(v, s)].ended_collapsed for s in p.seeds))
        out[f"co_{key}_n_failed"] = int(sum(not trained(judged, v, s) for s in p.seeds))
    return out


def _guarded_interval(values, keep) -> tuple:
    """``(measured, low, high, n_seeds)`` over the seeds where ``keep`` holds (the guards in the
    comment above :data:`CLAIM_THRESHOLDS`); fewer than :data:`MIN_COLLAPSED`: the mean over all seeds
    with an unbounded interval."""
    from ntknb import stats

    values, mask = np.asarray(values, float), np.asarray(keep, bool)
    if mask.sum() >= MIN_COLLAPSED:
        iv = stats.mean_interval(values[mask])
        return iv.estimate, iv.low, iv.high, int(mask.sum())
    return float(values.mean()), None, None, int(values.size)


def _drop(curve) -> float:
    peak = float(np.max(curve))
    return 1.0 - float(curve[-1]) / peak if peak > 0 else 0.0


def claims(p: Params, runs: dict, ks: dict, evals: dict, judged: dict, rule: collapse.CollapseRule) -> list:
    """The chapter's claims (:class:`ntknb.claims.Claim`; thresholds and guards in the comment above
    :data:`CLAIM_THRESHOLDS`), t intervals over the seeds of the single-step variants.

    Args:
      runs: ``{(variant, seed): VariantRun}`` (:func:`run_all`).
      ks: ``{(variant, seed): KS}`` of FGSM-AT and FGSM-RS (:func:`ks_over_seeds`).
      evals: ``{(variant, seed): MaskingReport}`` of the single-step runs (:func:`evaluate_all`).
      judged: :func:`judge_runs`; rule: the registered :class:`ntknb.collapse.CollapseRule`.
    """
    from ntknb import stats
    from ntknb.claims import Claim, Precondition

    suite = {v: np.array([evals[(v, s)].iterative_accuracy for s in p.seeds], float) for v in SEEDED_VARIANTS}
    drop = [1.0 - j.final_strong / j.peak if j.peak > 0 else 0.0 for j in (judged[("fgsm", s)] for s in p.seeds)]
    ended = [judged[("fgsm", s)].ended_collapsed for s in p.seeds]
    both = {v: [trained(judged, v, s) and trained(judged, "fgsm", s) for s in p.seeds] for v in ("noise", "fgsm_rs")}
    scale = setting_text(p) + f"; strong rule: {rule.describe()}"
    th = CLAIM_THRESHOLDS
    need = 1.0 - rule.drop_fraction
    common = dict(n_test=min(int(p.eval_n_test), int(p.n_test)), scale=scale)
    def seeds_at_least(name: str, what: str, mask) -> list:
        return [Precondition(name, f"{what} in at least {MIN_COLLAPSED} of the {p.n_seeds} seeds",
                             measured=int(np.sum(mask)), direction="greater", threshold=MIN_COLLAPSED - 0.5)]

    trained_pre = {v: seeds_at_least("both_arms_trained", f"{LABEL[v]} and FGSM-AT both trained (clean accuracy "
                                     f">= chance + {rule.clean_margin:g})", both[v]) for v in both}
    collapsed_pre = {v: seeds_at_least("fgsm_at_ended_collapsed", f"FGSM-AT ended collapsed (strong rule) and "
                                       f"{LABEL[v]} trained", np.logical_and(ended, both[v])) for v in both}
    ks_diff = [ks[("fgsm_rs", s)] - ks[("fgsm", s)] for s in p.seeds]
    m_ks, lo_ks, hi_ks, n_ks = _guarded_interval(ks_diff, np.logical_and(ended, both["fgsm_rs"]))
    noise_diff, rs_diff = suite["noise"] - suite["fgsm"], suite["fgsm_rs"] - suite["fgsm"]
    m_fix, lo_fix, hi_fix, n_fix = _guarded_interval(noise_diff, np.logical_and(ended, both["noise"]))
    m_nb, lo_nb, hi_nb, n_nb = _guarded_interval(noise_diff, both["noise"])
    m_rs, lo_rs, hi_rs, n_rs = _guarded_interval(rs_diff, both["fgsm_rs"])
    shared = stats.mean_interval([_drop(runs[("pgd_shared", p.seed)].robust_acc)])

    def beats_fgsm(cid, variant, source, where, who, paper, interval):
        """The claim that ``variant`` ends more robust than FGSM-AT (standard evaluation, same seed and points)."""
        measured, low, high, n = interval
        return Claim(id=cid, source=source, where=where, paper=paper,
                     claim=f"{who} ends more robust than FGSM-AT (standard evaluation, same seed and points, "
                           "difference > 0).",
                     direction=th[cid][0], threshold=th[cid][1], measured=measured, low=low, high=high, n_seeds=n,
                     preconditions=trained_pre[variant], **common)

    return [
        Claim.from_interval(
            stats.mean_interval(drop), id="ch06.fgsm_at_collapse", source="wong2020fast",
            where="catastrophic overfitting of FGSM training; andriushchenko2020understanding Fig. 1",
            claim=f"FGSM-AT overfits catastrophically: its final strong robust accuracy (standard evaluation, "
                  f"{p.eval_iter} it.) falls below {rule.drop_fraction:g} x the peak of its per-epoch strong curve "
                  f"(relative drop > {need:g}).",
            paper="robust accuracy against PGD falls to about zero",
            direction=th["ch06.fgsm_at_collapse"][0], threshold=need, n_seeds=p.n_seeds, **common),
        beats_fgsm("ch06.noise_beats_fgsm", "noise", "li2023rethinking", "Sec. 6, Fig. 10",
                   "Anisotropic noise before the FGSM step", "the noise prevents catastrophic overfitting",
                   (m_nb, lo_nb, hi_nb, n_nb)),
        beats_fgsm("ch06.rs_beats_fgsm", "fgsm_rs", "wong2020fast", "FGSM with random initialisation",
                   "FGSM with a uniform random start", "random initialisation avoids catastrophic overfitting",
                   (m_rs, lo_rs, hi_rs, n_rs)),
        Claim(id="ch06.ks_collapsed_lower", source="li2023rethinking", where="Sec. 6, Fig. 8",
              claim="The AE-NTK of a collapsed FGSM-AT network is less specialised than that of a robust network: "
                    "KS(FGSM-RS) - KS(FGSM-AT), same seed, > 0.",
              paper="M_ks chaotic for the collapsed FGSM-AT network, aligned with the diagonal for robust ones",
              direction=th["ch06.ks_collapsed_lower"][0], threshold=th["ch06.ks_collapsed_lower"][1],
              measured=m_ks, low=lo_ks, high=hi_ks, n_seeds=n_ks, n_test=None, scale=scale,
              preconditions=collapsed_pre["fgsm_rs"]),
        Claim(id="ch06.noise_fix_suite", source="li2023rethinking", where="Sec. 6, Fig. 10",
              claim="Anisotropic noise before the FGSM step ends more robust than a collapsed FGSM-AT under the "
                    "standard evaluation (same seed and test points, difference > 0).",
              paper="the noise prevents catastrophic overfitting", direction=th["ch06.noise_fix_suite"][0],
              threshold=th["ch06.noise_fix_suite"][1], measured=m_fix, low=lo_fix, high=hi_fix, n_seeds=n_fix,
              preconditions=collapsed_pre["noise"], **common),
        Claim.from_interval(
            shared, id="ch06.shared_aug_collapse", source="li2023rethinking", where="Sec. 6, Fig. 9a (TE-OF)",
            claim=f"A multi-step method (here PGD-AT) with batch-shared augmentation overfits catastrophically: "
                  f"relative drop of its PGD-{p.eval_attack_steps} test accuracy > {need:g} (first seed only).",
            paper="TE with batch-shared augmentation collapses like FGSM-AT",
            direction=th["ch06.shared_aug_collapse"][0], threshold=need, n_test=int(p.n_test), scale=scale),
    ]


# ------------------------------------------------------------------------------ GPU scale

#: The recorded CIFAR-10 GPU runs (``scripts/gpu_cifar_search``), relative to ``notebooks/``.
GPU_SEARCH_FILE = "data/gpu/cifar10_search.jsonl"
GPU_COLUMNS = ["stream", "training images", "epochs", "device", "runs (seeds)", "collapsed", "ended collapsed",
               "final PGD monitor", "standard eval.", "final clean"]


def gpu_streams(found: dict) -> dict:
    """The FGSM-AT streams of a :func:`search_summary` of the GPU records, keyed ``co<k>_n<n>`` for
    eps = k/255 and n training images (e.g. ``co8_n10000``): its ``settings`` entries of mode ``fgsm``."""
    return {f"co{round(g['eps'] * 255)}_n{g['n_train']}": g for g in found["settings"] if g["mode"] == "fgsm"}


def gpu_rows(streams: dict) -> list:
    """One row of :data:`GPU_COLUMNS` per stream (means over its runs; NaN: not measured)."""
    return [[f"FGSM-AT, ε {round(g['eps'] * 255)}/255", g["n_train"], ", ".join(str(e) for e in g["epochs"]),
             ", ".join(g["devices"]),
             f"{g['n_runs']} ({', '.join(str(s) for s in g['seeds'])})", g["n_collapsed"], g["n_ended_collapsed"],
             g["robust"], g["suite"], g["clean"]] for g in streams.values()]


def gpu_summary(streams: dict) -> dict:
    """Numbers of the GPU section (glued under these names): over all FGSM-AT streams the runs
    (``gpu_fgsm_n``), collapsed and ended-collapsed runs (``gpu_fgsm_collapsed``,
    ``gpu_fgsm_ended_collapsed``); per stream ``name`` (:func:`gpu_streams`) the same
    (``gpu_<name>_n``, ``gpu_<name>_collapsed``, ``gpu_<name>_ended_collapsed``) and the means of
    the final PGD monitor, standard evaluation and clean accuracy (``gpu_<name>_robust``,
    ``gpu_<name>_suite``, ``gpu_<name>_clean``; NaN: not measured)."""
    out = {"gpu_fgsm_n": sum(g["n_runs"] for g in streams.values()),
           "gpu_fgsm_collapsed": sum(g["n_collapsed"] for g in streams.values()),
           "gpu_fgsm_ended_collapsed": sum(g["n_ended_collapsed"] for g in streams.values())}
    for name, g in streams.items():
        out.update({f"gpu_{name}_n": g["n_runs"], f"gpu_{name}_collapsed": g["n_collapsed"],
                    f"gpu_{name}_ended_collapsed": g["n_ended_collapsed"], f"gpu_{name}_robust": g["robust"],
                    f"gpu_{name}_suite": g["suite"], f"gpu_{name}_clean": g["clean"]})
    return out


def gpu_text(found: dict, streams: dict) -> str:
    """What the recorded GPU runs are and what their monitor curves and final evaluations read, in
    words (a description: the GPU runs are not a claim of this page)."""
    if found["n_runs"] == 0:
        return "No GPU run has been recorded yet (the file is missing or empty)."
    parts = []
    for g in streams.values():
        parts.append(f"FGSM-AT at ε = {round(g['eps'] * 255)}/255 on {g['n_train']} images ({g['n_runs']} run(s) on "
                     f"{', '.join(g['devices'])}): collapsed by the PGD monitor in {g['n_collapsed']}, ended collapsed "
                     f"in {g['n_ended_collapsed']}; mean final PGD monitor {g['robust']:.3f}, standard evaluation "
                     + (f"{g['suite']:.3f}" if g["n_suite"] else "not measured") + f", clean {g['clean']:.3f}")
    return (f"{found['n_runs']} GPU run(s) recorded, {found['n_fgsm']} of them FGSM-AT. "
            + ("; ".join(parts) + "." if parts else "No FGSM-AT stream.")
            + " Their clean accuracies show how far these networks were from trained when they stopped.")


def plot_gpu_curves(records: Sequence[dict]):
    """PGD monitor (solid) and clean (dotted) test accuracy per epoch of each recorded FGSM-AT GPU
    run, one colour per stream (eps and training-set size). Returns the figure."""
    from ntknb import plotting

    fig, ax = plotting.new_figure(width=5.6, height=3.4)
    colours = {}
    for rec in records:
        if rec["mode"] != "fgsm":
            continue
        k = (round(rec["eps"] * 255), rec["n_train"])
        name = f"ε {k[0]}/255, {k[1]} images"
        ep = np.arange(1, len(rec["robust_acc"]) + 1)
        first = k not in colours
        line, = ax.plot(ep, rec["robust_acc"], "o-", ms=3, color=colours.get(k),
                        label=f"{name}: PGD monitor" if first else None)
        colours.setdefault(k, line.get_color())
        ax.plot(ep, rec["clean_acc"], ":", color=colours[k], label=f"{name}: clean" if first else None)
    ax.set(xlabel="epoch", ylabel="test accuracy", ylim=(-0.02, 1.02), title="CIFAR-10 on the GPU: FGSM-AT runs")
    if colours:
        ax.legend(fontsize=6)
    return fig
