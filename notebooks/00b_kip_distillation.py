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
# # Data distillation with kernels, and robustness from data alone
#
# Can a hundred images teach a kernel machine as much as ten thousand? And can the *data* be
# made robust, so that ordinary training on it gives a robust model? Both questions become
# tractable in the NTK limit, where the trained predictor is a closed-form function of its
# training set (Sec. 2.3.2 and Sec. 3 of the lecture notes "Kernels, Data & Physics"
# {cite}`kernels_data_physics`): the training set itself can then be learned by gradient
# descent. This is *Kernel Inducing Points* (KIP) {cite}`nguyen2021dataset`, and its adversarial
# variant {cite}`tsilivis2022robustness`.
#
# **Learning objectives.** After this chapter you can
#
# 1. write the KIP loss (notes, Eq. 27) and explain why the nested problem of data distillation
#    (Eq. 23) collapses to one differentiable function of the support set in the NTK limit;
# 2. run KIP with the analytic NTK of a fully connected network and judge whether the learned
#    support set beats a natural subset of the same size (paired over seeds and test points);
# 3. state the Adversarial KIP loss $\mathcal L_{\rm AdvKIP}$ (notes, Sec. 3), compute its
#    gradient with the inner maximisation held fixed, and evaluate the robustness it gives a
#    kernel machine and a finite network with a standard attack suite.
#
# **Run time.** At the defaults below this chapter ran in {glue:text}`runtime_s:.0f` s on a
# shared 2-core CPU ({doc}`../book/status`); expect two to four minutes, depending on the load.
# The parameters are the defaults: every one can be changed with
# `ntknb run 00b_kip_distillation -p NAME VALUE` (see {doc}`../book/running`);
# `notebooks/00b_kip_distillation.paper.yaml` holds the authors' setting and
# `00b_kip_distillation.gpu.yaml` a larger one for a GPU. The code cells are folded (click to
# show them).

# %% tags=["parameters"]
seed = 0  # first seed; replicas use seed, seed + 1, ..., seed + n_seeds - 1
n_seeds = 3  # independent replicas (pool, test set, natural start, batches) behind every interval
datasets = ["cifar10", "mnist"]  # 10 classes each
kernel = "fc1"  # analytic NTK of ntknb.architectures (fc1 = one hidden ReLU layer, as the anchor)
support_sizes = [10, 100]  # |S|, multiples of the 10 classes
n_pool = 10000  # class-balanced training images per seed: the target pool
n_test = 1000  # test images per seed
kip_steps = 100  # Adam steps of KIP (the authors' notebook: 300)
kip_lr = 0.04  # Adam learning rate on standardised images (the authors': 0.04)
target_batch = 1000  # target images per step, class-balanced (the authors': 5000)
reg = 1e-6  # ridge: reg * tr(K_SS) / |S| (the authors': 1e-6)
learn_labels = False  # also learn the support labels
kip_dtype = "float32"  # precision of the KIP steps (float64: x64 mode, about 4x slower on a CPU)
target_chunk = None  # process each target batch in chunks of this many images (memory), or None
n_curve = 6  # points of the learning curves (step 0, then log-spaced)
# Adversarial KIP
advkip_datasets = ["mnist"]  # datasets for Adversarial KIP (each must be in datasets)
advkip_support = 100  # |S| of the Adversarial KIP set (one of support_sizes)
advkip_steps = 100  # Adam steps of Adversarial KIP
advkip_target_batch = 500  # target images per step (each replaced by its PGD point)
advkip_pgd_steps = 5  # PGD steps of the inner maximisation
eps_mnist = 0.1  # l-inf radius on MNIST (pixels in [0, 1]), for training and evaluation
eps_cifar10 = 0.03137254901960784  # 8/255 on CIFAR-10
n_robust = 500  # attacked test images per seed (the first of the n_test)
attack_iters = 20  # iterations of each attack of the robustness suite
# finite networks trained on the support sets
net_width = 512  # hidden width of the fully connected network
net_steps = 300  # full-batch gradient-descent steps

# %% tags=["hide-input"]
import time

from IPython.display import display

from ntknb import claims, plotting
from ntknb.chapters import ch00b_kip_distillation as ch
from ntknb.report import glue, glue_md, glue_params

P = ch.Params.from_namespace(globals())  # checks every parameter (the rules: ch.Params)
plotting.use_book_style()
t_start = time.perf_counter()

# %% [markdown]
# (sec-kip)=
# ## 1. Kernel Inducing Points
#
# Data distillation asks for a small *support* set $X_S$ such that a model trained on it does
# as well as one trained on the full set $X_T$. In general this is a nested problem (notes,
# Eq. 23): $\arg\min_{X_S} \ell\big(X_T, \arg\min_\theta \ell(X_S, \theta)\big)$, with a whole
# training run inside the loss. In the NTK limit the inner problem has a closed-form solution,
# the kernel machine $f_S(x) = K(x, X_S)\,K(X_S, X_S)^{-1} Y_S$, and with the square loss
# distillation becomes (notes, Eq. 27)
#
# $$\arg\min_{X_S} \big\|Y_T - K(X_T, X_S)\,K(X_S, X_S)^{-1} Y_S\big\|^2 ,$$
#
# one differentiable function of $X_S$ (and $Y_S$). KIP {cite}`nguyen2021dataset` minimises it
# by Adam, starting from a natural subset, with a fresh class-balanced target batch of the
# training set at every step and a ridge $\lambda = 10^{-6}\,\mathrm{tr}(K_{SS})/|S|$ added to
# $K_{SS}$. We follow the authors' public notebook: centred one-hot labels (kept fixed),
# images standardised per channel, the NTK of a one-hidden-layer ReLU network
# (`ntknb.architectures`, $W_{\rm std} = \sqrt2$, $b_{\rm std} = 0.1$). One step is
# `ntknb.kip.learn_support`: sample, two kernel blocks ($|S| \times |S|$ and
# $|T| \times |S|$), a Cholesky solve, the gradient, the Adam update, in one jitted function.
# The natural subset the run starts from is the baseline: same seed, same test images.

# %% tags=["hide-input"]
D = ch.load_datasets(P)
for name, (ds, _) in D.items():
    print(ds.provenance.describe())
KR = ch.kip_study(P, D)
KV = ch.kip_values(P, KR)
for name, value in KV.items():  # numbers pasted as text, names (strings) as Markdown
    glue_md(name, value) if isinstance(value, str) else glue(name, value)
glue_params(P, ["n_seeds", "n_test"])
ch.kip_table(P, KR)

# %% mystnb={"figure": {"caption": "Test accuracy of the kernel machine on the support set along the KIP optimisation, against the KIP step (logarithmic; step 0 drawn at 0.5), one panel per dataset, one colour per support size $|S|$. Lines: mean over seeds; bands: minimum to maximum over seeds. Stars (CIFAR-10 panel): the accuracies before and after KIP in the authors' notebook, for $|S| = 100$.", "name": "fig-ch00b-kip-curves"}} tags=["hide-input"]
fig = ch.plot_learning_curves(P, KR)

# %% [markdown]
# On {glue:md}`kip_headline_dataset` with {glue:text}`kip_headline_size` support images and the
# {glue:md}`kernel_g` NTK, the kernel machine trained on the natural subset reaches test accuracy
# {glue:text}`kip_acc_natural:.3f` and the one trained on the KIP set
# {glue:text}`kip_acc_distilled:.3f` after {glue:text}`kip_steps_g` steps (means over
# {glue:text}`n_seeds` seeds of {glue:text}`n_test` test images): a gain of
# {glue:text}`kip_gain:.3f` (interval over seeds [{glue:text}`kip_gain_low:.3f`,
# {glue:text}`kip_gain_high:.3f`]; on the {glue:text}`kip_n_pooled` pooled test images, paired
# bootstrap [{glue:text}`kip_pooled_diff_low:.3f`, {glue:text}`kip_pooled_diff_high:.3f`],
# McNemar $p$ = {glue:text}`kip_mcnemar_p:.1e`). The authors' notebook (stars in the figure)
# reports {glue:text}`anchor_natural` for 100 natural CIFAR-10 images and
# {glue:text}`anchor_kip` after {glue:text}`anchor_steps` steps with target batches of
# {glue:text}`anchor_target_batch` from all 50000 training images, on the official CIFAR-10 and
# its 10000 test images; here the data are the lossy JPEG copy printed above, the pool holds
# {glue:text}`n_pool_g` images and each step sees {glue:text}`target_batch_g` of them. The
# learning curves show that with 100 images most of the gain comes in the first tens of steps,
# while with 10 images the accuracy is still rising at the last step; the table holds every
# dataset and support size, each with its own interval.
#
# **Precision.** The ridge allows condition numbers of $K_{SS} + \lambda I$ up to about
# $10^6 |S|$, which a float32 solve (7 digits) cannot handle; the authors run everything in
# float64. Here the condition numbers stay small (median {glue:text}`cond_median:.0f`, largest
# {glue:text}`cond_max:.0f` over all support sets, natural and learned), so the KIP steps run in
# float32, about four times faster on a CPU (`benchmarks/bench_kip.py` times one step against
# a straightforward float64 implementation of Eq. 27); every accuracy above uses a float64 solve,
# and the float32 predictions agree with the float64 ones on at least a fraction
# {glue:text}`f32_agree_min:.4f` of the test images (`kip_dtype = "float64"` runs the steps in
# float64 too).
#
# What do the learned images look like? The first support image of each class, natural (the
# start) and after KIP, in pixel units clipped to $[0, 1]$:

# %% mystnb={"figure": {"caption": "The first support image of each class (columns; first seed, largest support size) for each dataset, before (natural) and after KIP; pixels mapped back to $[0, 1]$ and clipped for display.", "name": "fig-ch00b-kip-images"}} tags=["hide-input"]
fig = ch.plot_learned_images(P, D, KR)

# %% [markdown]
# Each learned image keeps the layout of the natural image it started from. On CIFAR-10, KIP
# paints high-frequency coloured patterns over the whole image; on MNIST it blurs the strokes
# and fills the black background with faint structure. KIP uses every pixel of every support
# image to carry information about the whole pool, which no natural image does.
#
# (sec-advkip)=
# ## 2. Robustness from data alone: Adversarial KIP
#
# If the support set can be optimised for accuracy, it can be optimised for robustness. The
# notes (Sec. 3) give the Adversarial KIP loss of {cite}`tsilivis2022robustness`:
#
# $$\mathcal L_{\rm AdvKIP} = \big\|Y_T - K(X_T + \tilde\delta, X_S)\,K(X_S, X_S)^{-1} Y_S\big\|,
# \qquad \tilde\delta = \arg\max_{\delta \in \Delta} \ell\big(K(X_T + \delta, X_S)\,
# K(X_S, X_S)^{-1} Y_S,\, Y_T\big),$$
#
# with the cross-entropy $\ell$ for the inner maximisation (PGD on the kernel machine trained on
# the current $X_S$, an $\ell_\infty$ ball in pixel space, pixels kept in $[0, 1]$) and the
# square loss outside. By Danskin's theorem the gradient of the outer loss is taken at the
# maximiser with $\tilde\delta$ held fixed, as in adversarial training; only the *data* change,
# and whatever is trained on them afterwards is trained in the ordinary way. Each step costs
# about `advkip_pgd_steps` + 1 KIP steps.
#
# Three support sets of the same size start from the same natural subset: that subset, the KIP
# set of Section 1, and the Adversarial-KIP set. The kernel machine trained on each is attacked
# with the robustness suite (`ntknb.evaluation.robust_evaluation`: APGD-CE, APGD-DLR, PGD,
# worst case per image); then a finite fully connected network (one hidden layer of
# `net_width` units) is trained on each set by gradient descent on the square loss, its initial
# function subtracted so that it starts from 0 like the kernel machine, and attacked the same way.

# %% tags=["hide-input"]
AR = ch.advkip_study(P, D, KR)
AV = ch.advkip_values(P, AR)
for name, value in AV.items():
    glue_md(name, value) if isinstance(value, str) else glue(name, value)
ch.advkip_table(P, AR)

# %% mystnb={"figure": {"caption": "Left: clean (light) and robust (dark) test accuracy of the kernel machine (blue) and of the finite network (orange) trained on the natural, KIP and Adversarial-KIP support sets (dataset, support size and $\\epsilon$ in the title); bars: mean over seeds, black lines: minimum to maximum over seeds. Right: robust accuracy of the Adversarial-KIP kernel machine under the attack suite against the radius $\\epsilon$ (first seed; the masking check's curve); the dotted vertical line marks the $\\epsilon$ of the left panel.", "name": "fig-ch00b-robustness"}} tags=["hide-input"]
fig = ch.plot_robustness(P, AR)

# %% [markdown]
# On {glue:md}`advkip_dataset` at $\epsilon$ = {glue:text}`eps:.3f`
# ({glue:text}`n_robust_g` attacked test images per seed), the kernel machine trained on the
# natural subset keeps robust accuracy {glue:text}`natural_robust_acc:.3f`, the one on the KIP
# set {glue:text}`kip_robust_acc:.3f` and the one on the Adversarial-KIP set
# {glue:text}`advkip_robust_acc:.3f` (Adv-KIP minus KIP: {glue:text}`adv_vs_kip:.3f`, interval
# over seeds [{glue:text}`adv_vs_kip_low:.3f`, {glue:text}`adv_vs_kip_high:.3f`]), at clean
# accuracy {glue:text}`kernel_advkip_clean:.3f` against {glue:text}`kernel_kip_clean:.3f` for KIP
# and {glue:text}`kernel_natural_clean:.3f` for the natural subset. KIP alone already raises
# the robust accuracy (a more accurate machine tends to have larger margins); Adversarial KIP
# raises it further and pays for it in clean accuracy against KIP, the trade-off of
# {doc}`00a_robustness_toy_models`.
#
# Is the robustness real, or are the gradients masked? The checks of `ntknb.masking` on the
# Adversarial-KIP machine (first seed): {glue:md}`masking_passed`. Its robust accuracy falls
# with $\epsilon$ (right panel) down to {glue:text}`masking_large_eps_acc:.3f` at
# $\epsilon = 1$; single-step FGSM leaves {glue:text}`masking_fgsm_acc:.3f` against the suite's
# {glue:text}`masking_suite_acc:.3f`; the suite's adversarial points of the KIP machine,
# transferred, leave {glue:text}`masking_transfer_acc:.3f`; a fraction
# {glue:text}`masking_zero_grad:.3f` of the test images has a zero input gradient. A kernel
# machine is a smooth function of its input, which leaves little room for masking.
#
# **A finite network.** The networks trained on the three sets fit them (largest final
# training loss {glue:text}`net_loss_max:.1e`) and reach clean accuracy
# {glue:text}`net_natural_clean:.3f` (natural), {glue:text}`net_kip_clean:.3f` (KIP) and
# {glue:text}`net_advkip_clean:.3f` (Adv-KIP), robust accuracy
# {glue:text}`net_natural_robust:.3f`, {glue:text}`net_kip_robust:.3f` and
# {glue:text}`net_advkip_robust:.3f` (Adv-KIP minus KIP: {glue:text}`net_adv_vs_kip:.3f`,
# interval [{glue:text}`net_adv_vs_kip_low:.3f`, {glue:text}`net_adv_vs_kip_high:.3f`]). A
# network of width {glue:text}`net_width_g` trained by {glue:text}`net_steps_g` steps of
# gradient descent is close to the lazy regime of {doc}`00_ntk_basics`: its clean accuracies
# are within a few points of its kernel machine's (compare the columns of the table). Its robust
# accuracies are lower. One reason: a finite network keeps a random function of its
# initialisation (zero only on average over initialisations, and the kernel machine *is* that
# average), which gives the attack directions the kernel machine does not have. What survives is
# the effect of Adversarial KIP: the network trained on the Adversarial-KIP set is the most
# robust of the three. Networks far from the kernel regime (narrow, trained long with large
# steps, convolutional) need not inherit even that; {doc}`04_at_kernel_dynamics` shows how far a
# trained network's kernel moves.
#
# The three support sets, natural, KIP and Adversarial KIP. The Adversarial-KIP images stay
# closer to the natural ones than the KIP images. One reading: a set whose kernel machine must
# classify the PGD points of the targets cannot lean on faint background patterns, which a
# perturbation of size $\epsilon$ can imitate.

# %% mystnb={"figure": {"caption": "The first support image of each class (columns; first seed, the Adversarial-KIP support size): the natural start, the KIP image and the Adversarial-KIP image; pixels mapped back to $[0, 1]$ and clipped for display.", "name": "fig-ch00b-advkip-images"}} tags=["hide-input"]
fig = ch.plot_learned_images(P, D, KR, AR)

# %% [markdown]
# ## Claims
#
# Thresholds fixed before measuring (see `ch.build_claims`): every comparison asks for a
# difference above 0 ("beats", "more robust", "more accurate"), as an interval over the
# {glue:text}`n_seeds` seeds of a paired difference (same seed, same natural start, same test
# images); the anchor asks for at least half the authors' gain, since the defaults run a third of
# their steps with a fifth of their target batch.

# %% tags=["remove-input"]
CLAIMS = ch.build_claims(P, KR, AR)
glue("runtime_s", time.perf_counter() - t_start)
claims.glue_summary(CLAIMS)
display(claims.glue_claims(CLAIMS))

# %% [markdown]
# The chapter ran in {glue:text}`runtime_s:.0f` s.
#
# ## Summary
#
# ```{ntknb-claims-summary}
# ```
#
# In words:
#
# - In the NTK limit, data distillation is one differentiable loss (notes, Eq. 27): the kernel
#   machine trained on the support set, scored on the target set. Adam on the support images
#   turns {glue:text}`kip_headline_size` natural {glue:md}`kip_headline_dataset` images with
#   accuracy {glue:text}`kip_acc_natural:.3f` into a set with accuracy
#   {glue:text}`kip_acc_distilled:.3f` (claims `ch00b.kip_gain_*`, `ch00b.kip_anchor_gain`).
# - Replacing the targets by their PGD points (Adversarial KIP) gives a support set on which an
#   ordinary kernel machine is robust: {glue:text}`advkip_robust_acc:.3f` against
#   {glue:text}`kip_robust_acc:.3f` for KIP and {glue:text}`natural_robust_acc:.3f` for natural
#   images (claims `ch00b.advkip_*`).
# - A wide finite network trained on the sets inherits the accuracy of the KIP set and the
#   robustness advantage of the Adversarial-KIP set ({glue:text}`net_advkip_robust:.3f` against
#   {glue:text}`net_kip_robust:.3f`), at a lower robust accuracy than the kernel machine's
#   (claims `ch00b.net_*`).
#
# The verdicts are those of the table above; rerun with other seeds to check them.
#
# ## Exercises
#
# 1. *Predict first, then rerun.* With `-p learn_labels true` KIP also learns the labels. Will
#    the gain on CIFAR-10 with 10 images grow or shrink? Run
#    `ntknb run 00b_kip_distillation -p learn_labels true -p advkip_datasets '[]' -p seed 50`.
#
#    ```{admonition} Solution
#    :class: dropdown
#    It grows (with seeds 50 and 51, from about 0.30 to 0.36): learned labels add $|S| k$ free
#    parameters and let one image speak for several classes, which matters most when a single
#    image must carry a whole class. With 100 images, or on MNIST, the change is small at these
#    step counts.
#    ```
#
# 2. *Why the ridge.* Without it ($\lambda = 0$), what goes wrong when two support images
#    become equal during the run? Check with `ntknb.kip.support_condition_number` on a support
#    set with a duplicated image and `reg = 0`.
#
#    ```{admonition} Solution
#    :class: dropdown
#    $K_{SS}$ then has two equal rows and is singular: the solve is undefined (or returns huge
#    weights in floating point) and the loss and its gradient blow up. The ridge
#    $\lambda = 10^{-6}\,\mathrm{tr}(K_{SS})/|S|$ bounds the condition number by about
#    $10^6 |S|$, which is why float64 may be needed once the support set grows.
#    ```
#
# 3. *Code.* Adversarial KIP differentiates with the PGD points held fixed. On a toy problem
#    (20 random support points and 50 targets in $[0, 1]^{8}$, `kernel_fn` of
#    `ntknb.architectures.fully_connected(out_dim=2)`), compare the gradient of
#    `ntknb.kip.kip_loss` at the points of `ntknb.kip.adversarial_targets` with central finite
#    differences of $X_S \mapsto \mathcal L(X_S;\, X_T + \tilde\delta(X_S))$, PGD rerun (same key)
#    at each perturbed $X_S$. When do they agree?
#
#    ```{admonition} Solution
#    :class: dropdown
#    They agree, up to rare jumps. Signed-gradient PGD depends on $X_S$ only through the signs of
#    its gradients (and the projections): for a small enough change of $X_S$ every step is the
#    same, $\tilde\delta$ does not move, and the difference quotient sees only the explicit
#    dependence on $X_S$, which is what the held-fixed gradient computes. Where a small change
#    flips the sign of a gradient coordinate in some step, $\tilde\delta$ jumps and the
#    difference quotient is dominated by the jump. An exact maximiser $\delta^*(X_S)$ of the
#    cross-entropy would move continuously with $X_S$; since the outer loss (square) is not the
#    inner one (cross-entropy), Danskin's theorem does not remove the term
#    $\partial_\delta\mathcal L\,\partial_{X_S}\delta^*$. The held-fixed gradient is the
#    practical choice of adversarial training, not the gradient of the two-level objective.
#    ```
#
# 4. *Implement it: the KIP loss (notes, Eq. 27).* Write
#    `kip_loss(kernel_fn, x_support, y_support, x_target, y_target, reg)` returning
#
#    $$\frac12 \operatorname{mean}\big((K_{TS} (K_{SS} + \lambda \tfrac{\operatorname{tr} K_{SS}}{S} I)^{-1} Y_S - Y_T)^2\big)$$
#
#    over all entries of $Y_T$, where `kernel_fn(x1, x2, "ntk")` gives $K(x_1, x_2)$ and $S$
#    is the number of support points. `ntknb.exercises.check_kip_loss(kip_loss)` compares it
#    with `ntknb.kip.kip_loss`.
#
#    ````{admonition} Solution
#    :class: dropdown
#    ```python
#    import jax.numpy as jnp
#    from ntknb import exercises
#
#    def kip_loss(kernel_fn, x_support, y_support, x_target, y_target, reg):
#        k_ss = kernel_fn(x_support, x_support, "ntk")
#        s = k_ss.shape[0]
#        alpha = jnp.linalg.solve(k_ss + reg * jnp.trace(k_ss) / s * jnp.eye(s), y_support)
#        f = kernel_fn(x_target, x_support, "ntk") @ alpha
#        return 0.5 * jnp.mean((f - y_target) ** 2)
#
#    exercises.check_kip_loss(kip_loss)
#    ```
#    Written in `jax.numpy`, the loss is differentiable in `x_support` and `y_support`:
#    `jax.grad(kip_loss, argnums=1)` is the gradient the support-set learning loop follows.
#    ````

# %% tags=["remove-cell"]
# NBVAL_CHECK_OUTPUT
print(ch.summary_text({**KV, **AV}))
