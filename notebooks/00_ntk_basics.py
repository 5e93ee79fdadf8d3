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
# # NTK basics: wide networks are kernel machines
#
# Everything else in this book rests on three facts from the lecture notes
# "Kernels, Data & Physics" {cite}`kernels_data_physics`, Section 2, which this chapter
# measures on real data rather than takes on trust:
#
# 1. **Convergence.** The *empirical* NTK of a finite network,
#    $\hat\Theta_m(x, x') = \nabla_\theta f_\theta(x)^\top \nabla_\theta f_\theta(x')$ (Eq. 7 of the notes),
#    computed at a random initialisation of a network of width $m$, tends to a deterministic
#    *analytic* kernel $\Theta$ as $m \to \infty$ (Eqs. 16-17), with fluctuations of order
#    $m^{-1/2}$ (Eq. 18) {cite}`jacot2018ntk`.
# 2. **Linearised dynamics.** A wide network trained by gradient descent on the square loss
#    stays close to its linearisation, so its function follows Eq. (15) of the notes, which is
#    solved in closed form: the kernel predictor at time $t$ {cite}`lee2019wide`,
#    $f_t(x) = \Theta(x, X)\,\Theta^{-1}\bigl(I - e^{-\Theta t / N}\bigr) Y$
#    (Eq. 7 of {cite}`tsilivis2022ntk`).
# 3. **Spectral bias.** Along the eigenvector $v_i$ of the Gram matrix $\Theta(X, X)$ the training
#    residual decays as $e^{-\lambda_i t / N}$ (Eq. 21 of the notes): directions with large
#    eigenvalues are learned first.
#
# **Conventions.** The loss is $\tfrac12\,\mathrm{mean}\,(f(X) - Y)^2$ over all $N = n k$ entries
# of the $n \times k$ label matrix, and after $s$ steps of size $\eta$ the training time is
# $t = s\,\eta$ — the convention of neural-tangents {cite}`novak2020neural`, which absorbs the
# learning rate $\eta$ of the notes into $t$ and the $1/N$ of the mean. The network compared
# with $f_t$ is the *centred* network $f_\theta - f_{\theta_0}$ (Tsilivis & Kempe, footnote 2):
# the kernel predictor is the mean over initialisations, and the random initial function
# $f_{\theta_0}$ is subtracted.
#
# The parameters below are the defaults: every one can be changed with
# `ntknb run 00_ntk_basics -p NAME VALUE` (see {doc}`../book/running`).

# %% tags=["parameters"]
seed = 0  # PRNG seed: data subsample and network initialisations
dataset = "mnist"  # "mnist" or "cifar10"
n_train = 100  # training images (class-balanced, 10 classes)
n_test = 500  # held-out images for the test predictions
depth = 1  # hidden layers of the fully connected ReLU network (NTK parameterisation)
# (1) empirical vs analytic NTK
probe_size = 32  # images on which the empirical NTK is compared
ntk_widths = [64, 128, 256, 512, 1024, 2048, 4096]  # widths m of the finite networks
ntk_seeds = 3  # initialisations per width
# (2) gradient descent vs the kernel predictor
train_widths = [256, 1024, 4096]  # widths of the trained networks
lr_fraction = 0.4  # learning rate as a fraction of the largest stable one, 2N / lambda_max
total_steps = 1000  # full-batch gradient-descent steps
n_checkpoints = 15  # log-spaced checkpoints along training
# (3) spectral bias
modes = [1, 2, 5, 10, 50]  # eigen-directions (1 = largest eigenvalue) to follow

# %%
import numpy as np

from ntknb import architectures, data, kernels, lazy, plotting, transfer
from ntknb.report import glue
from ntknb.training import log_spaced_steps
from ntknb.validation import check_choice, check_float, check_int, check_sequence

dataset = check_choice("dataset", dataset, ["mnist", "cifar10"])
seed = check_int("seed", seed, min=0)
n_train = check_int("n_train", n_train, min=10)
n_test = check_int("n_test", n_test, min=10)
depth = check_int("depth", depth, min=1, max=5)
probe_size = check_int("probe_size", probe_size, min=2, max=n_train)
ntk_widths = check_sequence("ntk_widths", ntk_widths, of=int, min_length=2)
ntk_seeds = check_int("ntk_seeds", ntk_seeds, min=1)
train_widths = check_sequence("train_widths", train_widths, of=int, min_length=1)
lr_fraction = check_float("lr_fraction", lr_fraction, min=0.0, max=1.0, min_inclusive=False, max_inclusive=False)
total_steps = check_int("total_steps", total_steps, min=1)
n_checkpoints = check_int("n_checkpoints", n_checkpoints, min=2)
modes = check_sequence("modes", modes, of=int, min_length=1)
if min(ntk_widths) < 1 or min(train_widths) < 1:
    raise ValueError("parameters 'ntk_widths' and 'train_widths' must hold positive integers")
if min(modes) < 1 or max(modes) > n_train:
    raise ValueError(f"parameter 'modes' must hold eigen-indices in [1, n_train={n_train}], got {modes}")
plotting.use_book_style()

# %% [markdown]
# ## The data
#
# A class-balanced subsample of the training set and of the test set, inputs in $[0, 1]$,
# labels as centred one-hot vectors $e_y - \tfrac{1}{10}$.

# %%
ds = data.load_dataset(dataset)
task = data.make_task(ds, n_train=n_train, n_test=n_test, seed=seed)
print(task.provenance.describe())
print(f"train {task.x_train.shape}, test {task.x_test.shape}, labels {task.y_train.shape}")


# %% [markdown]
# ## 1. The empirical NTK converges to the analytic NTK
#
# For each width $m$ we draw a few initialisations of the network, compute its empirical NTK
# on a probe set with neural-tangents, and compare it with the analytic infinite-width
# kernel of the same architecture (the `kernel_fn` of neural-tangents' `stax`).

# %%
def make_net(width, out_dim=1):
    return architectures.fully_connected(depth=depth, width=width, out_dim=out_dim)


x_probe = task.x_train[:probe_size]
errors = lazy.empirical_ntk_errors(make_net, ntk_widths, x_probe, n_seeds=ntk_seeds, seed=seed)
slope, intercept = lazy.loglog_slope(np.repeat(ntk_widths, ntk_seeds), errors.ravel())
glue("ntk_width_slope", slope)
glue("ntk_rel_error_widest", errors[-1].mean())
glue("ntk_widest", ntk_widths[-1])

fig, ax = plotting.new_figure(width=5.0)
ax.loglog(np.repeat(ntk_widths, ntk_seeds), errors.ravel(), "o", alpha=0.5, label="one initialisation")
ax.loglog(ntk_widths, errors.mean(axis=1), "-", lw=2, label="mean")
w = np.asarray(ntk_widths, float)
ax.loglog(w, np.exp(intercept) * w**slope, "k--", label=f"fit: slope {slope:.2f}")
ax.loglog(w, errors.mean(axis=1)[0] * (w / w[0]) ** -0.5, ":", color="grey", label="slope -1/2 (theory)")
ax.set_xlabel("width $m$")
ax.set_ylabel(r"$\|\hat\Theta_m - \Theta\|_F \,/\, \|\Theta\|_F$")
ax.set_title("Empirical NTK at initialisation vs analytic NTK")
ax.legend();

# %% [markdown]
# The fitted slope is {glue:text}`ntk_width_slope:.2f` (theory: $-1/2$); at width
# {glue:text}`ntk_widest` the empirical kernel is within {glue:text}`ntk_rel_error_widest:.3f`
# of the analytic one in relative Frobenius norm. The scatter between initialisations at a
# given width is of the same order as the error itself: at finite width the kernel is random.
#
# ## 2. Gradient descent on a wide network follows the kernel predictor
#
# We train networks of several widths by full-batch gradient descent on the square loss and,
# at each checkpoint $t$, compare their centred outputs on held-out images with the kernel
# predictor $f_t$ of the analytic NTK at the same $t$. The learning rate is a fixed fraction
# of the largest stable one, $2N/\lambda_{\max}$.

# %%
kernel = transfer.KernelModel.build(make_net(train_widths[-1], out_dim=task.n_classes), task.x_train, task.y_train)
lr = lr_fraction * transfer.max_stable_learning_rate(kernel.k_train_train, task.n_classes)
steps = log_spaced_steps(total_steps, n_checkpoints)
k_test_train = np.asarray(kernels.kernel_matrix(kernel.kernel_fn, task.x_test, task.x_train))
f_kernel = np.stack([k_test_train @ np.asarray(kernel.weights(t)) for t in steps * lr])

nets, gaps = {}, {}
for width in train_widths:
    net = transfer.train_network(make_net(width, task.n_classes), task.x_train, task.y_train, lr, steps, seed=seed)
    g = np.stack([np.asarray(net.outputs(p, task.x_test)) for p in net.run.params])
    nets[width] = net
    gaps[width] = np.linalg.norm(g - f_kernel, axis=(1, 2)) / np.maximum(np.linalg.norm(f_kernel, axis=(1, 2)), 1e-12)

widest = nets[train_widths[-1]]
g_final = np.asarray(widest.outputs(widest.run.params[-1], task.x_test))
labels = task.labels_test
acc_net = float(np.mean(g_final.argmax(1) == labels))
acc_kernel = float(np.mean(f_kernel[-1].argmax(1) == labels))
agreement = float(np.mean(g_final.argmax(1) == f_kernel[-1].argmax(1)))
glue("lr", lr)
glue("t_final", steps[-1] * lr)
glue("lazy_gap_final_widest", gaps[train_widths[-1]][-1])
glue("lazy_gap_final_narrowest", gaps[train_widths[0]][-1])
glue("train_width_widest", train_widths[-1])
glue("train_width_narrowest", train_widths[0])
glue("clean_acc_net", acc_net)
glue("clean_acc_kernel", acc_kernel)
glue("agreement", agreement)
glue("weight_change_widest", widest.relative_weight_change(-1))

fig, ax = plotting.new_figure(width=5.0)
for width in train_widths:
    ax.loglog(steps[1:] * lr, gaps[width][1:], "o-", label=f"width {width}")
ax.set_xlabel("training time $t$ = steps × learning rate")
ax.set_ylabel(r"$\|(f_\theta - f_{\theta_0}) - f_t\| \,/\, \|f_t\|$ on test images")
ax.set_title("Trained network vs kernel predictor at the same $t$")
ax.legend();

# %% [markdown]
# With learning rate $\eta$ = {glue:text}`lr:.2f` for {glue:text}`t_final:.0f` units of time,
# the centred output of the width-{glue:text}`train_width_widest` network ends within
# {glue:text}`lazy_gap_final_widest:.3f` (relative distance) of the kernel predictor on
# held-out images, against {glue:text}`lazy_gap_final_narrowest:.3f` at width
# {glue:text}`train_width_narrowest`: the wider the network, the closer it follows the kernel.
# Its weights moved by {glue:text}`weight_change_widest:.4f` of their initial norm — the
# "lazy" regime. At the end the network reaches test accuracy
# {glue:text}`clean_acc_net:.3f`, the kernel predictor {glue:text}`clean_acc_kernel:.3f`,
# and they predict the same class on {glue:text}`agreement:.3f` of the test images.
#
# ## 3. Spectral bias: large-eigenvalue directions are learned first
#
# Project the training residual $R_t = f(X) - Y$ on the eigenvectors $v_i$ of $\Theta(X, X)$.
# Gradient *flow* on the linearised model gives $\|v_i^\top R_t\| = e^{-\lambda_i t/N}\,\|v_i^\top Y\|$
# (Eq. 21 of the notes, our time convention). Gradient *descent* with step $\eta$ gives
# $|1 - \eta\lambda_i/N|^{s}\,\|v_i^\top Y\|$ after $s$ steps: the same curve while
# $\eta\lambda_i/N \ll 1$, but not for the top direction, where our step is half the stability
# limit. Dots: the trained widest network; solid lines: gradient descent on the linearised
# model; dotted lines: gradient flow.

# %%
pred = kernel.predictor
residuals = np.stack([np.asarray(widest.outputs(p, task.x_train)) for p in widest.run.params]) - np.asarray(task.y_train)
measured = lazy.residual_modes(np.asarray(pred.eigenvectors), residuals)  # (checkpoints, n)
theory_gd = lazy.gradient_descent_residual_modes(pred, steps, lr)
theory_flow = np.linalg.norm(np.asarray(pred.residual_projections(steps * lr)), axis=-1)
idx = np.asarray(modes) - 1
scale = theory_gd[0, idx]  # ||v_i^T Y||
glue("spectral_max_dev", (np.abs(measured[:, idx] - theory_gd[:, idx]) / scale).max())
glue("spectral_max_dev_flow", (np.abs(measured[:, idx] - theory_flow[:, idx]) / scale).max())
lam = np.asarray(pred.eigenvalues)
glue("lambda_ratio", lam[idx[0]] / lam[idx[-1]])
glue("mode_first", modes[0])
glue("mode_last", modes[-1])

fig, axes = plotting.new_figure(ncols=2, width=4.4)
t_axis = steps * lr
for i, colour in zip(idx, plotting.plt.cm.viridis(np.linspace(0, 0.9, len(idx)))):
    axes[0].semilogx(t_axis[1:], measured[1:, i] / scale[list(idx).index(i)], "o", color=colour, ms=4)
    axes[0].semilogx(t_axis[1:], theory_gd[1:, i] / theory_gd[0, i], "-", color=colour, label=f"$i$ = {i + 1}")
    axes[0].semilogx(t_axis[1:], theory_flow[1:, i] / theory_gd[0, i], ":", color=colour)
axes[0].set_xlabel("training time $t$")
axes[0].set_ylabel(r"$\|v_i^\top R_t\| / \|v_i^\top Y\|$")
axes[0].set_title("Residual along eigenvector $v_i$")
axes[0].legend()
axes[1].loglog(np.arange(1, lam.size + 1), lam, ".")
axes[1].set_xlabel("index $i$")
axes[1].set_ylabel(r"eigenvalue $\lambda_i$ of $\Theta(X, X)$")
axes[1].set_title("NTK spectrum on the training set");

# %% [markdown]
# The measured residuals follow the linearised dynamics: over the modes shown, the largest
# deviation from discrete gradient descent on the linearised model is
# {glue:text}`spectral_max_dev:.3f` of $\|v_i^\top Y\|$ (from gradient flow,
# {glue:text}`spectral_max_dev_flow:.3f`, all of it in the first steps of the top mode).
# Mode {glue:text}`mode_first` has an eigenvalue {glue:text}`lambda_ratio:.0f` times larger
# than mode {glue:text}`mode_last`, so it is fitted that many times sooner.
# This ordering is the seed of the next chapters: Tsilivis & Kempe show that the
# top eigen-directions of the NTK tend to be the *robust* ones.
#
# ## Headline numbers
#
# Rounded so that reruns on CPU print the same digits (checked by the test suite).

# %%
# NBVAL_CHECK_OUTPUT
print(f"fitted slope of the NTK error vs width:           {slope:.1f}")
print(f"network vs kernel, relative output gap (widest):  {gaps[train_widths[-1]][-1]:.2f}")
print(f"test accuracy, network / kernel predictor:        {acc_net:.2f} / {acc_kernel:.2f}")
print(f"agreement network / kernel predictor:             {agreement:.2f}")
