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
# # Catastrophic overfitting in single-step adversarial training, seen through the kernel
#
# Adversarial training with a single FGSM step per example (FGSM-AT
# {cite}`goodfellow2015explaining`) costs about as much as standard training, but it can fail
# abruptly: after some epochs of steady progress the robust accuracy against a multi-step attack
# (PGD {cite}`madry2018towards`) falls to about zero within an epoch or two, while the accuracy
# on the network's own FGSM training examples stays high. This is *catastrophic overfitting*
# {cite}`wong2020fast,andriushchenko2020understanding`: the network has learned to defeat the
# one attack it is trained on, not to be robust. Two standard remedies are a uniform random
# start inside the $\epsilon$-ball before the FGSM step (FGSM-RS {cite}`wong2020fast`) and
# gradient-alignment regularisation {cite}`andriushchenko2020understanding`; N-FGSM
# {cite}`dejorge2022make` starts from a wider box, $x + U(-k\epsilon, k\epsilon)$ with $k = 2$,
# takes a step of $\epsilon$ and does not project back onto the $\epsilon$-ball.
#
# Section 6 of "Rethinking Adversarial Training with NTK" {cite}`li2023rethinking` looks at the
# phenomenon through the empirical NTK (the kernel tools of {doc}`04_at_kernel_dynamics`).
#
# ```{note}
# "Rethinking Adversarial Training with NTK" (arXiv:2312.02236) is an **unreviewed preprint**: it
# was submitted to ICLR 2024 and **withdrawn**. Its claims below are tested as a preprint's
# claims, not as established results.
# ```
#
# What it claims:
#
# 1. **Fig. 8.** The kernel specialization matrices $M_{ks}$ on the AE-NTK (the kernel on the
#    network's own PGD examples) under clean labels are "chaotic" for the non-robust networks
#    (standard training, FGSM-AT after collapse) and aligned with the diagonal for the robust
#    ones (PGD-AT).
# 2. **The shortcut hypothesis, Fig. 9.** One-step adversarial examples carry a *shortcut*, an
#    "isotropic" feature shared across the mini-batch. The paper plants one on purpose — every
#    image in a mini-batch gets the *same* augmentation — and a multi-step method trained that
#    way (their "TE-OF") collapses like FGSM-AT, with a kernel close to the FGSM-AT kernel in
#    kernel distance (KD).
# 3. **The fix, Fig. 10.** Adding *anisotropic noise to every sample* before the FGSM step
#    removes the shortcut and prevents the collapse. (Reviewers of the paper remarked that in
#    its Fig. 10b the FGSM-AT robust accuracy fell to about 0 and then recovered.)
#
# **What we implement.** The paper gives no formula for its noise. We read it as per-sample
# anisotropic Gaussian noise: for sample $i$, $\delta_i = \mathrm{clip}_{[-\epsilon,\epsilon]}
# (\sigma_i \odot \xi_i)$ with $\xi_i \sim \mathcal N(0, I)$ and its own random per-coordinate
# scales $\sigma_i = s\,\epsilon\,u_i$, $u_i \sim U(0,1)^d$
# ({func}`ntknb.chapters.ch06_overfitting.variants.anisotropic_noise`); the FGSM step of size $\alpha$ starts
# from $x_i + \delta_i$ and is projected back onto the $\epsilon$-ball (the adversary
# `NoiseFGSM(eps, alpha, s)` that training takes as a value). FGSM-RS is the same with
# $\delta_i \sim U(-\epsilon, \epsilon)^d$; N-FGSM ({class}`ntknb.adversaries.NFGSM`) is the
# baseline from the literature the fix is compared with. The paper's TE-OF uses TE (Dong et al. 2022), which
# this book does not implement: **we use PGD-AT instead** with batch-shared augmentation
# (`augment="crop_shared"`: one random crop offset per mini-batch).
#
# **Scale and what was tried.** The paper trains ResNet-18 on CIFAR-10 for 200 epochs
# (`06_catastrophic_overfitting.paper.yaml`, GPU). The default parameters below are sized for a
# 2-core CPU and at most 8 minutes (the number of epochs is what the budget sets: twelve training
# runs and their standard evaluations); this page ran with {glue:md}`setting_md`. The first
# `clean_epochs` epochs of every adversarial run are a *clean warm start*: without it, PGD-AT at
# $\epsilon = 0.3$ on the small CNN of {doc}`04_at_kernel_dynamics` often stayed at a constant
# prediction (the "stuck at chance" rows of the search table at the end), and the comparisons of
# sections 2-4 would be against a network that never learned. That search found no CPU-sized
# setting in which FGSM-AT collapses *reliably*; how often it collapses at this page's setting is
# measured below over seeds. The defaults are therefore **not** a collapse setting: they are the
# CPU budget's setting, at which the page measures what happens. The section *GPU scale* at the
# end shows the recorded CIFAR-10 runs on a GPU.
# Note that for FGSM started at $x$ the step size does not matter
# once $\alpha \geq \epsilon$: $x + \alpha\,\mathrm{sign}(g)$ is projected back to
# $x + \epsilon\,\mathrm{sign}(g)$, so "step $1.25\epsilon$" only changes the randomly started
# variants. Every number in the text is measured by the run that produced this page.
#
# **Learning objectives.** After this chapter you can
#
# 1. recognise catastrophic overfitting in single-step adversarial training (FGSM accuracy on the
#    training examples high, PGD accuracy on test data collapsing) with a criterion fixed in
#    advance;
# 2. compare FGSM-AT, FGSM-RS, N-FGSM, noise-FGSM and PGD-AT (kernel
#    specialization and kernel distance);
# 3. design a test of the "shortcut" hypothesis (batch-shared augmentation) and say what a
#    CPU-sized run can and cannot decide about it.
#
# **Run time.** At the defaults below this chapter ran in {glue:text}`runtime_s:.0f` s on a
# shared 2-core CPU ({doc}`../book/status`).

# %% tags=["parameters"]
seed = 0  # base PRNG seed: seed s + i drives data subsample, init, data order and attacks of repeat i
n_seeds = 3  # repeats of the FGSM-AT / FGSM-RS / N-FGSM / noise-FGSM runs (seeds seed .. seed + n_seeds - 1)
dataset = "mnist"  # "mnist" or "cifar10"
model_name = "cnn"  # "cnn" (7-layer CNN of chapter 04) or "resnet" (BatchNorm ResNet; stage_sizes below)
width = 8  # channels of the first block (CNN: conv w-w-2w-2w; ResNet: stem width)
hidden = 32  # CNN: units of the two hidden dense layers
resnet_stages = [1, 1, 1]  # ResNet blocks per stage; [2, 2, 2, 2] with width 64 is ResNet-18
n_train = 1600  # training images (class-balanced)
n_test = 200  # held-out images for per-epoch clean and PGD accuracy
n_monitor = 200  # training images on which FGSM training accuracy is measured each epoch
kernel_every = 4  # compute the empirical NTK every this many epochs (and at the last one)
probe_per_class = 5  # probe images per class for the empirical NTK; 10 times this images in all
epochs = 8  # training epochs (including the clean_epochs); more run over the 8-minute budget with N-FGSM added
clean_epochs = 1  # clean warm start: epochs of clean training before every adversarial run (0 = off)
learning_rate = 0.02  # initial SGD learning rate
lr_decay_epochs = []  # epochs after which the learning rate is multiplied by lr_decay_factor
lr_decay_factor = 0.1  # step learning-rate decay
momentum = 0.9  # SGD momentum
weight_decay = 5e-4  # L2 weight decay
batch_size = 32  # mini-batch size
eps = 0.3  # l-inf radius of training, evaluation and AE-NTK attacks (CIFAR-10: 8/255)
fgsm_step = 1.25  # FGSM step of FGSM-RS and noise-FGSM, in units of eps; plain FGSM from x never moves further than eps
noise_scale = 1.0  # s of the anisotropic noise: per-coordinate std up to s * eps
nfgsm_noise = 2.0  # N-FGSM: uniform noise U(-k eps, k eps) before a step of eps, not projected (k = 2, de Jorge et al. 2022)
attack_steps = 3  # PGD steps of PGD-AT (step 2.5 * eps / steps, random start)
eval_attack_steps = 5  # PGD steps of the per-epoch robust-accuracy monitor and of the AE-NTK probe
eval_n_test = 100  # test points (the first of each seed's n_test) of the standard evaluation and masking checks
eval_iter = 100  # iterations of each attack of the standard evaluation (APGD-CE, APGD-DLR, PGD)
strong_iter = 20  # iterations of the per-epoch strong monitor (the same suite) on the eval_n_test points
augment = "none"  # augmentation of every run except the batch-shared one: "none", "crop", "crop_flip"
shared_augment = "crop_shared"  # batch-shared augmentation of the shortcut run: "crop_shared", "crop_flip_shared"
crop_padding = 2  # padding of the random crop (pixels)
collapse_fraction = 0.3  # collapse: robust acc. falls below this fraction of its earlier peak ...
collapse_min_peak = 0.15  # ... which must be at least this high
co_gap = 0.5  # CO state: final FGSM training accuracy exceeds final PGD test accuracy by at least this
stuck_below = 0.15  # settings search: a run whose final clean accuracy is at most this never learned

# %% tags=["hide-input"]
import time

from ntknb import data, plotting, records
from ntknb.chapters.ch06_overfitting import ladder as lad
from ntknb.chapters import ch06_overfitting as ch
from ntknb.claims import glue_claims
from ntknb.report import glue, glue_md, glue_table

P = ch.Params.from_namespace(globals())  # checks every parameter (the rules: ch.Params)
PROTOCOLS = [lad.load_protocol(f) for f in lad.PROTOCOL_FILES]  # the registered rule and ladders (notebooks/data/)
RULE = lad.collapse_rule(PROTOCOLS[0])  # every protocol keeps the first one's rule
glue_md("setting_md", ch.setting_text(P))
plotting.use_book_style()
t_start = time.perf_counter()

# %% [markdown]
# ## Data, probe set and model
#
# Each seed draws its own class-balanced training and test subsample. The empirical NTK is
# computed on a fixed class-balanced probe set of {glue:text}`n_probe` held-out images (sorted by
# class), at initialisation, every `kernel_every` epochs and at the last epoch, on the clean
# probe images (C-NTK) and on the network's own PGD-{glue:text}`eval_steps_g` examples of them
# (AE-NTK).

# %%
ds = data.load_dataset(P.dataset)
print(ds.provenance.describe())
D = ch.prepare_data(P, ds)  # one subsample per seed, and the probe set
n_probe = glue("n_probe", len(D.probe[1]))
glue("eval_steps_g", P.eval_attack_steps)
glue("eps_g", P.eps)
glue("n_seeds_g", P.n_seeds)
print(D.tasks[P.seed], "probe:", D.probe[0].shape, "\n", ch.make_model(P))

# %% [markdown]
# ## 1. Catastrophic overfitting of FGSM-AT, over seeds
#
# **Collapse criterion** ({func}`ntknb.chapters.ch06_overfitting.variants.detect_collapse`): epoch $t$ collapses if its
# PGD robust test accuracy falls below {glue:text}`fraction_g` times the best robust accuracy of
# the earlier epochs, and that earlier best is at least {glue:text}`min_peak_g` (a network that
# never became robust cannot collapse). A collapsed run *recovered* if its final robust accuracy
# is back above the same threshold. The first seed's runs also track the kernel (used in
# sections 2 and 3).

# %%
glue("min_peak_g", P.collapse_min_peak)
glue("fraction_g", P.collapse_fraction)
RUNS = ch.run_all(P, D)  # {(variant, seed): VariantRun}
t_train = time.perf_counter() - t_start
glue_table("co_table", ch.collapse_rows(RUNS), ch.COLLAPSE_COLUMNS, floatfmt=".3f", display=True);

# %% mystnb={"figure": {"caption": "FGSM-AT against the epoch, one colour per seed. Left: PGD robust accuracy on the test points (solid, markers) and accuracy on FGSM examples of the training images (dashed). Right: clean test accuracy.", "name": "fig-ch06-fgsm-runs"}}
fig = ch.plot_fgsm_runs(P, RUNS)

# %% tags=["remove-output"]
S = ch.fgsm_summary(P, RUNS)
for name, value in S.items():
    glue(name, value)
glue("co_gap_g", P.co_gap);

# %% [markdown]
# This criterion reads the weak monitor, PGD-{glue:text}`eval_steps_g`; it describes the curves
# and decides nothing. FGSM-AT collapsed by it in {glue:text}`co_n_collapsed` of
# {glue:text}`n_seeds_g` seeds. Whether a network *ended* catastrophically overfitted is decided
# in section 5 by the strong rule. Averaged over the {glue:text}`n_seeds_g` seeds, the FGSM-AT
# networks peak at a PGD monitor accuracy of {glue:text}`co_fgsm_peak_robust_acc:.3f`, fall as low as
# {glue:text}`co_fgsm_low_robust_acc:.3f` after the peak and end at
# {glue:text}`co_fgsm_final_robust_acc:.3f`, while their accuracy on FGSM examples of their
# own training images ends at {glue:text}`co_fgsm_final_train_fgsm_acc:.3f` (clean test
# accuracy {glue:text}`co_fgsm_final_clean_acc:.3f`; $\epsilon$ = {glue:text}`eps_g:.3f`).
# Its final FGSM accuracy on training images exceeds its final PGD monitor accuracy by at least
# {glue:text}`co_gap_g` in {glue:text}`co_n_gap` of {glue:text}`n_seeds_g` seeds, FGSM-RS's in
# {glue:text}`co_n_gap_rs`.

# %% [markdown]
# ## 2. Kernels of FGSM-AT, PGD-AT and standard training (Figs. 8 and 9)
#
# Standard training, FGSM-AT and PGD-AT on the first seed (same data, initialisation and data
# order). The paper compares a *collapsed* FGSM-AT network; here the first seed's FGSM-AT run
# is whatever section 1 found (collapsed or not; see the table there). Left: the kernel
# specialization matrix $M_{ks}$ of the final AE-NTK under clean labels
# (row = logit, column = class; {func}`ntknb.metrics.specialization_matrix`): a diagonal pattern
# means logit $i$'s kernel is aligned with class $i$. Its mean diagonal is the KS strength.

# %% mystnb={"figure": {"caption": "Kernel specialization matrices $M_{ks}$ of the final AE-NTK under clean labels (row: logit, column: class), first seed: standard training, FGSM-AT, PGD-AT and PGD-AT with batch-shared augmentation; one colour scale for all panels."}}
MKS = ch.specialization_matrices(P, RUNS, D.probe)
plotting.plot_specialization_matrices({("AE-NTK, clean labels", ch.LABEL[v]): MKS[v] for v in ch.KERNEL_VARIANTS})
KS = ch.ks_strengths(MKS)
for v in ch.KERNEL_VARIANTS:
    glue(f"co_ks_{v}", KS[v])
glue_table("ks_table", [[ch.LABEL[v], KS[v], RUNS[(v, P.seed)].robust_acc[-1]] for v in ch.KERNEL_VARIANTS],
           ["training", "KS of final AE-NTK (clean labels)", "final robust acc."], floatfmt=".3f", display=True);

# %% [markdown]
# KS of the final AE-NTK: standard {glue:text}`co_ks_standard:.3f`, FGSM-AT
# {glue:text}`co_ks_fgsm:.3f`, PGD-AT {glue:text}`co_ks_pgd:.3f`, PGD-AT with batch-shared
# augmentation {glue:text}`co_ks_pgd_shared:.3f` (one seed each: a description; the claim
# `ch06.ks_collapsed_lower` below compares FGSM-AT with FGSM-RS over the seeds).
#
# Next, Fig. 9b-c: the kernel distance of each network's kernel to the FGSM-AT network's kernel
# at the same epoch, on the clean probe (C-NTK) and on each network's own adversarial examples
# (AE-NTK).

# %% mystnb={"figure": {"caption": "Kernel distance to the FGSM-AT network's kernel at the same epoch, against the tracked epochs (first seed), for standard training, PGD-AT and PGD-AT with batch-shared augmentation: on the clean probe images (C-NTK, left) and on each network's own adversarial examples (AE-NTK, right).", "name": "fig-ch06-kd-to-fgsm"}}
KD = ch.plot_distances_to_fgsm(P, RUNS)  # {(variant, "clean" | "adv"): KD per tracked epoch}
for v in ("standard", "pgd", "pgd_shared"):
    glue(f"co_kd_{v}_adv", KD[(v, "adv")][-1])
    glue(f"co_kd_{v}_clean", KD[(v, "clean")][-1])

# %% [markdown]
# At the last epoch the AE-NTK distance to the FGSM-AT kernel is {glue:text}`co_kd_standard_adv:.3f`
# for standard training, {glue:text}`co_kd_pgd_adv:.3f` for PGD-AT and
# {glue:text}`co_kd_pgd_shared_adv:.3f` for PGD-AT with batch-shared augmentation (C-NTK:
# {glue:text}`co_kd_standard_clean:.3f`, {glue:text}`co_kd_pgd_clean:.3f`,
# {glue:text}`co_kd_pgd_shared_clean:.3f`; first seed only).
#
# ## 3. The shortcut hypothesis: batch-shared augmentation
#
# PGD-AT ({glue:text}`attack_steps_g` steps) where every image of a mini-batch gets the same
# random crop, against PGD-AT with {glue:md}`augment_md` augmentation.

# %% mystnb={"figure": {"caption": "Clean (solid) and PGD (dashed) test accuracy against the epoch, first seed: PGD-AT, PGD-AT with batch-shared augmentation, and FGSM-AT.", "name": "fig-ch06-shared-aug"}} tags=["hide-input"]
glue("attack_steps_g", P.attack_steps)
glue_md("augment_md", f"`{P.augment}`")
fig = ch.plot_shared_augmentation(P, RUNS)
sh = RUNS[("pgd_shared", P.seed)]
glue("co_pgd_shared_final_robust_acc", sh.robust_acc[-1])
glue("co_pgd_shared_peak_robust_acc", sh.collapse.peak);

# %% [markdown]
# PGD-AT with batch-shared augmentation peaks at a robust accuracy of
# {glue:text}`co_pgd_shared_peak_robust_acc:.3f` and ends at
# {glue:text}`co_pgd_shared_final_robust_acc:.3f` (PGD monitor; the claim
# `ch06.shared_aug_collapse` below).
#
# ## 4. The fix: anisotropic noise before the FGSM step
#
# All variants on one plot: PGD robust test accuracy along training (mean over the
# {glue:text}`n_seeds_g` seeds for the single-step methods, thin lines the individual seeds;
# the first seed only for PGD-AT and standard training). FGSM-RS and noise-FGSM use the step
# $\alpha$ = {glue:text}`fgsm_step_g:.2f` $\epsilon$; N-FGSM the noise $U(-k\epsilon, k\epsilon)$ with
# $k$ = {glue:text}`nfgsm_noise_g:.2g` and the step $\epsilon$ of {cite}`dejorge2022make`.

# %% mystnb={"figure": {"caption": "PGD robust test accuracy against the epoch for every training variant. FGSM-AT, FGSM-RS, N-FGSM and noise-FGSM: thick lines with markers, mean over seeds, thin lines one seed each; PGD-AT, PGD-AT with batch-shared augmentation and standard training: first seed only (dashed, square markers).", "name": "fig-ch06-all-variants"}} tags=["hide-input"]
glue("fgsm_step_g", P.fgsm_step)
glue("nfgsm_noise_g", P.nfgsm_noise)
fig = ch.plot_all_variants(P, RUNS)
STATS = ch.variant_stats(P, RUNS)
for name, value in ch.fix_summary(P, RUNS, STATS).items():
    glue(name, value);

# %% [markdown]
# Final PGD robust test accuracy, mean over seeds: FGSM-AT {glue:text}`co_fgsm_final_robust_acc:.3f`
# (collapsed in {glue:text}`co_n_collapsed` of {glue:text}`n_seeds_g` seeds), FGSM-RS
# {glue:text}`co_rs_final_robust_acc:.3f` (collapsed in {glue:text}`co_rs_n_collapsed`), N-FGSM
# {glue:text}`co_nfgsm_final_robust_acc:.3f` (collapsed in {glue:text}`co_nfgsm_n_collapsed`),
# noise-FGSM {glue:text}`co_noise_final_robust_acc:.3f` (collapsed in
# {glue:text}`co_noise_n_collapsed`); PGD-AT (first seed) {glue:text}`co_pgd_final_robust_acc:.3f`
# and standard training {glue:text}`co_std_final_robust_acc:.3f`. Clean test accuracy: noise-FGSM
# {glue:text}`co_noise_final_clean_acc:.3f`, FGSM-RS {glue:text}`co_rs_final_clean_acc:.3f`,
# N-FGSM {glue:text}`co_nfgsm_final_clean_acc:.3f`,
# PGD-AT {glue:text}`co_pgd_final_clean_acc:.3f`. These are monitor readings; the comparisons
# that judge use the standard evaluation (section 5).
#
# ## 5. The standard evaluation of every FGSM-trained network, and the gradient-masking checks
#
# The per-epoch numbers above come from a *monitor*: PGD with {glue:text}`eval_steps_g` steps on
# each seed's {glue:text}`n_test` test points. Catastrophic overfitting is gradient masking at the
# clean point, so a weak monitor can miss it. Every network trained with a single-step method
# (all variants, all seeds) is therefore evaluated once more at the end, on the first
# {glue:text}`eval_n_test_g` of those test points, with the standard evaluation
# ({func}`ntknb.evaluation.robust_evaluation`: worst case over APGD-CE, APGD-DLR and PGD,
# {glue:text}`eval_iter_g` iterations each {cite}`croce2020reliable`) and the gradient-masking
# checks of {cite}`carlini2019evaluating` ({func}`ntknb.masking.gradient_masking_checks`: robust
# accuracy falls with $\epsilon$ and reaches 0 at $\epsilon = 1$, the iterative suite is at least
# as strong as single-step FGSM, few zero input gradients). Entries: mean [95% t interval] over
# the {glue:text}`n_seeds_g` seeds.

# %%
glue("eval_n_test_g", min(P.eval_n_test, P.n_test))
glue("eval_iter_g", P.eval_iter)
EVALS = ch.evaluate_all(P, D, RUNS)  # {(variant, seed): MaskingReport}; its suite at eps is the standard evaluation
glue_table("eval_table", ch.evaluation_rows(P, RUNS, EVALS), ch.evaluation_columns(P), display=True)
JUDGED = ch.judge_runs(P, RUNS, EVALS, RULE)  # {(variant, seed): Judgement} by the strong end-state rule
glue_table("diff_table", ch.difference_rows(P, EVALS, JUDGED),
           ["standard evaluation, paired difference", "mean [95% t]"], display=True)
for name, value in {**ch.evaluation_summary(P, RUNS, EVALS), **ch.strong_summary(P, JUDGED)}.items():
    glue(name, value)
print(EVALS[("fgsm", P.seed)].text)

# %% [markdown]
# Under the standard evaluation FGSM-AT keeps a robust accuracy of
# {glue:text}`co_fgsm_suite_robust_acc:.3f` (mean over seeds) while its PGD monitor ends
# {glue:text}`co_fgsm_monitor_minus_suite:.3f` higher, and single-step FGSM still leaves it
# {glue:text}`co_fgsm_single_step_acc:.3f` accurate on the same points. For FGSM-RS the numbers are
# {glue:text}`co_rs_suite_robust_acc:.3f`, {glue:text}`co_rs_monitor_minus_suite:.3f` and
# {glue:text}`co_rs_single_step_acc:.3f`; for N-FGSM {glue:text}`co_nfgsm_suite_robust_acc:.3f`,
# {glue:text}`co_nfgsm_monitor_minus_suite:.3f` and {glue:text}`co_nfgsm_single_step_acc:.3f`; for noise-FGSM {glue:text}`co_noise_suite_robust_acc:.3f`,
# {glue:text}`co_noise_monitor_minus_suite:.3f` and {glue:text}`co_noise_single_step_acc:.3f`.
# Every masking check passed for FGSM-AT in
# {glue:text}`co_fgsm_n_masking_passed` of {glue:text}`n_seeds_g` seeds: the checks test the
# *evaluation* (a suite that breaks the network passes them), not the training. The paired
# differences (same seed, same test points) compare the anisotropic-noise fix with FGSM-AT, with
# FGSM-RS and with N-FGSM, and the two baselines with FGSM-AT; a pair with an arm that failed to
# train (clean accuracy at chance) is not compared.
#
# ### The strong end-state rule
#
# Each single-step run is judged by the rule registered in `notebooks/data/06_co_protocol.yaml`
# ({class}`ntknb.collapse.CollapseRule`) before any run it judges: {glue:md}`rule_md`. The strong
# curve is the suite at {glue:text}`strong_iter_g` iterations on the same
# {glue:text}`eval_n_test_g` points after every epoch ({class}`ntknb.collapse.EpochMonitor`); the
# final strong accuracy is the standard evaluation above. By it FGSM-AT ended collapsed in
# {glue:text}`co_fgsm_ended_collapsed` of {glue:text}`n_seeds_g` seeds, FGSM-RS in
# {glue:text}`co_rs_ended_collapsed`, N-FGSM in {glue:text}`co_nfgsm_ended_collapsed`, noise-FGSM in
# {glue:text}`co_noise_ended_collapsed`; runs that failed to train: FGSM-AT
# {glue:text}`co_fgsm_n_failed`, FGSM-RS {glue:text}`co_rs_n_failed`, N-FGSM
# {glue:text}`co_nfgsm_n_failed`, noise-FGSM {glue:text}`co_noise_n_failed`.

# %% tags=["hide-input"]
glue_md("rule_md", RULE.describe())
glue("strong_iter_g", P.strong_iter)
glue_table("strong_table", ch.strong_rows(P, JUDGED), ch.STRONG_COLUMNS, floatfmt=".3f", display=True);

# %% [markdown]
#
# ### The claims, measured
#
# The thresholds and guards are justified in `ntknb/chapters/ch06_overfitting/verdicts.py` (comment above
# `CLAIM_THRESHOLDS`): catastrophic overfitting needs a relative drop of the strong accuracy from
# the peak of its per-epoch curve above one minus the rule's drop fraction; the fixes need any gain
# in standard-evaluation robust accuracy over FGSM-AT on the same seed and points; the kernel
# picture of Fig. 8 needs a higher KS for the robust network (the same seed's FGSM-RS run) than
# for the collapsed FGSM-AT network; the batch-shared shortcut of Fig. 9 needs the same drop (first
# seed only, so its interval is unbounded). Claims about *collapsed* networks are measured on the
# seeds whose FGSM-AT ended collapsed by the strong rule, and a comparison on the seeds in which
# both arms trained; each declares, as a precondition, that there are at least two such seeds, and
# reads "not testable at this scale" when there are fewer. Intervals: Student t over the seeds.
# The verdicts follow from interval, threshold, direction and preconditions alone.

# %% tags=["remove-input"]
KS_SEEDS = ch.ks_over_seeds(P, RUNS, D.probe)  # {(variant, seed): KS} of FGSM-AT and FGSM-RS
claims = ch.claims(P, RUNS, KS_SEEDS, EVALS, JUDGED, RULE)  # intervals over the seeds, inside each quantity's range
glue("n_seeds", P.n_seeds)
glue("n_test", P.n_test)
glue_claims(claims)

# %% [markdown]
# ## Which settings collapse
#
# The defaults were chosen by a search on this machine. Every run of it is recorded, with its
# setting and its per-epoch curves, in `notebooks/data/06_settings_search.jsonl`
# (`scripts/co_search.py` reruns or extends it with {func}`ntknb.chapters.ch06_overfitting.search.search_run`); the
# table below is computed from that file with this page's collapse criterion. These runs are
# **not** retrained by this page. They ran with single-threaded XLA (the script's default, stored
# in each record), with which a rerun reproduces them exactly; this page's own runs use XLA's
# default threading, whose reductions round differently, so the same setting can follow a
# slightly different curve here. Settings shared by every recorded run:
# {glue:md}`search_common`. FGSM-AT starts at $x$ with step $\epsilon$, PGD-AT uses a step of
# $2.5\epsilon$ / steps; "stuck at chance" means a final clean accuracy of at most
# {glue:text}`stuck_below_g` (a constant prediction); "standard eval." is the robust accuracy of the
# final network under the standard evaluation where the run recorded one (a dash where not measured).
#
# {glue:md}`search_summary`
#
# Two more kinds of network were tried and are not in the file: a plain MLP (its PGD accuracy
# rose *above* its clean accuracy: it learned to recognise perturbed inputs rather than digits)
# and, in an earlier version of this chapter, $\epsilon = 0.4$ without a clean warm start
# (FGSM-AT ended with high FGSM training accuracy and PGD test accuracy near zero, but PGD-AT
# never learned, so the kernel comparisons were between networks that had not learned).
# Lasting collapse is known to need longer training and larger networks (Wong et al. 2020;
# Andriushchenko & Flammarion 2020): at this CPU budget it shows, if at all, as a transient
# drop that recovers within an epoch or two, in line with the reviewers' remark on the paper's
# Fig. 10b.

# %% tags=["hide-input"]
SEARCH = records.load_search_records(records.SEARCH_FILE)
search_rows = ch.search_table(SEARCH, fraction=P.collapse_fraction, min_peak=P.collapse_min_peak,
                              stuck_below=P.stuck_below)
glue_table("search_table", ch.search_cells(search_rows), ch.SEARCH_COLUMNS, floatfmt=".2f", display=True)
found = ch.search_summary(SEARCH, search_rows, min_seeds=3)
glue("stuck_below_g", P.stuck_below)
glue_md("search_common", ch.search_common_text(found))
glue_md("search_summary", ch.search_summary_text(found))
print(f"training time of all runs: {t_train:.0f} s")

# %% [markdown]
# ## The collapse ladder: CIFAR-10 and the CNN with 4 filters (recorded runs)
#
# The MNIST setting above is the CPU budget's, not a collapse setting. The smallest network in
# which FGSM-AT is known to collapse is the one-layer CNN with four 3×3 filters of
# {cite}`andriushchenko2020understanding` on CIFAR-10 ({class}`ntknb.models.TinyCNN`: all 50,000
# training images, Adam, cyclic learning rate, FGSM from $x$ with step $\epsilon$). A search for a
# setting in which it collapses in at least 4 of 5 never-used seeds was *registered before it ran*
# (`notebooks/data/06_co_protocol.yaml`, protocol `co-ladder-1`: the recipe, compressed from 30 to
# 10 epochs for the CPU; the monitor and its validation; the end-state rule of section 5; the rungs
# $\epsilon$ = 10, 12 and 16/255 in this order, each with its own seeds, stopped as soon as its
# outcome is decided). When every rung of a protocol failed, the next protocol was written and
# committed before its first run, changing one thing: `co-ladder-2` (`06_co_protocol_2.yaml`) injects
# the class-wise low-frequency feature of {cite}`ortiz2023catastrophic` into training and test images,
# $\tilde x = \mathrm{clip}(x + \beta v(y), 0, 1)$ with $\beta = \epsilon$ as in the source's
# configuration ({class}`ntknb.collapse.InjectedFeature`); `co-ladder-3` (`06_co_protocol_3.yaml`)
# trains the source's full 30 epochs on natural images.
# `scripts/co_ladder.py` climbs a protocol and records every run in `notebooks/data/06_co_ladder.jsonl`
# (per epoch: clean, FGSM and strong accuracy on 500 fixed test points, the PGD−FGSM loss gap and the
# gradient alignment of {cite}`andriushchenko2020understanding`; at the end the 100-iteration suite
# on 1000 points). This page reads the file; it does not retrain. The images are the shared JPEG
# copy of CIFAR-10 (lossy). {glue:md}`ladder_md` The first rung that passed: {glue:md}`ladder_passed_md`.
# The monitor's largest difference from the 100-iteration suite on the final networks is
# {glue:text}`ladder_monitor_max_diff:.3f` (the protocol accepts at most
# {glue:text}`ladder_tolerance:.2f`).

# %% mystnb={"figure": {"caption": "Every recorded full-size run of the collapse ladder, one colour per rung. Left: test accuracy per epoch under the strong monitor (solid) and under FGSM (dashed). Right: gradient alignment per epoch, the cosine between the loss gradients at $x$ and at a random point $x + \\eta$ of the $\\epsilon$-ball."}} tags=["hide-input"]
LADDER = records.load_ladder_records(records.LADDER_FILE, missing_ok=True)
LADDER_SUMMARY = lad.ladder_summary(PROTOCOLS, LADDER)
for name, value in LADDER_SUMMARY.items():
    glue(name, value)
glue_md("ladder_md", lad.ladder_text(PROTOCOLS, LADDER))
glue_md("ladder_passed_md", f"`{LADDER_SUMMARY['ladder_passed']}`")
glue("ladder_tolerance", PROTOCOLS[0]["monitor"]["monitor_tolerance"])
glue_table("ladder_table", lad.ladder_rows(LADDER), lad.LADDER_COLUMNS, display=True)
fig = lad.plot_ladder_curves(LADDER)

# %% [markdown]
# ## GPU scale: CIFAR-10
#
# The CPU setting above is small. The search was also run at CIFAR-10 scale on a GPU
# (`scripts/gpu_cifar_search`: a BatchNorm ResNet, FGSM-AT at two radii, seeds never used
# before), each run recorded in `notebooks/data/gpu/cifar10_search.jsonl` with its per-epoch PGD
# monitor and the standard evaluation of its final network on the same test points. Settings shared
# by every recorded GPU run: {glue:md}`gpu_common`. This page reads the file (it does not retrain)
# and applies section 1's collapse criterion to the monitor curves; "ended collapsed" means
# collapsed and not recovered by the last epoch. Runs cut off by the time limit are missing from the
# file. {glue:md}`gpu_text`

# %% mystnb={"figure": {"caption": "The recorded FGSM-AT runs on CIFAR-10 on a GPU, one colour per stream ($\\epsilon$ and number of training images), one line per seed: PGD monitor accuracy (solid, markers) and clean accuracy (dotted) on the test points, against the epoch."}} tags=["hide-input"]
GPU = records.load_search_records(records.GPU_SEARCH_FILE, missing_ok=True)
gpu_found = ch.search_summary(GPU, ch.search_table(GPU, fraction=P.collapse_fraction, min_peak=P.collapse_min_peak,
                                                   stuck_below=P.stuck_below))
GPU_STREAMS = ch.gpu_streams(gpu_found)
glue_md("gpu_common", ch.search_common_text(gpu_found) or "none (no run recorded)")
glue("gpu_n_runs", gpu_found["n_runs"])
for name, value in ch.gpu_summary(GPU_STREAMS).items():
    glue(name, value)
glue_table("gpu_table", ch.gpu_rows(GPU_STREAMS), ch.GPU_COLUMNS, floatfmt=".3f", display=True)
glue_md("gpu_text", ch.gpu_text(gpu_found, GPU_STREAMS))
fig = ch.plot_gpu_curves(GPU)
glue("runtime_s", time.perf_counter() - t_start);

# %% tags=["remove-cell"]
# NBVAL_CHECK_OUTPUT
print(ch.check_text(P, RUNS, KS, STATS, JUDGED))

# %% [markdown]
# ## Summary
#
# ```{ntknb-claims-summary}
# ```
#
# ## Exercises
#
# 1. *Predict first, then rerun.* With `-p epochs 30`, is catastrophic overfitting of FGSM-AT
#    more or less likely to show? What does the chapter's criterion need
#    (`collapse_fraction`, `collapse_min_peak`)?
#
#    ```{admonition} Solution
#    :class: dropdown
#    Lasting collapse is reported for longer training (Wong et al. 2020; Andriushchenko &
#    Flammarion 2020), so more epochs make it more likely. By the criterion, a run collapses
#    when its PGD accuracy first peaks above `collapse_min_peak` and later falls below
#    `collapse_fraction` of that peak; the rerun's table and `co_n_collapsed` say whether it did.
#    ```
#
# 2. *Predict first.* Why can a random start (FGSM-RS) or per-sample noise prevent the collapse,
#    while plain FGSM from $x$ cannot?
#
#    ```{admonition} Solution
#    :class: dropdown
#    Plain FGSM always steps to a corner chosen by the sign of the gradient at $x$: the network
#    can learn to make that one step useless (gradient masking at $x$) while staying fragile a
#    little further inside the ball. Starting from random points of the ball forces the
#    network to be robust around many points, and per-sample noise removes any perturbation
#    shared across the batch that the network could learn as a shortcut.
#    ```
#
# 3. *Implement it: the gradient alignment.* The ladder's right-hand panel is the alignment of
#    {cite}`andriushchenko2020understanding`: per example, the cosine between the input gradient
#    of the loss at $x$ and at a noisy point $\mathrm{clip}(x + \eta, 0, 1)$. Write
#    `gradient_alignment(loss_fn, x, y, eta)` returning one cosine per example, for a per-example
#    loss `loss_fn(x, y) -> (n,)`, and check it with `exercises.check_gradient_alignment(gradient_alignment)`
#    (reference: `ntknb.collapse.gradient_alignment_at`).
#
#    ````{admonition} Solution
#    :class: dropdown
#    ```python
#    import jax
#    import jax.numpy as jnp
#    from ntknb import exercises
#
#    def gradient_alignment(loss_fn, x, y, eta):
#        grad = jax.grad(lambda xx: jnp.sum(loss_fn(xx, y)))  # row i: the gradient of example i
#        g0 = grad(x).reshape(x.shape[0], -1)
#        g1 = grad(jnp.clip(x + eta, 0.0, 1.0)).reshape(x.shape[0], -1)
#        return jnp.sum(g0 * g1, 1) / (jnp.linalg.norm(g0, axis=1) * jnp.linalg.norm(g1, axis=1))
#
#    exercises.check_gradient_alignment(gradient_alignment)
#    ```
#    Summing the loss over the batch before differentiating still gives each example its own
#    gradient, because example $i$'s loss depends on $x_i$ only. A network whose alignment falls
#    towards 0 has a loss surface that is far from linear inside the $\epsilon$-ball: the one
#    signed-gradient step of FGSM no longer points where the loss is high.
#    ````
