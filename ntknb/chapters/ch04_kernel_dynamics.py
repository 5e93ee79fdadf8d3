"""Chapter 04: empirical NTK dynamics under standard and adversarial training.

The chapter trains a small CNN with standard training and PGD-AT (``madry2018towards``; FGSM-AT
``goodfellow2015explaining`` and TRADES ``zhang2019theoretically`` on request) over several seeds,
tracks its empirical NTK on a fixed probe set (:mod:`ntknb.ntk_dynamics`) and measures, as
:class:`ntknb.claims.Claim` records with intervals over the seeds, the kernel growth, concentration,
rotation and laziness of ``tsilivis2022ntk`` Sec. 5, the KD / KER phases and the cheaper adversarial
training of ``li2023rethinking`` Secs. 3 and 5, and the central experiment of ``loo2022evolution``:
clean training of the (centred) linearised network on the frozen kernel of a standard and of an
adversarially trained network.

This module is the chapter's code; ``notebooks/04_at_kernel_dynamics.py`` only calls it:
:class:`Params` (the parameter schema), the runs (:func:`load_data`, :func:`run_seed`,
:func:`run_seeds`), the per-seed measurements (:func:`seed_measurements`), the claims
(:func:`claims`), tables and figures, and the records the page shows: the PGD-AT settings runs
(:func:`settings_rows`), the recorded CIFAR-10 GPU runs (:func:`gpu_pgd_records`, :func:`gpu_rows`) and the
chapter at seeds never used before (:data:`SEED_CHECK_FILE`, :func:`load_seed_checks`).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Optional

import ntknb  # noqa: F401  (compat shim before neural_tangents)

import jax
import numpy as np

from ntknb import metrics, paths, training
from ntknb import ntk_dynamics as nd
from ntknb import claims as claims_mod
from ntknb import schema
from ntknb.claims import SEED_CHECK_SUFFIX
from ntknb.validation import SEED_LIMIT

__all__ = ["Params", "LABEL", "base_config", "load_data", "make_model", "SeedRun", "run_seed", "run_seeds",
           "seed_measurements", "measurement_table", "accuracy_rows", "claims", "CLAIM_THRESHOLDS",
           "masking_report", "TK_LOGIT_TOP_P", "TK_LOGIT_SIZE", "gpu_pgd_records", "gpu_learned", "gpu_rows",
           "gpu_summary", "SEED_CHECK_FILE", "load_seed_checks"]

MODES = ["standard", "fgsm", "pgd", "trades"]
#: The training modes, as the page names them.
LABEL = {"standard": "standard", "fgsm": "FGSM-AT", "pgd": "PGD-AT", "trades": "TRADES"}
#: tsilivis2022ntk Fig. 6b: concentration on the top 20 eigenvalues of the kernel of a batch of 256 images
#: x 10 logits (a 2560 x 2560 per-logit kernel); the chapter keeps the same fraction of the spectrum.
TK_LOGIT_TOP_P, TK_LOGIT_SIZE = 20, 2560
#: The probe set of replica ``seed`` is drawn with seed ``seed + PROBE_SEED_OFFSET`` (:func:`load_data`).
PROBE_SEED_OFFSET = 10**6


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
    lazy_threshold: float = schema.param(schema.Float(min=0.0, max=1.0, min_inclusive=False))
    cheap_at_clean_epochs: list = schema.param(schema.List(schema.Int(min=1, max=schema.Ref("epochs", -1)),
                                                           min_length=1))
    loo_epochs: int = schema.param(schema.Int(min=1, max=schema.MAX_EPOCHS))
    loo_learning_rate: float = schema.param(schema.Float(min=0.0, min_inclusive=False))

    def derived_seeds(self) -> dict:
        return {"the probe sets' seeds (seed + n_seeds - 1 + 10**6)": self.seed + self.n_seeds - 1 + PROBE_SEED_OFFSET}

    def check(self) -> None:
        from ntknb import data

        data.check_task_sizes(self.dataset, train=[("n_train", self.n_train)], test=[("n_test", self.n_test)])
        if "standard" not in self.modes or "pgd" not in self.modes:
            raise ValueError(f"parameter 'modes' must contain 'standard' and 'pgd', got {self.modes!r}")
        if not self.lr_decay_epochs:
            raise ValueError("parameter 'lr_decay_epochs' must hold at least one epoch (the phases are measured "
                             "before and after the first decay), got []")

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
        """The first learning-rate decay: the end of the first phase."""
        return self.lr_decay_epochs[0]

    @property
    def logit_top_p(self) -> int:
        """The cutoff of the per-logit concentration: T&K's top 20 of 2560, scaled to this probe's
        ``10 * probe_per_class * 10`` eigenvalues (at least 1)."""
        return max(1, int(round(TK_LOGIT_TOP_P * 10 * self.probe_per_class * 10 / TK_LOGIT_SIZE)))


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
    """One replica's data: its subsample of the dataset and its probe set."""

    task: object  #: :class:`ntknb.data.Task`
    x_probe: np.ndarray
    labels_probe: np.ndarray


def load_data(p: Params, seed: int, dataset=None) -> ChapterData:
    """The subsample and probe set of replica ``seed``; the probe is held-out images drawn with
    ``seed + PROBE_SEED_OFFSET`` (``10**6``) from the whole test split (it may overlap the test
    subsample: it measures the kernel, not accuracy). ``dataset``: an already loaded :class:`ntknb.data.Dataset`."""
    from ntknb import data

    ds = dataset if dataset is not None else data.load_dataset(p.dataset)
    task = data.make_task(ds, n_train=p.n_train, n_test=p.n_test, seed=seed)
    idx = nd.balanced_probe(ds.labels_test, p.probe_per_class, num_classes=ds.n_classes, seed=seed + PROBE_SEED_OFFSET)
    return ChapterData(task, ds.x_test[idx], ds.labels_test[idx].astype(np.int64))


def make_model(p: Params):
    """The 7-layer CNN of the chapter (10 classes)."""
    from ntknb import models

    return models.CNN(num_classes=10, width=p.width, hidden=p.hidden)


#: The models each replica evaluates, in table order: key -> page label.
MODELS = {"standard": "standard", "pgd": "PGD-AT", "cheap": "clean k, then PGD-AT",
          "loo_clean_on_std": "linearised at standard, clean training",
          "loo_clean_on_adv": "linearised at PGD-AT, clean training",
          "loo_at_on_std": "linearised at standard, PGD-AT"}


@dataclasses.dataclass
class SeedRun:
    """Everything one replica measured.

    Attributes:
      seed: the replica's seed.
      runs: ``{mode: (TrainResult, KernelTrajectory)}`` (C-NTK tracked every epoch).
      cheap: ``{k: (TrainResult, KernelTrajectory)}`` of "clean for k epochs, then PGD-AT" (final kernel).
      loo: ``{"clean_on_std" | "clean_on_adv" | "at_on_std": TrainResult}``: the centred linearised
        network at the final weights of standard training / PGD-AT, trained cleanly or with PGD-AT.
      robust: ``{model key of MODELS (cheap: "cheap{k}"): RobustReport}`` on the replica's test points.
      masking: the :class:`ntknb.masking.MaskingReport` of the PGD-AT network (first replica only) or None.
    """

    seed: int
    runs: dict
    cheap: dict
    loo: dict
    robust: dict
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
def _linearized_predict(apply_fn):
    """``predict((params, params0, state0), x)`` of the centred linearisation of ``apply_fn`` at ``params0``
    (:func:`ntknb.training.linearized_apply_fn`), the expansion point a dynamic argument: one compilation
    for every linearised model."""
    def predict(ps, x):
        params, params0, state0 = ps
        return training.linearized_apply_fn(apply_fn, params0, state0, centered=True)(params, state0, x, False)[0]

    return predict


def _evaluate(p: Params, res, task, seed: int, base=None):
    """The standard evaluation of the network ``res`` (a :class:`ntknb.training.TrainResult`), or, with
    ``base`` (the run it was linearised at), of the centred linearised model ``res``."""
    from ntknb import evaluation

    if base is None:
        predict, ps = _network_predict(res.apply_fn), (res.params, res.state)
    else:
        predict, ps = _linearized_predict(base.apply_fn), (res.params, base.params, base.state)
    return evaluation.robust_evaluation(predict, task.x_test, task.labels_test, p.eps, seed=seed,
                                        n_iter=p.eval_iter, batch_size=p.n_test, params=ps)


def run_seed(p: Params, model, seed: int, dataset=None, masking: bool = False) -> SeedRun:
    """One replica (seed ``seed``): every mode with the C-NTK tracked each epoch, the cheap schedules,
    Loo et al.'s linearised runs, and the standard evaluation (:func:`ntknb.evaluation.robust_evaluation`,
    APGD-CE / APGD-DLR / PGD, ``eval_iter`` iterations) of every model on the replica's ``n_test`` points;
    ``masking=True`` adds the gradient-masking checks of the PGD-AT network. The per-epoch accuracies
    (``TrainResult.history``) are a monitor on the first ``n_monitor`` test points under PGD-``eval_attack_steps``."""
    d = load_data(p, seed, dataset)
    t = d.task
    x_mon, y_mon = t.x_test[:p.n_monitor], t.labels_test[:p.n_monitor]

    def track(cfg, epochs=None, name=""):
        res, traj, _ = nd.train_and_track(model, t.x_train, t.labels_train, x_mon, y_mon, cfg, d.x_probe,
                                          d.labels_probe, track_adv=False, track_epochs=epochs, top_p=p.top_p,
                                          init_seed=seed, progress=False, description=name,
                                          logit_top_p=p.logit_top_p)
        return res, traj

    runs = {m: track(base_config(p, m, seed), name=m) for m in p.modes}
    cheap = {k: track(base_config(p, "clean_then_pgd", seed).replace(clean_epochs=k), [p.epochs], f"clean {k}")
             for k in p.cheap_at_clean_epochs}
    loo, loo_base = {}, {}
    for name, (start, mode) in {"clean_on_std": ("standard", "standard"), "clean_on_adv": ("pgd", "standard"),
                                "at_on_std": ("standard", "pgd")}.items():
        r = loo_base[name] = runs[start][0]
        loo[name] = nd.train_linearized(r.apply_fn, r.params, r.state, t.x_train, t.labels_train, x_mon, y_mon,
                                        loo_config(p, mode, seed), progress=False, centered=True)
    robust = {"standard": _evaluate(p, runs["standard"][0], t, seed), "pgd": _evaluate(p, runs["pgd"][0], t, seed)}
    robust.update({f"cheap{k}": _evaluate(p, r, t, seed) for k, (r, _) in cheap.items()})
    robust.update({f"loo_{k}": _evaluate(p, r, t, seed, base=loo_base[k]) for k, r in loo.items()})
    rep = masking_report(p, runs["pgd"][0], t, seed) if masking else None
    return SeedRun(seed, runs, cheap, loo, robust, rep)


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
    gradient-masking checks on the first replica)."""
    from ntknb import data

    ds = data.load_dataset(p.dataset)
    return [run_seed(p, model, s, ds, masking=(i == 0)) for i, s in enumerate(p.seeds)]


SETTINGS_FILE = "04_pgd_at_settings.jsonl"
SETTINGS_COLUMNS = ["run", "setting", "PGD-AT clean acc.", "PGD-AT robust acc.", "note"]


def settings_rows(path=None) -> list:
    """The recorded PGD-AT settings runs of this chapter (``notebooks/data/04_pgd_at_settings.jsonl``: one JSON
    record per run with its setting and measured PGD-AT accuracies), one row of :data:`SETTINGS_COLUMNS` each."""
    from ntknb import report

    path = path if path is not None else paths.DATA / SETTINGS_FILE
    rows = []
    for r in report.load_records(path):
        setting = ", ".join(f"{k} {v}" for k, v in r["setting"].items())
        rows.append([r["run"], setting, r["pgd_clean_acc"], r["pgd_robust_acc"], r["note"]])
    return rows


# ------------------------------------------------------------------------------ recorded GPU runs

#: The recorded CIFAR-10 GPU runs (``scripts/gpu_cifar_search``; records of
#: ``ch06_overfitting.search.search_run``), relative to ``notebooks/``.
GPU_SEARCH_FILE = "data/gpu/cifar10_search.jsonl"
#: The rule for "PGD-AT learned": final clean accuracy of the per-epoch monitor above twice chance (10 classes).
GPU_LEARNED_CLEAN = 0.2
GPU_COLUMNS = ["device", "seed", "setting", "final clean acc. (monitor)", "final PGD-10 acc. (monitor)",
               "robust acc., standard evaluation", "learned"]


def gpu_pgd_records(path=None) -> list:
    """The PGD-AT records (``mode == "pgd"``) of the recorded GPU search file (default
    :data:`GPU_SEARCH_FILE`); ``[]`` when the file does not exist (no run recorded yet)."""
    from ntknb import report

    path = path if path is not None else paths.NOTEBOOKS / GPU_SEARCH_FILE
    return [r for r in report.load_records(path, missing_ok=True) if r.get("mode") == "pgd"]


def gpu_learned(record: dict) -> bool:
    """Whether PGD-AT learned in ``record``: final monitor clean accuracy > :data:`GPU_LEARNED_CLEAN`."""
    return bool(record["clean_acc"][-1] > GPU_LEARNED_CLEAN)


def _gpu_setting(r: dict) -> str:
    net = (f"ResNet({','.join(map(str, r['stage_sizes']))}) w{r['width']}" if r.get("model") == "resnet"
           else f"{r.get('model', 'CNN')} w{r['width']}")
    return (f"{r['dataset']}, {net}, {r['n_train']} images, {r['epochs']} epochs, lr {r['learning_rate']:g}, "
            f"PGD-{r['attack_steps']} AT at eps {r['eps'] * 255:.3g}/255, clean warm start {r['clean_epochs']}")


def gpu_rows(records: list) -> list:
    """One row of :data:`GPU_COLUMNS` per recorded GPU PGD-AT run (NaN: not measured)."""
    return [[r.get("device", "?"), r["seed"], _gpu_setting(r), r["clean_acc"][-1], r["robust_acc"][-1],
             r.get("suite_robust_acc", float("nan")), "yes" if gpu_learned(r) else "no"] for r in records]


def gpu_summary(records: list) -> dict:
    """Numbers of the GPU section: runs (``gpu_pgd_n``), runs that learned (``gpu_pgd_learned``), the means of
    the final monitor clean accuracy and of the standard-evaluation robust accuracy (``gpu_pgd_clean``,
    ``gpu_pgd_robust``; NaN without runs) and the devices (``gpu_devices``)."""
    clean = [r["clean_acc"][-1] for r in records]
    rob = [r["suite_robust_acc"] for r in records if "suite_robust_acc" in r]
    return {"gpu_pgd_n": len(records), "gpu_pgd_learned": sum(gpu_learned(r) for r in records),
            "gpu_pgd_clean": float(np.mean(clean)) if clean else float("nan"),
            "gpu_pgd_robust": float(np.mean(rob)) if rob else float("nan"),
            "gpu_devices": ", ".join(sorted({r.get("device", "?") for r in records})) or "none"}


# ------------------------------------------------------------------------------ never-used seeds

#: The chapter at base seeds never used before (one record a run: :func:`ntknb.claims.seed_check_record`,
#: compared by :func:`ntknb.claims.seed_check_summary`).
SEED_CHECK_FILE = "data/04_at_kernel_dynamics" + SEED_CHECK_SUFFIX


def load_seed_checks(path=None) -> list:
    """The records of :data:`SEED_CHECK_FILE` (``[]`` when there is none)."""
    return claims_mod.load_seed_checks(path if path is not None else paths.NOTEBOOKS / SEED_CHECK_FILE)


# ------------------------------------------------------------------------------ measurements


def lazy_epoch(traj, threshold: float, epochs: int) -> float:
    """The first epoch after which the consecutive C-NTK distance stays below ``threshold`` until the end
    of training (:meth:`ntknb.ntk_dynamics.KernelTrajectory.lazy_epoch`); a kernel still moving at the end
    counts as lazy at ``epochs`` (censored: the latest value the run can show)."""
    e = traj.lazy_epoch(threshold)
    return float(epochs) if np.isnan(e) else float(e)


def seed_measurements(p: Params, sr: SeedRun) -> dict:
    """The per-replica quantities the claims and tables use (floats)."""
    ts, ta = sr.runs["standard"][1], sr.runs["pgd"][1]
    d = p.decay_epoch
    k_at = ta.final["clean"]
    out = dict(
        frob_init=ts.metrics["clean.frob"][0], frob_std=ts.metrics["clean.frob"][-1],
        frob_adv=ta.metrics["clean.frob"][-1],
        conc_init=ts.metrics["clean.top_conc_logit"][0], conc_std=ts.metrics["clean.top_conc_logit"][-1],
        conc_adv=ta.metrics["clean.top_conc_logit"][-1],
        move_std=metrics.kernel_distance(ts.kernel(0), ts.final["clean"]),
        move_adv=metrics.kernel_distance(ta.kernel(0), k_at),
        lazy_std=lazy_epoch(ts, p.lazy_threshold, p.epochs), lazy_adv=lazy_epoch(ta, p.lazy_threshold, p.epochs),
        ker_std=ts.metrics["clean.ker"][d], ker_adv=ta.metrics["clean.ker"][d],
        ker_std_final=ts.metrics["clean.ker"][-1], ker_adv_final=ta.metrics["clean.ker"][-1],
        kd_std_to_at=metrics.kernel_distance(ts.final["clean"], k_at),
    )
    out["frob_ratio"] = out["frob_std"] / out["frob_adv"]
    for tag, tr in (("std", ts), ("adv", ta)):
        kd = tr.consecutive_distances("clean")  # kd[t-1] = d(K_{t-1}, K_t)
        out[f"kd_pre_{tag}"] = float(np.mean(kd[1:d]))  # epochs 2 .. d: after the first epoch, before the decay
        out[f"kd_post_{tag}"] = float(kd[d])  # the epoch right after the decay
        out[f"kd_last_{tag}"] = float(kd[-1])
    for k, (_, traj) in sr.cheap.items():
        out[f"kd_cheap{k}_to_at"] = metrics.kernel_distance(traj.final["clean"], k_at)
    for key, rep in sr.robust.items():
        out[f"rob_{key}"] = rep.robust_accuracy
        out[f"clean_{key}"] = rep.clean_accuracy
    return out


def measurements(p: Params, seed_runs: list) -> dict:
    """``{name: (n_seeds,) array}`` of :func:`seed_measurements` over the replicas."""
    per = [seed_measurements(p, sr) for sr in seed_runs]
    return {k: np.array([m[k] for m in per], dtype=float) for k in per[0]}


def interval(values):
    """Mean and t interval over the replicas (:func:`ntknb.stats.mean_interval`)."""
    from ntknb import stats

    return stats.mean_interval(np.asarray(values, float))


def _fmt_iv(values, fmt: str = ".3f") -> str:
    iv = interval(values)
    return f"{iv.estimate:{fmt}} [{iv.low:{fmt}}, {iv.high:{fmt}}]"


ACCURACY_COLUMNS = ["model", "clean acc. (mean [95% CI])", "robust acc., APGD-CE/DLR + PGD (mean [95% CI])"]


def accuracy_rows(p: Params, m: dict) -> list:
    """One row of :data:`ACCURACY_COLUMNS` per evaluated model (means and t intervals over the replicas)."""
    keys = ["standard", "pgd"] + [f"cheap{k}" for k in p.cheap_at_clean_epochs] + [
        "loo_clean_on_std", "loo_clean_on_adv", "loo_at_on_std"]
    label = dict(MODELS, **{f"cheap{k}": f"clean {k} epochs, then PGD-AT" for k in p.cheap_at_clean_epochs})
    return [[label[k], _fmt_iv(m[f"clean_{k}"]), _fmt_iv(m[f"rob_{k}"])] for k in keys]


MEASUREMENT_COLUMNS = ["quantity", "standard", "PGD-AT"]


def measurement_table(p: Params, m: dict) -> list:
    """The kernel quantities of standard training and PGD-AT side by side (mean [95% CI] over replicas)."""
    d = p.decay_epoch
    return [
        ["Frobenius norm of the final traced C-NTK", _fmt_iv(m["frob_std"], ".4g"), _fmt_iv(m["frob_adv"], ".4g")],
        [f"top-{p.logit_top_p} concentration of the final per-logit kernel", _fmt_iv(m["conc_std"], ".4f"),
         _fmt_iv(m["conc_adv"], ".4f")],
        ["distance moved, d(Θ_0, Θ_final)", _fmt_iv(m["move_std"]), _fmt_iv(m["move_adv"])],
        [f"mean consecutive KD, epochs 2-{d} (before the decay)", _fmt_iv(m["kd_pre_std"]), _fmt_iv(m["kd_pre_adv"])],
        [f"consecutive KD in epoch {d + 1} (right after the decay)", _fmt_iv(m["kd_post_std"]),
         _fmt_iv(m["kd_post_adv"])],
        [f"consecutive KD in the last epoch ({p.epochs})", _fmt_iv(m["kd_last_std"]), _fmt_iv(m["kd_last_adv"])],
        [f"lazy epoch (KD < {p.lazy_threshold:g} to the end; {p.epochs} = never)", _fmt_iv(m["lazy_std"], ".2f"),
         _fmt_iv(m["lazy_adv"], ".2f")],
        [f"KER at the decay (epoch {d})", _fmt_iv(m["ker_std"], ".2f"), _fmt_iv(m["ker_adv"], ".2f")],
        [f"KER at the end (epoch {p.epochs})", _fmt_iv(m["ker_std_final"], ".2f"), _fmt_iv(m["ker_adv_final"], ".2f")],
    ]


# ---------------------------------------------------------------------------------- claims
#
# Thresholds, fixed before measuring (from the papers' words; "orders of magnitude" is a ratio >= 10):
#
# * ``ch04.kernel_growth`` — tsilivis2022ntk Sec. 5, Fig. 6a: under standard training the kernel "grows to
#   have a norm orders of magnitude larger than during adversarial training": final Frobenius-norm ratio
#   standard / PGD-AT > 10.
# * ``ch04.top_concentration`` — Sec. 5, Fig. 6b: the concentration on the top-20 space (of a 256-image x
#   10-logit kernel) is "significantly larger than during standard training": PGD-AT - standard > 0 on the
#   per-logit kernel (probe x classes), cutoff scaled to the spectrum size (:attr:`Params.logit_top_p`).
#   Saturation guard: when every replica's values are above 1 - SATURATION_GAP the difference cannot
#   show, and the interval is left unbounded (inconclusive).
# * ``ch04.rotation_distance`` — Sec. 5, Fig. 3: "the kernel moves a greater distance than when performing
#   standard training": d(Θ_0, Θ_final) PGD-AT - standard > 0.
# * ``ch04.lazy_earlier`` — Sec. 5: the kernel "becomes lazy much earlier": lazy epoch standard - PGD-AT > 0
#   (lazy: consecutive KD below ``lazy_threshold`` to the end of training).
# * ``ch04.decay_second_phase`` — li2023rethinking Sec. 3, Fig. 1a: after the learning-rate decay "the
#   kernel sharply changes": PGD-AT's KD in the epoch after the decay minus its mean KD before it > 0.
# * ``ch04.ker_robust_higher`` — loo2022evolution, as li2023rethinking Sec. 3 reads it: before the decay
#   "the robust model's kernel has higher KER": KER at the decay, PGD-AT - standard > 0.
# * ``ch04.pgd_at_more_robust`` — madry2018towards: PGD-AT is more robust than standard training under
#   the standard evaluation: difference > 0.
# * ``ch04.cheap_at_keeps_robustness`` — li2023rethinking Sec. 5, Table 1: clean epochs first "can reduce
#   the training cost significantly without sacrificing model performance" (Table 1: at most 3.3 points
#   of AutoAttack accuracy lost for the recommended switch epochs 90-140): robust accuracy of the first
#   cheap schedule minus full PGD-AT's > -0.05.
# * ``ch04.kd_tracks_robustness`` — li2023rethinking Sec. 5, Fig. 7: KD to the adversarially trained kernel
#   is "aligned with the model's ... robust accuracy": the (non-robust) standard kernel is farther from
#   the PGD-AT kernel than the cheap schedule's kernel: KD(standard, AT) - KD(cheap, AT) > 0.
# * ``ch04.loo_robust_kernel`` — loo2022evolution (abstract): the adversarially trained kernel "provides
#   adversarial robustness, even when non-robust training is performed on top of it": robust accuracy of
#   the clean-trained linearisation at PGD-AT minus that at standard training > 0.
#
# Intervals: t intervals over the replicas (n_seeds) of the per-replica values or differences (paired by seed).

#: The thresholds above: id -> (direction, threshold).
CLAIM_THRESHOLDS = {
    "ch04.kernel_growth": ("greater", 10.0),
    "ch04.top_concentration": ("greater", 0.0),
    "ch04.rotation_distance": ("greater", 0.0),
    "ch04.lazy_earlier": ("greater", 0.0),
    "ch04.decay_second_phase": ("greater", 0.0),
    "ch04.ker_robust_higher": ("greater", 0.0),
    "ch04.pgd_at_more_robust": ("greater", 0.0),
    "ch04.cheap_at_keeps_robustness": ("greater", -0.05),
    "ch04.kd_tracks_robustness": ("greater", 0.0),
    "ch04.loo_robust_kernel": ("greater", 0.0),
}
#: Saturation guard of ``ch04.top_concentration``: values within this of 1 cannot show a difference.
SATURATION_GAP = 0.01


def concentration_saturated(m: dict) -> bool:
    """Whether every replica's final per-logit concentrations (both modes) lie above 1 - SATURATION_GAP."""
    return bool(np.all(np.r_[m["conc_std"], m["conc_adv"]] > 1 - SATURATION_GAP))


def claims(p: Params, m: dict) -> list:
    """The chapter's claims (:class:`ntknb.claims.Claim`; thresholds in the comment above
    :data:`CLAIM_THRESHOLDS`) from :func:`measurements` ``m``: t intervals over the replicas."""
    from ntknb.claims import Claim

    n = int(m["frob_std"].size)
    k = p.cheap_at_clean_epochs[0]
    scale = (f"{p.dataset}, {p.n_train} train, CNN width {p.width}, {p.epochs} epochs (decay after {p.decay_epoch}), "
             f"PGD-{p.attack_steps} AT after {p.pgd_warm_start} clean warm-start epoch(s), eps {p.eps:.4g}, "
             f"probe {10 * p.probe_per_class}")
    th = CLAIM_THRESHOLDS

    def make(cid, values, source, where, claim, paper, n_test=None, bounded=True):
        iv = interval(values)
        low, high = (iv.low, iv.high) if bounded else (None, None)
        return Claim(measured=iv.estimate, low=low, high=high, id=cid, source=source, where=where, claim=claim,
                     paper=paper, direction=th[cid][0], threshold=th[cid][1], n_seeds=n, n_test=n_test, scale=scale)

    eval_note = f"APGD-CE/APGD-DLR/PGD, {p.eval_iter} iterations, worst case per point"
    return [
        make("ch04.kernel_growth", m["frob_ratio"], "tsilivis2022ntk", "Sec. 5, Fig. 6a",
             "Standard training grows the kernel to a Frobenius norm at least 10 times that of adversarial training "
             "(final C-NTK norm ratio standard / PGD-AT > 10).", "orders of magnitude larger"),
        make("ch04.top_concentration", m["conc_adv"] - m["conc_std"], "tsilivis2022ntk", "Sec. 5, Fig. 6b",
             f"Adversarial training concentrates the per-logit kernel more on its top eigenspace (top "
             f"{p.logit_top_p} of {100 * p.probe_per_class}, T&K's 20 of 2560 scaled; PGD-AT - standard > 0; "
             f"unbounded when saturated above {1 - SATURATION_GAP:g}).",
             "significantly larger than during standard training", bounded=not concentration_saturated(m)),
        make("ch04.rotation_distance", m["move_adv"] - m["move_std"], "tsilivis2022ntk", "Sec. 5, Fig. 3",
             "The adversarial kernel moves further from its initialisation than the standard one "
             "(d(Θ_0, Θ_final), PGD-AT - standard > 0).", "moves a greater distance"),
        make("ch04.lazy_earlier", m["lazy_std"] - m["lazy_adv"], "tsilivis2022ntk", "Sec. 5",
             f"The adversarial kernel becomes lazy earlier (epoch after which the consecutive KD stays below "
             f"{p.lazy_threshold:g}; standard - PGD-AT > 0).", "becomes \"lazy\" much earlier"),
        make("ch04.decay_second_phase", m["kd_post_adv"] - m["kd_pre_adv"], "li2023rethinking", "Sec. 3, Fig. 1a",
             "After the learning-rate decay the PGD-AT kernel moves again (consecutive KD right after the decay "
             "minus its mean before > 0).", "after the decay the kernel sharply changes"),
        make("ch04.ker_robust_higher", m["ker_adv"] - m["ker_std"], "loo2022evolution",
             "as read in li2023rethinking Sec. 3",
             "Before the decay the robust model's kernel has the higher effective rank (KER at the decay, "
             "PGD-AT - standard > 0).", "the robust model's kernel has higher KER"),
        make("ch04.pgd_at_more_robust", m["rob_pgd"] - m["rob_standard"], "madry2018towards",
             "MNIST and CIFAR10 experiments",
             f"PGD adversarial training gives a more robust network than standard training ({eval_note}; "
             "PGD-AT - standard > 0).", "adversarially trained networks are robust", n_test=p.n_test),
        make("ch04.cheap_at_keeps_robustness", m[f"rob_cheap{k}"] - m["rob_pgd"], "li2023rethinking",
             "Sec. 5, Fig. 6, Table 1",
             f"Clean training for the first {k} of {p.epochs} epochs, then PGD-AT, loses less than 0.05 robust "
             f"accuracy against full PGD-AT ({eval_note}).",
             "reduce the training cost significantly without sacrificing model performance (Table 1: <= 3.3 points)",
             n_test=p.n_test),
        make("ch04.kd_tracks_robustness", m["kd_std_to_at"] - m[f"kd_cheap{k}_to_at"], "li2023rethinking",
             "Sec. 5, Fig. 7",
             f"The kernel of standard training is farther from the PGD-AT kernel than that of the cheap schedule "
             f"(k = {k}), which is the more robust (KD(standard, AT) - KD(cheap, AT) > 0).",
             "KD aligned with clean and robust accuracy"),
        make("ch04.loo_robust_kernel", m["rob_loo_clean_on_adv"] - m["rob_loo_clean_on_std"], "loo2022evolution",
             "abstract",
             f"Clean training of the centred linearised network on the frozen PGD-AT kernel gives a more robust "
             f"model than on the frozen standard kernel ({eval_note}; difference > 0).",
             "this new kernel provides adversarial robustness, even when non-robust training is performed on top",
             n_test=p.n_test),
    ]


def claim_verdicts(claims_: list) -> dict:
    """``{claim id: verdict}``."""
    return {c.id: c.verdict for c in claims_}


def concentration_note(p: Params, m: dict) -> str:
    """A sentence on the concentration measurement: saturated (the guard fired) or not."""
    lo = float(np.min(np.r_[m["conc_std"], m["conc_adv"], m["conc_init"]]))
    if concentration_saturated(m):
        return (f"All final concentrations exceed {1 - SATURATION_GAP:g} (smallest value {lo:.4f}): the measurement "
                "is saturated, so the concentration claim is left inconclusive by the guard fixed in advance.")
    return (f"The values are not saturated (smallest {lo:.4f}, guard at {1 - SATURATION_GAP:g}), so the difference "
            "is interpretable.")


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
    replica thin and their mean thick: clean (left) and robust (right)."""
    from ntknb import plotting

    fig, axes = plotting.new_figure(ncols=2, width=4.0, height=3.0)
    for m in p.modes:
        c = f"C{MODES.index(m)}"
        for col, ax in zip(("clean_acc", "robust_acc"), axes):
            ys = [sr.runs[m][0].column(col) for sr in seed_runs]
            ep = seed_runs[0].runs[m][0].column("epoch")
            for y in ys:
                ax.plot(ep, y, "-", lw=0.6, alpha=0.35, color=c)
            ax.plot(ep, np.mean(ys, 0), "o-", ms=3, color=c, label=LABEL[m])
    axes[0].set(title="clean accuracy (monitor)", xlabel="epoch")
    axes[1].set(title=f"PGD-{p.eval_attack_steps} accuracy (monitor)", xlabel="epoch")
    axes[0].legend(fontsize=7)
    return fig


def plot_growth_and_concentration(p: Params, seed_runs: list):
    """``tsilivis2022ntk`` Fig. 6: Frobenius norm of the traced C-NTK and top-``logit_top_p`` concentration of
    the per-logit kernel per epoch (replicas thin, mean thick)."""
    from ntknb import plotting

    fig, axes = plotting.new_figure(ncols=2, width=4.0, height=3.0)
    _mean_curves(axes[0], seed_runs, p, "clean.frob", "{}", logy=True)
    axes[0].set(title="Frobenius norm", ylabel=r"$\|\hat\Theta_t\|_F$")
    _mean_curves(axes[1], seed_runs, p, "clean.top_conc_logit", "{}")
    axes[1].set(title=f"per-logit kernel: top-{p.logit_top_p} concentration")
    axes[0].legend(fontsize=7)
    return fig


def plot_kd_ker_ks(p: Params, seed_runs: list):
    """"Rethinking" Sec. 3, Fig. 1: consecutive KD, KER and KS (clean labels) of the C-NTK per epoch."""
    from ntknb import plotting

    fig, axes = plotting.new_figure(ncols=3, width=3.3, height=2.8)
    _mean_curves(axes[0], seed_runs, p, None, "{}", logy=True, diff=True)
    axes[0].axhline(p.lazy_threshold, color="k", ls=":", lw=0.8)
    axes[0].set(title="KD(t-1, t)")
    _mean_curves(axes[1], seed_runs, p, "clean.ker", "{}")
    axes[1].set(title="KER")
    _mean_curves(axes[2], seed_runs, p, "clean.ks_cl", "{}")
    axes[2].set(title="KS (clean labels)")
    axes[0].legend(fontsize=7)
    return fig


def plot_loo(p: Params, m: dict):
    """Robust accuracy (standard evaluation) of the networks and the linearised models, per replica (dots)
    and mean (bars)."""
    from ntknb import plotting

    keys = ["standard", "pgd", "loo_clean_on_std", "loo_clean_on_adv", "loo_at_on_std"]
    labels = ["standard", "PGD-AT", "lin. at std,\nclean", "lin. at PGD-AT,\nclean", "lin. at std,\nPGD-AT"]
    fig, ax = plotting.new_figure(width=6.0, height=3.0)
    for i, k in enumerate(keys):
        v = m[f"rob_{k}"]
        ax.bar(i, v.mean(), color=f"C{i}", alpha=0.6)
        ax.plot(np.full(v.size, i), v, "k.", ms=4)
    ax.set_xticks(range(len(keys)))
    ax.set_xticklabels(labels, fontsize=7)
    ax.set(ylabel="robust accuracy", title=f"standard evaluation, eps = {p.eps:.3g}")
    return fig
