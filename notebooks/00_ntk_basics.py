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
# **Learning objectives.** After this chapter you can
#
# 1. compute the empirical NTK of a finite network and measure how fast it approaches the
#    analytic kernel as the width grows;
# 2. predict the output of a wide network trained by gradient descent from the kernel predictor
#    $f_t$ alone, and say when that prediction fails (narrow networks, large learning rates);
# 3. explain spectral bias: which directions of the data a kernel machine learns first, and how
#    fast, from the eigenvalues of its Gram matrix.
#
# **Run time.** At the defaults below this chapter ran in {glue:text}`runtime_s:.0f` s on a
# shared 2-core CPU ({doc}`../book/status`). The parameters are the defaults: every one can be
# changed with `ntknb run 00_ntk_basics -p NAME VALUE` (see {doc}`../book/running`); the code
# cells are folded (click to show them).

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
progress = False  # show progress bars (off in the stored run: a bar is not a result)

# %% tags=["hide-input"]
import time

from ntknb import data, plotting
from ntknb.chapters import ch00_ntk_basics as ch
from ntknb.claims import glue_claims, glue_summary
from ntknb.report import glue, glue_values

t_start = time.perf_counter()

P = ch.Params.from_namespace(globals())  # checks every parameter (the rules: ch.Params)
plotting.use_book_style()

# %% [markdown]
# ## The data
#
# A class-balanced subsample of the training set and of the test set, inputs in $[0, 1]$,
# labels as centred one-hot vectors $e_y - \tfrac{1}{10}$.

# %% tags=["hide-input"]
ds = data.load_dataset(P.dataset)
task = data.make_task(ds, n_train=P.n_train, n_test=P.n_test, seed=P.seed)
print(task.provenance.describe())
print(f"train {task.x_train.shape}, test {task.x_test.shape}, labels {task.y_train.shape}")

# %% [markdown]
# ## 1. The empirical NTK converges to the analytic NTK
#
# For each width $m$ we draw a few initialisations of the network, compute its empirical NTK
# on a probe set with neural-tangents, and compare it with the analytic infinite-width
# kernel of the same architecture (the `kernel_fn` of neural-tangents' `stax`).

# %% mystnb={"figure": {"caption": "Relative Frobenius distance $\\|\\hat\\Theta_m - \\Theta\\|_F / \\|\\Theta\\|_F$ between the empirical NTK at initialisation and the analytic NTK, against the width $m$ (both axes logarithmic). Dots: one random initialisation each; solid line: their mean per width; dashed: the least-squares line of log error on log width (its slope in the legend); dotted: a line of slope $-1/2$, the theory's rate, through the mean at the smallest width.", "name": "fig-ch00-ntk-error"}} tags=["hide-input"]
errors, slope, intercept = ch.ntk_error_study(P, task)  # errors: (widths, initialisations)
glue("ntk_width_slope", slope)
glue("ntk_rel_error_widest", errors[-1].mean())
glue("ntk_widest", P.ntk_widths[-1])
fig = ch.plot_ntk_errors(P, errors, slope, intercept)

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

# %% mystnb={"figure": {"caption": "Relative distance, on the test images, between the change of each trained network's output $f_\\theta - f_{\\theta_0}$ and the analytic-NTK kernel predictor $f_t$, against training time $t$ = steps × learning rate (both axes logarithmic); one line per width, one marker per checkpoint.", "name": "fig-ch00-lazy-gap"}} tags=["hide-input"]
LAZY = ch.lazy_study(P, task)  # the kernel predictor and the trained networks, same checkpoints
values = ch.lazy_values(P, LAZY, task)
glue_values(values)
fig = ch.plot_lazy_gaps(P, LAZY)

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

# %% mystnb={"figure": {"caption": "Left: the widest network's training residual $R_t$ along eigenvectors $v_i$ of the NTK on the training set, relative to the labels' component $\\|v_i^\\top Y\\|$, against training time $t$ (logarithmic), one colour per mode $i$. Dots: measured; solid lines: discrete gradient descent on the linearised model; dotted: gradient flow. Right: the eigenvalues $\\lambda_i$ of $\\Theta(X, X)$ in decreasing order against their index $i$ (both axes logarithmic).", "name": "fig-ch00-spectral"}} tags=["hide-input"]
SPECTRAL = ch.spectral_study(P, LAZY, task)
glue_values(ch.spectral_values(P, SPECTRAL))
fig = ch.plot_spectral(LAZY, SPECTRAL)

# %% [markdown]
# The measured residuals follow the linearised dynamics: over the modes shown, the largest
# deviation from discrete gradient descent on the linearised model is
# {glue:text}`spectral_max_dev:.3f` of $\|v_i^\top Y\|$ (from gradient flow,
# {glue:text}`spectral_max_dev_flow:.3f`, all of it in the first steps of the top mode).
# Mode {glue:text}`mode_first` has an eigenvalue {glue:text}`lambda_ratio:.0f` times larger
# than mode {glue:text}`mode_last`, so it is fitted that many times sooner.
# This ordering is the seed of the next chapters: Tsilivis & Kempe show that the
# top eigen-directions of the NTK tend to be the *robust* ones.

# %% [markdown]
# ## The claims, measured
#
# Each claim's words, threshold and direction, with the reasons for them, are registered in
# `notebooks/claims/00_ntk_basics.yaml`, committed before the runs that judge them: the NTK
# error slope must lie below $-0.25$, halfway between no convergence (0) and the theory's
# $-1/2$. "A wide network follows the kernel predictor" is a statement about the limit of large
# width, so no single width is held to a fixed distance: the claim is its trend, the relative
# output distance decreasing with the width (a slope of log distance against log width, over the
# trained widths, below 0); and the widest network must predict the same class as the kernel
# predictor on at least 90% of the test images. Intervals: a t interval over the initialisations
# for the NTK slope, a bootstrap over test points for the slope of the output distance (one
# trained network per width), a Wilson interval for the agreement. The verdicts follow from
# interval, threshold and direction alone.

# %% tags=["remove-input"]
claims = ch.claims(P, errors, LAZY, task)
glue("n_seeds", P.ntk_seeds)  # initialisations behind the slope; one trained network per width
glue("n_test", task.x_test.shape[0])
glue_summary(claims)
glue_claims(claims)

# %% [markdown]
# ## Summary
#
# ```{ntknb-claims-summary}
# ```
#
# In words: the wider the network, the closer its kernel at initialisation is to the analytic
# one and the closer its trained function stays to the kernel predictor $f_t$; the verdicts
# above say whether "close" meets each claim's threshold at this scale, and the kernel's
# spectrum decides the order in which the data are learned. The next chapters build on this
# picture: they attack the kernel machine instead of the network ({doc}`01_transfer_attacks`)
# and read robustness off its eigen-features ({doc}`02_eigenfeatures`).
#
# ## Exercises
#
# 1. *Predict first, then rerun.* The learning rate is `lr_fraction` times the largest stable
#    one, $2N/\lambda_{\max}$. By which factor does the top mode's residual shrink per step at
#    the default 0.4, and at 0.9? Does it keep its sign? Then run
#    `ntknb run 00_ntk_basics -p lr_fraction 0.9` and compare the top mode in the spectral
#    figure with gradient flow.
#
#    ```{admonition} Solution
#    :class: dropdown
#    One step multiplies the component along $v_1$ by $1 - \eta\lambda_1/N$ with
#    $\eta = 2f N/\lambda_1$, i.e. by $1 - 2f$: by 0.2 per step at $f = 0.4$ (faster than
#    gradient flow's $e^{-0.8} \approx 0.45$ over the same time), by $-0.8$ at $f = 0.9$: the
#    residual flips sign at every step and shrinks much more slowly than gradient flow
#    predicts ($e^{-1.8} \approx 0.17$ per step). The smaller modes, with
#    $\eta\lambda_i/N \ll 1$, just go faster, as the time is $2.25$ times longer per step.
#    ```
#
# 2. *Predict first, then rerun.* With `-p depth 3`, will the fitted slope of the kernel error
#    against width stay near $-1/2$? Will the error at a given width be larger or smaller?
#    Rerun and read `ntk_width_slope` and `ntk_rel_error_widest` in the run's `metrics.json`.
#
#    ```{admonition} Solution
#    :class: dropdown
#    The notes' Eq. (18) gives fluctuations of order $m^{-1/2}$ at any fixed depth, so the
#    slope should stay close to $-1/2$. The constant in front grows with depth (each layer adds
#    its own finite-width fluctuation), so at a given width the deeper network's empirical
#    kernel is further from the analytic one: the line moves up, its slope does not change
#    much.
#    ```
#
# 3. *Code.* Under gradient flow the residual along $v_i$ decays as $e^{-\lambda_i t/N}$. With
#    `SPECTRAL.eigenvalues` (decreasing) and $N$ = `task.y_train.size`, compute the training
#    time each mode in `P.modes` needs to fall to 1 % of its initial size, and compare it with
#    the training time of the networks, `LAZY.lr * P.total_steps`
#    (= {glue:text}`t_final:.0f`). Which modes are learned within the training run?
#
#    ````{admonition} Solution
#    :class: dropdown
#    ```python
#    import numpy as np
#
#    N = task.y_train.size
#    lam = SPECTRAL.eigenvalues[np.asarray(P.modes) - 1]
#    t_needed = N * np.log(100) / lam
#    print(dict(zip(P.modes, t_needed.round(1))), "trained for", LAZY.lr * P.total_steps)
#    ```
#    The modes whose `t_needed` is below the training time are fitted to 1 % within the run,
#    the others are not; compare with the curves of the spectral figure. The ratio of
#    two modes' times is the inverse ratio of their eigenvalues
#    ({glue:text}`lambda_ratio:.0f` for modes {glue:text}`mode_first` and
#    {glue:text}`mode_last`).
#    ````
#
# 4. *Implement it: the empirical NTK (Eq. 6).* Write `empirical_ntk(apply_fn, params, x1, x2)`
#    for a stax network `apply_fn(params, x) -> (n, k)`: the $(n_1, n_2)$ matrix
#
#    $$\hat\Theta(x, x') = \frac1k \sum_{j=1}^k \nabla_\theta f_j(x)^\top \nabla_\theta f_j(x'),$$
#
#    the gradients taken with respect to all parameters, with `jax.jacobian` (no neural-tangents).
#    `ntknb.exercises.check_empirical_ntk(empirical_ntk)` compares it with the package's
#    `ntknb.kernels.empirical_ntk` on small random networks in float64 and prints PASS or FAIL
#    with the largest error.
#
#    ````{admonition} Solution
#    :class: dropdown
#    ```python
#    import jax
#    import jax.numpy as jnp
#    from ntknb import exercises
#
#    def empirical_ntk(apply_fn, params, x1, x2):
#        def jacobian(x):  # (n, k, P): every output's derivative in every parameter
#            jac = jax.jacobian(apply_fn)(params, x)
#            return jnp.concatenate([j.reshape(*j.shape[:2], -1) for j in jax.tree_util.tree_leaves(jac)], -1)
#        j1, j2 = jacobian(x1), jacobian(x2)
#        return jnp.einsum("akp,bkp->ab", j1, j2) / j1.shape[1]
#
#    exercises.check_empirical_ntk(empirical_ntk)
#    ```
#    `jax.jacobian` returns one array per parameter, of shape (n, k, parameter shape); flattened
#    and concatenated they form $J$ of shape $(n, k, P)$, and the kernel contracts the $P$
#    parameters and averages the $k$ outputs. This materialises $J$, $n k P$ numbers: fine for
#    these small networks, too much for the chapter's widths, where neural-tangents contracts
#    the layers' derivatives without forming $J$.
#    ````
#
# 5. *Implement it: the kernel predictor (Eq. 7).* Write
#    `kernel_predictor(k_train_train, k_test_train, y_train, t)` returning
#
#    $$f_t(x) = \Theta(x, X)\, V \operatorname{diag}\big((1 - e^{-\lambda_i t/N})/\lambda_i\big) V^\top Y$$
#
#    on the test points, with $\Theta(X, X) = V \operatorname{diag}(\lambda) V^\top$ and
#    $N = n k$ the number of entries of $Y$ (the chapter's time convention). Check it with
#    `ntknb.exercises.check_kernel_predictor(kernel_predictor)` (reference:
#    `ntknb.kernels.KernelPredictor`).
#
#    ````{admonition} Solution
#    :class: dropdown
#    ```python
#    import numpy as np
#    from ntknb import exercises
#
#    def kernel_predictor(k_train_train, k_test_train, y_train, t):
#        lam, V = np.linalg.eigh(k_train_train)
#        g = -np.expm1(-lam * t / y_train.size) / lam  # (1 - exp(-lambda t / N)) / lambda
#        return k_test_train @ V @ (g[:, None] * (V.T @ y_train))
#
#    exercises.check_kernel_predictor(kernel_predictor)
#    ```
#    `-np.expm1(-x)` is $1 - e^{-x}$ without the cancellation of `1 - np.exp(-x)` for small
#    $x$, which matters for the modes that gradient flow has barely started to learn.
#    ````

# %% tags=["remove-cell"]
# NBVAL_CHECK_OUTPUT
print(ch.summary_text(slope, values))

# %% tags=["remove-cell"]
runtime_s = glue("runtime_s", time.perf_counter() - t_start)
print(f"notebook runtime: {runtime_s:.0f} s")
