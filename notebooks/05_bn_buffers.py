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
# # Batch-norm buffers and robustness
#
# BatchNorm {cite}`ioffe2015batch` normalises each channel with a mean and a variance. During
# training these are the statistics of the current mini-batch; at the same time the layer
# keeps running averages of them (its "buffers"), and at evaluation it normally uses those
# running averages, so that every example is processed on its own. Section 4 of
# {cite}`li2023rethinking` asks what these buffers do for adversarial robustness, and compares
# two networks trained with PGD adversarial training (PGD-AT {cite}`madry2018towards`):
#
# * **w buffer** — the usual BatchNorm: batch statistics in the training forward pass, running
#   averages at evaluation;
# * **w/o buffer** — no buffers: every BatchNorm layer *always* normalises with the statistics
#   of the current batch, in training, inside the attacks and at evaluation (the attack's
#   gradient then also flows through the batch statistics).
#
# ```{note}
# "Rethinking Adversarial Training with NTK" (arXiv:2312.02236) is an **unreviewed preprint**: it
# was submitted to ICLR 2024 and **withdrawn**. Its claims below are tested as a preprint's
# claims, not as established results.
# ```
#
# **Theorem 2** of {cite}`li2023rethinking` bounds the change of a $C$-Lipschitz $f$ when the
# normalisation with the statistics $(\Sigma, \Pi)$ estimated on all the data is replaced by
# the statistics $(\tilde\Sigma_i, \tilde\Pi_i)$ of a batch:
# $\|f(\tfrac{x - \tilde\Sigma_i}{\tilde\Pi_i}) - f(\tfrac{x - \Sigma}{\Pi})\| \le
# C\|x\|\,\|\tfrac{1}{\tilde\Pi_i} - \tfrac{1}{\Pi}\| + C\,\|\tfrac{\tilde\Sigma_i}{\tilde\Pi_i} - \tfrac{\Sigma}{\Pi}\|$
# (first step of their proof). From it the paper draws two propositions: on *clean* data the
# batch statistics are close to the running ones, so dropping the buffers changes little
# (**Proposition 1**); on *adversarial* examples they are not, so it matters (**Proposition 2**).
# Its **Fig. 2** (ResNet-18, CIFAR-10) shows clean accuracy about the same in both modes and
# robust test accuracy clearly lower without the buffers; **Figs. 3-4** show the kernel
# specialization matrices $M_{ks}$ of the C-NTK and the AE-NTK under PGD-AT in both modes, the
# AE-NTK's alignment "fainter" without buffers.
#
# **What this chapter does.** For each of `n_seeds` replicas it trains both arms from the same
# initialisation, on the same data in the same order with the same attack starts, and evaluates
# them on the same test points:
#
# 1. clean accuracy, and robust accuracy under the book's standard evaluation
#    ({mod}`ntknb.evaluation`: APGD-CE, APGD-DLR and PGD, worst case per point) and two transfer
#    attacks — from the other arm, and from the *same weights* in the other BatchNorm mode. A
#    white-box attack that is weaker than a transfer attack is the mark of gradient masking
#    {cite}`carlini2019evaluating`: batch statistics couple the examples of a batch, and could make
#    the gradient a poor guide. The robust accuracy of an arm is the worst case per point over
#    all of these;
# 2. the per-layer distance between batch and running statistics that Theorem 2 is about, on
#    clean and on adversarial batches;
# 3. the accuracy of the network without buffers at several evaluation batch sizes;
# 4. the kernel specialization matrices of both arms.
#
# Every claim is a measured claim with a threshold, a direction and preconditions registered
# before measuring in `notebooks/claims/05_bn_buffers.yaml`, with the paper's words and why
# ({mod}`ntknb.claims`), and a 95% interval; the verdicts follow from interval, threshold,
# direction and preconditions alone.
#
# **Scale.** The defaults are sized for a shared 2-core CPU: {glue:text}`n_seeds_g`
# replicas of a {glue:text}`n_params`-parameter ResNet on {glue:text}`n_train_g` MNIST training
# images average-pooled to {glue:text}`side_g` $\times$ {glue:text}`side_g` pixels,
# {glue:text}`epochs_g` epochs of PGD-AT ($\epsilon$ = {glue:text}`eps_g:.2g`),
# evaluated on {glue:text}`n_test_g` test points per replica with
# {glue:text}`eval_iter_g` iterations per attack. The paper's setting (ResNet-18, CIFAR-10,
# 200 epochs) is in `notebooks/05_bn_buffers.paper.yaml`; it needs a GPU and has not been run
# for this page. The class preset `notebooks/05_bn_buffers.quick.yaml` runs fewer replicas on a
# smaller probe: its intervals are wider, and a claim decided at the defaults may stay
# inconclusive there.
#
# **Learning objectives.** After this chapter you can
#
# 1. explain the two ways of running a BatchNorm network (with running statistics, or with the
#    statistics of the current batch) and why they could differ on adversarial examples
#    (Theorem 2);
# 2. evaluate a network whose predictions depend on the batch, and check the evaluation for
#    gradient masking with transfer attacks;
# 3. read kernel specialization matrices $M_{ks}$ of the C-NTK and the AE-NTK.
#
# **Run time.** At the defaults below this chapter ran in {glue:text}`runtime_s:.0f` s on a
# shared 2-core CPU (15-minute load average {glue:text}`load_avg_15:.1f` at its end), using
# {glue:text}`cpu_time_s:.0f` s of CPU time in the notebook's process ({doc}`../book/status`).

# %% tags=["parameters"]
seed = 0  # first seed; replica i uses seed + i (data subsample, initialisation, data order, attack starts)
n_seeds = 8  # independent replicas behind every claim
dataset = "mnist"  # "mnist" or "cifar10"
downsample = 2  # images average-pooled over downsample x downsample blocks (MNIST 28 -> 14 pixels a side)
n_train = 2000  # training images per replica (class-balanced, 10 classes)
n_test = 1000  # test points per replica (a multiple of eval_batch_size and of every entry of batch_sizes)
width = 8  # ResNet channels of the first stage (stage s has width * 2**s)
stage_sizes = [1, 1, 1]  # BasicBlocks per stage ([2, 2, 2, 2] with width 64 is ResNet-18)
epochs = 4  # training epochs
batch_size = 50  # training mini-batch size (the batch whose statistics BatchNorm uses in training)
learning_rate = 0.05  # initial SGD learning rate
momentum = 0.9  # SGD momentum
weight_decay = 5e-4  # L2 weight decay
lr_decay_epochs = [3]  # epochs after which the learning rate is multiplied by lr_decay_factor
lr_decay_factor = 0.1  # step learning-rate decay
augment = "none"  # "none", "crop" or "crop_flip" (CIFAR-10 only)
eps = 0.1  # l-inf radius of PGD-AT, of every evaluation attack and of the AE-NTK (pixels in [0, 1])
attack_steps = 3  # PGD steps of PGD-AT (step 2.5 * eps / steps, random start)
eval_iter = 20  # iterations of each attack of the standard evaluation (APGD-CE, APGD-DLR, PGD)
eval_attack_steps = 5  # PGD steps of the monitor, the batch-size check, the surrogate transfer and the AE-NTK
eval_batch_size = 100  # evaluation batch: the batch whose statistics "w/o buffer" uses at evaluation
batch_sizes = [20, 100, 200]  # evaluation batch sizes of the batch-size check (increasing)
masking_points = 100  # test points of the gradient-masking checks of the first replica's w-buffer network (0: none)
probe_per_class = 10  # probe images per class for the empirical NTK (10 classes; the paper: 50)
ks_epochs = [1, 4]  # epochs at which the kernel specialization matrices are computed

# %% tags=["hide-input"]
import os
import time

from ntknb import data, models, plotting
from ntknb.chapters import ch05_bn_buffers as ch
from ntknb.claims import glue_claims
from ntknb.report import glue, glue_table

_start, _cpu_start = time.perf_counter(), time.process_time()
P = ch.Params.from_namespace(globals())  # checks every parameter (the rules: ch.Params)
plotting.use_book_style()

# %% [markdown]
# ## The data and the network
#
# Each replica draws its own class-balanced subsample of the training and test sets (pixels in
# $[0, 1]$). To fit the budget the images are average-pooled over `downsample` $\times$
# `downsample` blocks (at the defaults MNIST's 28 $\times$ 28 pixels become 14 $\times$ 14); the
# networks and every attack see the pooled images, and $\epsilon$ is a radius on them. The
# network is a ResNet with BatchNorm after every convolution ({class}`ntknb.models.ResNet`,
# BasicBlocks).

# %%
ds = data.downsample(data.load_dataset(P.dataset), P.downsample)  # average-pooled by `downsample`
print(ds.provenance.describe())
print(f"images {ds.x_test.shape[1:]} after {P.downsample} x {P.downsample} average pooling")
model = ch.make_model(P, ds.n_classes)
params0, state0 = models.init_model(model, ds.x_test.shape[1:], seed=P.seed)
n_params, n_bn = ch.model_size(params0, state0)
print(f"ResNet with {n_params} parameters, {n_bn} BatchNorm layers")
for name, value in dict(n_params=n_params, n_bn_layers=n_bn, side_g=ds.x_test.shape[1], n_seeds_g=P.n_seeds,
                        n_train_g=P.n_train, epochs_g=P.epochs, eps_g=P.eps, n_test_g=P.n_test, eval_iter_g=P.eval_iter,
                        eval_batch_g=P.eval_batch_size, batch_size_g=P.batch_size,
                        probe_g=ds.n_classes * P.probe_per_class).items():
    glue(name, value)

# %% [markdown]
# ## 1. Both arms, over seeds (Fig. 2)
#
# Both arms train with the book's loop ({func}`ntknb.training.fit`) and the apply functions of
# {mod}`ntknb.batchnorm`. In training mode the two are the same function (batch statistics;
# the running averages are updated, and used by the w-buffer arm only); they differ in the
# *training attack*, which runs the network in evaluation mode — with the running averages in
# the w-buffer arm, with the statistics of the training batch in the w/o-buffer arm — and at
# evaluation. The figure shows the per-epoch monitor (clean and PGD accuracy on the first
# evaluation batch of test points, each arm in its own mode; thin lines: replicas). The replicas
# run one after the other, every compiled function (training steps, attacks, kernels) compiled
# once and reused; batching them with `jax.vmap` ({mod}`ntknb.replicas`) does not pay on a CPU.

# %% mystnb={"figure": {"caption": "Per-epoch monitor on the first evaluation batch of test points (size in the titles): clean accuracy (left) and PGD accuracy (right) of the network with BatchNorm buffers (blue) and without (orange), each evaluated in its own mode. Thin lines: one replica each; thick lines: mean over replicas.", "name": "fig-ch05-monitor"}}
RUNS = ch.run_seeds(P, model, ds)  # every replica: both arms trained and evaluated
M = ch.measurements(P, RUNS)  # {quantity: one value per replica}
print(f"parameter updates: {sum(r.train_seconds for r in RUNS):.0f} s; replicas: "
      + ", ".join(f"{r.seconds:.0f} s" for r in RUNS))
ch.plot_accuracy(P, RUNS);

# %% [markdown]
# **How the network without buffers is evaluated.** Its prediction for a point depends on the
# rest of its batch, so it is always evaluated on consecutive batches of `eval_batch_size`
# ({glue:text}`eval_batch_g`) test points. The standard evaluation runs once per batch
# ({func}`ntknb.batchnorm.batch_mode_evaluation`): every attack perturbs the points of the batch
# together, and each point's gradient flows through the batch statistics. (During the attacks
# the batch's misclassified points, already counted as errors, are replaced by copies of a
# correctly classified one.) The network with buffers is evaluated point by point
# ({func}`ntknb.evaluation.robust_evaluation`). Transfer attacks: the other arm's
# standard-evaluation points, and PGD points of the same weights in the other BatchNorm mode
# (for the w/o-buffer network: its weights with the running averages it kept but never used),
# each evaluated in the arm's own mode.

# %% tags=["hide-input"]
glue_table("accuracy_table", ch.accuracy_rows(M), ch.ACCURACY_COLUMNS, display=True)
glue_table("seed_table", ch.seed_rows(RUNS), ch.SEED_COLUMNS, display=True)
for name, value in ch.headline_values(P, M).items():
    glue(name, value)

# %% [markdown]
# Accuracies pooled over the replicas and their test points, with 95% intervals inside $[0, 1]$
# (first table; {func}`ntknb.stats.pooled_proportion_interval`, replicas as clusters), and per
# replica (second table; the first replica's seconds include compiling every function the others
# reuse).
# Clean test accuracy is {glue:text}`clean_acc_w_buffer:.3f` with buffers and
# {glue:text}`clean_acc_wo_buffer:.3f` without; robust accuracy (worst case over all attacks)
# {glue:text}`robust_acc_w_buffer:.3f` with and {glue:text}`robust_acc_wo_buffer:.3f` without,
# a mean gap of {glue:text}`robust_gap:.3f`. Without buffers the white-box standard evaluation
# leaves {glue:text}`suite_acc_wo_buffer:.3f`, the transfer from the w-buffer network
# {glue:text}`transfer_acc_wo_buffer:.3f` and the transfer from its own weights with running
# statistics {glue:text}`surrogate_acc_wo_buffer:.3f`: the claims `ch05.prop1_clean_close`,
# `ch05.prop2_robust_lower` and `ch05.no_masking_transfer` at the end of the page give the
# intervals and the verdicts.
#
# The network with buffers is a per-point classifier, so the book's gradient-masking checks
# {cite}`carlini2019evaluating` apply to it directly (first replica, first `masking_points` test
# points; {func}`ntknb.masking.gradient_masking_checks`):

# %% tags=["hide-input"]
print(RUNS[0].masking.text if RUNS[0].masking is not None else "masking checks not run (masking_points = 0)")
glue("masking_passed", bool(RUNS[0].masking.passed) if RUNS[0].masking is not None else None);

# %% [markdown]
# The network without buffers has no per-point predictor for these checks; the transfer attacks
# above are its check.
#
# ## 2. Theorem 2 made concrete: batch vs running statistics, layer by layer
#
# For each BatchNorm layer of the w-buffer network we compare the mean $\mu_B$ and standard
# deviation $\sigma_B$ of its input over an evaluation batch (what the network would use without
# buffers) with its running averages $\mu_R, \sigma_R$ (what it uses), on clean test batches and
# on the adversarial points of its standard evaluation. The measure is the root mean square,
# over the batch's activations, of
# $\frac{x - \mu_B}{\sigma_B} - \frac{x - \mu_R}{\sigma_R}$ — the change of the normalised
# activation that Theorem 2 bounds, in units of a normalised activation
# ({func}`ntknb.batchnorm.bn_statistics_gap`).

# %% mystnb={"figure": {"caption": "For each BatchNorm layer of the PGD-AT network with buffers (input to output), the root mean square change of the normalised activation when its running statistics are replaced by the statistics of the evaluation batch, on clean (blue) and adversarial (orange) test batches; mean over replicas.", "name": "fig-ch05-gaps"}} tags=["hide-input"]
ch.plot_gaps(RUNS);

# %% [markdown]
# Averaged over the {glue:text}`n_bn_layers` BatchNorm layers and the replicas, replacing the
# running statistics by the batch statistics changes a normalised activation by
# {glue:text}`norm_gap_clean:.3f` (rms) on clean batches and by {glue:text}`norm_gap_adv:.3f` on
# adversarial ones, a mean ratio of {glue:text}`norm_gap_ratio:.2f` (claim
# `ch05.props_statistics_gap`); at the first layer, right after the input,
# {glue:text}`first_layer_gap_clean:.3f` and {glue:text}`first_layer_gap_adv:.3f`.
# Propositions 1-2 assume that the buffers hold the statistics of *clean* data. Under PGD-AT
# they do not: the network trains — and BatchNorm updates its running averages — on
# *adversarial* batches, so its buffers estimate the statistics of adversarial inputs, and clean
# batches need not sit closer to them. Theorem 2 only bounds how *far apart* the two
# normalisations can put the outputs, not which one is more accurate.
#
# ## 3. Is it the batch size?
#
# Without buffers the network's prediction depends on the batch it is evaluated in, so the
# evaluation batch size is part of the model. We evaluate each replica's w/o-buffer network on
# its test points in batches of each size in `batch_sizes`, clean and under
# PGD-`eval_attack_steps` on exact batches; the w-buffer network under the same attack is the
# reference.

# %% tags=["hide-input"]
glue_table("batch_size_table", ch.batch_size_rows(P, M), ch.BATCH_SIZE_COLUMNS, display=True);

# %% [markdown]
# Without buffers the PGD accuracy is {glue:text}`bs_pgd_smallest:.3f` in batches of
# {glue:text}`bs_smallest` and {glue:text}`bs_pgd_largest:.3f` in batches of
# {glue:text}`bs_largest` (with buffers, under the same attack, {glue:text}`bs_pgd_w:.3f`).
# Theorem 2, read with Proposition 2, predicts that the network without buffers gains as the
# batch grows (its statistics approach those of all the data); the claim
# `ch05.theorem2_batch_size` gives the interval of the change over the replicas. The network was
# trained with batch statistics of batches of {glue:text}`batch_size_g` images, so batches much
# smaller or larger than that are also a change of the model, not only of the estimate.
#
# ## 4. Kernel specialization in both arms (Figs. 3-4)
#
# The kernel specialization matrix $M_{ks}$ ({func}`ntknb.metrics.specialization_matrix`,
# {cite}`shan2021theory`) compares, for each logit $i$ (row) and class $j$ (column), the
# alignment of the logit's empirical NTK $\Theta^{i,i}$ on a class-balanced probe set with the
# class indicator $Y_j Y_j^\top$, normalised by the mean over logits; a bright diagonal means each
# logit's kernel has specialised to its own class, and KS $= \mathrm{Tr}(M_{ks})/k$ summarises it
# (1: no specialization). We compute it for the C-NTK (clean probe images, clean labels CL) and
# the AE-NTK (PGD examples of the probe images) under clean labels and under adversarial labels
# AL (the network's predictions on the adversarial images), for each arm in its own mode, at the
# epochs `ks_epochs`. Without buffers the kernel is that of the map
# $\theta \mapsto f_\theta(X_\text{probe})$ with the whole probe set as one batch. The figure
# shows the last epoch, averaged over the replicas.

# %% mystnb={"figure": {"caption": "Kernel specialization matrices $M_{ks}$ (row: logit, column: class) at the last tracked epoch, averaged over replicas: with buffers (top row) and without (bottom row), for the C-NTK with clean labels (CL), the AE-NTK with clean labels and the AE-NTK with adversarial labels (AL). One colour scale for all panels; a bright diagonal means each logit's kernel is aligned with its own class.", "name": "fig-ch05-ks"}} tags=["hide-input"]
ch.plot_ks(P, RUNS);

# %% tags=["hide-input"]
glue_table("ks_table", ch.ks_rows(P, M), ["kernel", "arm"] + [f"KS epoch {e}" for e in P.ks_epochs],
           display=True);

# %% [markdown]
# The paper reads its Fig. 4 as the AE-NTK specialising less without buffers, "which means the
# model does not heavily depend on the corresponding class's features", and sets it against the
# C-NTK, whose alignment "happens in both modes". The last rows of the table take that contrast
# as it stands: the gap w − w/o at epoch {glue:text}`ks_last_epoch` is, on average,
# {glue:text}`ks_cntk_gap:.3f` for the C-NTK, {glue:text}`ks_ae_cl_gap:.3f` for the AE-NTK under
# CL and {glue:text}`ks_ae_al_gap:.3f` under AL; the AE-NTK's gap minus the C-NTK's is
# {glue:text}`ks_ae_cl_vs_cntk:.3f` (CL) and {glue:text}`ks_ae_al_vs_cntk:.3f` (AL). The C-NTK is
# the control: whatever separates the two arms' kernels without adversarial inputs (among it, how
# the kernel of the network without buffers is defined: here the kernel of the whole probe set
# evaluated as one batch; the paper does not say how it computed it) shows in its gap too. Figs.
# 4c-d are read at the first tracked epoch (epoch {glue:text}`ks_first_epoch`), AL against CL
# with buffers. The claims `ch05.fig3_cntk_aligned`, `ch05.fig4_fainter_cl_vs_cntk`,
# `ch05.fig4_fainter_al_vs_cntk` and `ch05.fig4_al_earlier` give the intervals. These kernels come
# from {glue:text}`epochs_g` epochs and a probe of {glue:text}`probe_g` images; the paper's from
# 200 epochs and 500 probe images.
#
# ## The claims, measured
#
# Thresholds, directions and preconditions were registered before this run, with the paper's
# words and the reasons for each bar, in `notebooks/claims/05_bn_buffers.yaml`. The paper gives
# no numbers for Fig. 2; the bars for "close" and "quite different" come from the numbers it does
# give with the same words (its Table 1 and Sec. 5), and each claim block shows its bar. A
# precondition that fails (an arm that did not learn the task, a white-box attack already at
# the tolerance, a kernel that does not specialise) makes its claim "not testable at this scale".
# Differences of accuracies are per replica on the same points, with logit-t intervals inside
# $[-1, 1]$; kernel quantities have t intervals over the {glue:text}`n_seeds` replicas.

# %% tags=["remove-input"]
claims = ch.claims(P, M)
glue("n_seeds", P.n_seeds)
glue("n_test", P.n_seeds * P.n_test)
glue_claims(claims)

# %% [markdown]
# ## Summary
#
# ```{ntknb-claims-summary}
# ```
#
# The verdicts above are for a small ResNet trained for a few epochs on an MNIST subset; the
# paper's setting is ResNet-18 on CIFAR-10 for 200 epochs. The summary table of Section 1 and the
# claims say how far the effect of the buffers shows at this scale. Two points hold whatever the
# verdicts: without buffers the network is a function of its batch, so its accuracy is only
# defined together with an evaluation batch (Section 3); and under PGD-AT the buffers estimate
# the statistics of adversarial, not clean, batches (Section 2), which is not the premise of
# Propositions 1-2.

# %% tags=["remove-cell"]
# NBVAL_CHECK_OUTPUT
print(ch.summary_text(P, M))

# %% tags=["remove-cell"]
runtime = glue("runtime_s", time.perf_counter() - _start)
glue("cpu_time_s", time.process_time() - _cpu_start)
glue("load_avg_15", os.getloadavg()[2])
print(f"notebook runtime: {runtime:.0f} s")

# %% [markdown]
# ## Exercises
#
# 1. *Predict first, then rerun.* With `-p eval_batch_size 20`, will the robust accuracy of the
#    network without buffers move further from the one with buffers? Use Theorem 2.
#
#    ```{admonition} Solution
#    :class: dropdown
#    The bound of Theorem 2 grows with the distance between the batch statistics and the
#    running ones; a batch of 20 estimates them with more noise than one of 100, and one
#    adversarial point moves them more, so one expects a larger gap. Section 3 measures the same
#    question over `batch_sizes` on the trained networks, with intervals over the replicas.
#    ```
#
# 2. *Predict first.* Why does an attack on the network without buffers differ from one on the
#    network with buffers, even for the same weights?
#
#    ```{admonition} Solution
#    :class: dropdown
#    Without buffers the normalisation of every example depends on the whole batch, so the
#    attack's gradient also flows through the batch mean and variance: perturbing one image
#    changes the statistics used for all the others. With buffers each image is normalised on
#    its own and the attack is the usual per-example one. This is why the chapter adds transfer
#    attacks: if the coupling made the gradient a poor guide (gradient masking), points found
#    on a per-example surrogate would break more of the network than its own white-box attack.
#    ```
#
# 3. *Implement it: BatchNorm with and without buffers.* Write
#    `batch_norm(x, scale, bias, running_mean, running_var, use_buffers)` for images `x` of shape
#    $(n, H, W, C)$ and per-channel parameters of shape $(C,)$:
#
#    $$\mathrm{scale}\,(x - \mu)/\sqrt{\sigma^2 + 10^{-5}} + \mathrm{bias},$$
#
#    where $(\mu, \sigma^2)$ are the
#    running buffers when `use_buffers` is true ("w buffer") and otherwise the batch's own mean
#    and (biased) variance over $n, H, W$ ("w/o buffer").
#    `ntknb.exercises.check_batch_norm(batch_norm)` compares it with the layer of the chapter's
#    networks, `flax.linen.BatchNorm(momentum=0.9)`.
#
#    ````{admonition} Solution
#    :class: dropdown
#    ```python
#    import numpy as np
#    from ntknb import exercises
#
#    def batch_norm(x, scale, bias, running_mean, running_var, use_buffers):
#        if use_buffers:
#            mean, var = running_mean, running_var
#        else:  # the batch's own statistics over n, H, W
#            mean, var = x.mean(axis=(0, 1, 2)), x.var(axis=(0, 1, 2))
#        return scale * (x - mean) / np.sqrt(var + 1e-5) + bias
#
#    exercises.check_batch_norm(batch_norm)
#    ```
#    Without buffers, changing one image changes `mean` and `var` and so every image's output:
#    try it on your function, perturbing `x[0]` and comparing `batch_norm(...)[1]` before and
#    after. This coupling is what an attack on the network without buffers can exploit.
#    ````
