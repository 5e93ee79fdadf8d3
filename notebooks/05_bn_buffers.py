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
# {cite}`li2023rethinking` asks what these buffers do for adversarial robustness, and
# compares two ways of evaluating the same network:
#
# * **w buffer** — the usual behaviour: running mean and variance at evaluation;
# * **w/o buffer** — no buffers: every BatchNorm layer *always* uses the statistics of the
#   current batch, at evaluation and inside the attack that generates the adversarial
#   examples (whose gradient then also flows through the batch statistics).
#
# **Theorem 2** of {cite}`li2023rethinking` bounds the change of a $C$-Lipschitz $f$ when the
# normalisation with the statistics $(\Sigma, \Pi)$ estimated on all the data is replaced by
# the statistics $(\tilde\Sigma_i, \tilde\Pi_i)$ of a batch:
# $\|f(\tfrac{x - \tilde\Sigma_i}{\tilde\Pi_i}) - f(\tfrac{x - \Sigma}{\Pi})\| \le
# C\|x\|\,\|\tfrac{1}{\tilde\Pi_i} - \tfrac{1}{\Pi}\| + C\,\|\tfrac{\tilde\Sigma_i}{\tilde\Pi_i} - \tfrac{\Sigma}{\Pi}\|$
# (first step of their proof). From it the paper draws two propositions: on *clean* data the
# batch statistics are close to the running ones, so dropping the buffers changes little
# (Proposition 1); on *adversarial* examples they are not, so it matters (Proposition 2).
# Its Fig. 2 (ResNet-18, CIFAR-10) shows clean accuracy about the same in both modes and
# robust test accuracy clearly lower without the buffers; Figs. 3-4 show the kernel
# specialization matrices $M_{ks}$ of the C-NTK and the AE-NTK under PGD-AT in both modes.
#
# This chapter measures all of that on a small ResNet, and adds two checks the paper does
# not make: the per-layer distance between batch and running statistics that Theorem 2 is
# about, on clean and on adversarial batches, and whether the effect depends on the
# evaluation batch size.
#
# **Set-up.** Both modes share the training: in training mode they are identical (batch
# statistics, running averages updated), so each training strategy gives *one* network,
# evaluated in both modes. Training uses the book's loop ({mod}`ntknb.training`), whose
# PGD-AT generates the training adversarial examples with the running averages (evaluation
# mode), and whose BatchNorm updates its running averages from the batches it trains on — for
# PGD-AT, the adversarial ones. The two modes are apply functions of {mod}`ntknb.batchnorm`
# passed to the same evaluator, attack and kernel tracker as in the other chapters. "Batch"
# at evaluation means consecutive chunks of `eval_batch_size` test (or training) images.
#
# The parameters below are the defaults: every one can be changed with
# `ntknb run 05_bn_buffers -p NAME VALUE` (see {doc}`../book/running`);
# `notebooks/05_bn_buffers.paper.yaml` holds the paper's setting (ResNet-18, CIFAR-10).
#
# **Learning objectives.** After this chapter you can
#
# 1. explain the two ways of evaluating a BatchNorm network (with running statistics, or with the
#    statistics of the current batch) and why they differ on adversarial examples (Theorem 2);
# 2. measure clean and robust accuracy of the same adversarially trained network in both modes,
#    and check that the difference is not an artefact of the evaluation batch size;
# 3. read kernel specialization matrices $M_{ks}$ of the C-NTK and the AE-NTK.
#
# **Run time.** At the defaults below this chapter ran in {glue:text}`runtime_s:.0f` s on a
# shared 2-core CPU ({doc}`../book/status`).

# %% tags=["parameters"]
seed = 0  # PRNG seed: data subsample, probe set, initialisation, data order, attack starts
dataset = "mnist"  # "mnist" or "cifar10"
n_train = 2000  # training images (class-balanced, 10 classes)
n_test = 500  # test images (a multiple of eval_batch_size and of every entry of batch_sizes)
n_eval_train = 100  # training images on which the training-set curves are measured
width = 8  # ResNet channels of the first stage (stage s has width * 2**s)
stage_sizes = [1, 1, 1]  # BasicBlocks per stage ([2, 2, 2, 2] with width 64 is ResNet-18)
epochs = 4  # training epochs
batch_size = 50  # training mini-batch size
learning_rate = 0.05  # initial SGD learning rate
momentum = 0.9  # SGD momentum
weight_decay = 5e-4  # L2 weight decay
lr_decay_epochs = [3]  # epochs after which the learning rate is multiplied by lr_decay_factor
lr_decay_factor = 0.1  # step learning-rate decay
augment = "none"  # "none", "crop" or "crop_flip"
eps = 0.1  # l-inf radius of PGD-AT, of the evaluation attack and of the AE-NTK (pixels in [0, 1])
attack_steps = 3  # PGD steps of PGD-AT (step 2.5 * eps / steps, random start)
eval_attack_steps = 5  # PGD steps of every evaluation attack and of the AE-NTK probe
eval_batch_size = 100  # evaluation batch: the batch whose statistics "w/o buffer" uses
eval_every = 1  # evaluate both modes every this many epochs (and at the last one)
probe_per_class = 5  # probe images per class for the empirical NTK (10 classes)
ks_epochs = [1, 4]  # epochs at which the kernel specialization matrices are computed
batch_sizes = [20, 100, 500]  # evaluation batch sizes of the batch-size check

# %% tags=["hide-input"]
import time

from ntknb import batchnorm, data, models, plotting
from ntknb.chapters import ch05_bn_buffers as ch
from ntknb.report import glue

_start = time.perf_counter()
P = ch.Params.from_namespace(globals())  # checks every parameter (the rules: ch.Params)
plotting.use_book_style()

# %% [markdown]
# ## The data and the network
#
# A class-balanced subsample of the training and test sets (pixels in $[0, 1]$) and a ResNet
# with BatchNorm after every convolution ({class}`ntknb.models.ResNet`, BasicBlocks).

# %%
ds = data.load_dataset(P.dataset)
task = data.make_task(ds, n_train=P.n_train, n_test=P.n_test, seed=P.seed)
print(task.provenance.describe())
model = ch.make_model(P, task.n_classes)
params0, state0 = models.init_model(model, task.x_train.shape[1:], seed=P.seed)
n_params, n_bn = ch.model_size(params0, state0)
print(f"train {task.x_train.shape}, test {task.x_test.shape}; ResNet with {n_params} parameters, "
      f"{n_bn} BatchNorm layers")
glue("n_params", n_params)
glue("n_bn_layers", n_bn);

# %% [markdown]
# ## 1. Accuracy along training in both modes (Fig. 2)
#
# We train the network twice from the same initialisation — standard training and PGD-AT —
# and after every `eval_every` epochs measure clean and PGD accuracy on a subset of the
# training data and on the test data, in both modes. The PGD-AT run also records the
# empirical NTK on a class-balanced probe set at the epochs `ks_epochs`, in both modes (used
# in Section 4).

# %%
T = ch.train_strategies(P, model, params0, state0, task)  # both strategies, both modes evaluated
for strategy, run in T.runs.items():
    print(f"{ch.STRATEGIES[strategy]}: {run.train_seconds:.0f} s of parameter updates")
plotting.plot_bn_accuracy_curves(ch.accuracy_curves(T), ch.MODE_LABELS);

# %%
for name, value in ch.accuracy_values(P, T).items():
    glue(name, value)
ch.show_table(ch.accuracy_rows(T), ch.ACCURACY_COLUMNS)

# %% [markdown]
# After the last epoch the PGD-AT network has clean test accuracy
# {glue:text}`clean_acc_w_buffer:.3f` with the buffers and {glue:text}`clean_acc_wo_buffer:.3f`
# without — {glue:text}`clean_verdict` — and PGD test accuracy
# {glue:text}`robust_acc_w_buffer:.3f` with the buffers against
# {glue:text}`robust_acc_wo_buffer:.3f` without: without the buffers it is
# {glue:text}`robust_verdict` (the sampling noise of a difference of two accuracies on the
# test subset is at most {glue:text}`acc_noise:.3f`). On the training subset the PGD accuracy is
# {glue:text}`train_robust_acc_w_buffer:.3f` against {glue:text}`train_robust_acc_wo_buffer:.3f`.
# The standard-trained network has clean test accuracy {glue:text}`std_clean_acc_w_buffer:.3f`
# with and {glue:text}`std_clean_acc_wo_buffer:.3f` without buffers, and PGD test accuracy
# {glue:text}`std_robust_acc_w_buffer:.3f` with and {glue:text}`std_robust_acc_wo_buffer:.3f`
# without: without buffers its PGD accuracy is {glue:text}`std_robust_verdict`.
#
# Along training (figure), the network without buffers can be ahead in the first epochs: while
# the weights change fast, the running averages (an exponential moving average with momentum
# 0.9 over mini-batches) lag behind them, and the current batch's statistics are the better
# estimate; the curves meet once training slows down after the learning-rate decay.
#
# So, at these parameters, the experiment {glue:text}`fig2_verdict` the paper's Fig. 2 (clean
# accuracy the same in both modes, robust test accuracy clearly lower without buffers). Two
# things differ between
# the modes on adversarial data, and they pull in opposite directions: the adversarial batch
# is normalised with statistics that differ from the running ones (Proposition 2), and the
# attack itself is different — it differentiates through the batch statistics, so each
# example's gradient is coupled to the rest of the batch, which can make a few PGD steps
# *less* effective (a form of gradient masking) as well as more. A network that is not
# robust at all, like the standard-trained one here, can therefore look more robust without
# buffers against the same PGD budget; that is a property of the attack, not robustness.
#
# ## 2. Theorem 2 made concrete: batch vs running statistics, layer by layer
#
# For each BatchNorm layer we compare the mean $\mu_B$ and standard deviation $\sigma_B$ of
# its input over a batch (the statistics the "w/o buffer" network uses) with its running
# averages $\mu_R, \sigma_R$ (what the "w buffer" network uses), with the network run
# without buffers on clean test batches and on adversarial test batches (PGD against the
# network without buffers, the examples it is evaluated on). The measure is the root mean
# square, over the batch's activations, of
# $\frac{x - \mu_B}{\sigma_B} - \frac{x - \mu_R}{\sigma_R}$ — the change of the normalised
# activation that Theorem 2 bounds, in units of a normalised activation
# ({func}`ntknb.batchnorm.bn_statistics_gap`; it also returns the two ingredients, the mean
# shift $(\mu_B - \mu_R)/\sigma_R$ and $\log(\sigma_B/\sigma_R)$).

# %%
GAPS = ch.statistics_gaps(P, model, T, task)  # {(strategy, clean | adversarial): per-layer gaps}
fig = ch.plot_gaps(GAPS)
ch.show_table(ch.gap_rows(T, GAPS), ch.GAP_COLUMNS)
for name, value in ch.gap_values(GAPS).items():
    glue(name, value)

# %% [markdown]
# Averaged over the {glue:text}`n_bn_layers` BatchNorm layers, replacing the running
# statistics by the batch statistics changes a normalised activation of the PGD-AT network by
# {glue:text}`pgd_clean_norm_gap:.3f` (rms) on clean test batches and by
# {glue:text}`pgd_adversarial_norm_gap:.3f` on adversarial ones, a ratio of
# {glue:text}`pgd_gap_ratio:.2f`; for the standard-trained network the figures are
# {glue:text}`standard_clean_norm_gap:.3f` and {glue:text}`standard_adversarial_norm_gap:.3f`.
# For the standard-trained network, adversarial batches are {glue:text}`standard_gap_verdict`
# the running statistics than clean batches; for the PGD-AT network they are
# {glue:text}`pgd_gap_verdict` them. The reason for the PGD-AT case is structural, not a
# matter of scale: in PGD-AT the network trains — and BatchNorm updates its running averages —
# on *adversarial* batches, so its buffers estimate the statistics of adversarial inputs, and
# it is the clean batches that sit off them (most at the first BatchNorm layer, right after
# the input: {glue:text}`pgd_first_layer_clean_gap:.3f` on clean against
# {glue:text}`pgd_first_layer_adv_gap:.3f` on adversarial batches). Propositions 1 and 2
# assume the buffers hold clean-data statistics, which is true for standard training only.
#
# The last column of the table puts the accuracy difference between the two modes next to the
# gap (clean accuracy for clean batches, PGD accuracy for adversarial ones). All gaps are
# small — a few hundredths of a normalised activation — and so are most accuracy
# differences; Theorem 2 only bounds how *far apart* the outputs of the two networks can be,
# not which one is more accurate, and the accuracy difference on adversarial data also
# contains the difference between the two attacks (Section 1), which the statistics gap does
# not see.
#
# ## 3. Is it the batch size?
#
# Without buffers, the network's prediction depends on the batch it is evaluated in, so the
# evaluation batch size is part of the model. We evaluate both final networks on the test
# data at several batch sizes (the "w buffer" numbers change only through the PGD random
# starts).

# %%
BY_BS = ch.batch_size_check(P, model, T, task)  # {strategy: {batch size: {mode: (clean, robust)}}}
ch.show_table(ch.batch_size_rows(P, BY_BS), ch.BATCH_SIZE_COLUMNS)
for name, value in ch.batch_size_values(P, BY_BS).items():
    glue(name, value)

# %% [markdown]
# For the PGD-AT network the robust-accuracy gap (w buffer minus w/o buffer) ranges from
# {glue:text}`bs_robust_gap_min:.3f` to {glue:text}`bs_robust_gap_max:.3f` over evaluation
# batches of {glue:text}`bs_smallest` to {glue:text}`bs_largest` images, so the buffers help
# {glue:text}`bs_verdict`: without buffers, the PGD accuracy is
# {glue:text}`bs_wo_robust_smallest:.3f` with batches of {glue:text}`bs_smallest` and
# {glue:text}`bs_wo_robust_largest:.3f` with batches of {glue:text}`bs_largest` (with buffers
# {glue:text}`bs_w_robust_largest:.3f`). The size of the effect is therefore tied to the
# evaluation batch size — the smaller the batch, the noisier its statistics and the further
# they can be pushed by the attack — and a single batch size does not characterise it.
#
# ## 4. Kernel specialization in both modes (Figs. 3-4)
#
# The kernel specialization matrix $M_{ks}$ ({func}`ntknb.metrics.specialization_matrix`)
# compares, for each logit $i$ (row) and class $j$ (column), the alignment of the logit's
# empirical NTK $\Theta^{i,i}$ on the probe set with the class indicator $Y_j Y_j^\top$,
# normalised by the mean over logits; a bright diagonal means each logit's kernel has
# specialised to its own class. We show it for the C-NTK (clean probe images, clean labels CL)
# and the AE-NTK (PGD examples of the probe images) under clean labels and under adversarial
# labels AL (the network's predictions on the adversarial images), in both modes, at the
# epochs `ks_epochs` of PGD-AT. Without buffers the kernel is that of the map
# $\theta \mapsto f_\theta(X_\text{probe})$ with the whole probe set as one batch, and the
# probe's adversarial examples are made with batch statistics.

# %%
plotting.plot_specialization_matrices(ch.ks_panels(P, T));
KS = ch.ks_strengths(P, T)
ch.show_table(ch.ks_rows(P, KS), ["mode", "kernel"] + [f"KS epoch {e}" for e in P.ks_epochs])
for name, value in ch.ks_values(P, KS).items():
    glue(name, value)

# %% [markdown]
# KS $= \mathrm{Tr}(M_{ks})/k$ summarises each matrix (1: no specialization). At epoch
# {glue:text}`ks_last_epoch` the C-NTK has KS {glue:text}`ks_c_cl_w_buffer:.3f` with the
# buffers and {glue:text}`ks_c_cl_wo_buffer:.3f` without; the AE-NTK under clean labels
# {glue:text}`ks_ae_cl_w_buffer:.3f` and {glue:text}`ks_ae_cl_wo_buffer:.3f`, and under
# adversarial labels {glue:text}`ks_ae_al_w_buffer:.3f` and {glue:text}`ks_ae_al_wo_buffer:.3f`.
# The largest deviation from 1 is {glue:text}`ks_max_dev:.3f`: {glue:text}`ks_verdict`.
# (Under adversarial labels a class that the network never predicts on the probe has an
# empty column, drawn blank.) The paper reads its Fig. 4 as the AE-NTK specialising less
# without buffers, i.e. the network relying less on class-specific features for adversarial
# examples; reproducing that needs the longer training of the `paper` setting.

# %% tags=["remove-cell"]
# NBVAL_CHECK_OUTPUT
print(ch.summary_text(P, T, GAPS, BY_BS))

# %% tags=["remove-cell"]
runtime = time.perf_counter() - _start
glue("runtime_s", runtime)
print(f"notebook runtime: {runtime:.0f} s")

# %% [markdown]
# ## Summary and limits
#
# * **Clean accuracy** of the PGD-AT network is {glue:text}`clean_verdict` in the two modes
#   ({glue:text}`clean_acc_w_buffer:.3f` and {glue:text}`clean_acc_wo_buffer:.3f`;
#   Proposition 1).
# * **Robust accuracy.** At the default parameters (a {glue:text}`n_params`-parameter ResNet,
#   a few epochs on an MNIST subset) the experiment {glue:text}`fig2_verdict` the paper's
#   claim: PGD accuracy of the PGD-AT network {glue:text}`robust_acc_w_buffer:.3f` with and
#   {glue:text}`robust_acc_wo_buffer:.3f` without buffers at evaluation batches of
#   `eval_batch_size` images. Without buffers, robustness is a function of the evaluation
#   batch: the gap ranges from {glue:text}`bs_robust_gap_min:.3f` to
#   {glue:text}`bs_robust_gap_max:.3f` over batch sizes {glue:text}`bs_smallest` to
#   {glue:text}`bs_largest` (Section 3); and PGD through batch statistics is a different
#   attack, not a uniformly stronger one (Section 1: standard training).
# * **Theorem 2** in numbers: replacing running by batch statistics moves the PGD-AT
#   network's normalised activations by {glue:text}`pgd_clean_norm_gap:.3f` (rms) on clean
#   and {glue:text}`pgd_adversarial_norm_gap:.3f` on adversarial batches. PGD-AT estimates
#   its buffers on adversarial batches, so the premise of Propositions 1-2 — buffers close to
#   clean statistics — holds for standard training, not for PGD-AT.
# * **Kernels** (largest deviation of KS from 1: {glue:text}`ks_max_dev:.3f`):
#   {glue:text}`ks_verdict`.
# * The `paper` parameter file (ResNet-18, full CIFAR-10, 200 epochs) needs a GPU and has not
#   been run for this page; all numbers here are from the default parameters.
#
# Runtime of this notebook at the default parameters: {glue:text}`runtime_s:.0f` s.

# %% [markdown]
# ## Exercises
#
# 1. *Predict first, then rerun.* With `-p eval_batch_size 20`, will the "w/o buffer" robust
#    accuracy move further from the "w buffer" one? Use Theorem 2.
#
#    ```{admonition} Solution
#    :class: dropdown
#    The bound of Theorem 2 grows with the distance between the batch statistics and the
#    running ones; a smaller batch estimates them with more noise, so one expects a larger gap
#    between the two modes. Section 3 ("Is it the batch size?") measures the same question
#    over `batch_sizes` on the trained network.
#    ```
#
# 2. *Predict first.* Why does the attack in the "w/o buffer" mode differ from the one in the
#    "w buffer" mode even for the same weights?
#
#    ```{admonition} Solution
#    :class: dropdown
#    Without buffers the normalisation of every example depends on the whole batch, so the
#    attack's gradient also flows through the batch mean and variance: perturbing one image
#    changes the statistics used for all the others. With buffers each image is normalised on
#    its own and the attack is the usual per-example one.
#    ```
