"""Catastrophic overfitting in single-step adversarial training, seen through the kernel.

"Rethinking Adversarial Training with NTK", Sec. 6 (Figs. 8-10): a network trained with
FGSM-AT (Goodfellow et al. 2015) can suddenly lose its robustness to multi-step attacks
while its accuracy on its own FGSM training examples stays high ("catastrophic
overfitting", Wong et al. 2020; Kim et al. 2021; Andriushchenko & Flammarion 2020).
The paper attributes it to *isotropic shortcut features* in the one-step adversarial
examples, plants such a shortcut on purpose with batch-shared augmentation (every image
of a mini-batch gets the same crop / flip: ``augment="crop_flip_shared"`` of
:class:`ntknb.training.TrainConfig`) and removes it by adding *anisotropic noise to every
sample* before the FGSM step (``TrainConfig(fgsm_noise=...)``, this module's
:func:`anisotropic_noise` / :func:`noise_initialized_fgsm`).

This module holds the pieces of that chapter that are not generic training or kernel code:

* :func:`anisotropic_noise`, :func:`noise_initialized_fgsm` — the noise initialisation;
* :class:`AttackAccuracyMonitor` — a :func:`ntknb.training.fit` callback measuring the
  accuracy on FGSM examples of a fixed training subset after every epoch;
* :func:`detect_collapse` — the collapse criterion;
* :func:`run_variant` / :func:`run_seeds` — training runs (via
  :func:`ntknb.ntk_dynamics.train_and_track` or :func:`ntknb.training.train_model`);
* :func:`ae_specialization_matrix`, :func:`distance_to_reference` — kernel comparisons
  built on :mod:`ntknb.ntk_dynamics` and :mod:`ntknb.metrics`;
* :func:`search_run`, :func:`append_search_records`, :func:`search_table`,
  :func:`search_summary` — the recorded search
  for a setting that collapses (``scripts/co_search.py`` runs it; the chapter tabulates it).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional, Sequence

import ntknb  # noqa: F401  (compat shim before neural_tangents)

import jax
import jax.numpy as jnp
import numpy as np

from ntknb import attacks, metrics, training
from ntknb import ntk_dynamics as nd

__all__ = [
    "anisotropic_noise",
    "noise_initialized_fgsm",
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
]


def anisotropic_noise(key, shape: Sequence[int], eps: float, scale: float = 1.0) -> jnp.ndarray:
    """Per-sample anisotropic Gaussian noise in the l∞ ball of radius ``eps``.

    "Rethinking" Sec. 6 proposes to "add some anisotropy noise into every sample inside
    each mini-batch" without giving its distribution; this is our reading of it.  Each
    sample i gets its own random diagonal covariance:

        δ_i = clip(σ_i ⊙ ξ_i, −eps, eps),   σ_i = scale · eps · u_i,
        u_i ~ U(0, 1)^d,   ξ_i ~ N(0, I_d)   (independent over i and coordinates),

    so the noise differs in scale from coordinate to coordinate and from sample to
    sample — unlike the uniform random start of FGSM-RS (Wong et al. 2020), which draws
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
    """FGSM from ``x + δ`` with δ = :func:`anisotropic_noise` ("Rethinking" Sec. 6):

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
            def ce(xx, yy):
                return attacks.cross_entropy(apply_fn(params, state, xx, False)[0], yy)

            xa = attacks._pgd_impl(ce, xb, yb, jnp.asarray(eps, xb.dtype), jnp.asarray(alpha, xb.dtype),
                                   jnp.zeros_like(xb), 1, (0.0, 1.0))
            return jnp.sum(jnp.argmax(apply_fn(params, state, xa, False)[0], -1) == yb)

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
    """

    result: Any
    fgsm_train_acc: np.ndarray
    collapse: Collapse
    trajectory: Optional[Any] = None

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
                init_seed: Optional[int] = None, progress: bool = False, description: str = "") -> VariantRun:
    """Train ``model`` on ``task`` (an :class:`ntknb.data.Task`) with ``config``, monitoring
    the FGSM accuracy on the first ``n_monitor`` training images (step
    ``config.fgsm_step_size``, default eps) and, if ``probe=(x_probe, labels_probe)``, the
    C-NTK / AE-NTK with :func:`ntknb.ntk_dynamics.train_and_track` at ``track_epochs``.
    ``init_seed`` defaults to ``config.seed``."""
    init_seed = config.seed if init_seed is None else init_seed
    n_monitor = min(int(n_monitor), task.x_train.shape[0])
    monitor = AttackAccuracyMonitor(training.flax_apply_fn(model), task.x_train[:n_monitor],
                                    task.labels_train[:n_monitor], config.eps, config.fgsm_step_size)
    trajectory = None
    if probe is None:
        result = training.train_model(model, task.x_train, task.labels_train, task.x_test, task.labels_test, config,
                                      init_seed=init_seed, callbacks=[monitor], progress=progress,
                                      description=description)
    else:
        x_probe, labels_probe = probe
        tracker = nd.KernelTracker(training.flax_apply_fn(model), x_probe, labels_probe, eps=config.eps,
                                   attack_steps=probe_attack_steps or config.eval_attack_steps,
                                   epochs=track_epochs, top_p=min(top_p, len(labels_probe)), seed=config.seed)
        result = training.train_model(model, task.x_train, task.labels_train, task.x_test, task.labels_test, config,
                                      init_seed=init_seed, callbacks=[monitor, tracker], progress=progress,
                                      description=description)
        trajectory = tracker.trajectory()
    collapse = detect_collapse(result.column("robust_acc"), collapse_fraction, collapse_min_peak)
    return VariantRun(result=result, fgsm_train_acc=np.asarray(monitor.accuracies), collapse=collapse,
                      trajectory=trajectory)


def run_seeds(model_fn: Callable[[], Any], task_fn: Callable[[int], Any], config: "training.TrainConfig",
              seeds: Sequence[int], **kwargs) -> list:
    """:func:`run_variant` for each seed: ``task_fn(seed)`` gives the data subsample,
    ``config.replace(seed=seed)`` the data order / attack starts and the initialisation."""
    return [run_variant(model_fn(), task_fn(s), config.replace(seed=int(s)), **kwargs) for s in seeds]


def ae_specialization_matrix(result, x_probe, labels_probe, eps: float, attack_steps: int = 10,
                             seed: int = 0) -> np.ndarray:
    """Kernel specialization matrix M_ks of the final network's AE-NTK under clean labels
    ("Rethinking" Fig. 8): the per-logit empirical NTK (:class:`ntknb.ntk_dynamics.KernelTracker`)
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
    :class:`ntknb.ntk_dynamics.KernelTrajectory` at each epoch both tracked ("Rethinking"
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


def search_run(setting: dict, dataset=None, progress: bool = False) -> dict:
    """Train one setting of the catastrophic-overfitting search and record its curves.

    ``setting`` holds :data:`SEARCH_SETTINGS` plus ``hidden`` (CNN) or ``stage_sizes``
    (ResNet); the run is :func:`run_variant` of that model on ``data.make_task(dataset,
    n_train, n_test, seed)`` with ``TrainConfig(mode, epochs, ...)``, no augmentation,
    PGD-AT step ``2.5 eps / attack_steps``, FGSM step ``eps`` from ``x``.

    Args:
      setting: the settings (checked before any work).
      dataset: an already loaded :class:`ntknb.data.Dataset` (default: load ``setting["dataset"]``).

    Returns:
      the setting plus the per-epoch curves ``robust_acc`` (T,), ``clean_acc`` (T,) and
      ``fgsm_train_acc`` (T+1,), rounded to 4 decimals (a JSON-ready record).
    """
    from ntknb import data, models

    s = check_search_setting(setting)
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
    return {**s, **{k: [round(float(v), 4) for v in c] for k, c in zip(SEARCH_CURVES, curves)}}


def load_search_records(path) -> list:
    """The records of a search file (JSON lines, one :func:`search_run` record each)."""
    import json

    with open(path) as fh:
        return [json.loads(line) for line in fh if line.strip()]


def append_search_records(path, records: Sequence[dict]) -> None:
    """Append ``records`` to the JSON-lines file ``path`` atomically (the old file is replaced
    only once the new one is complete)."""
    import json
    import os
    import tempfile

    for rec in records:
        check_search_setting(rec)
    path = os.fspath(path)
    old = open(path).read() if os.path.exists(path) else ""
    if old and not old.endswith("\n"):
        old += "\n"
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), prefix=".search.", suffix=".part")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(old + "".join(json.dumps(rec) + "\n" for rec in records))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def search_table(records: Sequence[dict], fraction: float = 0.3, min_peak: float = 0.2,
                 stuck_below: float = 0.15) -> list:
    """One summary row per recorded run of :func:`search_run`.

    Row: ``[setting, mode, seed, epochs, peak robust, final robust, final clean, final FGSM
    train acc., outcome]``; the outcome is "stuck at chance" if the final clean accuracy is at
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
                     float(clean[-1]), float(fgsm_train[-1]), outcome])
    return rows


def search_summary(records: Sequence[dict], rows: Sequence[list], min_seeds: int = 3) -> dict:
    """What a recorded search shows, from its records and their :func:`search_table` rows.

    Returns a dict with ``common`` (the settings shared by every record, e.g. ``n_test``),
    ``n_runs``, ``n_fgsm`` (FGSM-AT runs), ``n_collapsed`` / ``n_transient`` (FGSM-AT runs
    that collapsed / of those, recovered by the last epoch), ``n_stuck`` (runs stuck at
    chance) and ``reliable``: the FGSM-AT settings run with at least ``min_seeds`` seeds that
    collapsed in every one of them.
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
    return dict(common=common, n_runs=len(rows), n_fgsm=len(fgsm), n_collapsed=len(collapsed),
                n_transient=sum("recovered" in r[-1] for r in collapsed),
                n_stuck=sum(r[-1] == "stuck at chance" for r in rows),
                reliable=[k for k, v in by_setting.items() if len(v) >= min_seeds and all(v)])
