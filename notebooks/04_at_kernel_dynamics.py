# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Empirical NTK dynamics under standard and adversarial training
#
# Outside the lazy regime the tangent kernel of a network,
# $\Theta_t(x, x') = \nabla_\theta f_t(x)^\top \nabla_\theta f_t(x')$, moves during training
# (Eq. 11 of {cite}`tsilivis2022ntk`). This chapter trains a small convolutional network with
# standard training and with PGD adversarial training (PGD-AT {cite}`madry2018towards`; FGSM-AT
# {cite}`goodfellow2015explaining` and TRADES {cite}`zhang2019theoretically` are available through
# the `modes` parameter) over several seeds, and measures after every epoch the empirical NTK on a
# fixed class-balanced probe set of held-out images: the *traced* kernel
# $\hat\Theta = \frac1k\sum_i \Theta^{i,i}$ ($n\times n$) for distances, norms and effective rank,
# and the whole *per-logit* kernel ($nk \times nk$) for the spectrum concentration.
#
# We test the claims of three sources, each as a measured claim with a threshold fixed before
# measuring and an interval over the seeds:
#
# 1. **Tsilivis & Kempe, Sec. 5** {cite}`tsilivis2022ntk`: during adversarial training the kernel
#    moves further, grows much less (Frobenius norm, "orders of magnitude"), concentrates more on
#    its top eigenspace and becomes lazy earlier than during standard training (Figs. 3 and 6).
# 2. **"Rethinking", Secs. 3 and 5** {cite}`li2023rethinking`: a "kernel learning → lazy → kernel
#    learning" pattern of the kernel distance (KD) between consecutive epochs, the last phase
#    triggered by the learning-rate decay; the kernel effective rank (KER {cite}`roy2007effective`);
#    and cheaper adversarial training (clean epochs first), whose kernel distance to the
#    adversarially trained kernel follows its robustness (Figs. 1, 5-7, Table 1).
# 3. **Loo et al.** {cite}`loo2022evolution`: the kernel of an adversarially trained network
#    "provides adversarial robustness, even when non-robust training is performed on top of it";
#    adversarial training on a fixed kernel reached 76.1% robust accuracy at $\epsilon = 4/255$ on
#    CIFAR-10.
#
# **Scale.** The defaults fit the 8-minute budget of a 2-core CPU: {glue:text}`n_seeds` seeds, the
# {glue:text}`dataset_g` dataset ({glue:text}`n_train_g` training images, $\epsilon$ =
# {glue:text}`eps_g:.3g`), a 7-layer CNN of width {glue:text}`width_g`, {glue:text}`epochs_g`
# epochs of SGD with the learning rate decayed after epoch {glue:text}`decay_g`, PGD-AT with
# {glue:text}`attack_steps_g` steps after {glue:text}`warm_start_g` clean warm-start epoch(s), and
# a probe of {glue:text}`n_probe` images. CIFAR-10 is not run at the defaults; the recorded
# CIFAR-10 PGD-AT runs on a GPU are shown below, next to the CPU settings. The paper-sized preset
# (`04_at_kernel_dynamics.paper.yaml`) and the GPU preset (`04_at_kernel_dynamics.gpu.yaml`) run
# CIFAR-10 through this notebook. Every number below is measured at the scale of the run that
# produced this page; where an effect does not show at this scale, the text says so.
#
# **Learning objectives.** After this chapter you can
#
# 1. track the empirical NTK of a network along training and summarise its motion (kernel
#    distance, norm, effective rank, top-eigenspace concentration, polar trajectories);
# 2. compare standard and adversarial training through their kernels, with intervals over seeds;
# 3. test claims about "lazy" phases, cheaper adversarial training and adversarial training on a
#    frozen kernel, and say which of them the measurements at this scale support.
#
# **Run time.** At the defaults below this chapter ran in {glue:text}`runtime_s:.0f` s on a
# shared 2-core CPU (15-minute load average {glue:text}`load_avg_15:.1f` at its end), using
# {glue:text}`cpu_time_s:.0f` s of CPU time in the notebook's process ({doc}`../book/status`).

# %% tags=["parameters"]
seed = 0  # first seed; replica i uses seed + i (data subsample, probe, initialisation, data order, attacks)
n_seeds = 3  # independent replicas behind every claim
dataset = "mnist"  # "mnist" or "cifar10"
n_train = 1000  # training images per replica (class-balanced)
n_test = 100  # test points of the standard robustness evaluation, per replica
n_monitor = 50  # first test points of the per-epoch monitor (PGD-eval_attack_steps)
probe_per_class = 5  # probe images per class for the empirical NTK (n = 10 * this)
width = 8  # channels of the first conv block (second block: 2 * width)
hidden = 32  # units of the two hidden dense layers
epochs = 8  # training epochs
lr_decay_epochs = [6]  # epochs after which the learning rate is multiplied by lr_decay_factor
lr_decay_factor = 0.1  # step learning-rate decay
learning_rate = 0.05  # initial SGD learning rate
momentum = 0.9  # SGD momentum
weight_decay = 5e-4  # L2 weight decay
batch_size = 50  # mini-batch size
augment = "none"  # "none", "crop" or "crop_flip" (CIFAR-10 only)
eps_cifar = 4 / 255  # l-inf radius on CIFAR-10 (Loo et al.'s 4/255)
eps_mnist = 0.1  # l-inf radius on MNIST
attack_steps = 3  # PGD steps of PGD-AT (step 2.5 * eps / steps, random start)
pgd_warm_start = 1  # clean epochs before adversarial training (a warm start; 0: PGD-AT from the start)
eval_attack_steps = 3  # PGD steps of the per-epoch monitor
eval_iter = 20  # iterations of each attack of the standard evaluation (APGD-CE, APGD-DLR, PGD)
trades_beta = 6.0  # TRADES trade-off beta (if "trades" in modes)
modes = ["standard", "pgd"]  # training modes ("fgsm", "trades" optional)
top_p = 10  # top eigenspace of the traced kernel in the polar plots
lazy_threshold = 0.05  # the kernel is "lazy" once the consecutive KD stays below this
cheap_at_clean_epochs = [3]  # k of "clean for k epochs, then PGD-AT" (the first one enters the claims)
loo_epochs = 2  # epochs of training of the linearised models (Loo et al.)
loo_learning_rate = 0.01  # their constant learning rate

# %% tags=["hide-input"]
import os
import time

import jax

from ntknb import models, plotting
from ntknb.chapters import ch04_kernel_dynamics as ch
from ntknb.claims import SEED_CHECK_COLUMNS, glue_claims, glue_summary, seed_check_summary
from ntknb.report import glue, glue_md, glue_table

P = ch.Params.from_namespace(globals())  # checks every parameter (the rules: ch.Params)
plotting.use_book_style()
t_start, cpu_start = time.perf_counter(), time.process_time()

# %% tags=["hide-input"]
for name, value in dict(dataset_g=P.dataset, n_train_g=P.n_train, eps_g=P.eps, width_g=P.width,
                        epochs_g=P.epochs, decay_g=P.decay_epoch, attack_steps_g=P.attack_steps,
                        n_probe=10 * P.probe_per_class, logit_top_p_g=P.logit_top_p,
                        logit_size_g=100 * P.probe_per_class, lazy_threshold_g=P.lazy_threshold,
                        eval_iter_g=P.eval_iter, loo_epochs_g=P.loo_epochs, k_cheap=P.cheap_at_clean_epochs[0]).items():
    glue(name, value)
glue("n_seeds", P.n_seeds)
glue("n_test", P.n_test)
model = ch.make_model(P)
params0, _ = models.init_model(model, (28, 28, 1) if P.dataset == "mnist" else (32, 32, 3), seed=P.seed)
print(model, "parameters:", sum(p.size for p in jax.tree_util.tree_leaves(params0)))

# %% [markdown]
# ## Settings of PGD-AT at this scale
#
# From a random initialisation, PGD-AT at these sizes can stick at a constant prediction (the
# network predicts one class; all input gradients vanish). The runs that showed it are recorded in
# `notebooks/data/04_pgd_at_settings.jsonl` and listed below; they are why the adversarial runs
# start with {glue:text}`warm_start_g` clean epoch(s) (parameter `pgd_warm_start`). No setting was
# changed after this one.

# %% tags=["hide-input"]
glue("warm_start_g", P.pgd_warm_start)
glue_table("settings_table", ch.settings_rows(), ch.SETTINGS_COLUMNS, display=True);

# %% [markdown]
# ### CIFAR-10 on a GPU
#
# PGD-AT on CIFAR-10 does not fit this CPU budget. The recorded GPU runs
# (`notebooks/data/gpu/cifar10_search.jsonl`, written by `scripts/gpu_cifar_search`; per-epoch
# monitor: PGD-10 on 500 test points; final network: the standard evaluation) hold
# {glue:text}`gpu_pgd_n` PGD-AT run(s) on {glue:text}`gpu_devices`. A run counts as *learned* when
# its final clean accuracy exceeds {glue:text}`gpu_learned_clean` (twice chance), a rule fixed
# before reading the records: {glue:text}`gpu_pgd_learned` of {glue:text}`gpu_pgd_n` learned, with
# a mean final clean accuracy of {glue:text}`gpu_pgd_clean:.3f` and a mean standard-evaluation
# robust accuracy of {glue:text}`gpu_pgd_robust:.3f`. These runs use a ResNet, not this chapter's
# CNN, and track no kernel.

# %% tags=["hide-input"]
GPU = ch.gpu_pgd_records()
for name, value in ch.gpu_summary(GPU).items():
    glue(name, value)
glue("gpu_learned_clean", ch.GPU_LEARNED_CLEAN)
glue_table("gpu_table", ch.gpu_rows(GPU), ch.GPU_COLUMNS, display=True);

# %% [markdown]
# ## Training with kernel tracking, over seeds
#
# Each replica draws its own training subsample, test subsample, probe set and initialisation;
# within a replica every run starts from the same initialisation and sees the same data order.
# The kernels are computed at initialisation (epoch 0) and after each epoch, with
# neural-tangents' empirical NTK ({func}`ntknb.kernels.empirical_ntk`, all logit pairs). The
# accuracies in the table are the standard evaluation ({func}`ntknb.evaluation.robust_evaluation`:
# APGD-CE, APGD-DLR and PGD, {glue:text}`eval_iter_g` iterations each, worst case per point) on
# {glue:text}`n_test` test points per replica, as means with 95% t intervals over the
# {glue:text}`n_seeds` replicas; the curves are a cheaper per-epoch monitor (thin: replicas,
# thick: their mean).

# %% mystnb={"figure": {"caption": "Per-epoch monitor on the first test points: clean accuracy (left) and PGD accuracy (right; steps in the title) of standard training (blue) and PGD-AT (green). Thin lines: one replica each; thick lines with markers: mean over replicas."}} tags=["hide-input"]
SEEDS = ch.run_seeds(P, model)  # one SeedRun per replica
M = ch.measurements(P, SEEDS)  # {quantity: (n_seeds,) values}
glue_table("acc_table", ch.accuracy_rows(P, M), ch.ACCURACY_COLUMNS, display=True)
for key in ("standard", "pgd"):
    glue(f"rob_{key}", float(M[f"rob_{key}"].mean()))
    glue(f"clean_{key}", float(M[f"clean_{key}"].mean()))
fig = ch.plot_accuracies(P, SEEDS)

# %% [markdown]
# Standard training reaches a mean robust accuracy of {glue:text}`rob_standard:.3f` (clean
# {glue:text}`clean_standard:.3f`), PGD-AT {glue:text}`rob_pgd:.3f` (clean {glue:text}`clean_pgd:.3f`).
# Gradient-masking checks {cite}`carlini2019evaluating` of the first replica's PGD-AT network:

# %% tags=["hide-input"]
print(SEEDS[0].masking.text)
glue("masking_passed", bool(SEEDS[0].masking.passed));

# %% [markdown]
# ## Kernel rotation and polar trajectories (T&K Fig. 3)
#
# Left: kernel distance $d(\Theta_i, \Theta_j) = 1 - \mathrm{Tr}(\Theta_i\Theta_j^\top) /
# (\|\Theta_i\|_F\|\Theta_j\|_F)$ between the C-NTKs of every pair of epochs (first replica). Right:
# the trajectory in polar coordinates $r_t = \|\Theta_t - \Theta_0\|_F / \|\Theta_f - \Theta_0\|_F$,
# $\theta_t = \arccos(1 - d(\Theta_t, \Theta_0))$ (Eq. 12), for the whole kernel and for its
# restriction to the top-{glue:text}`top_p_g` eigenspace.

# %% mystnb={"figure": {"caption": "Kernel distance between the C-NTKs of every pair of tracked epochs (row and column: epoch, 0 = initialisation), first replica, standard training (left) and PGD-AT (right); one colour scale for both.", "name": "fig-ch04-kd-heatmaps"}} tags=["hide-input"]
glue("top_p_g", P.top_p)
trajs = {ch.LABEL[m]: SEEDS[0].runs[m][1] for m in ("standard", "pgd")}
fig = plotting.plot_distance_heatmaps({k: t.distance_matrix("clean") for k, t in trajs.items()},
                                      epochs=trajs["PGD-AT"].epochs)

# %% mystnb={"figure": {"caption": "The C-NTK's trajectory along training in the polar coordinates of Eq. (12), first replica: radius $r_t = \\|\\Theta_t - \\Theta_0\\|_F / \\|\\Theta_f - \\Theta_0\\|_F$, angle $\\theta_t = \\arccos(1 - d(\\Theta_t, \\Theta_0))$; the whole kernel (left) and its restriction to the top eigenspace (right; size in the title). One marker per tracked epoch, darker = earlier; blue: standard training, red: PGD-AT.", "name": "fig-ch04-polar"}} tags=["hide-input"]
fig = plotting.plot_polar_trajectories({
    "whole kernel": {k: t.polar("clean") for k, t in trajs.items()},
    f"top-{P.top_p} space": {k: t.polar("clean", top=True) for k, t in trajs.items()}})

# %% [markdown]
# ## Growth, concentration, laziness and effective rank (T&K Fig. 6; "Rethinking" Fig. 1)
#
# The norm is that of the traced kernel; the concentration
# $\sum_{i\le p}\lambda_i^2/\sum_i\lambda_i^2$ is taken on the whole per-logit kernel, with T&K's
# cutoff of 20 out of $256\times 10$ eigenvalues scaled to this probe: the top
# {glue:text}`logit_top_p_g` of {glue:text}`logit_size_g`. The table gives each quantity for both
# trainings (mean [95% t interval] over the replicas).

# %% mystnb={"figure": {"caption": "Per epoch, standard training (blue) and PGD-AT (green). Left: Frobenius norm of the traced C-NTK (logarithmic). Right: the share $\\sum_{i\\le p}\\lambda_i^2/\\sum_i\\lambda_i^2$ of the per-logit kernel's top $p$ eigenvalues ($p$ in the title). Thin lines: one replica each; thick lines with markers: mean over replicas; dashed vertical line: the learning-rate decay.", "name": "fig-ch04-growth"}} tags=["hide-input"]
fig = ch.plot_growth_and_concentration(P, SEEDS)

# %% tags=["hide-input"]
glue_table("kernel_table", ch.measurement_table(P, M), ch.MEASUREMENT_COLUMNS, display=True)
glue_md("conc_note", ch.concentration_note(P, M))
for key in ("frob_ratio", "kd_pre_std", "kd_pre_adv", "kd_post_adv", "kd_last_std", "kd_last_adv",
            "lazy_std", "lazy_adv", "move_std", "move_adv"):
    glue(key, float(M[key].mean()))

# %% [markdown]
# {glue:md}`conc_note`
#
# Over the replicas the final norm ratio standard / PGD-AT is {glue:text}`frob_ratio:.3g` on
# average. Before the decay the kernels keep moving: the mean consecutive KD is
# {glue:text}`kd_pre_std:.3f` (standard) and {glue:text}`kd_pre_adv:.3f` (PGD-AT); in the last
# epoch it is {glue:text}`kd_last_std:.4f` and {glue:text}`kd_last_adv:.4f`. The kernels settle
# (KD below {glue:text}`lazy_threshold_g` to the end) at epoch {glue:text}`lazy_std:.1f` (standard)
# and {glue:text}`lazy_adv:.1f` (PGD-AT) on average, to be compared with the decay after epoch
# {glue:text}`decay_g`. The claims below say which of these differences the papers' words need.

# %% mystnb={"figure": {"caption": "Per epoch, standard training (blue) and PGD-AT (green): the kernel distance between the C-NTKs of consecutive epochs (top left, logarithmic; dotted horizontal line: the laziness threshold), the kernel's effective rank KER (top right) and its specialization strength KS with clean labels (bottom). Thin lines: one replica each; thick lines with markers: mean over replicas; dashed vertical line: the learning-rate decay.", "name": "fig-ch04-kd-ker-ks"}} tags=["hide-input"]
fig = ch.plot_kd_ker_ks(P, SEEDS)

# %% [markdown]
# ## Cheaper adversarial training ("Rethinking", Sec. 5)
#
# Clean training for the first $k$ = {glue:text}`k_cheap` epochs, then PGD-AT (its robust
# accuracy is in the table above). Its final kernel is at distance {glue:text}`kd_cheap_to_at:.3f`
# from the PGD-AT kernel of the same replica, against {glue:text}`kd_std_to_at:.3f` for the
# standard kernel (means over the replicas); its parameter updates take
# {glue:text}`cheap_time_frac:.2f` of full PGD-AT's time.

# %% tags=["hide-input"]
k = P.cheap_at_clean_epochs[0]
glue("kd_cheap_to_at", float(M[f"kd_cheap{k}_to_at"].mean()))
glue("kd_std_to_at", float(M["kd_std_to_at"].mean()))
glue("cheap_time_frac", sum(s.cheap[k][0].train_seconds / s.runs["pgd"][0].train_seconds for s in SEEDS) / P.n_seeds);

# %% [markdown]
# ## Training on a frozen kernel (Loo et al.)
#
# From the final weights $\theta_T$ of standard training and of PGD-AT we build the centred
# linearised network $f_c(\theta, x) = J_\theta f(\theta_T, x)\,(\theta - \theta_T)$
# ({func}`ntknb.training.linearized_apply_fn` with `centered=True`): a linear model on the network's
# tangent features, whose NTK is frozen at $\Theta_{\theta_T}$ and whose output starts at 0, so
# what it learns comes from the kernel alone. We train it for {glue:text}`loo_epochs_g` epochs
# *cleanly* on each frozen kernel, and with PGD-AT on the standard kernel, then apply the same
# standard evaluation.

# %% mystnb={"figure": {"caption": "Robust accuracy under the standard evaluation (radius in the title) of the standard and PGD-AT networks and of the centred linearised networks: clean training on the frozen standard kernel, clean training on the frozen PGD-AT kernel, and PGD-AT on the frozen standard kernel. Bars: mean over replicas; dots: one replica each.", "name": "fig-ch04-loo"}} tags=["hide-input"]
for key in ("clean_on_adv", "clean_on_std", "at_on_std"):
    glue(f"loo_{key}_kernel_robust_acc", float(M[f"rob_loo_{key}"].mean()))
    glue(f"loo_{key}_kernel_clean_acc", float(M[f"clean_loo_{key}"].mean()))
fig = ch.plot_loo(P, M)

# %% [markdown]
# Clean training on the frozen PGD-AT kernel gives a mean robust accuracy of
# {glue:text}`loo_clean_on_adv_kernel_robust_acc:.3f` (clean
# {glue:text}`loo_clean_on_adv_kernel_clean_acc:.3f`), on the frozen standard kernel
# {glue:text}`loo_clean_on_std_kernel_robust_acc:.3f` (clean
# {glue:text}`loo_clean_on_std_kernel_clean_acc:.3f`); PGD-AT on the frozen standard kernel gives
# {glue:text}`loo_at_on_std_kernel_robust_acc:.3f` (Loo et al.'s 76.1% is for CIFAR-10 at
# $4/255$ and a ResNet-18, a different scale). The claim `ch04.loo_robust_kernel` below gives the
# interval of the difference and its verdict.

# %% [markdown]
# ## The claims, measured
#
# The thresholds were fixed before measuring and are justified in
# `ntknb/chapters/ch04_kernel_dynamics.py` (comment above `CLAIM_THRESHOLDS`): "orders of
# magnitude" is a norm ratio of at least 10; "more", "further", "earlier" and "higher" need a
# positive difference; "without sacrificing model performance" allows a loss of at most 0.05
# robust accuracy (Table 1 of "Rethinking" loses at most 3.3 points). Every interval is a 95% t
# interval over the {glue:text}`n_seeds` replicas (differences paired by replica); the verdicts
# follow from interval, threshold and direction alone.

# %% tags=["remove-input"]
claims = ch.claims(P, M)
glue_summary(claims)
glue_claims(claims)

# %% [markdown]
# ### At seeds never used before
#
# The same notebook, at the same defaults but from base seeds never used while the chapter was
# written, is recorded in `notebooks/data/04_at_kernel_dynamics_seed_check.jsonl`
# ({glue:text}`never_used_runs` run(s), at least {glue:text}`never_used_min_seeds` seeds per
# claim; `scripts/seed_check` records a run). Against the verdicts of this page,
# {glue:text}`never_used_changed` verdict(s) differ and {glue:text}`never_used_flipped` flip
# between reproduced and contradicted.

# %% tags=["hide-input"]
rows, summary = seed_check_summary(claims, ch.load_seed_checks())
glue("never_used_runs", summary["runs"])
glue("never_used_min_seeds", summary["min_seeds"])
glue("never_used_changed", summary["differs"] + summary["flips"])
glue("never_used_flipped", summary["flips"])
glue_table("never_used_table", rows, SEED_CHECK_COLUMNS, display=True);

# %% [markdown]
# ## Summary
#
# ```{ntknb-claims-summary}
# ```

# %% tags=["remove-cell"]
runtime = glue("runtime_s", time.perf_counter() - t_start)
glue("cpu_time_s", time.process_time() - cpu_start)
glue("load_avg_15", os.getloadavg()[2])
print(f"notebook runtime: {runtime:.0f} s")

# %% [markdown]
# ## Exercises
#
# 1. *Predict first, then rerun.* With `-p n_seeds 5`, which intervals of the claims table will
#    shrink, and can a verdict change?
#
#    ```{admonition} Solution
#    :class: dropdown
#    A t interval over seeds shrinks roughly like $t_{0.975,\,k-1}\,s/\sqrt{k}$: from 3 to 5
#    seeds the $t$ quantile drops from 4.30 to 2.78 and $\sqrt{k}$ grows, so the intervals narrow
#    by about half. Only an *inconclusive* verdict (an interval containing its threshold) can
#    become reproduced or contradicted; a decided one can flip only if the new seeds move the
#    mean across the threshold.
#    ```
#
# 2. *Predict first, then rerun.* With `-p lr_decay_epochs [5]`, when should the "lazy" phase
#    of the kernel distance between consecutive epochs end, if "Rethinking" is right that the
#    learning-rate decay starts the last kernel-learning phase?
#
#    ```{admonition} Solution
#    :class: dropdown
#    Right after epoch 5 instead of epoch 7: the consecutive KD should rise (or at least change
#    its trend) at the new decay. If it does not move with the decay, the measured pattern is
#    not the one the paper describes at this scale.
#    ```
#
# 3. *Implement it: the kernel distance.* Write `kernel_distance(K1, K2)` returning
#    $1 - \operatorname{Tr}(K_1 K_2^\top) / (\|K_1\|_F \|K_2\|_F)$, the distance the chapter
#    tracks between the kernels of consecutive epochs.
#    `ntknb.exercises.check_kernel_distance(kernel_distance)` compares it with
#    `ntknb.metrics.kernel_distance`, also on kernels that differ only by a positive factor.
#
#    ````{admonition} Solution
#    :class: dropdown
#    ```python
#    import numpy as np
#    from ntknb import exercises
#
#    def kernel_distance(K1, K2):
#        return 1 - np.sum(K1 * K2) / (np.linalg.norm(K1) * np.linalg.norm(K2))
#
#    exercises.check_kernel_distance(kernel_distance)
#    ```
#    $\operatorname{Tr}(K_1 K_2^\top)$ is the sum of the entrywise products, and `np.linalg.norm` of a
#    matrix is its Frobenius norm. Dividing by both norms makes the distance blind to the
#    kernel's scale, which grows during training: the chapter's distances measure a change of
#    shape, not of size.
#    ````
