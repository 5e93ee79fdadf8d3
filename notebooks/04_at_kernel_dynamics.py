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
# the `modes` parameter) over several seeds and measures its empirical NTK on two fixed,
# class-balanced probe sets of held-out images: after every epoch on a small *per-epoch probe*
# (the phases of training), and at the start and the end of training on a larger probe of the
# size Tsilivis & Kempe use (their Fig. 6: a batch of 256 images). On each it takes the *traced*
# kernel $\hat\Theta = \frac1k\sum_i \Theta^{i,i}$ ($n\times n$) for distances, norms and
# effective rank, and on the larger probe also the whole *per-logit* kernel ($nk \times nk$) for
# the spectrum concentration.
#
# The claims of four sources are measured, each registered with its threshold, direction and
# preconditions before the runs that judge it (`notebooks/claims/04_at_kernel_dynamics.yaml`),
# with an interval over the seeds:
#
# 1. **Tsilivis & Kempe, Secs. 1, 4 and 5** {cite}`tsilivis2022ntk`: during adversarial training
#    the kernel moves further, grows much less (Frobenius norm, "orders of magnitude"),
#    concentrates more on its top eigenspace and becomes lazy earlier than during standard
#    training (Figs. 3 and 6); linearising the network "after a few initial epochs of rapid
#    rotation" matches full training, "even under the data shift of adversarial training"; and
#    robustness is traded for accuracy as standard training progresses.
# 2. **"Rethinking", Secs. 1, 3 and 5** {cite}`li2023rethinking`: a "kernel learning → lazy →
#    kernel learning" pattern of the kernel distance (KD) between consecutive epochs, the last
#    phase triggered by the learning-rate decay; a higher kernel effective rank (KER
#    {cite}`roy2007effective`) of the robust kernel before the decay; adversarial training as an
#    effective defence that costs clean accuracy; and cheaper adversarial training (clean epochs
#    first), whose kernel distance to the adversarially trained kernel follows its robustness
#    (Figs. 1, 5-7, Table 1).
# 3. **Loo et al.** {cite}`loo2022evolution`: the kernel of an adversarially trained network
#    "provides adversarial robustness, even when non-robust training is performed on top of it";
#    their adversarial training on a fixed kernel reaches 76.1% robust accuracy at
#    $\epsilon = 4/255$ on CIFAR-10 (shown below beside this chapter's number).
# 4. **The lecture notes, Sec. 4** {cite}`kernels_data_physics`: "only a few epochs of training
#    suffice to provide kernel quantities that describe accurately the behavior of the final
#    network" (tested with Tsilivis & Kempe's linearisation).
#
# **Scale.** {glue:text}`n_seeds` seeds, the {glue:text}`dataset_g` dataset
# ({glue:text}`n_train_g` training images and {glue:text}`n_test` evaluation points per seed,
# $\epsilon$ = {glue:text}`eps_g:.3g`), a 7-layer CNN of width {glue:text}`width_g`,
# {glue:text}`epochs_g` epochs of SGD with the learning rate decayed after epoch
# {glue:text}`decay_g`, PGD-AT with {glue:text}`attack_steps_g` steps after
# {glue:text}`warm_start_g` clean warm-start epoch(s), a per-epoch probe of
# {glue:text}`n_probe` images and a probe of {glue:text}`n_tk_probe` images at the start and the
# end. The larger probe is not tracked every epoch: on a 2-core CPU its kernel with all logit
# pairs and that kernel's spectrum cost about as much as a PGD-AT epoch (the measurements are
# listed at the end). CIFAR-10 is not run at the defaults; the recorded CIFAR-10 PGD-AT runs on a
# GPU are shown below, next to the CPU settings. The paper-sized preset
# (`04_at_kernel_dynamics.paper.yaml`) and the GPU preset (`04_at_kernel_dynamics.gpu.yaml`) run
# CIFAR-10 through this notebook. At a smaller preset (the quick or the CI preset) fewer seeds,
# points and epochs stand behind each claim; the table of undecided claims names the sample size
# or the condition that left each one open.
#
# **Learning objectives.** After this chapter you can
#
# 1. track the empirical NTK of a network along training and summarise its motion (kernel
#    distance, norm, effective rank, top-eigenspace concentration, polar trajectories);
# 2. compare standard and adversarial training through their kernels, with intervals over seeds;
# 3. test claims about "lazy" phases, linearised training, cheaper adversarial training and
#    adversarial training on a frozen kernel, each in the regime its preconditions name.
#
# **Run time.** At the parameters below this chapter ran in {glue:text}`runtime_s:.0f` s on a
# shared 2-core CPU (15-minute load average {glue:text}`load_avg_15:.1f` at its end), using
# {glue:text}`cpu_time_s:.0f` s of CPU time in the notebook's process ({doc}`../book/status`).

# %% tags=["parameters"]
seed = 0  # first seed; replica i uses seed + i (data subsample, probes, initialisation, data order, attacks)
n_seeds = 5  # independent replicas behind every claim
dataset = "mnist"  # "mnist" or "cifar10"
n_train = 400  # training images per replica (class-balanced)
n_test = 500  # test points of the standard robustness evaluation, per replica
n_monitor = 50  # first test points of the per-epoch monitor (PGD-eval_attack_steps)
probe_per_class = 5  # per-epoch probe: images per class (n = 10 * this), kernel after every epoch
tk_probe_per_class = 26  # T&K's probe: images per class (260, their Fig. 6: 256), kernel at the start and the end
width = 8  # channels of the first conv block (second block: 2 * width)
hidden = 32  # units of the two hidden dense layers
epochs = 40  # training epochs
lr_decay_epochs = [30]  # epochs after which the learning rate is multiplied by lr_decay_factor
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
eval_iter = 10  # iterations of each attack of the standard evaluation (APGD-CE, APGD-DLR, PGD)
trades_beta = 6.0  # TRADES trade-off beta (if "trades" in modes)
modes = ["standard", "pgd"]  # training modes ("fgsm", "trades" optional)
top_p = 10  # top eigenspace of the per-epoch probe's traced kernel (polar plots, concentration curves)
cheap_at_clean_epochs = [20]  # k of "clean for k epochs, then PGD-AT" (the first one enters the claims)
linearize_epoch = 10  # PGD-AT epochs before the network is linearised (T&K's "after a few initial epochs")
loo_epochs = 20  # epochs of training of the centred linearised models (Loo et al.: 100)
loo_learning_rate = 0.01  # their constant learning rate

# %% tags=["hide-input"]
import os
import time

import jax

from ntknb import models, plotting
from ntknb.chapters import ch04_kernel_dynamics as ch
from ntknb.claims import SEED_CHECK_COLUMNS, glue_claims, glue_summary, seed_check_mismatch, seed_check_summary
from ntknb.report import glue, glue_md, glue_table

P = ch.Params.from_namespace(globals())  # checks every parameter (the rules: ch.Params)
plotting.use_book_style()
t_start, cpu_start = time.perf_counter(), time.process_time()

# %% tags=["hide-input"]
for name, value in dict(dataset_g=P.dataset, n_train_g=P.n_train, eps_g=P.eps, width_g=P.width,
                        epochs_g=P.epochs, decay_g=P.decay_epoch, attack_steps_g=P.attack_steps,
                        n_probe=P.n_probe, n_tk_probe=P.n_tk_probe, logit_top_p_g=P.logit_top_p,
                        logit_size_g=10 * P.n_tk_probe, lazy_fraction_g=ch.LAZY_FRACTION,
                        plateau_first_g=P.plateau_epochs[0], eval_iter_g=P.eval_iter, loo_epochs_g=P.loo_epochs,
                        loo_lr_g=P.loo_learning_rate, k_cheap=P.cheap_at_clean_epochs[0],
                        k_lin=P.linearize_epoch, early_epoch_g=ch.TRADEOFF_EPOCH).items():
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
# Each replica draws its own training subsample, evaluation points, probe sets and
# initialisation; within a replica every run starts from the same initialisation and sees the
# same data order. The kernels are computed with neural-tangents' empirical NTK
# ({func}`ntknb.kernels.empirical_ntk`, all logit pairs). The accuracies in the table are the
# standard evaluation ({func}`ntknb.evaluation.robust_evaluation`: APGD-CE, APGD-DLR and PGD,
# {glue:text}`eval_iter_g` iterations each, worst case per point) on {glue:text}`n_test`
# evaluation points per replica, pooled over the {glue:text}`n_seeds` replicas and their points
# (95% intervals with the replicas as clusters, inside [0, 1]); the curves are a cheaper
# per-epoch monitor (thin: replicas, thick: their mean; dashed: PGD-AT linearised after
# {glue:text}`k_lin` epochs, below).

# %% mystnb={"figure": {"caption": "Per-epoch monitor on the first test points: clean accuracy (left) and PGD accuracy (right; steps in the title) of standard training (blue) and PGD-AT (green); dashed black: the mean of PGD-AT continued on its linearisation after the epoch named in the legend. Thin lines: one replica each; thick lines with markers: mean over replicas."}} tags=["hide-input"]
SEEDS = ch.run_seeds(P, model)  # one SeedRun per replica
M = ch.measurements(P, SEEDS)  # {quantity: (n_seeds,) values}
glue_table("acc_table", ch.accuracy_rows(P, SEEDS), ch.ACCURACY_COLUMNS, display=True)
fig = ch.plot_accuracies(P, SEEDS)

# %% [markdown]
# Pooled over the replicas, standard training reaches a robust accuracy of
# {glue:text}`rob_standard:.3f` (clean {glue:text}`clean_standard:.3f`), PGD-AT
# {glue:text}`rob_pgd:.3f` (clean {glue:text}`clean_pgd:.3f`). Gradient-masking checks
# {cite}`carlini2019evaluating` of the first replica's PGD-AT network:

# %% tags=["hide-input"]
print(SEEDS[0].masking.text)
glue("masking_passed", bool(SEEDS[0].masking.passed));

# %% [markdown]
# ## Kernel rotation and polar trajectories (T&K Fig. 3)
#
# Left: kernel distance $d(\Theta_i, \Theta_j) = 1 - \mathrm{Tr}(\Theta_i\Theta_j^\top) /
# (\|\Theta_i\|_F\|\Theta_j\|_F)$ between the C-NTKs of every pair of epochs (per-epoch probe,
# first replica). Right: the trajectory in polar coordinates
# $r_t = \|\Theta_t - \Theta_0\|_F / \|\Theta_f - \Theta_0\|_F$,
# $\theta_t = \arccos(1 - d(\Theta_t, \Theta_0))$ (Eq. 12), for the whole kernel and for its
# restriction to the top-{glue:text}`top_p_g` eigenspace.

# %% mystnb={"figure": {"caption": "Kernel distance between the C-NTKs of every pair of epochs (row and column: epoch, 0 = initialisation), per-epoch probe, first replica, standard training (left) and PGD-AT (right); one colour scale for both.", "name": "fig-ch04-kd-heatmaps"}} tags=["hide-input"]
glue("top_p_g", P.top_p)
trajs = {ch.LABEL[m]: SEEDS[0].runs[m][1] for m in ("standard", "pgd")}
fig = plotting.plot_distance_heatmaps({k: t.distance_matrix("clean") for k, t in trajs.items()},
                                      epochs=trajs["PGD-AT"].epochs)

# %% mystnb={"figure": {"caption": "The C-NTK's trajectory along training in the polar coordinates of Eq. (12), per-epoch probe, first replica: radius $r_t = \\|\\Theta_t - \\Theta_0\\|_F / \\|\\Theta_f - \\Theta_0\\|_F$, angle $\\theta_t = \\arccos(1 - d(\\Theta_t, \\Theta_0))$; the whole kernel (left) and its restriction to the top eigenspace (right; size in the title). One marker per epoch, darker = earlier; blue: standard training, red: PGD-AT.", "name": "fig-ch04-polar"}} tags=["hide-input"]
fig = plotting.plot_polar_trajectories({
    "whole kernel": {k: t.polar("clean") for k, t in trajs.items()},
    f"top-{P.top_p} space": {k: t.polar("clean", top=True) for k, t in trajs.items()}})

# %% [markdown]
# ## Growth, concentration, laziness and effective rank (T&K Fig. 6; "Rethinking" Fig. 1)
#
# The phases are measured on the per-epoch probe. A run's *kernel-learning rate* is its largest
# consecutive KD before the decay; its *plateau* is the second half of the epochs before the
# decay (epochs {glue:text}`plateau_first_g`-{glue:text}`decay_g`); its kernel is *lazy* at an
# epoch whose KD is below {glue:text}`lazy_fraction_g` of its kernel-learning rate. The norm,
# the distance moved and the concentration of the table's first three rows are taken on the
# {glue:text}`n_tk_probe`-image probe; the concentration
# $\sum_{i\le p}\lambda_i^2/\sum_i\lambda_i^2$ on its whole per-logit kernel, with T&K's cutoff
# of 20 out of $256\times 10$ eigenvalues scaled to the top {glue:text}`logit_top_p_g` of
# {glue:text}`logit_size_g`. Each entry is the mean over the replicas with a 95% interval inside
# the quantity's range (geometric means for norms and ratios).

# %% mystnb={"figure": {"caption": "Per epoch, per-epoch probe, standard training (blue) and PGD-AT (green). Left: Frobenius norm of the traced C-NTK (logarithmic). Right: the share $\\sum_{i\\le p}\\lambda_i^2/\\sum_i\\lambda_i^2$ of the traced kernel's top $p$ eigenvalues ($p$ in the title). Thin lines: one replica each; thick lines with markers: mean over replicas; dashed vertical line: the learning-rate decay.", "name": "fig-ch04-growth"}} tags=["hide-input"]
fig = ch.plot_growth_and_concentration(P, SEEDS)

# %% tags=["hide-input"]
glue_table("kernel_table", ch.measurement_table(P, M), ch.MEASUREMENT_COLUMNS, display=True)
for name, value in ch.page_values(P, SEEDS, M).items():
    glue(name, value)

# %% [markdown]
# Over the replicas the final norm ratio standard / PGD-AT on the larger probe is
# {glue:text}`frob_ratio:.3g` (geometric mean), and the kernels moved
# {glue:text}`move_std:.3f` (standard) and {glue:text}`move_adv:.3f` (PGD-AT) from the initial
# kernel. On the per-epoch probe the plateau's mean KD is {glue:text}`plateau_ratio_std:.3g`
# (standard) and {glue:text}`plateau_ratio_adv:.3g` (PGD-AT) of the kernel-learning rate; the
# kernels become lazy before the decay at epoch {glue:text}`lazy_std:.1f` and
# {glue:text}`lazy_adv:.1f` on average ({glue:text}`not_lazy_runs:.0f` run(s) not lazy before the
# decay, counted at the decay epoch {glue:text}`decay_g`). After the decay the mean KD is
# {glue:text}`decay_ratio_std:.3g` (standard) and {glue:text}`decay_ratio_adv:.3g` (PGD-AT) times
# the plateau's. KER at the decay: {glue:text}`ker_std:.2f` and {glue:text}`ker_adv:.2f`.

# %% mystnb={"figure": {"caption": "Per epoch, per-epoch probe, standard training (blue) and PGD-AT (green): the kernel distance between the C-NTKs of consecutive epochs (left, logarithmic), the kernel's effective rank KER (middle) and its specialization strength KS with clean labels (right). Thin lines: one replica each; thick lines with markers: mean over replicas; dashed vertical line: the learning-rate decay; grey band: the plateau, the second half of the epochs before the decay.", "name": "fig-ch04-kd-ker-ks"}} tags=["hide-input"]
fig = ch.plot_kd_ker_ks(P, SEEDS)

# %% [markdown]
# ## Accuracy and robustness along training
#
# Standard training's weights after epoch {glue:text}`early_epoch_g` go through the same
# standard evaluation as the final ones: robust accuracy {glue:text}`rob_early:.3f` (clean
# {glue:text}`clean_early:.3f`) after epoch {glue:text}`early_epoch_g`, {glue:text}`rob_standard:.3f`
# (clean {glue:text}`clean_standard:.3f`) at the end, pooled over the replicas. The claims
# `ch04.tradeoff_standard_training` and `ch04.at_costs_clean_accuracy` below give the intervals
# of the two trade-offs: along standard training, and between standard training and PGD-AT.

# %% [markdown]
# ## Cheaper adversarial training ("Rethinking", Sec. 5)
#
# Clean training for the first $k$ = {glue:text}`k_cheap` epochs, then PGD-AT (its accuracies are
# in the table above). Its final kernel on the larger probe is at distance
# {glue:text}`kd_cheap_to_at:.3f` from the PGD-AT kernel of the same replica, against
# {glue:text}`kd_std_to_at:.3f` for the standard kernel (means over the replicas); its parameter
# updates take {glue:text}`cheap_time_frac:.2f` of full PGD-AT's time.

# %% [markdown]
# ## Linearising PGD-AT after a few epochs (T&K Sec. 5)
#
# After {glue:text}`k_lin` epochs of PGD-AT the network $f(\theta_k, \cdot)$ is replaced by its
# linearisation $f_{\mathrm{lin}}(\theta, x) = f(\theta_k, x) + J_\theta f(\theta_k, x)\,
# (\theta - \theta_k)$ ({func}`ntknb.chapters.ch04_kernel_dynamics.linearised_continuation`):
# its kernel is frozen at $\Theta_{\theta_k}$, and at $\theta = \theta_k$ it is the network. PGD-AT
# (attacks on the linearised model) continues on it for the remaining epochs of the same schedule,
# decay included, and the standard evaluation compares it with the network trained with PGD-AT
# to the end. The PGD-AT kernel's KD in epoch {glue:text}`k_lin` is {glue:text}`rot_at_k:.3g` of
# its kernel-learning rate (mean over the replicas). Pooled over the replicas the linearised
# model reaches a robust accuracy of {glue:text}`rob_linearised:.3f` (clean
# {glue:text}`clean_linearised:.3f`), full PGD-AT {glue:text}`rob_pgd:.3f` (clean
# {glue:text}`clean_pgd:.3f`); the dashed curves of the monitor figure above follow it epoch by
# epoch.

# %% [markdown]
# ## Training on a frozen kernel (Loo et al.)
#
# From the final weights $\theta_T$ of standard training and of PGD-AT we build the centred
# linearised network $f_c(\theta, x) = J_\theta f(\theta_T, x)\,(\theta - \theta_T)$
# ({func}`ntknb.training.linearized_apply_fn` with `centered=True`): a linear model on the network's
# tangent features, whose NTK is frozen at $\Theta_{\theta_T}$ and whose output starts at 0, so
# what it learns comes from the kernel alone. We train it for {glue:text}`loo_epochs_g` epochs at
# learning rate {glue:text}`loo_lr_g` *cleanly* on each frozen kernel, and with PGD-AT on the
# standard kernel, then apply the same standard evaluation.

# %% mystnb={"figure": {"caption": "Robust accuracy under the standard evaluation (radius in the title) of the standard and PGD-AT networks and of the centred linearised networks: clean training on the frozen standard kernel, clean training on the frozen PGD-AT kernel, and PGD-AT on the frozen standard kernel. Bars: pooled over replicas and points, with their 95% interval; dots: one replica each.", "name": "fig-ch04-loo"}} tags=["hide-input"]
fig = ch.plot_loo(P, SEEDS)

# %% [markdown]
# Clean training on the frozen PGD-AT kernel gives a pooled robust accuracy of
# {glue:text}`rob_loo_clean_on_adv:.3f` (clean {glue:text}`clean_loo_clean_on_adv:.3f`), on the
# frozen standard kernel {glue:text}`rob_loo_clean_on_std:.3f` (clean
# {glue:text}`clean_loo_clean_on_std:.3f`); PGD-AT on the frozen standard kernel gives
# {glue:text}`rob_loo_at_on_std:.3f` (clean {glue:text}`clean_loo_at_on_std:.3f`). Loo et al.'s
# headline number for the last experiment comes from another network, data set, radius and
# length of training; the table sets the two side by side and no claim compares them.

# %% tags=["hide-input"]
glue_table("loo_anchor_table", ch.loo_anchor_rows(P, SEEDS), ch.LOO_COLUMNS, display=True);

# %% [markdown]
# ## The claims, measured
#
# The thresholds, directions and preconditions were registered before the runs that judge them,
# with the source's words and the reasons (`notebooks/claims/04_at_kernel_dynamics.yaml`).
# Differences are taken per replica (paired by seed) with 95% intervals inside their ranges;
# ratios as geometric means; a claim whose precondition is not met is *not testable*; the
# verdicts follow from interval, threshold, direction and preconditions alone.

# %% tags=["remove-input"]
claims = ch.claims(P, SEEDS, M)
glue_summary(claims)
glue_claims(claims)

# %% [markdown]
# The claims this run did not decide, with the condition or the sample behind each:

# %% tags=["hide-input"]
glue("n_undecided", len(ch.undecided_rows(claims)))
glue_table("undecided_table", ch.undecided_rows(claims), ch.UNDECIDED_COLUMNS, display=True);

# %% [markdown]
# ### At seeds never used before
#
# The same notebook, at the same parameters but from base seeds never used while the chapter was
# written, is recorded in `notebooks/data/04_at_kernel_dynamics_seed_check.jsonl`
# (`scripts/seed_check` records a run); a record at other parameters tests another setting and is
# not compared. {glue:text}`never_used_runs` run(s) at these parameters, at least
# {glue:text}`never_used_min_seeds` seeds per claim: against the verdicts of this page,
# {glue:text}`never_used_changed` verdict(s) differ and {glue:text}`never_used_flipped` flip
# between reproduced and contradicted.

# %% tags=["hide-input"]
here = {name: getattr(P, name) for name in P.names()}
rows, summary = seed_check_summary(claims, [r for r in ch.load_seed_checks() if not seed_check_mismatch(r, here)])
glue("never_used_runs", summary["runs"])
glue("never_used_min_seeds", summary["min_seeds"])
glue("never_used_changed", summary["differs"] + summary["flips"])
glue("never_used_flipped", summary["flips"])
glue_table("never_used_table", rows, SEED_CHECK_COLUMNS, display=True);

# %% [markdown]
# ## Where the time goes
#
# The measurements behind the defaults (`notebooks/data/04_budget.json`): one seed's pieces
# timed on the shared 2-core machine before the defaults were chosen, with the load average at
# each, and the per-phase wall-clock and CPU seconds of this run's first replica.

# %% tags=["hide-input"]
glue_table("budget_table", ch.budget_rows(), ch.BUDGET_COLUMNS, display=True)
glue_table("phase_table", ch.phase_rows(SEEDS), ch.PHASE_COLUMNS, display=True);

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
# 1. *Predict first, then rerun.* With `-p n_seeds 8`, which intervals of the claims table will
#    shrink, and can a verdict change?
#
#    ```{admonition} Solution
#    :class: dropdown
#    A t interval over seeds shrinks roughly like $t_{0.975,\,k-1}\,s/\sqrt{k}$: from 5 to 8
#    seeds the $t$ quantile drops from 2.78 to 2.36 and $\sqrt{k}$ grows, so the intervals narrow
#    by about a third. Only an *inconclusive* verdict (an interval containing its threshold) can
#    become reproduced or contradicted; a decided one can flip only if the new seeds move the
#    mean across the threshold. A *not testable* verdict changes only if the precondition's
#    measured value crosses its bar.
#    ```
#
# 2. *Predict first, then rerun.* With `-p lr_decay_epochs [20]`, where should the plateau and the
#    second kernel-learning phase of the consecutive KD lie, if "Rethinking" is right that the
#    learning-rate decay starts the last kernel-learning phase?
#
#    ```{admonition} Solution
#    :class: dropdown
#    The plateau becomes epochs 11-20 and the second phase should start right after epoch 20:
#    the consecutive KD should rise (or at least change its trend) at the new decay. If it does
#    not move with the decay, the measured pattern is not the one the paper describes at this
#    scale; the claim `ch04.decay_second_phase` compares the two phases' mean KD.
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
