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
# standard training and with adversarial training (FGSM-AT {cite}`goodfellow2015explaining`,
# PGD-AT {cite}`madry2018towards`, TRADES {cite}`zhang2019theoretically`) and measures, after
# every epoch, the empirical NTK on a fixed class-balanced probe set of held-out images:
#
# * on the clean probe images (**C-NTK**) and on the network's own PGD adversarial examples of
#   them (**AE-NTK**) {cite}`li2023rethinking`;
# * the *traced* kernel $\hat\Theta = \frac1k\sum_i \Theta^{i,i}$ ($n\times n$) for the distance,
#   norm and spectrum measurements, and the per-logit blocks $\Theta^{i,i}$ for kernel
#   specialization.
#
# We test four claims:
#
# 1. **Tsilivis & Kempe, Sec. 5** {cite}`tsilivis2022ntk`: during adversarial training the kernel
#    rotates fast early, *grows much less* (Frobenius norm), *concentrates more* on its top-20
#    eigenspace and *becomes lazy earlier* than during standard training (Figs. 3 and 6).
# 2. **"Rethinking", Sec. 3** {cite}`li2023rethinking`: kernel distance (KD) between consecutive
#    epochs, kernel effective rank (KER {cite}`roy2007effective`) and kernel specialization (KS
#    {cite}`shan2021theory`) show a "kernel learning → lazy → kernel learning" pattern, the last
#    phase triggered by the learning-rate decay.
# 3. **"Rethinking", Sec. 5**: since the kernel freezes early, clean training for the first
#    $k$ epochs followed by PGD-AT is a cheaper route to robustness.
# 4. **Loo et al.** {cite}`loo2022evolution`: adversarial training of the network *linearised*
#    around its weights after a few epochs (a frozen kernel) retains robustness.
#
# **Scale.** Defaults are sized for a 2-core CPU and a budget of about 8 minutes: a
# 7-layer CNN of width 8 (four 3×3 convolutions, three dense layers), 1000 training images,
# 6 epochs of SGD (learning rate 0.03, decayed ×0.1 after epoch 4), 3-step PGD for training and
# 10-step PGD for evaluation, all four training modes on MNIST ($\epsilon = 0.1$) and standard vs
# PGD-AT on CIFAR-10 ($\epsilon = 8/255$). The learning rate was chosen for PGD-AT on MNIST: at
# 0.01 PGD-AT spends its first epochs near chance and ends *less* robust than standard training.
# The per-epoch evaluation attack is checked below against a stronger one (PGD-40 with random
# restarts) on the final models. (At this budget PGD-AT on CIFAR-10 does not leave the
# trivial "predict the class prior" plateau — it stayed at chance in every setting we tried:
# learning rates 0.003–0.03, batch 50 without weight decay, $\epsilon = 4/255$ — which is why
# MNIST carries the sections that need a working robust model.) The paper-sized preset
# (`04_at_kernel_dynamics.paper.yaml`: 50 000 images, 200 epochs, 10-step PGD, 500 probe images)
# needs a GPU. Each number below is measured at the scale of the run that produced this page;
# where an effect does not show at this scale, the text says so.

# %% tags=["parameters"]
seed = 0  # PRNG seed: data subsample, probe set, initialisation, data order, attack starts
dataset = "mnist"  # main dataset (all sections): "mnist" or "cifar10"
second_dataset = "cifar10"  # dataset of the standard-vs-PGD replication (Figs. 3, 6), or "none"
n_train = 1000  # training images (class-balanced, all 10 classes)
n_test = 200  # held-out images for per-epoch clean / robust accuracy
probe_per_class = 10  # probe images per class for the empirical NTK (n = 10 * this)
width = 8  # channels of the first conv block (second block: 2 * width)
hidden = 32  # units of the two hidden dense layers
epochs = 6  # training epochs
lr_decay_epochs = [4]  # epochs after which the learning rate is multiplied by lr_decay_factor
lr_decay_factor = 0.1  # step learning-rate decay
learning_rate = 0.03  # initial SGD learning rate (0.01: PGD-AT on MNIST under-trained in 6 epochs)
momentum = 0.9  # SGD momentum
weight_decay = 5e-4  # L2 weight decay
batch_size = 20  # mini-batch size (small: more SGD steps per CPU second)
augment = "none"  # "none", "crop" or "crop_flip" (random crop + horizontal flip)
eps_cifar = 8 / 255  # l-inf radius on CIFAR-10 (training, evaluation, AE-NTK)
eps_mnist = 0.1  # l-inf radius on MNIST
attack_steps = 3  # PGD steps of PGD-AT / TRADES (step 2.5 * eps / steps, random start)
eval_attack_steps = 10  # PGD steps of the robust-accuracy evaluation and of the AE-NTK probe
trades_beta = 6.0  # TRADES trade-off beta
modes = ["standard", "fgsm", "pgd", "trades"]  # training modes on the main dataset
top_p = 20  # top eigenspace size for concentration and top-space polar plots
lazy_threshold = 0.05  # kernel is "lazy" once KD between consecutive epochs stays below this
cheap_at_clean_epochs = [2, 4]  # k of "clean for k epochs, then PGD-AT"
linearize_epoch = 2  # Loo et al.: PGD-AT epochs before freezing the kernel (linearising)

# %%
import time

import jax

from ntknb import metrics, models, plotting
from ntknb.chapters import ch04_kernel_dynamics as ch
from ntknb.claims import glue_claims
from ntknb.report import glue, glue_md, glue_table

P = ch.Params.from_namespace(globals())  # checks every parameter (the rules: ch.Params)
plotting.use_book_style()
t_start = time.perf_counter()

# %% [markdown]
# ## Data, probe set and model
#
# The probe set ({glue:text}`n_probe` held-out images, the same number from each class, sorted
# by class) is fixed for the whole chapter; every kernel below is computed on it, with
# neural-tangents' empirical NTK ({func}`ntknb.kernels.empirical_ntk`, full per-logit kernel
# $(n, n, k, k)$; see `benchmarks/bench_empirical_ntk.py` for the choice of implementation).

# %%
DATA = ch.load_data(P)  # {dataset: its subsample and probe set}
for name, d in DATA.items():
    print(d.dataset.provenance.describe())
    print(d.task, "probe:", d.x_probe.shape)
n_probe = glue("n_probe", len(DATA[P.dataset].labels_probe))
model = ch.make_model(P)
params0, _ = models.init_model(model, DATA[P.dataset].task.x_train.shape[1:], seed=P.seed)
print(model, "parameters:", sum(p.size for p in jax.tree_util.tree_leaves(params0)))

# %% [markdown]
# ## Training with kernel tracking
#
# Every run starts from the same initialisation and sees the same data order; they differ
# only in the data each step trains on. Kernels are computed at initialisation (epoch 0) and
# after each epoch.

# %%
RUNS = ch.run_all(P, DATA, model)  # {(dataset, mode): (TrainResult, KernelTrajectory, snapshots)}
for (name, m), (res, traj, _) in RUNS.items():
    glue(f"acc_{name}_{m}", res.history[-1].clean_acc)
    glue(f"robacc_{name}_{m}", res.history[-1].robust_acc)
glue_table("acc_table", ch.accuracy_rows(RUNS), ch.ACCURACY_COLUMNS, floatfmt=".3f", display=True)

# %% [markdown]
# After {glue:text}`epochs_g` epochs, standard training reaches a clean test accuracy of
# {glue:text}`acc_main_std:.3f` and PGD robust accuracy {glue:text}`robacc_main_std:.3f` on the
# main dataset; PGD-AT reaches {glue:text}`acc_main_adv:.3f` clean and
# {glue:text}`robacc_main_adv:.3f` robust. {glue:md}`at_verdict`
#
# **Is the evaluation attack strong enough?** Against PGD-{glue:text}`strong_steps` with
# {glue:text}`strong_restarts` random restarts (an example counts as robust only if it survives
# every restart) the final standard network keeps {glue:text}`strong_rob_std:.3f` and the PGD-AT
# network {glue:text}`strong_rob_adv:.3f` robust accuracy (per-epoch evaluation:
# {glue:text}`robacc_main_std:.3f` and {glue:text}`robacc_main_adv:.3f`). {glue:md}`strong_verdict`
#
# At this scale the networks are far from converged
# (a few hundred SGD steps on 1000 images), so all the kernel statements below are about the
# *early* phase of training.

# %%
glue("epochs_g", P.epochs)
res_std, res_adv = RUNS[(P.dataset, "standard")][0], RUNS[(P.dataset, "pgd")][0]
glue("acc_main_std", res_std.history[-1].clean_acc)
rob_std = glue("robacc_main_std", res_std.history[-1].robust_acc)
glue("acc_main_adv", res_adv.history[-1].clean_acc)
rob_adv = glue("robacc_main_adv", res_adv.history[-1].robust_acc)
glue_md("at_verdict", ch.at_verdict(P, rob_std, rob_adv))
strong_steps, strong_restarts = glue("strong_steps", 40), glue("strong_restarts", 2)
task, eps = DATA[P.dataset].task, P.eps[P.dataset]
ok_std = ch.strong_robust_correct(res_std, task, eps, P.seed, P.n_test, strong_steps, strong_restarts)
ok_adv = ch.strong_robust_correct(res_adv, task, eps, P.seed, P.n_test, strong_steps, strong_restarts)
strong_std = glue("strong_rob_std", float(ok_std.mean()))  # per point: survives every restart
strong_adv = glue("strong_rob_adv", float(ok_adv.mean()))
glue_md("strong_verdict", ch.strong_verdict(P, rob_std, rob_adv, strong_std, strong_adv))
fig = ch.plot_accuracies(P, RUNS)

# %% [markdown]
# ## Kernel rotation and polar trajectories (T&K Fig. 3)
#
# Left: kernel distance $d(\Theta_i, \Theta_j) = 1 - \mathrm{Tr}(\Theta_i\Theta_j^\top) /
# (\|\Theta_i\|_F\|\Theta_j\|_F)$ between the C-NTKs of every pair of epochs. Right: the
# trajectory in polar coordinates $r_t = \|\Theta_t - \Theta_0\|_F / \|\Theta_f - \Theta_0\|_F$,
# $\theta_t = \arccos(1 - d(\Theta_t, \Theta_0))$ (Eq. 12), for the whole kernel and for its
# restriction to the top-{glue:text}`top_p_g` eigenspace.

# %%
glue("top_p_g", P.top_p)
mats = {f"{name} {ch.LABEL[m]}": RUNS[(name, m)][1].distance_matrix("clean")
        for name in P.datasets for m in ("standard", "pgd")}
fig = plotting.plot_distance_heatmaps(mats, epochs=RUNS[(P.dataset, "pgd")][1].epochs)

# %%
panels = {}
for name in P.datasets:
    trajs = {ch.LABEL[m]: RUNS[(name, m)][1] for m in ("standard", "pgd")}
    panels[f"{name}: whole kernel"] = {k: t.polar("clean") for k, t in trajs.items()}
    panels[f"{name}: top-{P.top_p} space"] = {k: t.polar("clean", top=True) for k, t in trajs.items()}
fig = plotting.plot_polar_trajectories(panels)

# %% [markdown]
# ## Growth and concentration of the kernel (T&K Fig. 6)

# %%
fig = ch.plot_growth_and_concentration(P, RUNS)

# %%
traj_std, traj_adv = RUNS[(P.dataset, "standard")][1], RUNS[(P.dataset, "pgd")][1]
fig = plotting.plot_kernel_matrices({"initialisation": traj_std.kernel(0),
                                     "after standard training": traj_std.final["clean"],
                                     "after PGD-AT": traj_adv.final["clean"]})

# %% [markdown]
# ### The claims, measured
#
# * **Growth.** At the end of training the C-NTK of the standard network has
#   {glue:text}`frob_ratio_std_over_adv:.3f` times the Frobenius norm of the PGD-AT network's
#   (initial norm {glue:text}`frob_init:.4g`, standard {glue:text}`frob_std:.4g`, PGD-AT
#   {glue:text}`frob_adv:.4g`). {glue:md}`growth_verdict`
# * **Concentration.** The share of $\|\hat\Theta\|_F^2$ in the top-{glue:text}`top_p_g`
#   eigenvalues is {glue:text}`top20_std:.4f` after standard training and
#   {glue:text}`top20_adv:.4f` after PGD-AT (at initialisation {glue:text}`top20_init:.4f`).
#   {glue:md}`conc_verdict`
# * **Laziness.** With the threshold $d(\Theta_{t-1}, \Theta_t) <$ {glue:text}`lazy_threshold_g`
#   for all later epochs up to the first learning-rate decay (epoch {glue:text}`lazy_until_g`),
#   the standard kernel becomes lazy at epoch {glue:text}`lazy_epoch_std` and the PGD-AT kernel
#   at epoch {glue:text}`lazy_epoch_adv` (NaN = not lazy within the window).
#   {glue:md}`lazy_verdict`
#
# On the second dataset ({glue:md}`second_name`) the norm ratio is
# {glue:text}`frob_ratio_second:.3f`, the top-{glue:text}`top_p_g` concentrations are
# {glue:text}`top20_std_second:.4f` (standard) and {glue:text}`top20_adv_second:.4f` (PGD-AT), and
# the lazy epochs {glue:text}`lazy_epoch_std_second` and {glue:text}`lazy_epoch_adv_second`.
# {glue:md}`second_verdict`
#
# The thresholds of the claims below were fixed before measuring and are justified in
# `ntknb/chapters/ch04_kernel_dynamics.py` (comment above `CLAIM_THRESHOLDS`): "orders of
# magnitude" is a norm ratio of at least 10; "significantly larger" concentration and a more
# robust PGD-AT network need a positive difference whose interval excludes 0. With one training
# run per mode, the kernel intervals are bootstraps over the probe images (not over seeds) and
# the robustness interval a paired bootstrap over the test points under the strong attack. The
# laziness comparison (integer epochs, one run) has no interval and is not a claim here. The
# verdicts follow from interval, threshold and direction alone.

# %%
C = ch.kernel_measurements(P, RUNS, P.dataset)
for key, name in ch.CLAIM_NAMES.items():
    glue(name, C[key])
glue("lazy_threshold_g", P.lazy_threshold)
glue("lazy_until_g", P.lazy_until if P.lazy_until is not None else P.epochs)
glue_md("lazy_verdict", ch.lazy_verdict(C))
numbers, texts = ch.second_dataset_values(P, RUNS)
for name, value in numbers.items():
    glue(name, value)
for name, text in texts.items():
    glue_md(name, text)

# %%
claims = ch.claims(P, RUNS, ok_std, ok_adv)  # growth, concentration, robustness gain of PGD-AT
glue_md("growth_verdict", ch.growth_verdict(claims[0]))
glue_md("conc_verdict", ch.conc_verdict(claims[1], C, n_probe, P.top_p))
glue("n_seeds", 1)  # one training run per mode
glue("n_test", P.n_test)
glue_claims(claims)

# %% [markdown]
# ## KD, KER and KS along training ("Rethinking", Sec. 3)
#
# For every training mode: kernel distance between consecutive epochs, kernel effective rank
# $\exp(-\sum_i p_i\log p_i)$, $p_i = \sigma_i/\sum_j\sigma_j$, and kernel specialization
# $\mathrm{KS} = \mathrm{Tr}(M_{ks})/k$ with
# $M_{ks}^{i,j} = A(\Theta^{i,i}, Y_jY_j^\top) / \frac1k\sum_l A(\Theta^{l,l}, Y_jY_j^\top)$ —
# on C-NTKs (top row) and AE-NTKs (bottom row), KS under clean labels (CL); for AE-NTKs also
# under adversarial labels (AL, the network's predictions on its adversarial examples,
# dotted). The dashed line marks the learning-rate decay.

# %%
fig = ch.plot_kd_ker_ks(P, RUNS)

# %% [markdown]
# Measured: the mean consecutive KD of the C-NTK *before* the learning-rate decay (after the
# first epoch) is {glue:text}`kd_pre_std:.4f` for standard training and
# {glue:text}`kd_pre_adv:.4f` for PGD-AT; in the epoch right after the decay it is
# {glue:text}`kd_post_std:.4f` and {glue:text}`kd_post_adv:.4f`. {glue:md}`decay_verdict`
# The final KER is {glue:text}`ker_std:.2f` (standard) vs {glue:text}`ker_adv:.2f` (PGD-AT) on
# C-NTKs; KS on AE-NTKs (clean labels) ends at {glue:text}`ks_ae_std:.3f` (standard) and
# {glue:text}`ks_ae_adv:.3f` (PGD-AT), to be compared with "Rethinking"'s observation that KS on
# AE-NTKs close to 1 goes with robustness.

# %%
(pre_s, post_s), (pre_a, post_a) = ch.kd_phases(traj_std, P.lazy_until), ch.kd_phases(traj_adv, P.lazy_until)
glue("kd_pre_std", pre_s)
glue("kd_pre_adv", pre_a)
glue("kd_post_std", post_s)
glue("kd_post_adv", post_a)
glue_md("decay_verdict", ch.decay_verdict(pre_s, post_s, pre_a, post_a))
glue("ker_std", traj_std.metrics["clean.ker"][-1])
glue("ker_adv", traj_adv.metrics["clean.ker"][-1])
glue("ks_ae_std", traj_std.metrics["adv.ks_cl"][-1])
glue("ks_ae_adv", traj_adv.metrics["adv.ks_cl"][-1])

# %% [markdown]
# ## Cheaper adversarial training ("Rethinking", Sec. 5)
#
# Clean training for the first $k$ epochs, then PGD-AT. $k = 0$ is full PGD-AT and
# $k = $ {glue:text}`epochs_g` is standard training. "KD to PGD-AT kernel" is the distance of
# the final C-NTK to the final C-NTK of full PGD-AT; time is the wall-clock time of the
# parameter updates (compilation and evaluation excluded).

# %%
cheap = ch.cheap_at_runs(P, DATA, model, RUNS)  # {k: run}; k = 0: PGD-AT, k = epochs: standard
K_at = traj_adv.final["clean"]
cheap_rows = ch.cheap_at_rows(cheap, K_at)
for k, _, frac, clean, robust, kd in cheap_rows:
    glue(f"cheap_at_k{k}_time_frac", frac)
    glue(f"cheap_at_k{k}_clean_acc", clean)
    glue(f"cheap_at_k{k}_robust_acc", robust)
    glue(f"cheap_at_k{k}_kd_to_at", kd)
glue_table("cheap_at_table", cheap_rows, ch.CHEAP_AT_COLUMNS, floatfmt=".3f", display=True)
k_mid = glue("cheap_at_k_mid", sorted(P.cheap_at_clean_epochs)[0])

# %% [markdown]
# With $k$ = {glue:text}`cheap_at_k_mid` clean epochs the training costs
# {glue:text}`cheap_k_mid_frac:.2f` of full PGD-AT and reaches robust accuracy
# {glue:text}`cheap_k_mid_rob:.3f` (full PGD-AT: {glue:text}`robacc_main_adv:.3f`; standard:
# {glue:text}`robacc_main_std:.3f`); the final kernel is at distance
# {glue:text}`cheap_k_mid_kd:.4f` from the PGD-AT kernel. The table holds the other $k$.

# %%
glue("cheap_k_mid_frac", cheap[k_mid][0].train_seconds / cheap[0][0].train_seconds)
glue("cheap_k_mid_rob", cheap[k_mid][0].history[-1].robust_acc)
glue("cheap_k_mid_kd", metrics.kernel_distance(cheap[k_mid][1].final["clean"], K_at))

# %% [markdown]
# ## Adversarial training on a frozen kernel (Loo et al.)
#
# After {glue:text}`linearize_epoch_g` epochs of PGD-AT we linearise the network around its
# current weights, $f_{lin}(\theta, x) = f(\theta_k, x) + J_\theta f(\theta_k, x)(\theta - \theta_k)$
# (`neural_tangents.linearize`; its NTK is frozen at $\Theta_{\theta_k}$), and continue PGD-AT of
# the linearised model (attacks target $f_{lin}$) for the remaining epochs with the same schedule.

# %%
glue("linearize_epoch_g", P.linearize_epoch)
res_lin = ch.linearized_run(P, DATA, RUNS)  # PGD-AT of the network linearised at linearize_epoch
lin_rob = glue("lin_robust_acc", res_lin.history[-1].robust_acc)
lin_clean = glue("lin_clean_acc", res_lin.history[-1].clean_acc)
glue("lin_at_k_robust_acc", res_adv.history[P.linearize_epoch - 1].robust_acc)
fig = ch.plot_linearized(P, RUNS, res_lin)

# %% [markdown]
# The linearised model ends with robust accuracy {glue:text}`lin_robust_acc:.3f` (clean
# {glue:text}`lin_clean_acc:.3f`), against {glue:text}`robacc_main_adv:.3f` for full PGD-AT and
# {glue:text}`lin_at_k_robust_acc:.3f` at the moment of linearisation. {glue:md}`lin_verdict`

# %%
glue_md("lin_verdict", ch.lin_verdict(P, lin_rob, res_adv.history[-1].robust_acc))

# %% [markdown]
# ## Summary
#
# The cell below prints the headline numbers, rounded to 2 decimals (checked by the
# notebook test: they are identical across runs on the same CPU), and the wall-clock time of
# the whole notebook.

# %%
# NBVAL_CHECK_OUTPUT
print(ch.summary_text(P, C, RUNS, lin_rob))

# %%
runtime = glue("runtime_s", time.perf_counter() - t_start)
print(f"notebook runtime: {runtime:.0f} s")
