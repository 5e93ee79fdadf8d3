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

# %%
import time

import jax
import numpy as np
from IPython.display import Markdown, display

from ntknb import batchnorm, data, models, ntk_dynamics, plotting, training
from ntknb.report import glue, markdown_table
from ntknb.validation import check_choice, check_float, check_int, check_sequence

_start = time.perf_counter()
seed = check_int("seed", seed, min=0)
dataset = check_choice("dataset", dataset, ["mnist", "cifar10"])
n_train = check_int("n_train", n_train, min=20)
n_test = check_int("n_test", n_test, min=10)
n_eval_train = check_int("n_eval_train", n_eval_train, min=1, max=n_train)
width = check_int("width", width, min=1)
stage_sizes = check_sequence("stage_sizes", stage_sizes, of=int, min_length=1, max_length=6)
epochs = check_int("epochs", epochs, min=1)
batch_size = check_int("batch_size", batch_size, min=2, max=n_train)
learning_rate = check_float("learning_rate", learning_rate, min=0.0, min_inclusive=False)
momentum = check_float("momentum", momentum, min=0.0, max=1.0, max_inclusive=False)
weight_decay = check_float("weight_decay", weight_decay, min=0.0)
lr_decay_epochs = check_sequence("lr_decay_epochs", lr_decay_epochs, of=int, max_length=4)
lr_decay_factor = check_float("lr_decay_factor", lr_decay_factor, min=0.0, max=1.0, min_inclusive=False)
augment = check_choice("augment", augment, list(training.AUGMENTATIONS))
eps = check_float("eps", eps, min=0.0, max=1.0, min_inclusive=False)
attack_steps = check_int("attack_steps", attack_steps, min=1)
eval_attack_steps = check_int("eval_attack_steps", eval_attack_steps, min=1)
eval_batch_size = check_int("eval_batch_size", eval_batch_size, min=2, max=n_test)
eval_every = check_int("eval_every", eval_every, min=1)
probe_per_class = check_int("probe_per_class", probe_per_class, min=1, max=100)
ks_epochs = check_sequence("ks_epochs", ks_epochs, of=int, min_length=1, max_length=6)
batch_sizes = check_sequence("batch_sizes", batch_sizes, of=int, min_length=2, max_length=5)
if min(stage_sizes) < 1:
    raise ValueError(f"parameter 'stage_sizes' must hold positive integers, got {stage_sizes}")
if any(not 1 <= e <= epochs for e in ks_epochs) or sorted(set(ks_epochs)) != list(ks_epochs):
    raise ValueError(f"parameter 'ks_epochs' must be increasing epochs in [1, epochs={epochs}], got {ks_epochs}")
for name, size, n in (("eval_batch_size", eval_batch_size, n_test), ("eval_batch_size", eval_batch_size, n_eval_train)):
    if n % size:
        raise ValueError(f"parameter '{name}'={size} must divide n_test={n_test} and n_eval_train={n_eval_train}")
if any(b < 2 or n_test % b for b in batch_sizes):
    raise ValueError(f"parameter 'batch_sizes' must hold divisors (>= 2) of n_test={n_test}, got {batch_sizes}")
config = training.TrainConfig(
    epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, momentum=momentum,
    weight_decay=weight_decay, lr_decay_epochs=tuple(lr_decay_epochs), lr_decay_factor=lr_decay_factor,
    eps=eps, attack_steps=attack_steps, eval_attack_steps=eval_attack_steps, eval_batch_size=eval_batch_size,
    augment=augment, seed=seed,
)  # validates the schedule (e.g. lr_decay_epochs inside [1, epochs - 1])
plotting.use_book_style()
MODE_LABELS = {"buffer": "w buffer", "batch": "w/o buffer"}


def table(rows, columns):
    """Show a result table (rendered as Markdown)."""
    display(Markdown(markdown_table(rows, columns, floatfmt=".3f")))

# %% [markdown]
# ## The data and the network
#
# A class-balanced subsample of the training and test sets (pixels in $[0, 1]$) and a ResNet
# with BatchNorm after every convolution ({class}`ntknb.models.ResNet`, BasicBlocks).

# %%
ds = data.load_dataset(dataset)
task = data.make_task(ds, n_train=n_train, n_test=n_test, seed=seed)
print(task.provenance.describe())
model = models.make_model("resnet", task.n_classes, width=width, stage_sizes=tuple(stage_sizes))
params0, state0 = models.init_model(model, task.x_train.shape[1:], seed=seed)
n_params = sum(int(np.prod(p.shape)) for p in jax.tree_util.tree_leaves(params0))
n_bn = sum(1 for path, _ in jax.tree_util.tree_flatten_with_path(state0["batch_stats"])[0] if path[-1].key == "mean")
print(f"train {task.x_train.shape}, test {task.x_test.shape}; ResNet with {n_params} parameters, "
      f"{n_bn} BatchNorm layers")
glue("n_params", n_params)
glue("n_bn_layers", n_bn)

# %% [markdown]
# ## 1. Accuracy along training in both modes (Fig. 2)
#
# We train the network twice from the same initialisation — standard training and PGD-AT —
# and after every `eval_every` epochs measure clean and PGD accuracy on a subset of the
# training data and on the test data, in both modes. The PGD-AT run also records the
# empirical NTK on a class-balanced probe set at the epochs `ks_epochs`, in both modes (used
# in Section 4).

# %%
eval_epochs = sorted(set(range(eval_every, epochs + 1, eval_every)) | {epochs})
splits = {"train": (task.x_train[:n_eval_train], task.labels_train[:n_eval_train]),
          "test": (task.x_test, task.labels_test)}
probe = ntk_dynamics.balanced_probe(task.labels_test, probe_per_class, task.n_classes, seed=seed)
x_probe, labels_probe = task.x_test[probe], task.labels_test[probe]
STRATEGIES = {"standard": "standard training", "pgd": "PGD-AT"}

runs, evals, trackers = {}, {}, {}
for strategy in STRATEGIES:
    evals[strategy] = batchnorm.ModeEvaluator(model, splits, eps, eval_attack_steps, batch_size=eval_batch_size,
                                              epochs=eval_epochs, seed=seed)
    callbacks = [evals[strategy]]
    if strategy == "pgd":
        trackers = {mode: batchnorm.BNKernelTracker(model, mode, x_probe, labels_probe, eps,
                                                    attack_steps=eval_attack_steps, epochs=ks_epochs,
                                                    top_p=min(10, len(probe)), seed=seed)
                    for mode in batchnorm.BN_MODES}
        callbacks += list(trackers.values())
    # fit's own per-epoch evaluation (w buffer) is not used here (the ModeEvaluator measures
    # both modes on the full splits): it gets one evaluation batch of test images to stay cheap.
    runs[strategy] = training.fit(training.flax_apply_fn(model), params0, state0, task.x_train, task.labels_train,
                                  task.x_test[:eval_batch_size], task.labels_test[:eval_batch_size],
                                  config.replace(mode=strategy), callbacks=callbacks, progress=False)
    print(f"{STRATEGIES[strategy]}: {runs[strategy].train_seconds:.0f} s of parameter updates")

curves = {(STRATEGIES[s], split): {m: evals[s].curves(split, m) for m in batchnorm.BN_MODES}
          for s in STRATEGIES for split in splits}
plotting.plot_bn_accuracy_curves(curves, MODE_LABELS);


# %%
def final(strategy, split, mode, kind):
    return float(evals[strategy].curves(split, mode)[kind][-1])


glue("clean_acc_w_buffer", final("pgd", "test", "buffer", "clean"))
glue("clean_acc_wo_buffer", final("pgd", "test", "batch", "clean"))
glue("robust_acc_w_buffer", final("pgd", "test", "buffer", "robust"))
glue("robust_acc_wo_buffer", final("pgd", "test", "batch", "robust"))
glue("std_clean_acc_w_buffer", final("standard", "test", "buffer", "clean"))
glue("std_clean_acc_wo_buffer", final("standard", "test", "batch", "clean"))
glue("std_robust_acc_w_buffer", final("standard", "test", "buffer", "robust"))
glue("std_robust_acc_wo_buffer", final("standard", "test", "batch", "robust"))
glue("train_robust_acc_w_buffer", final("pgd", "train", "buffer", "robust"))
glue("train_robust_acc_wo_buffer", final("pgd", "train", "batch", "robust"))
clean_gap = final("pgd", "test", "buffer", "clean") - final("pgd", "test", "batch", "clean")
robust_gap = final("pgd", "test", "buffer", "robust") - final("pgd", "test", "batch", "robust")
glue("clean_gap", clean_gap)
glue("robust_gap", robust_gap)
# the standard error of a difference of two accuracies on n_test images is at most sqrt(2 * 0.25 / n_test)
noise = float(np.sqrt(0.5 / n_test))
glue("acc_noise", noise)
glue("robust_verdict",
     "clearly lower (by more than twice the sampling noise)" if robust_gap > 2 * noise else
     "lower, but by less than twice the sampling noise" if robust_gap > 0 else "not lower")
glue("clean_verdict", "about the same (within twice the sampling noise)" if abs(clean_gap) <= 2 * noise
     else "different by more than twice the sampling noise")
reproduced = robust_gap > 2 * noise and abs(clean_gap) <= 2 * noise
glue("fig2_verdict", "reproduces" if reproduced else "does not clearly reproduce")
std_gap = final("standard", "test", "buffer", "robust") - final("standard", "test", "batch", "robust")
glue("std_robust_verdict", "higher" if std_gap < -2 * noise else "lower" if std_gap > 2 * noise
     else "about the same")
table(
    [[STRATEGIES[s], MODE_LABELS[m]] + [final(s, sp, m, k) for sp in ("test", "train") for k in ("clean", "robust")]
     for s in STRATEGIES for m in batchnorm.BN_MODES],
    ["model", "mode", "clean (test)", "PGD (test)", "clean (train)", "PGD (train)"])

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
gaps = {}
for strategy, run in runs.items():
    x_adv = batchnorm.adversarial_examples(model, "batch", run.params, run.state, task.x_test, task.labels_test,
                                           eps, eval_attack_steps, eval_batch_size, seed=seed)
    for kind, xx in (("clean", task.x_test), ("adversarial", x_adv)):
        gaps[strategy, kind] = batchnorm.bn_statistics_gap(model, run.params, run.state, xx, eval_batch_size)

fig, axes = plotting.new_figure(ncols=2, sharey=True)
for ax, strategy in zip(axes, STRATEGIES):
    plotting.plot_layer_gaps(ax, {f"{kind} batches": gaps[strategy, kind].norm_gap for kind in ("clean", "adversarial")},
                             ylabel="rms of normalised-activation change", title=STRATEGIES[strategy])

rows = []
for strategy in STRATEGIES:
    for kind in ("clean", "adversarial"):
        g = gaps[strategy, kind]
        acc_key = "clean" if kind == "clean" else "robust"
        acc_gap = final(strategy, "test", "buffer", acc_key) - final(strategy, "test", "batch", acc_key)
        rows.append([STRATEGIES[strategy], kind, float(g.norm_gap.mean()), float(g.mean_shift.mean()),
                     float(g.log_std_ratio.mean()), acc_gap])
        glue(f"{strategy}_{kind}_norm_gap", float(g.norm_gap.mean()))
table(rows, ["model", "batches", "mean gap (norm. act.)", "mean shift", "log std ratio", "accuracy w − w/o"])
glue("pgd_gap_ratio", float(gaps["pgd", "adversarial"].norm_gap.mean() / gaps["pgd", "clean"].norm_gap.mean()))
for strategy in STRATEGIES:
    larger = gaps[strategy, "adversarial"].norm_gap.mean() > gaps[strategy, "clean"].norm_gap.mean()
    glue(f"{strategy}_gap_verdict", "farther from" if larger else "closer to")
glue("pgd_first_layer_clean_gap", float(gaps["pgd", "clean"].norm_gap[0]))
glue("pgd_first_layer_adv_gap", float(gaps["pgd", "adversarial"].norm_gap[0]))

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
by_bs = {s: {b: batchnorm.evaluate_modes(model, runs[s].params, runs[s].state, task.x_test, task.labels_test,
                                         eps, eval_attack_steps, b, seed=seed) for b in batch_sizes}
         for s in STRATEGIES}
rows = [[STRATEGIES[s], b] + [by_bs[s][b][m][i] for i in (0, 1) for m in batchnorm.BN_MODES]
        for s in STRATEGIES for b in batch_sizes]
table(rows, ["model", "eval batch", "clean w", "clean w/o", "PGD w", "PGD w/o"])
bs_gaps = np.array([by_bs["pgd"][b]["buffer"][1] - by_bs["pgd"][b]["batch"][1] for b in batch_sizes])
glue("bs_robust_gap_min", float(bs_gaps.min()))
glue("bs_robust_gap_max", float(bs_gaps.max()))
glue("bs_smallest", batch_sizes[0])
glue("bs_largest", batch_sizes[-1])
glue("bs_verdict", "at every batch size" if np.all(bs_gaps > 0) else "not at every batch size")
glue("bs_wo_robust_smallest", by_bs["pgd"][batch_sizes[0]]["batch"][1])
glue("bs_wo_robust_largest", by_bs["pgd"][batch_sizes[-1]]["batch"][1])
glue("bs_w_robust_largest", by_bs["pgd"][batch_sizes[-1]]["buffer"][1])

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
KINDS = {"clean.CL": "C-NTK, CL", "adv.CL": "AE-NTK, CL", "adv.AL": "AE-NTK, AL"}
panels = {(f"{MODE_LABELS[m]}\n{label}", f"epoch {e}"): trackers[m].ks_matrices[e][kind]
          for m in batchnorm.BN_MODES for kind, label in KINDS.items() for e in ks_epochs}
plotting.plot_specialization_matrices(panels);
ks = {(m, kind, e): float(np.nanmean(np.diag(trackers[m].ks_matrices[e][kind])))
      for m in batchnorm.BN_MODES for kind in KINDS for e in ks_epochs}
table([[MODE_LABELS[m], KINDS[kind]] + [ks[m, kind, e] for e in ks_epochs] for m in batchnorm.BN_MODES for kind in KINDS],
      ["mode", "kernel"] + [f"KS epoch {e}" for e in ks_epochs])
last = ks_epochs[-1]
for m, tag in (("buffer", "w"), ("batch", "wo")):
    for kind, ktag in (("clean.CL", "c_cl"), ("adv.CL", "ae_cl"), ("adv.AL", "ae_al")):
        glue(f"ks_{ktag}_{tag}_buffer", ks[m, kind, last])
glue("ks_last_epoch", last)
ks_dev = max(abs(ks[m, kind, last] - 1) for m in batchnorm.BN_MODES for kind in KINDS)
glue("ks_max_dev", ks_dev)
glue("ks_verdict", "every KS is within 0.1 of 1: at this scale the per-logit kernels have barely specialised, "
     "in either mode, so the matrices cannot show the difference between the modes that the paper's "
     "Figs. 3-4 show" if ks_dev < 0.1 else
     "some kernels have specialised (KS away from 1); compare the two modes' rows above")

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
#
# ## Headline numbers

# %%
# NBVAL_CHECK_OUTPUT
for name in ("clean_acc_w_buffer", "clean_acc_wo_buffer", "robust_acc_w_buffer", "robust_acc_wo_buffer"):
    kind = "robust" if name.startswith("robust") else "clean"
    mode = "buffer" if name.endswith("_w_buffer") else "batch"
    print(f"{name}: {final('pgd', 'test', mode, kind):.3f}")
print(f"pgd norm gap clean / adversarial: {gaps['pgd', 'clean'].norm_gap.mean():.3f} / "
      f"{gaps['pgd', 'adversarial'].norm_gap.mean():.3f}")
print("robust gap by eval batch size:", {b: round(float(g), 3) for b, g in zip(batch_sizes, bs_gaps)})

# %%
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
