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
# # NTK adversarial examples transfer to wide networks
#
# Section 3 and Fig. 4 of Tsilivis & Kempe {cite}`tsilivis2022ntk`. A wide network in NTK
# parameterisation, trained by full-batch gradient descent with a small learning rate on the
# square loss, stays in the "lazy" regime: its function follows the kernel predictor of its
# analytic Neural Tangent Kernel $\Theta$ {cite}`jacot2018ntk,lee2019wide`,
#
# $$f_t(x) = \Theta(x, X)\,\Theta(X, X)^{-1}\bigl(I - e^{-\Theta(X, X)\,t/N}\bigr)\,Y
# \qquad \text{(Eq. 7)},$$
#
# with $t$ = steps × learning rate and $N = nk$ (the loss is $\tfrac12\,\mathrm{mean}(f - Y)^2$
# over all entries, the convention of neural-tangents {cite}`novak2020neural`). If the network
# *is* (nearly) this function, then an attack on $f_t$ should also be an attack on the
# network. For labels $y = \pm 1$, treating $f_t$ as a logit with the logistic loss, FGSM
# {cite}`goodfellow2015explaining` on the kernel predictor is
#
# $$\tilde x = x - y\,\epsilon\,\mathrm{sign}\bigl(\nabla_x f_t(x)\bigr) \qquad \text{(Eq. 8)},$$
#
# and PGD {cite}`madry2018towards` iterates it with projection on the $\ell_\infty$ ball.
#
# **Threat model.** Eq. (8) needs the *architecture* (through its analytic kernel $\Theta$),
# the *training data* $(X, Y)$ and the training time $t$ — nothing else: no weights, no
# queries to the deployed model, no surrogate model to train. All of it is available before
# the network is even initialised, which is why the paper calls it a "training-free" attack.
# The question this chapter measures is how close it comes to the *white-box* attack, which
# uses the network's own weights and gradients.
#
# **What is compared.** Eq. (7) is the network's output *averaged over initialisations*; a
# single network also carries its random initial function $f_{\theta_0}$, which does not
# shrink with width. Following footnote 2 of the paper we therefore work with the *centred*
# network $g_\theta = f_\theta - f_{\theta_0}$, and we also train it as such (gradient descent
# on $\tfrac12\,\mathrm{mean}(g_\theta(X) - Y)^2$), so that its infinite-width limit is exactly
# Eq. (7). It is this centred network that is deployed and attacked, white-box or by transfer.
#
# The parameters below are the defaults (a few minutes on two CPU cores); every one can be
# changed with `ntknb run 01_transfer_attacks -p NAME VALUE`, and
# `notebooks/01_transfer_attacks.paper.yaml` holds a larger setting for a GPU machine
# (see {doc}`../book/running`).

# %% tags=["parameters"]
seed = 0  # PRNG seed: data subsample and network initialisations
progress = True  # show progress bars
lr_fraction = 0.9  # learning rate as a fraction of the largest stable one, 2N / lambda_max
n_checkpoints = 15  # log-spaced checkpoints along training
pgd_steps = 10  # PGD iterations (step 2.5 eps / pgd_steps, no random start)
# (1) CIFAR-10 airplane (-1) vs automobile (+1), two-layer ReLU network ("fc1")
cifar_n_train = 256  # training images (class-balanced)
cifar_n_test = 200  # test images that are attacked
cifar_width = 2048  # hidden width of the network
cifar_train_steps = 1100  # full-batch gradient-descent steps
cifar_eps_255 = [2, 4, 8]  # FGSM radii, in units of 1/255
cifar_pgd_eps_255 = [8]  # PGD radii (a subset), in units of 1/255
headline_eps_255 = 8  # radius of the headline numbers
# (2) MNIST, 10 classes
mnist_n_train = 500  # training images (class-balanced)
mnist_n_test = 200  # test images that are attacked
mnist_width = 2048  # hidden width of the network
mnist_train_steps = 360  # full-batch gradient-descent steps
mnist_eps = [0.05, 0.1, 0.3]  # FGSM radii
mnist_pgd_eps = [0.1]  # PGD radii (a subset)
# (3) width sweep and cross-architecture transfer (CIFAR task)
sweep_widths = [64, 256, 1024, 2048, 4096]  # widths of the fc1 networks
sweep_steps = 300  # gradient-descent steps of the sweep (a checkpoint of the main run is added)
cross_width = 1024  # width of the second architecture, fc2 (two hidden layers)
cross_kernels = ["fc1", "fc2"]  # kernels whose attacks are tried on both networks

# %%
import time

import numpy as np

from ntknb import architectures, data, plotting, transfer
from ntknb.report import glue, glue_table
from ntknb.training import log_spaced_steps
from ntknb.validation import check_bool, check_float, check_int, check_sequence

seed = check_int("seed", seed, min=0)
progress = check_bool("progress", progress)
lr_fraction = check_float("lr_fraction", lr_fraction, min=0.0, max=1.0, min_inclusive=False, max_inclusive=False)
n_checkpoints = check_int("n_checkpoints", n_checkpoints, min=2)
pgd_steps = check_int("pgd_steps", pgd_steps, min=1)
cifar_n_train = check_int("cifar_n_train", cifar_n_train, min=4, max=10000)
cifar_n_test = check_int("cifar_n_test", cifar_n_test, min=2, max=2000)
cifar_width = check_int("cifar_width", cifar_width, min=1)
cifar_train_steps = check_int("cifar_train_steps", cifar_train_steps, min=2)
cifar_eps_255 = check_sequence("cifar_eps_255", cifar_eps_255, of=float, min_length=1,
                               item=lambda n, v: check_float(n, v, min=0.0, max=255.0))
cifar_pgd_eps_255 = check_sequence("cifar_pgd_eps_255", cifar_pgd_eps_255, of=float, allowed=cifar_eps_255)
headline_eps_255 = check_float("headline_eps_255", headline_eps_255)
if headline_eps_255 not in cifar_eps_255:
    raise ValueError(f"parameter 'headline_eps_255' must be one of cifar_eps_255={cifar_eps_255}, got {headline_eps_255}")
mnist_n_train = check_int("mnist_n_train", mnist_n_train, min=10, max=60000)
mnist_n_test = check_int("mnist_n_test", mnist_n_test, min=10, max=10000)
mnist_width = check_int("mnist_width", mnist_width, min=1)
mnist_train_steps = check_int("mnist_train_steps", mnist_train_steps, min=2)
mnist_eps = check_sequence("mnist_eps", mnist_eps, of=float, min_length=1,
                           item=lambda n, v: check_float(n, v, min=0.0, max=1.0))
mnist_pgd_eps = check_sequence("mnist_pgd_eps", mnist_pgd_eps, of=float, allowed=mnist_eps)
sweep_widths = check_sequence("sweep_widths", sweep_widths, of=int, min_length=2,
                              item=lambda n, v: check_int(n, v, min=1))
sweep_steps = check_int("sweep_steps", sweep_steps, min=1, max=cifar_train_steps)
cross_width = check_int("cross_width", cross_width, min=1)
cross_kernels = check_sequence("cross_kernels", cross_kernels, min_length=1,
                               allowed=list(architectures.ARCHITECTURE_NAMES))
plotting.use_book_style()
started = time.time()

# %% [markdown]
# ## 1. CIFAR-10, airplane vs automobile
#
# A class-balanced subsample, pixels in $[0, 1]$, labels $-1$ (airplane) and $+1$
# (automobile). The network is the two-layer ReLU net `fc1` (one hidden layer, NTK
# parameterisation, $W_{std} = \sqrt 2$, $b_{std} = 0.1$); the kernel is its analytic NTK.

# %%
cifar = data.make_task(data.load_dataset("cifar10"), ("airplane", "automobile"),
                       n_train=cifar_n_train, n_test=cifar_n_test, seed=seed)
print(cifar.provenance.describe())
print(f"train {cifar.x_train.shape}, test {cifar.x_test.shape}, labels {cifar.y_train.shape}")

# %% [markdown]
# The learning rate is a fraction of the largest stable step $2N/\lambda_{\max}$ of the
# linearised model (the same for all CIFAR networks below: the smallest over the architectures
# used). Training time $t$ is steps × learning rate. The checkpoints are log-spaced; the step
# count of the width sweep is added to them so that the sweep can reuse this run.

# %%
def fc1(width, out_dim=1):
    return architectures.get_architecture("fc1", width=width, out_dim=out_dim)


def fc2(width, out_dim=1):
    return architectures.get_architecture("fc2", width=width, out_dim=out_dim)


cifar_kernels = {name: transfer.KernelModel.build(architectures.get_architecture(name), cifar.x_train, cifar.y_train)
                 for name in dict.fromkeys(["fc1", "fc2", *cross_kernels])}
cifar_lr = lr_fraction * min(transfer.max_stable_learning_rate(cifar_kernels[name].k_train_train)
                             for name in ("fc1", "fc2"))
cifar_steps = np.union1d(log_spaced_steps(cifar_train_steps, n_checkpoints, include_zero=False), [sweep_steps])
cifar_eps = [e / 255 for e in cifar_eps_255]
print(f"learning rate {cifar_lr:.3f}; t from {cifar_steps[0] * cifar_lr:.2f} to {cifar_steps[-1] * cifar_lr:.0f}")

cifar_net = transfer.train_network(fc1(cifar_width), cifar.x_train, cifar.y_train, cifar_lr, cifar_steps,
                                   seed=seed, progress=progress, description=f"GD fc1 width {cifar_width}")
cifar_curves = transfer.evaluate_transfer(cifar_net, cifar_kernels["fc1"], cifar.x_test, cifar.y_test, cifar_eps,
                                          pgd_eps=[e / 255 for e in cifar_pgd_eps_255], pgd_steps=pgd_steps,
                                          progress=progress, description="CIFAR: network vs NTK")

# %%
fig = plotting.plot_transfer_curves(cifar_curves, eps_labels=[f"{e:g}/255" for e in cifar_eps_255],
                                    title=f"CIFAR-10 airplane vs automobile, fc1 width {cifar_width} vs its NTK")

# %%
final = cifar_curves.final(headline_eps_255 / 255, "fgsm")
glue("cifar_lr", cifar_lr)
glue("cifar_t_final", final["t"])
glue("cifar_width", cifar_width)
glue("headline_eps_255", headline_eps_255)
glue("cos_sim_final", final["cos_sim_mean"])
glue("cos_sim_final_std", final["cos_sim_std"])
glue("cos_sim_first", cifar_curves.cos_sim_mean[0])
glue("cos_sim_min", np.min(cifar_curves.cos_sim_mean))
glue("cos_sim_max", np.max(cifar_curves.cos_sim_mean))
glue("clean_acc_net", final["clean_acc_net"])
glue("clean_acc_kernel", final["clean_acc_kernel"])
glue("agreement_final", final["agreement"])
glue("agreement_min", np.min(cifar_curves.agreement))
glue("output_rel_distance_final", final["output_rel_distance"])
glue("weight_change_final", final["relative_weight_change"])
glue("robust_acc_white_box", final["robust_acc_net_by_net"])
glue("robust_acc_ntk_transfer", final["robust_acc_net_by_kernel"])
glue("robust_acc_kernel_self", final["robust_acc_kernel_by_kernel"])
j = cifar_curves.eps_index(headline_eps_255 / 255)
if headline_eps_255 in cifar_pgd_eps_255:
    pgd_final = cifar_curves.final(headline_eps_255 / 255, "pgd")
    glue("robust_acc_white_box_pgd", pgd_final["robust_acc_net_by_net"])
    glue("robust_acc_ntk_transfer_pgd", pgd_final["robust_acc_net_by_kernel"])
    glue("robust_acc_kernel_self_pgd", pgd_final["robust_acc_kernel_by_kernel"])
# the largest gap between white-box and transfer along training (FGSM, headline eps)
gap = cifar_curves.robust("net", "kernel", "fgsm")[:, j] - cifar_curves.robust("net", "net", "fgsm")[:, j]
glue("transfer_gap_max", np.max(gap))
glue("transfer_gap_max_t", cifar_curves.times[int(np.argmax(gap))])
glue("transfer_gap_min", np.min(gap))
glue("transfer_gap_min_t", cifar_curves.times[int(np.argmin(gap))])
rows = [[f"{t:.3g}", c, a_n, a_k, ag, wb, tr, ks]
        for t, c, a_n, a_k, ag, wb, tr, ks in zip(
            cifar_curves.times, cifar_curves.cos_sim_mean, cifar_curves.clean_acc_net, cifar_curves.clean_acc_kernel,
            cifar_curves.agreement, cifar_curves.robust("net", "net", "fgsm")[:, j],
            cifar_curves.robust("net", "kernel", "fgsm")[:, j], cifar_curves.robust("kernel", "kernel", "fgsm")[:, j])]
_ = glue_table("cifar_table", rows, ["t", "cos sim", "clean net", "clean NTK", "agreement",
                                 "net white-box", "net NTK-attack", "NTK own attack"], floatfmt=".3f")

# %% [markdown]
# **Results (CIFAR, FGSM at $\epsilon$ = {glue:text}`headline_eps_255:g`/255, final checkpoint
# $t$ = {glue:text}`cifar_t_final:.0f`).** The network of width {glue:text}`cifar_width` and its
# NTK predictor reach clean test accuracy {glue:text}`clean_acc_net:.3f` and
# {glue:text}`clean_acc_kernel:.3f`, and predict the same class on
# {glue:text}`agreement_final:.3f` of the test images (never less than
# {glue:text}`agreement_min:.3f` along training); the relative distance between their outputs
# is {glue:text}`output_rel_distance_final:.3f`, and the weights moved by
# {glue:text}`weight_change_final:.4f` of their initial norm — the lazy regime.
#
# **Transfer.** Under its own white-box FGSM the network keeps {glue:text}`robust_acc_white_box:.3f`
# accuracy; under the training-free NTK attack of Eq. (8) it keeps
# {glue:text}`robust_acc_ntk_transfer:.3f` — almost exactly what the same perturbations leave
# of the kernel machine itself, {glue:text}`robust_acc_kernel_self:.3f`. So the NTK attack
# transfers: computed without the network, it removes most of the accuracy the network's own
# attack removes, and it fools the network as much as it fools the kernel. But at this width it
# is **not as strong as the white-box attack**, as the paper reports for its (wider) networks:
# the white-box FGSM leaves up to {glue:text}`transfer_gap_max:.3f` less accuracy (largest gap at
# $t$ = {glue:text}`transfer_gap_max_t:.0f`). With 10-step PGD the gap widens:
# {glue:text}`robust_acc_white_box_pgd:.3f` white-box against {glue:text}`robust_acc_ntk_transfer_pgd:.3f`
# for the NTK attack ({glue:text}`robust_acc_kernel_self_pgd:.3f` for the kernel under its own
# PGD; the kernel predictor is so close to linear on the $\epsilon$-ball that PGD barely improves
# on FGSM against it). Early in training the order is reversed — the NTK attack is the
# *stronger* one, by up to {glue:text}`transfer_gap_min:.3f` in the table below at
# $t$ = {glue:text}`transfer_gap_min_t:.3g` — and both attacks drive robust accuracy down as
# training proceeds, the trend of Fig. 4 (bottom) of the paper, without reaching 0 % by the end
# of this (short) training run.
#
# **Gradients.** Here the picture differs from the paper's Fig. 4 (top) at this scale: the mean
# cosine similarity between the input gradients of the loss of network and kernel is
# {glue:text}`cos_sim_final:.3f` ± {glue:text}`cos_sim_final_std:.3f` at the end, and it *rises*
# along training from {glue:text}`cos_sim_min:.3f` — clearly aligned (two random directions in
# $d$ = 3072 dimensions have a cosine of $0 \pm 0.02$), but far from identical. The *outputs*
# of the width-{glue:text}`cifar_width` network are within about 10 % of the kernel's, its
# *input gradients* are not: the finite-width fluctuation of $\nabla_x \hat\Theta(x, X)$ is spread
# over all $d$ input dimensions, so it only becomes small once the width is large compared with
# $d$. Section 3 shows that this is a width effect, and the part of the white-box attack that
# the kernel does not predict is the part that exploits these finite-width directions.
#
# Per checkpoint (FGSM, $\epsilon$ = {glue:text}`headline_eps_255:g`/255):
#
# ```{glue:md} cifar_table
# :format: myst
# ```

# %% [markdown]
# ## 2. MNIST, 10 classes
#
# The same experiment with ten classes: labels are centred one-hot vectors, the network has
# ten outputs, and both attacks use the softmax cross-entropy of the outputs (the multi-class
# form of Eq. (8): FGSM on the cross-entropy of the kernel predictor's outputs).

# %%
mnist = data.make_task(data.load_dataset("mnist"), None, n_train=mnist_n_train, n_test=mnist_n_test, seed=seed)
print(mnist.provenance.describe())
mnist_kernel = transfer.KernelModel.build(fc1(mnist_width, 10), mnist.x_train, mnist.y_train)
mnist_lr = lr_fraction * transfer.max_stable_learning_rate(mnist_kernel.k_train_train, 10)
mnist_steps = log_spaced_steps(mnist_train_steps, n_checkpoints, include_zero=False)
print(f"learning rate {mnist_lr:.2f}; t from {mnist_steps[0] * mnist_lr:.1f} to {mnist_steps[-1] * mnist_lr:.0f}")
mnist_net = transfer.train_network(fc1(mnist_width, 10), mnist.x_train, mnist.y_train, mnist_lr, mnist_steps,
                                   seed=seed, progress=progress, description=f"GD fc1 width {mnist_width}")
mnist_curves = transfer.evaluate_transfer(mnist_net, mnist_kernel, mnist.x_test, mnist.y_test, mnist_eps,
                                          pgd_eps=mnist_pgd_eps, pgd_steps=pgd_steps, progress=progress,
                                          description="MNIST: network vs NTK")
fig = plotting.plot_transfer_curves(mnist_curves, title=f"MNIST (10 classes), fc1 width {mnist_width} vs its NTK")

# %%
mnist_final = {e: mnist_curves.final(e, "fgsm") for e in mnist_eps}
glue("mnist_t_final", mnist_curves.times[-1])
glue("mnist_cos_sim_final", mnist_curves.cos_sim_mean[-1])
glue("mnist_clean_acc_net", mnist_curves.clean_acc_net[-1])
glue("mnist_clean_acc_kernel", mnist_curves.clean_acc_kernel[-1])
glue("mnist_agreement_final", mnist_curves.agreement[-1])
mnist_rows = []
for e in mnist_eps:
    f = mnist_final[e]
    key = f"{e:g}".replace(".", "p")
    glue(f"mnist_white_box_eps{key}", f["robust_acc_net_by_net"])
    glue(f"mnist_ntk_transfer_eps{key}", f["robust_acc_net_by_kernel"])
    row = [f"{e:g}", "FGSM", f["robust_acc_net_by_net"], f["robust_acc_net_by_kernel"], f["robust_acc_kernel_by_kernel"]]
    mnist_rows.append(row)
    if e in mnist_pgd_eps:
        p = mnist_curves.final(e, "pgd")
        glue(f"mnist_white_box_pgd_eps{key}", p["robust_acc_net_by_net"])
        glue(f"mnist_ntk_transfer_pgd_eps{key}", p["robust_acc_net_by_kernel"])
        mnist_rows.append([f"{e:g}", "PGD", p["robust_acc_net_by_net"], p["robust_acc_net_by_kernel"],
                           p["robust_acc_kernel_by_kernel"]])
_ = glue_table("mnist_table", mnist_rows, ["eps", "attack", "net white-box", "net NTK-attack", "NTK own attack"],
           floatfmt=".3f")

# %% [markdown]
# **Results (MNIST, final checkpoint $t$ = {glue:text}`mnist_t_final:.0f`).** Clean accuracy
# {glue:text}`mnist_clean_acc_net:.3f` (network) and {glue:text}`mnist_clean_acc_kernel:.3f`
# (NTK predictor), agreement {glue:text}`mnist_agreement_final:.3f`, mean gradient cosine
# similarity {glue:text}`mnist_cos_sim_final:.3f` (here $d$ = 784, so the same width leaves
# smaller gradient fluctuations relative to the signal than on CIFAR). Here the NTK attack
# matches the white-box FGSM closely at every radius: at $\epsilon$ = 0.1 the network keeps
# {glue:text}`mnist_white_box_eps0p1:.3f` under its own FGSM and {glue:text}`mnist_ntk_transfer_eps0p1:.3f`
# under the NTK attack, and at $\epsilon$ = 0.3 both attacks leave
# {glue:text}`mnist_white_box_eps0p3:.3f` and {glue:text}`mnist_ntk_transfer_eps0p3:.3f`. With PGD the
# white-box attack is again stronger ({glue:text}`mnist_white_box_pgd_eps0p1:.3f` against
# {glue:text}`mnist_ntk_transfer_pgd_eps0p1:.3f` at $\epsilon$ = 0.1): iterating on the network's
# own gradient finds the finite-width directions that the kernel does not have. Robust
# accuracies at the last checkpoint:
#
# ```{glue:md} mnist_table
# :format: myst
# ```

# %% [markdown]
# ## 3. Beyond the paper: width, and a second architecture
#
# **Width.** The kernel is the same for every width; only the network changes. All networks
# use the learning rate and seed of Section 1 and are compared at the same training time
# $t$ = `sweep_steps` × learning rate (the width-`cifar_width` network is the run of
# Section 1, evaluated at that checkpoint). As the width shrinks the network leaves the lazy
# regime: its output drifts from Eq. (7), its gradients decorrelate from the kernel's, and
# the NTK attack no longer stands in for the white-box one.

# %%
sweep_rows_curves = transfer.width_sweep(fc1, sweep_widths, cifar_kernels["fc1"], cifar.x_test, cifar.y_test,
                                         cifar_lr, sweep_steps, [headline_eps_255 / 255], attacks=["fgsm"],
                                         seed=seed, pretrained={cifar_width: cifar_net}, progress=progress)
eps_h = headline_eps_255 / 255
sweep_rows = []
for r in sweep_rows_curves:
    f = r.final(eps_h, "fgsm")
    sweep_rows.append([r.info["width"], f["relative_weight_change"], f["output_rel_distance"], f["cos_sim_mean"],
                       f["clean_acc_net"], f["robust_acc_net_by_net"], f["robust_acc_net_by_kernel"],
                       f["robust_acc_kernel_by_kernel"]])
sweep_md = glue_table("width_sweep_table", sweep_rows,
                      ["width", "weight change", "output distance", "cos sim", "clean net", "net white-box",
                       "net NTK-attack", "NTK own attack"], floatfmt=".3f")
glue("sweep_t", sweep_rows_curves[0].times[-1])
glue("sweep_cos_narrowest", sweep_rows[0][3])
glue("sweep_cos_widest", sweep_rows[-1][3])
glue("sweep_width_narrowest", sweep_rows[0][0])
glue("sweep_width_widest", sweep_rows[-1][0])
glue("sweep_gap_narrowest", sweep_rows[0][6] - sweep_rows[0][5])
glue("sweep_gap_widest", sweep_rows[-1][6] - sweep_rows[-1][5])
glue("sweep_white_box_narrowest", sweep_rows[0][5])
glue("sweep_white_box_widest", sweep_rows[-1][5])
glue("sweep_kernel_self", sweep_rows[0][7])
glue("sweep_ntk_min", min(r[6] for r in sweep_rows))
glue("sweep_ntk_max", max(r[6] for r in sweep_rows))
fig = plotting.plot_width_sweep(sweep_rows_curves, eps_h, eps_label=f"{headline_eps_255:g}/255")

# %% [markdown]
# Width sweep at $t$ = {glue:text}`sweep_t:.0f` (FGSM, $\epsilon$ = {glue:text}`headline_eps_255:g`/255):
#
# ```{glue:md} width_sweep_table
# :format: myst
# ```
#
# The gradient cosine similarity grows from {glue:text}`sweep_cos_narrowest:.3f` at width
# {glue:text}`sweep_width_narrowest` to {glue:text}`sweep_cos_widest:.3f` at width
# {glue:text}`sweep_width_widest`, and the excess robust accuracy left by the NTK attack over
# the white-box attack ("net NTK-attack" minus "net white-box") goes from
# {glue:text}`sweep_gap_narrowest:.3f` to {glue:text}`sweep_gap_widest:.3f`.
#
# Note what changes and what does not. The NTK adversarial examples are the *same images* for
# every width (they depend on the kernel only), and the accuracy they leave barely moves with
# width (between {glue:text}`sweep_ntk_min:.3f` and {glue:text}`sweep_ntk_max:.3f`, close to the
# {glue:text}`sweep_kernel_self:.3f` they leave of the kernel machine). What changes is the
# white-box attack: the narrow networks are far more fragile to their own gradients
# ({glue:text}`sweep_white_box_narrowest:.3f` at width {glue:text}`sweep_width_narrowest`, against
# {glue:text}`sweep_white_box_widest:.3f` at width {glue:text}`sweep_width_widest`), although their
# clean accuracy is the same. Away from the lazy regime the network acquires non-robust
# directions of its own, which no kernel computation predicts; as the width grows they vanish,
# the network becomes as robust as its kernel, and the training-free attack becomes as good as
# the white-box one. Where the two meet depends on the time $t$ and on the input dimension:
# at the end of Section 1 ($t$ = {glue:text}`cifar_t_final:.0f`) the width-{glue:text}`cifar_width`
# network was still measurably more fragile than its kernel.
#
# **A second architecture.** Does the kernel of one architecture attack a network of
# another? We train a network with two hidden layers (`fc2`, width `cross_width`) the same way
# and attack both networks with the NTK attacks of both architectures, each network at its last
# checkpoint of the sweep time.

# %%
cross_net = transfer.train_network(fc2(cross_width), cifar.x_train, cifar.y_train, cifar_lr, [sweep_steps],
                                   seed=seed, progress=progress, description=f"GD fc2 width {cross_width}")
cross = transfer.cross_architecture(
    {f"fc1 (width {cifar_width})": cifar_net, f"fc2 (width {cross_width})": cross_net},
    {name: cifar_kernels[name] for name in cross_kernels}, cifar.x_test, cifar.y_test, eps_h,
    checkpoints={f"fc1 (width {cifar_width})": int(np.flatnonzero(cifar_steps == sweep_steps)[0])})
cross_rows = [[net_name, cross["clean"][net_name], cross["white_box"][net_name],
               *[cross["transfer"][net_name][k] for k in cross_kernels],
               *[cross["cos_sim"][net_name][k] for k in cross_kernels]] for net_name in cross["clean"]]
glue_table("cross_table", cross_rows, ["network", "clean", "white-box", *[f"{k} NTK-attack" for k in cross_kernels],
                                       *[f"cos sim vs {k}" for k in cross_kernels]], floatfmt=".3f")
names = list(cross["clean"])
glue("cross_fc1_by_fc2", cross["transfer"][names[0]]["fc2"])
glue("cross_fc1_by_fc1", cross["transfer"][names[0]]["fc1"])
glue("cross_fc2_by_fc1", cross["transfer"][names[1]]["fc1"])
glue("cross_fc2_by_fc2", cross["transfer"][names[1]]["fc2"])
glue("cross_fc1_white_box", cross["white_box"][names[0]])
glue("cross_fc2_white_box", cross["white_box"][names[1]])
glue("cross_fc2_clean", cross["clean"][names[1]])
glue("cross_width", cross_width);

# %% [markdown]
# FGSM at $\epsilon$ = {glue:text}`headline_eps_255:g`/255, $t$ = {glue:text}`sweep_t:.0f`:
#
# ```{glue:md} cross_table
# :format: myst
# ```
#
# The kernel of the *other* architecture attacks each network as well as its own kernel does:
# the fc1 network keeps {glue:text}`cross_fc1_by_fc1:.3f` under the fc1 NTK attack and
# {glue:text}`cross_fc1_by_fc2:.3f` under the fc2 one; the fc2 network {glue:text}`cross_fc2_by_fc2:.3f`
# and {glue:text}`cross_fc2_by_fc1:.3f`. The two kernels, one and two hidden layers deep, induce
# nearly the same input gradients (the cosine columns), which is the kernel-level reason why
# adversarial examples transfer between these architectures. The fc2 network of width
# {glue:text}`cross_width`, however, is much more fragile to its own attack
# ({glue:text}`cross_fc2_white_box:.3f` white-box, clean {glue:text}`cross_fc2_clean:.3f`) than to
# either kernel attack: at this width and depth it is further from the lazy regime, as the
# narrow fc1 networks above.

# %% [markdown]
# ## Headline numbers
#
# Rounded, so that re-running the notebook (`pytest --nbval-lax`) checks them.

# %%
# NBVAL_CHECK_OUTPUT
print(f"CIFAR airplane/automobile, fc1 width {cifar_width}, t = {final['t']:.0f}, FGSM eps = {headline_eps_255:g}/255")
for name in ("cos_sim_mean", "clean_acc_net", "clean_acc_kernel", "robust_acc_net_by_net", "robust_acc_net_by_kernel"):
    print(f"  {name:26s} {final[name]:.2f}")
print("width sweep (width, cos sim, white-box, NTK attack):")
for row in sweep_rows:
    print(f"  {row[0]:6d} {row[3]:.2f} {row[5]:.2f} {row[6]:.2f}")

# %%
print(f"notebook compute time: {time.time() - started:.0f} s")
