"""Benchmark: KIP steps of ntknb.kip.learn_support against a straightforward implementation of
Eq. 27 of the lecture notes, in one run.

The task is the chapter's default KIP step at CIFAR-10 size: ``--support`` support images
(32x32x3), a class-balanced target batch of ``--batch`` images drawn from a pool of ``--pool``
(random images in [0, 1], 10 classes), the analytic fc1 NTK of ``ntknb.architectures``, ridge
``1e-6 tr(K)/n``, Adam with learning rate 0.04.

* ``straightforward``: what one writes from the formula, as the authors' notebook runs it
  (float64 throughout): the batch drawn on the host with NumPy and copied to the device, the
  loss ``1/2 mean((K_TS K_SS^-1 Y_S - Y_T)^2)`` with an explicit inverse, its gradient by
  ``jax.grad`` evaluated op by op (not jitted), then the Adam update (optax) outside any jit;
* ``ntknb float64``: ``ntknb.kip.learn_support(dtype=float64)``: sampling on the device, two
  kernel blocks, a Cholesky solve, the gradient and the update in one jitted step;
* ``ntknb float32``: the same in float32 (the chapter's CPU default).

Times are per step, the best of ``--repeats`` interleaved rounds of ``--steps`` steps each, after
one warm-up round (compilation). The script first checks that the two loss implementations agree
on one batch (float64).

Run: .venv/bin/python benchmarks/bench_kip.py [--support 100] [--batch 1000] [--pool 5000]
"""

from __future__ import annotations

import argparse
import json

import ntknb  # noqa: F401

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ntknb._compat import x64
from ntknb import architectures, kip
from _timing import best_times  # benchmarks/_timing.py (scripts' folder is on sys.path)


def straightforward_loss(kernel_fn, x_support, y_support, x_target, y_target, reg):
    """Eq. 27 with the ridge, written directly (explicit inverse)."""
    k_ss = kernel_fn(x_support, x_support, "ntk")
    k_ts = kernel_fn(x_target, x_support, "ntk")
    n = k_ss.shape[0]
    inv = jnp.linalg.inv(k_ss + reg * jnp.trace(k_ss) / n * jnp.eye(n))
    return 0.5 * jnp.mean((k_ts @ inv @ y_support - y_target) ** 2)


def make_straightforward(kernel_fn, x_support, y_support, x_pool, y_pool, labels, batch, reg, lr, seed=0):
    """A closure running ``n`` straightforward steps (float64, host sampling, op-by-op gradient)."""
    rng = np.random.default_rng(seed)
    groups = [np.flatnonzero(labels == c) for c in range(10)]
    tx = optax.adam(lr)
    state = {"x": jnp.asarray(x_support, jnp.float64)}
    state["opt"] = tx.init(state["x"])
    y_s = jnp.asarray(y_support, jnp.float64)
    grad = jax.grad(straightforward_loss, argnums=1)

    def run(n):
        with x64():
            for _ in range(n):
                idx = np.concatenate([rng.choice(g, batch // 10, replace=False) for g in groups])
                xt = jnp.asarray(x_pool[idx], jnp.float64)
                yt = jnp.asarray(y_pool[idx], jnp.float64)
                g = grad(kernel_fn, state["x"], y_s, xt, yt, reg)
                updates, state["opt"] = tx.update(g, state["opt"], state["x"])
                state["x"] = optax.apply_updates(state["x"], updates)
            jax.block_until_ready(state["x"])

    return run


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--support", type=int, default=100)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--pool", type=int, default=5000)
    ap.add_argument("--steps", type=int, default=5, help="steps per timed round")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)

    rng = np.random.default_rng(0)
    labels = np.arange(args.pool) % 10
    x_pool = rng.random((args.pool, 32, 32, 3)).astype(np.float32)
    y_pool = (np.eye(10)[labels] - 0.1).astype(np.float32)
    init = np.concatenate([np.flatnonzero(labels == c)[: args.support // 10] for c in range(10)])
    x_s, y_s = x_pool[init], y_pool[init]
    kfn = architectures.get_architecture("fc1", out_dim=10).kernel_fn
    reg, lr = 1e-6, 0.04

    # correctness: the two losses on one batch, float64
    with x64():
        a = [jnp.asarray(v, jnp.float64) for v in (x_s, y_s, x_pool[: args.batch], y_pool[: args.batch])]
        l_ref = float(straightforward_loss(kfn, *a, reg))
        l_kip = float(kip.kip_loss(kfn, *a, reg))
    assert abs(l_ref - l_kip) <= 1e-9 * abs(l_ref), (l_ref, l_kip)

    straight = make_straightforward(kfn, x_s, y_s, x_pool, y_pool, labels, args.batch, reg, lr)

    def ours(dtype):
        return lambda: kip.learn_support(kfn, x_s, y_s, x_pool, y_pool, steps=args.steps, learning_rate=lr,
                                         target_batch=args.batch, labels_pool=labels, reg=reg, dtype=dtype)

    best = best_times({"straightforward (float64, op by op)": lambda: straight(args.steps),
                       "ntknb float64 (jitted step)": ours(np.float64),
                       "ntknb float32 (jitted step)": ours(np.float32)}, args.repeats)
    per_step = {k: v / args.steps for k, v in best.items()}
    base = per_step["straightforward (float64, op by op)"]
    result = {
        "task": dict(support=args.support, batch=args.batch, pool=args.pool, image=[32, 32, 3], kernel="fc1",
                     devices=[str(d) for d in jax.devices()]),
        "seconds_per_step": per_step,
        "speedup_vs_straightforward": {k: base / v for k, v in per_step.items()},
        "loss_agreement": dict(straightforward=l_ref, ntknb=l_kip),
    }
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
