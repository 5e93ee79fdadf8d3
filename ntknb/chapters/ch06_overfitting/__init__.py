"""Chapter 06: catastrophic overfitting in single-step adversarial training, seen through the kernel.

``li2023rethinking`` Sec. 6 (Figs. 8-10): a network trained with FGSM-AT
(``goodfellow2015explaining``) can suddenly lose its robustness to multi-step attacks while its
accuracy on its own FGSM training examples stays high ("catastrophic overfitting",
``wong2020fast``, ``andriushchenko2020understanding``). The paper attributes it to *isotropic
shortcut features* in the one-step adversarial examples, plants such a shortcut on purpose with
batch-shared augmentation (``augment="crop_shared"`` of :class:`ntknb.training.TrainConfig`) and
removes it by adding *anisotropic noise to every sample* before the FGSM step (this package's
:class:`NoiseFGSM` adversary, :func:`anisotropic_noise` / :func:`noise_initialized_fgsm`).

This package is the chapter's code; the notebook ``notebooks/06_catastrophic_overfitting.py``
only calls it. It re-exports exactly the names the notebook calls (:data:`__all__`); the rest is in its
submodules, by concern (imports go down this list, never up):

* :mod:`~ntknb.chapters.ch06_overfitting.variants` — :func:`anisotropic_noise`,
  :func:`noise_initialized_fgsm`, :class:`NoiseFGSM` (the noise initialisation and its adversary);
  :class:`AttackAccuracyMonitor` (a :func:`ntknb.training.fit` callback measuring the accuracy on FGSM
  examples of a fixed training subset after every epoch); :func:`detect_collapse` (the collapse
  criterion); :func:`run_variant` / :func:`run_seeds` (training runs, via
  :func:`ntknb.ntk_dynamics.train_and_track` or :func:`ntknb.training.train_model`);
  :func:`ae_specialization_matrix`, :func:`distance_to_reference` (kernel comparisons built on
  :mod:`ntknb.ntk_dynamics` and :mod:`ntknb.metrics`);
* :mod:`~ntknb.chapters.ch06_overfitting.search` — :func:`search_run`, :func:`search_table`,
  :func:`search_summary`: the recorded search for a setting that collapses (``scripts/co_search.py``
  runs it; the chapter tabulates it); :func:`gpu_streams`, :func:`gpu_rows`, :func:`gpu_summary`,
  :func:`gpu_text`, :func:`plot_gpu_curves`: the recorded CIFAR-10 GPU runs (the records themselves
  are read by :mod:`ntknb.records`);
* :mod:`~ntknb.chapters.ch06_overfitting.runs` — :class:`Params` (the chapter's parameter schema: the
  rules for the notebook's ``parameters`` cell, checked by ``ntknb run`` before anything runs);
  :func:`variant_config`, :func:`prepare_data`, :func:`run_all` (the chapter's runs);
  :func:`evaluate_run` / :func:`evaluate_all` (the standard evaluation and gradient-masking checks of
  every single-step network); :func:`ks_over_seeds` (the Fig. 8 KS on every seed); the tables and
  summaries the page glues (``*_rows``, ``*_summary``: descriptions, no verdicts);
* :mod:`~ntknb.chapters.ch06_overfitting.verdicts` — :func:`judge_runs` (every single-step run judged by
  the strong end-state rule, :class:`ntknb.collapse.CollapseRule`, registered in
  ``notebooks/data/06_co_protocol.yaml``); :func:`claims` (the chapter's claims, the only place that
  judges; thresholds and guards above :data:`CLAIM_THRESHOLDS`);
* :mod:`~ntknb.chapters.ch06_overfitting.ladder` — the pre-registered collapse ladder (the notebook
  imports it as a submodule).
"""

from __future__ import annotations

from ntknb.chapters.ch06_overfitting.search import (GPU_COLUMNS, SEARCH_COLUMNS, gpu_rows, gpu_streams,
                                                    gpu_summary, gpu_text, plot_gpu_curves, search_cells,
                                                    search_common_text, search_summary, search_summary_text,
                                                    search_table)
from ntknb.chapters.ch06_overfitting.runs import (COLLAPSE_COLUMNS, KERNEL_VARIANTS, LABEL, Params, collapse_rows,
                                                  evaluate_all, evaluation_columns, evaluation_rows,
                                                  evaluation_summary, fgsm_summary, fix_summary, ks_over_seeds,
                                                  ks_strengths, make_model, plot_all_variants,
                                                  plot_distances_to_fgsm, plot_fgsm_runs, plot_shared_augmentation,
                                                  prepare_data, run_all, setting_text, specialization_matrices,
                                                  variant_stats)
from ntknb.chapters.ch06_overfitting.verdicts import (STRONG_COLUMNS, check_text, claims, difference_rows,
                                                      judge_runs, strong_rows, strong_summary)

#: Exactly the names ``notebooks/06_catastrophic_overfitting.py`` calls as ``ch.NAME``.
__all__ = [
    # the page's runs (runs)
    "Params", "LABEL", "setting_text", "make_model", "prepare_data", "run_all", "evaluate_all",
    "evaluation_columns", "evaluation_rows", "evaluation_summary", "COLLAPSE_COLUMNS", "collapse_rows",
    "fgsm_summary", "plot_fgsm_runs", "KERNEL_VARIANTS", "specialization_matrices", "ks_strengths",
    "ks_over_seeds", "plot_distances_to_fgsm", "plot_shared_augmentation", "plot_all_variants", "variant_stats",
    "fix_summary",
    # the claims (verdicts)
    "judge_runs", "STRONG_COLUMNS", "strong_rows", "strong_summary", "difference_rows", "claims", "check_text",
    # the recorded search and GPU runs (search)
    "search_table", "search_cells", "search_summary", "SEARCH_COLUMNS", "search_common_text",
    "search_summary_text", "GPU_COLUMNS", "gpu_streams", "gpu_rows", "gpu_summary", "gpu_text",
    "plot_gpu_curves",
]
