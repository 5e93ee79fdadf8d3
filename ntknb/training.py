"""Training loops.

Full-batch gradient descent on the mean squared error — the "lazy" setting in
which a wide network in NTK parameterisation follows its linearisation (Lee et
al. 2019; lecture notes Eq. 15) and its centred output f_t - f_0 tracks the
kernel predictor of ``tsilivis2022ntk`` Eq. 7 at the same time t.

Time convention (shared with :mod:`ntknb.kernels` and neural-tangents): the loss
is L = ½·mean((f(X) - Y)²) over all n·k entries of Y, and after ``s`` steps of
size ``learning_rate`` the training time is t = s · learning_rate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm


def mse_loss(apply_fn: Callable, params: Any, x: jnp.ndarray, y: jnp.ndarray) -> jnp.ndarray:
    """L(θ) = ½·mean((f_θ(x) - y)²) over all entries; x (n, ...), y (n, k)."""
    return 0.5 * jnp.mean((apply_fn(params, x) - y) ** 2)


def log_spaced_steps(total_steps: int, num: int, include_zero: bool = True) -> np.ndarray:
    """About ``num`` distinct integer steps log-spaced in [1, total_steps] (plus 0).

    Returns a sorted int array ending at ``total_steps``.
    """
    if total_steps < 1:
        raise ValueError(f"total_steps must be a positive integer, got {total_steps!r}")
    if num < 1:
        raise ValueError(f"num must be a positive integer, got {num!r}")
    steps = np.unique(np.round(np.geomspace(1, total_steps, num)).astype(int))
    if include_zero:
        steps = np.concatenate([[0], steps])
    return steps


@dataclass(frozen=True)
class GradientDescentRun:
    """Parameters saved at the checkpoints of a full-batch GD run.

    Attributes:
      steps: (c,) int, the checkpoint steps (ascending).
      times: (c,) float, t = step · learning_rate.
      params: list of c parameter pytrees, ``params[i]`` after ``steps[i]`` steps.
      losses: (c,) training loss ½·mean((f - y)²) at each checkpoint.
    """

    steps: np.ndarray
    times: np.ndarray
    params: list
    losses: np.ndarray


def train_full_batch_gd(
    apply_fn: Callable,
    params: Any,
    x_train: jnp.ndarray,
    y_train: jnp.ndarray,
    learning_rate: float,
    checkpoints: Sequence[int],
    progress: bool = True,
    description: str = "full-batch GD",
) -> GradientDescentRun:
    """Full-batch gradient descent θ ← θ - η ∇L(θ) on L = ½·mean((f_θ(X) - Y)²).

    The steps between consecutive checkpoints run in one jitted ``fori_loop``.

    Args:
      apply_fn: ``apply_fn(params, x) -> (n, k)`` (a stax or flax apply function).
      params: initial parameters θ_0.
      x_train: (n, ...) training inputs.
      y_train: (n, k) targets.
      learning_rate: η > 0.
      checkpoints: increasing non-negative step counts at which to save θ.
      progress: show a progress bar over checkpoints.

    Returns:
      A :class:`GradientDescentRun` with t = step · η for each checkpoint.
    """
    if not learning_rate > 0:
        raise ValueError(f"learning_rate must be > 0, got {learning_rate!r}")
    checkpoints = np.asarray(checkpoints, dtype=int)
    if checkpoints.ndim != 1 or checkpoints.size == 0 or checkpoints[0] < 0 or np.any(np.diff(checkpoints) <= 0):
        raise ValueError(
            "checkpoints must be a non-empty, strictly increasing sequence of non-negative "
            f"step counts, got {checkpoints.tolist()!r}"
        )
    if x_train.shape[0] != y_train.shape[0]:
        raise ValueError(
            f"x_train and y_train must have the same number of rows, got {x_train.shape[0]} and {y_train.shape[0]}"
        )

    loss_and_grad = jax.value_and_grad(lambda p: mse_loss(apply_fn, p, x_train, y_train))

    @jax.jit
    def run_steps(p, n_steps):
        def body(_, q):
            _, g = loss_and_grad(q)
            return jax.tree_util.tree_map(lambda a, b: a - learning_rate * b, q, g)

        return jax.lax.fori_loop(0, n_steps, body, p)

    loss_fn = jax.jit(lambda p: mse_loss(apply_fn, p, x_train, y_train))

    saved, losses = [], []
    current, done = params, 0
    for step in tqdm(checkpoints, desc=description, disable=not progress, leave=False):
        current = run_steps(current, int(step - done))
        done = int(step)
        saved.append(current)
        losses.append(float(loss_fn(current)))
    return GradientDescentRun(
        steps=checkpoints,
        times=checkpoints * float(learning_rate),
        params=saved,
        losses=np.asarray(losses),
    )


# =============================================================================
# Mini-batch SGD training of flax classifiers: standard and adversarial training
# =============================================================================
#
# Used by the kernel-dynamics chapter (``tsilivis2022ntk``, Sec. 5;
# ``li2023rethinking``, Secs. 3 and 5; ``loo2022evolution``) and reused by the
# BatchNorm and catastrophic-overfitting chapters.
#
# A model is handled through an *apply function*
#     apply_fn(params, state, x, train) -> (logits (n, k), new_state)
# where ``state`` holds the non-trained collections (BatchNorm ``batch_stats``; ``{}``
# for plain nets).  :func:`flax_apply_fn` builds it for a flax module and
# :func:`linearized_apply_fn` for the linearisation of a network around fixed weights.
# Adversarial examples come from :mod:`ntknb.attacks` (FGSM / PGD over a per-example
# loss), computed with the model in evaluation mode (``train=False``: running BN
# averages), inside the jitted training step.

import dataclasses
import functools
import time

import optax

from ntknb import adversaries as _adv
from ntknb import attacks as _attacks

#: Training modes of :class:`TrainConfig`.
TRAINING_MODES = ("standard", "fgsm", "pgd", "trades")
#: Data augmentations of :class:`TrainConfig`.
AUGMENTATIONS = ("none", "crop", "crop_flip", "crop_shared", "crop_flip_shared")
#: Optimizers and learning-rate schedules of :class:`TrainConfig`.
OPTIMIZERS = ("sgd", "adam")
LR_SCHEDULES = ("step", "cyclic")


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of :func:`fit` (SGD with momentum or Adam, weight decay, step or cyclic rate).

    Attributes:
      mode: ``"standard"`` (clean data), ``"fgsm"`` (FGSM-AT, ``goodfellow2015explaining``),
        ``"pgd"`` (PGD-AT, ``madry2018towards``), ``"trades"`` (TRADES, ``zhang2019theoretically``:
        CE(f(x), y) + β·KL(f(x) ‖ f(x')), x' maximising the KL by PGD). Clean training for
        the first k epochs, then PGD-AT (``li2023rethinking``, Sec. 5) is ``"pgd"`` with
        ``clean_epochs=k``.
      epochs: number of passes over the training set.
      batch_size: mini-batch size; the last incomplete batch of an epoch is dropped.
      learning_rate: initial learning rate (``lr_schedule="step"``) or the peak rate
        (``"cyclic"``).
      momentum: SGD (heavy-ball) momentum (``optimizer="sgd"`` only).
      weight_decay: L2 coefficient added to the gradient (coupled, as torch SGD / Adam).
      lr_decay_epochs: epochs after which the learning rate is multiplied by
        ``lr_decay_factor`` (e.g. ``(100, 150)`` of 200 in ``li2023rethinking``).
      lr_decay_factor: multiplicative decay, in (0, 1].
      optimizer: ``"sgd"`` (with ``momentum``) or ``"adam"`` (optax defaults β = (0.9, 0.999)).
      lr_schedule: ``"step"`` (``lr_decay_epochs``) or ``"cyclic"``: per step, linear from 0 to
        ``learning_rate`` at ``lr_peak_fraction`` of all steps, then linear back to 0 at the last
        (the one-cycle schedule of ``wong2020fast`` and ``andriushchenko2020understanding``).
      lr_peak_fraction: where the cyclic rate peaks, as a fraction of training, in (0, 1)
        (2/5 in ``andriushchenko2020understanding``).
      eps: l∞ radius of the training (and evaluation) attacks.
      attack_steps: PGD steps for PGD-AT and TRADES.
      attack_step_size: PGD step α (default :func:`ntknb.attacks.pgd_step_size`).
      adversary: the attack the adversarial epochs of ``"fgsm"`` / ``"pgd"`` train on, as a value (:mod:`ntknb.adversaries`: e.g.
        ``FGSM(eps, step_size, random_start=True)`` for FGSM-RS, or a chapter's own
        adversary); ``None``: ``FGSM(eps)`` for ``"fgsm"``, ``PGD(eps, attack_steps,
        attack_step_size)`` for ``"pgd"`` (:meth:`training_adversary`).
      trades_beta: β of TRADES.
      clean_epochs: in the adversarial modes the first k epochs train on clean data (a clean
        warm start: at large ε it keeps a small network from sticking at a constant prediction;
        ``li2023rethinking``'s cheaper schedule is ``"pgd"`` with a large k).
      augment: ``"none"``, ``"crop"`` (random crop after zero padding by
        ``crop_padding``) or ``"crop_flip"`` (plus random horizontal flip).
      crop_padding: padding of the random crop, in pixels.
      injection: ``None`` or a hashable callable ``(x, labels) -> x`` applied to every training batch
        after augmentation and before the attack (e.g. :class:`ntknb.collapse.InjectedFeature`, a
        class-wise pattern added to the augmented image, so a flip never mirrors the pattern).
      eval_attack_steps: PGD steps of the per-epoch robust-accuracy evaluation
        (random start, α = 2.5·eps/steps).
      eval_batch_size: chunk size for evaluation.
      seed: seeds the data order, the augmentation and the attacks' random starts.
    """

    mode: str = "standard"
    epochs: int = 10
    batch_size: int = 128
    learning_rate: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    lr_decay_epochs: tuple = ()
    lr_decay_factor: float = 0.1
    eps: float = 8 / 255
    attack_steps: int = 10
    attack_step_size: Optional[float] = None
    adversary: Any = None
    trades_beta: float = 6.0
    clean_epochs: int = 0
    augment: str = "none"
    crop_padding: int = 4
    injection: Any = None
    eval_attack_steps: int = 10
    eval_batch_size: int = 500
    seed: int = 0
    optimizer: str = "sgd"
    lr_schedule: str = "step"
    lr_peak_fraction: float = 0.4

    def __post_init__(self):
        object.__setattr__(self, "lr_decay_epochs", tuple(int(e) for e in self.lr_decay_epochs))
        self.validate()

    def validate(self) -> "TrainConfig":
        """Raise ``ValueError`` naming the first bad field and its allowed values."""
        if self.mode not in TRAINING_MODES:
            raise ValueError(f"mode must be one of {TRAINING_MODES}; got {self.mode!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}; got {self.optimizer!r}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}; got {self.lr_schedule!r}")
        if self.lr_schedule == "cyclic" and self.lr_decay_epochs:
            raise ValueError(f"lr_decay_epochs must be () with lr_schedule 'cyclic'; got {self.lr_decay_epochs!r}")
        if not 0 < self.lr_peak_fraction < 1:
            raise ValueError(f"lr_peak_fraction must be in (0, 1); got {self.lr_peak_fraction!r}")
        if self.augment not in AUGMENTATIONS:
            raise ValueError(f"augment must be one of {AUGMENTATIONS}; got {self.augment!r}")
        if self.injection is not None and not callable(self.injection):
            raise ValueError(f"injection must be None or a callable (x, labels) -> x; got {self.injection!r}")
        for name in ("epochs", "batch_size", "attack_steps", "eval_attack_steps", "eval_batch_size"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"{name} must be an integer >= 1; got {v!r}")
        for name in ("clean_epochs", "crop_padding", "seed"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
                raise ValueError(f"{name} must be an integer >= 0; got {v!r}")
        if self.clean_epochs > self.epochs:
            raise ValueError(f"clean_epochs must be in [0, epochs={self.epochs}]; got {self.clean_epochs}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0; got {self.learning_rate!r}")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"momentum must be in [0, 1); got {self.momentum!r}")
        if not self.weight_decay >= 0:
            raise ValueError(f"weight_decay must be >= 0; got {self.weight_decay!r}")
        if not 0 < self.lr_decay_factor <= 1:
            raise ValueError(f"lr_decay_factor must be in (0, 1]; got {self.lr_decay_factor!r}")
        if any(e < 1 or e >= self.epochs for e in self.lr_decay_epochs) or list(self.lr_decay_epochs) != sorted(
            set(self.lr_decay_epochs)
        ):
            raise ValueError(
                f"lr_decay_epochs must be strictly increasing epochs in [1, epochs-1={self.epochs - 1}]; "
                f"got {self.lr_decay_epochs!r}"
            )
        if not (0 <= self.eps <= 1):
            raise ValueError(f"eps must be in [0, 1]; got {self.eps!r}")
        if self.attack_step_size is not None and not self.attack_step_size > 0:
            raise ValueError(f"attack_step_size must be None (default) or > 0; got {self.attack_step_size!r}")
        if self.adversary is not None:
            if self.mode in ("standard", "trades"):
                raise ValueError(f"adversary must be None in mode {self.mode!r} (it trains on no adversary of its own)")
            if not callable(self.adversary) or not hasattr(self.adversary, "eps"):
                raise ValueError("adversary must be a callable adversary(loss_fn, x, y, key) -> x_adv with an eps "
                                 f"attribute (ntknb.adversaries); got {self.adversary!r}")
        if not self.trades_beta >= 0:
            raise ValueError(f"trades_beta must be >= 0; got {self.trades_beta!r}")
        return self

    def replace(self, **changes) -> "TrainConfig":
        """A copy with ``changes`` applied (validated)."""
        return dataclasses.replace(self, **changes)

    def training_adversary(self):
        """The adversary of the adversarial epochs (``adversary``, else the mode's default)."""
        if self.adversary is not None:
            return self.adversary
        if self.mode == "fgsm":
            return _adv.FGSM(self.eps)
        return _adv.PGD(self.eps, self.attack_steps, self.attack_step_size)

    def epoch_mode(self, epoch: int) -> str:
        """The data the model trains on in ``epoch`` (1-based): ``"standard"``,
        ``"fgsm"``, ``"pgd"`` or ``"trades"`` (``clean_epochs`` resolved)."""
        if epoch <= self.clean_epochs:
            return "standard"
        return self.mode

    def learning_rate_at(self, epoch: int) -> float:
        """Learning rate used during ``epoch`` (1-based); for the cyclic schedule, the rate at the
        epoch's last step."""
        if self.lr_schedule == "cyclic":
            return float(self.schedule(1000)(epoch * 1000 - 1))
        return float(self.learning_rate * self.lr_decay_factor ** sum(epoch > e for e in self.lr_decay_epochs))

    def schedule(self, steps_per_epoch: int):
        """The optax learning-rate schedule (step -> rate) of :attr:`lr_schedule`."""
        if self.lr_schedule == "cyclic":
            total = self.epochs * steps_per_epoch
            peak = max(1, int(round(self.lr_peak_fraction * total)))
            return optax.join_schedules(
                [optax.linear_schedule(0.0, self.learning_rate, peak),
                 optax.linear_schedule(self.learning_rate, 0.0, max(1, total - peak))], [peak])
        return optax.piecewise_constant_schedule(
            self.learning_rate, {e * steps_per_epoch: self.lr_decay_factor for e in self.lr_decay_epochs})

    def optimizer_transform(self, steps_per_epoch: int):
        """The optax transformation of :func:`fit`: coupled L2 weight decay, then SGD with momentum
        or Adam on :meth:`schedule`."""
        rate = self.schedule(steps_per_epoch)
        if self.optimizer == "adam":
            opt = optax.adam(rate)
        else:
            opt = optax.sgd(rate, momentum=self.momentum if self.momentum > 0 else None)
        return optax.chain(optax.add_decayed_weights(self.weight_decay), opt)


@dataclass
class EpochRecord:
    """What :func:`fit` measured in one epoch.

    Attributes:
      epoch: 1-based epoch number.
      mode: the data trained on (see :meth:`TrainConfig.epoch_mode`).
      learning_rate: the learning rate of the epoch.
      train_loss: mean training loss over the epoch's mini-batches.
      clean_acc: accuracy on the held-out set after the epoch.
      robust_acc: accuracy under PGD (``eval_attack_steps`` steps, radius ``eps``).
      seconds: wall-clock seconds of the epoch's parameter updates (compilation,
        evaluation and callbacks excluded).
    """

    epoch: int
    mode: str
    learning_rate: float
    train_loss: float
    clean_acc: float
    robust_acc: float
    seconds: float


@dataclass
class TrainResult:
    """Final weights and per-epoch history of :func:`fit`.

    Attributes:
      params, state: final parameters and non-trained collections.
      history: one :class:`EpochRecord` per epoch.
      config: the :class:`TrainConfig` used.
      apply_fn: the apply function trained (``apply_fn(params, state, x, train)``).
      opt_state: the optimizer's final state (momentum / Adam moments, step count).
    """

    params: Any
    state: dict
    history: list
    config: TrainConfig
    apply_fn: Callable
    opt_state: Any = None

    def column(self, name: str) -> np.ndarray:
        """``[getattr(r, name) for r in history]`` as an array, e.g. ``column("robust_acc")``."""
        return np.asarray([getattr(r, name) for r in self.history])

    @property
    def train_seconds(self) -> float:
        """Total wall-clock seconds of parameter updates (sum of ``seconds``)."""
        return float(sum(r.seconds for r in self.history))

    def logits_fn(self) -> Callable:
        """``(params, x) -> logits`` in evaluation mode with this run's final ``state``
        (the form :func:`ntknb.kernels.empirical_ntk` takes)."""
        apply_fn, state = self.apply_fn, self.state
        return lambda p, x: apply_fn(p, state, x, False)[0]


def flax_apply_fn(model) -> Callable:
    """``apply_fn(params, state, x, train) -> (logits, new_state)`` for a flax module.

    In training mode the collections in ``state`` (e.g. ``batch_stats``) are mutable and
    returned updated; in evaluation mode ``state`` is returned unchanged. Equal (hashable)
    modules get the same function object, so the compiled steps of :func:`fit` are reused
    across runs (seeds) of one model.
    """
    try:
        return _flax_apply_fn_cached(model)
    except TypeError:  # an unhashable module: a fresh function
        return _flax_apply_fn(model)


def _flax_apply_fn(model) -> Callable:

    def apply_fn(params, state, x, train):
        variables = {"params": params, **state}
        if train and state:
            logits, updates = model.apply(variables, x, train=True, mutable=list(state))
            return logits, {**state, **updates}
        return model.apply(variables, x, train=train), state

    return apply_fn


_flax_apply_fn_cached = functools.lru_cache(maxsize=64)(_flax_apply_fn)


def linearized_apply_fn(apply_fn: Callable, params0: Any, state0: dict, centered: bool = False) -> Callable:
    """The network linearised around ``params0`` (Lee et al. 2019; ``loo2022evolution``):

    f_lin(θ, x) = f(θ_0, x) + J_θ f(θ_0, x) (θ − θ_0),

    via ``neural_tangents.linearize`` on the evaluation-mode network with frozen
    ``state0``.  Its empirical NTK is constant, equal to that of f at θ_0.
    ``centered=True`` drops the first term, f_c(θ, x) = J_θ f(θ_0, x) (θ − θ_0) (a Jacobian-vector
    product): the output is 0 at θ = θ_0, so what a model trained from θ_0 learns comes from the
    frozen kernel (feature map) alone, not from the function the network had at θ_0 (the centred
    linearised model of ``loo2022evolution``).
    Returns an apply function of the same signature (``state`` is passed through).
    """
    import neural_tangents as nt

    if not isinstance(centered, bool):
        raise ValueError(f"parameter 'centered' must be True or False; got {centered!r}")

    def f(p, x):
        return apply_fn(p, state0, x, False)[0]

    if centered:
        def f_lin(params, x):
            delta = jax.tree_util.tree_map(lambda a, b: a - b, params, params0)
            return jax.jvp(lambda p: f(p, x), (params0,), (delta,))[1]
    else:
        f_lin = nt.linearize(f, params0)

    def apply_lin(params, state, x, train):
        del train
        return f_lin(params, x), state

    return apply_lin


def _kl_rows(p_ref: jnp.ndarray, logits: jnp.ndarray) -> jnp.ndarray:
    """Per-example KL(p_ref ‖ softmax(logits)), shape (n,)."""
    return jnp.sum(p_ref * (jnp.log(jnp.clip(p_ref, 1e-12)) - jax.nn.log_softmax(logits, -1)), axis=-1)


def _augment(x: jnp.ndarray, key, augment: str, padding: int) -> jnp.ndarray:
    """Random crop (zero padding ``padding``) and, for ``"crop_flip"``, horizontal flip.

    ``"crop_shared"`` / ``"crop_flip_shared"``: the same, but one crop offset (and one
    flip) drawn per mini-batch and applied to every image in it — the batch-shared
    augmentation of ``li2023rethinking`` Sec. 6 ("TE-OF"), which plants a shortcut.
    """
    if augment == "none":
        return x
    n, h, w, c = x.shape
    k1, k2 = jax.random.split(key)
    n_draw = 1 if augment.endswith("_shared") else n  # batch-shared: one draw for all
    if padding > 0:
        xp = jnp.pad(x, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
        off = jnp.broadcast_to(jax.random.randint(k1, (n_draw, 2), 0, 2 * padding + 1), (n, 2))
        x = jax.vmap(lambda img, o: jax.lax.dynamic_slice(img, (o[0], o[1], 0), (h, w, c)))(xp, off)
    if augment in ("crop_flip", "crop_flip_shared"):
        flip = jnp.broadcast_to(jax.random.bernoulli(k2, 0.5, (n_draw,)), (n,))
        x = jnp.where(flip[:, None, None, None], x[:, :, ::-1, :], x)
    return x


def _make_step(apply_fn, tx, cfg: TrainConfig, mode: str):
    """``step(params, state, opt_state, x (b, H, W, C), y (b,), key) -> (params, state, opt_state, loss)``:
    the update on one mini-batch in ``mode`` (see :class:`TrainConfig`), not jitted (the body of
    :func:`_make_epoch`'s scan; ``jax.jit`` of it is the per-step update of the tests' reference loop)."""
    eps = cfg.eps
    pgd_alpha = cfg.attack_step_size if cfg.attack_step_size is not None else _adv.pgd_step_size(eps, cfg.attack_steps)
    adversary = cfg.training_adversary() if mode in ("fgsm", "pgd") else None

    def step(params, state, opt_state, x, y, key):
        k_aug, k_att = jax.random.split(key)
        x = _augment(x, k_aug, cfg.augment, cfg.crop_padding)
        if cfg.injection is not None:
            x = cfg.injection(x, y)
        ce_loss = _adv.network_loss(apply_fn, params, state)  # the current (frozen) network, for the attack

        x_adv = None
        if mode == "standard" or (eps == 0 and mode != "trades"):  # eps = 0: nothing to attack
            x_in = x
        elif mode == "trades" and eps == 0:
            x_in, x_adv = x, x
        elif mode in ("fgsm", "pgd"):
            x_in = adversary(ce_loss, x, y, k_att)
        elif mode == "trades":
            p_clean = jax.nn.softmax(jax.lax.stop_gradient(apply_fn(params, state, x, False)[0]), -1)

            def kl_loss(xx, pp):
                return _kl_rows(pp, apply_fn(params, state, xx, False)[0])

            x_adv = jax.lax.stop_gradient(
                _attacks.pgd(kl_loss, x, p_clean, eps, step_size=pgd_alpha, steps=cfg.attack_steps,
                             random_start=True, key=k_att)
            )
            x_in = x
        else:  # pragma: no cover - validated in TrainConfig
            raise ValueError(mode)
        x_in = jax.lax.stop_gradient(x_in)

        def loss_fn(p):
            logits, new_state = apply_fn(p, state, x_in, True)
            loss = jnp.mean(_attacks.cross_entropy(logits, y))
            if x_adv is not None:
                logits_adv, new_state = apply_fn(p, new_state, x_adv, True)
                loss = loss + cfg.trades_beta * jnp.mean(_kl_rows(jax.nn.softmax(logits, -1), logits_adv))
            return loss, new_state

        (loss, new_state), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), new_state, opt_state, loss

    return step


#: Call-like primitives whose bodies XLA inlines into the calling computation, and the parameter holding the body
#: (``pjit`` is named ``jit`` from JAX 0.7 on).
_INLINED_CALLS = {"pjit": "jaxpr", "jit": "jaxpr", "closed_call": "call_jaxpr", "custom_jvp_call": "call_jaxpr",
                  "custom_vjp_call_jaxpr": "fun_jaxpr", "remat2": "jaxpr"}


def _canonical_conv(lhs, rhs, *, dimension_numbers, **params):
    """``lax.conv_general_dilated`` in XLA CPU's canonical form: input (batch, spatial..., feature), kernel
    (spatial..., in, out), output (batch, spatial..., feature), with transposes around it — what XLA CPU's
    ``ConvCanonicalization`` pass does to the convolutions of a program's entry computation (so that they run
    as Eigen convolutions), written out so that a convolution inside a loop body runs the same way."""
    lhs_spec, rhs_spec, out_spec = dimension_numbers
    n = len(lhs_spec) - 2
    canonical = ((0, n + 1, *range(1, n + 1)), (n + 1, n, *range(n)), (0, n + 1, *range(1, n + 1)))
    if (tuple(lhs_spec), tuple(rhs_spec), tuple(out_spec)) == canonical:
        return jax.lax.conv_general_dilated_p.bind(lhs, rhs, dimension_numbers=dimension_numbers, **params)
    lhs = jax.lax.transpose(lhs, (lhs_spec[0], *lhs_spec[2:], lhs_spec[1]))
    rhs = jax.lax.transpose(rhs, (*rhs_spec[2:], rhs_spec[1], rhs_spec[0]))
    out = jax.lax.conv_general_dilated_p.bind(lhs, rhs, dimension_numbers=jax.lax.ConvDimensionNumbers(*canonical),
                                              **params)
    order = (out_spec[0], *out_spec[2:], out_spec[1])
    return jax.lax.transpose(out, tuple(int(i) for i in np.argsort(order)))


def _eval_entry_form(jaxpr, consts, *args):
    """Evaluate ``jaxpr`` (a ``jax.core.Jaxpr``) with every convolution outside loops and conditionals in
    :func:`_canonical_conv` form (the bodies of the calls XLA inlines, :data:`_INLINED_CALLS`, likewise;
    those of ``while`` / ``scan`` / ``cond``, which XLA CPU leaves as they are, unchanged)."""
    from jax._src import core

    env = {}

    def read(v):
        return v.val if isinstance(v, core.Literal) else env[v]

    for v, val in zip(jaxpr.constvars, consts):
        env[v] = val
    for v, val in zip(jaxpr.invars, args):
        env[v] = val
    for eqn in jaxpr.eqns:
        invals = [read(v) for v in eqn.invars]
        name = eqn.primitive.name
        if name == "conv_general_dilated":
            outs = [_canonical_conv(*invals, **eqn.params)]
        elif name in _INLINED_CALLS:
            body = eqn.params[_INLINED_CALLS[name]]
            body, body_consts = (body.jaxpr, body.consts) if isinstance(body, core.ClosedJaxpr) else (body, ())
            outs = _eval_entry_form(body, body_consts, *invals)
        else:
            subfuns, params = eqn.primitive.get_bind_params(eqn.params)
            outs = eqn.primitive.bind(*subfuns, *invals, **params)
            outs = outs if eqn.primitive.multiple_results else [outs]
        for v, val in zip(eqn.outvars, outs):
            env[v] = val
    return [read(v) for v in jaxpr.outvars]


def _in_entry_form(fn: Callable) -> Callable:
    """``fn`` with its convolutions as XLA CPU compiles them at a program's top level (:func:`_eval_entry_form`),
    wherever it is traced: inside ``lax.scan`` the same Eigen convolutions (and so the same numbers, bit for
    bit) as when ``fn`` is jitted on its own."""

    def wrapped(*args):
        closed, out_shape = jax.make_jaxpr(fn, return_shape=True)(*args)
        outs = _eval_entry_form(closed.jaxpr, closed.consts, *jax.tree_util.tree_leaves(args))
        return jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(out_shape), outs)

    return wrapped


def _make_epoch(apply_fn, tx, cfg: TrainConfig, mode: str):
    """One epoch of :func:`_make_step` updates in ``mode`` as one jitted ``lax.scan`` over its batches:

    ``epoch(params, state, opt_state, x (n, H, W, C), y (n,), order (s, b), keys (s, 2))
    -> (params, state, opt_state, losses (s,))``, step ``i`` on ``x[order[i]], y[order[i]]`` with
    ``keys[i]`` (the same updates, in the same order, as ``s`` calls of the jitted step, without a
    dispatch per step)."""
    step = _in_entry_form(_make_step(apply_fn, tx, cfg, mode))

    def epoch(params, state, opt_state, x, y, order, keys):
        def body(carry, batch):
            idx, key = batch
            *carry, loss = step(*carry, x[idx], y[idx], key)
            return tuple(carry), loss

        (params, state, opt_state), losses = jax.lax.scan(body, (params, state, opt_state), (order, keys))
        return params, state, opt_state, losses

    return jax.jit(epoch)


@functools.lru_cache(maxsize=64)
def make_evaluator(apply_fn: Callable, eps: float, steps: int, batch_size: int = 500) -> Callable:
    """``evaluate(params, state, x, labels, key) -> (clean_acc, robust_acc)``.

    Robust accuracy is under l∞ PGD of :func:`ntknb.attacks.pgd` on the cross-entropy,
    ``steps`` steps of size 2.5·eps/steps from a uniform random start, radius ``eps``.
    Cached: the same arguments give the same (already compiled) evaluator.
    """
    alpha = _adv.pgd_step_size(eps, steps) if eps > 0 else 1.0

    @jax.jit
    def counts(params, state, x, y, key):
        ce_loss = _adv.network_loss(apply_fn, params, state)
        clean = _adv.predicted_class(apply_fn(params, state, x, False)[0]) == y
        if eps > 0:
            xa = _attacks.pgd(ce_loss, x, y, eps, step_size=alpha, steps=steps, random_start=True, key=key)
            robust = _adv.predicted_class(apply_fn(params, state, xa, False)[0]) == y
        else:
            robust = clean
        return jnp.sum(clean), jnp.sum(robust)

    def evaluate(params, state, x, labels, key):
        x = jnp.asarray(x)
        y = jnp.asarray(labels)
        c = r = 0
        for i, start in enumerate(range(0, x.shape[0], batch_size)):
            cc, rr = counts(params, state, x[start:start + batch_size], y[start:start + batch_size],
                            jax.random.fold_in(key, i))
            c, r = c + int(cc), r + int(rr)
        return c / x.shape[0], r / x.shape[0]

    return evaluate


_STEP_CACHE: dict = {}


def _compiled_epoch(apply_fn, tx, config: TrainConfig, mode: str, steps_per_epoch: int, args: tuple):
    """``_make_epoch(...)`` lowered and compiled for ``args``; cached on (apply_fn, config without its
    seed and epoch counts, mode, steps per epoch, argument shapes): the epoch does not depend on the seed
    (data order and keys are arguments) and ``tx`` follows from the configuration and steps per epoch."""
    shapes = jax.tree_util.tree_map(lambda a: (jnp.shape(a), jnp.result_type(a)), args)
    try:
        # the step-decay schedule does not depend on the epoch count; the cyclic one does
        epochs = config.epochs if config.lr_schedule == "cyclic" else max(config.lr_decay_epochs, default=0) + 1
        key = (apply_fn, dataclasses.replace(config, seed=0, epochs=epochs, clean_epochs=0), mode, steps_per_epoch,
               jax.tree_util.tree_structure(args), tuple(jax.tree_util.tree_leaves(shapes)))
        hash(key)
    except (TypeError, ValueError):  # unhashable pieces (e.g. an adversary without __hash__): no cache
        return _make_epoch(apply_fn, tx, config, mode).lower(*args).compile()
    if key not in _STEP_CACHE:
        if len(_STEP_CACHE) >= 64:
            _STEP_CACHE.pop(next(iter(_STEP_CACHE)))
        _STEP_CACHE[key] = _make_epoch(apply_fn, tx, config, mode).lower(*args).compile()
    return _STEP_CACHE[key]


def epoch_order(seed: int, epoch: int, n: int, batch_size: int) -> np.ndarray:
    """The mini-batches of ``epoch`` (1-based): ``(n // batch_size, batch_size)`` int32 indices, row ``b``
    the ``b``-th batch of the permutation ``default_rng([seed, epoch]).permutation(n)`` (the last
    incomplete batch dropped)."""
    steps = n // batch_size
    return np.random.default_rng([seed, epoch]).permutation(n)[:steps * batch_size].reshape(steps, batch_size) \
        .astype(np.int32)


@functools.partial(jax.jit, static_argnums=(2,))
def epoch_keys(key0, epoch, steps_per_epoch: int):
    """The per-step keys of ``epoch`` (1-based), (steps_per_epoch, 2): step ``b`` gets
    ``fold_in(key0, (epoch - 1) * steps_per_epoch + b)`` (augmentation and attack starts)."""
    first = (epoch - 1) * steps_per_epoch
    return jax.vmap(lambda i: jax.random.fold_in(key0, i))(first + jnp.arange(steps_per_epoch))


def _check_split(x, labels, name):
    x = np.asarray(x, dtype=np.float32)
    labels = np.asarray(labels)
    if x.ndim != 4 or labels.shape != (x.shape[0],) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"x_{name} must be NHWC images (n, H, W, C) and labels_{name} integer class indices (n,); "
            f"got {x.shape} and {labels.shape} {labels.dtype}"
        )
    return x, labels


def fit(
    apply_fn: Callable,
    params: Any,
    state: dict,
    x_train,
    labels_train,
    x_test,
    labels_test,
    config: TrainConfig,
    callbacks: Sequence[Callable] = (),
    progress: bool = True,
    description: str = "",
) -> TrainResult:
    """Train ``apply_fn`` with mini-batch SGD in ``config.mode`` (see :class:`TrainConfig`).

    Per epoch: a seeded permutation of the training set (``default_rng([seed, epoch])``,
    :func:`epoch_order`), seeded augmentation and attack starts (``fold_in(PRNGKey(seed), step)``,
    :func:`epoch_keys`), SGD with momentum ``config.momentum``, L2 weight decay and step
    learning-rate decay; then clean and PGD robust accuracy on ``(x_test, labels_test)``.
    An epoch's updates run as one compiled ``lax.scan`` over its mini-batches (:func:`_make_epoch`),
    bit-identical on CPU to one jitted step per mini-batch; the training and monitor arrays go to
    the device once per run.

    Args:
      apply_fn: ``apply_fn(params, state, x, train) -> (logits (n, k), new_state)``
        (:func:`flax_apply_fn`, :func:`linearized_apply_fn`).
      params, state: initial parameters and non-trained collections (``{}`` if none).
      x_train: (n, H, W, C) float32 images in [0, 1]; labels_train: (n,) int classes.
      x_test, labels_test: held-out set for the per-epoch accuracies.
      config: a :class:`TrainConfig`.
      callbacks: each called as ``cb(epoch, params, state)`` at epoch 0 (before training)
        and after every epoch (after evaluation), e.g. a kernel tracker.
      progress: show a progress bar over epochs.

    Returns:
      A :class:`TrainResult`.
    """
    if not isinstance(config, TrainConfig):
        raise ValueError(f"config must be a TrainConfig; got {type(config).__name__}")
    x_train, labels_train = _check_split(x_train, labels_train, "train")
    x_test, labels_test = _check_split(x_test, labels_test, "test")
    n, bs = x_train.shape[0], config.batch_size
    if bs > n:
        raise ValueError(f"batch_size must be <= n_train={n}; got {bs}")
    steps_per_epoch = n // bs
    tx = config.optimizer_transform(steps_per_epoch)
    opt_state = tx.init(params)
    modes = sorted({config.epoch_mode(e) for e in range(1, config.epochs + 1)})
    key0 = jax.random.PRNGKey(config.seed)
    x_dev = jnp.asarray(x_train)
    y_dev = jnp.asarray(labels_train)
    x_mon, y_mon = jnp.asarray(x_test), jnp.asarray(labels_test)  # the monitor's arrays, on the device once
    # Compile every epoch function once, before timing (reused across runs with the same apply_fn,
    # configuration up to its seed, and shapes).
    order0 = jnp.zeros((steps_per_epoch, bs), jnp.int32)
    keys0 = epoch_keys(key0, 1, steps_per_epoch)
    epochs = {m: _compiled_epoch(apply_fn, tx, config, m, steps_per_epoch,
                                 (params, state, opt_state, x_dev, y_dev, order0, keys0))
              for m in modes}
    evaluate = make_evaluator(apply_fn, config.eps, config.eval_attack_steps, config.eval_batch_size)
    eval_key = jax.random.fold_in(key0, 2**31 - 1)

    for cb in callbacks:
        cb(0, params, state)
    history = []
    bar = tqdm(range(1, config.epochs + 1), desc=description or config.mode, disable=not progress, leave=False)
    for epoch in bar:
        mode = config.epoch_mode(epoch)
        order = epoch_order(config.seed, epoch, n, bs)
        t0 = time.perf_counter()
        params, state, opt_state, losses = epochs[mode](params, state, opt_state, x_dev, y_dev, jnp.asarray(order),
                                                        epoch_keys(key0, epoch, steps_per_epoch))
        train_loss = float(jnp.mean(losses))
        seconds = time.perf_counter() - t0
        clean_acc, robust_acc = evaluate(params, state, x_mon, y_mon, jax.random.fold_in(eval_key, epoch))
        rec = EpochRecord(epoch, mode, config.learning_rate_at(epoch), train_loss, clean_acc, robust_acc, seconds)
        history.append(rec)
        bar.set_postfix(loss=f"{train_loss:.3f}", clean=f"{clean_acc:.3f}", robust=f"{robust_acc:.3f}")
        for cb in callbacks:
            cb(epoch, params, state)
    return TrainResult(params=params, state=state, history=history, config=config, apply_fn=apply_fn,
                       opt_state=opt_state)


def train_model(
    model,
    x_train,
    labels_train,
    x_test,
    labels_test,
    config: TrainConfig,
    init_seed: int = 0,
    callbacks: Sequence[Callable] = (),
    progress: bool = True,
    description: str = "",
) -> TrainResult:
    """Initialise the flax ``model`` (seed ``init_seed``) and :func:`fit` it; see :func:`fit`."""
    from ntknb.models import init_model

    x_train, labels_train = _check_split(x_train, labels_train, "train")
    params, state = init_model(model, x_train.shape[1:], seed=init_seed)
    return fit(flax_apply_fn(model), params, state, x_train, labels_train, x_test, labels_test, config,
               callbacks=callbacks, progress=progress, description=description)
