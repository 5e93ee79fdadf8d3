"""Benchmark: k replicas batched with jax.vmap (ntknb.replicas.run_replicas, mode "vmap")
against the same k replicas run one after the other (mode "sequential", the experiment
jitted once), one run.

Two experiments, each a pure function of its key:

* ``mlp``: a two-hidden-layer ReLU MLP (width 128) trained by ``--steps`` full-batch GD
  steps (MSE on ±1 labels) on 512 points of a 64-dimensional two-Gaussian task; returns the
  test accuracy on 512 points and the final training loss;
* ``kernel``: NTK-style kernel regression on a random subsample of 256 of 2048 training
  points (arc-cosine kernel of a one-hidden-layer ReLU network, closed form), test MSE
  and accuracy on 512 points: the "kernel subsample" replicas of the book's chapters.

Both modes get the same keys (replica i: PRNGKey(i)) and the script checks they agree.
Times exclude compilation (each mode runs once before timing) and are the best of
``--repeats`` interleaved rounds.

Run: .venv/bin/python benchmarks/bench_replicas.py [--k 8] [--steps 300]
"""

from __future__ import annotations

import argparse
import json

import ntknb  # noqa: F401

import jax
import jax.numpy as jnp
import numpy as np

from ntknb.replicas import run_replicas
from _timing import best_times  # benchmarks/_timing.py (scripts' folder is on sys.path)


def two_gaussians(key, n: int, d: int):
    k1, k2 = jax.random.split(key)
    y = jnp.where(jax.random.bernoulli(k1, 0.5, (n,)), 1.0, -1.0)
    x = jax.random.normal(k2, (n, d)) + 0.35 * y[:, None]
    return x, y[:, None]


def make_mlp_experiment(steps: int, d: int = 64, width: int = 128, n: int = 512, lr: float = 0.2):
    x_tr, y_tr = two_gaussians(jax.random.PRNGKey(100), n, d)
    x_te, y_te = two_gaussians(jax.random.PRNGKey(101), n, d)

    def apply(p, x):
        h = jax.nn.relu(x @ p[0] / jnp.sqrt(d))
        h = jax.nn.relu(h @ p[1] / jnp.sqrt(width))
        return h @ p[2] / jnp.sqrt(width)

    def experiment(key):
        ks = jax.random.split(key, 3)
        p = (jax.random.normal(ks[0], (d, width)), jax.random.normal(ks[1], (width, width)),
             jax.random.normal(ks[2], (width, 1)))
        loss = lambda q: 0.5 * jnp.mean((apply(q, x_tr) - y_tr) ** 2)  # noqa: E731

        def step(_, q):
            g = jax.grad(loss)(q)
            return jax.tree_util.tree_map(lambda a, b: a - lr * b, q, g)

        p = jax.lax.fori_loop(0, steps, step, p)
        acc = jnp.mean((apply(p, x_te) * y_te) > 0)
        return {"test_acc": acc, "train_loss": loss(p)}

    return experiment


def make_kernel_experiment(n_pool: int = 2048, m: int = 256, d: int = 64, ridge: float = 1e-3):
    x_pool, y_pool = two_gaussians(jax.random.PRNGKey(200), n_pool, d)
    x_te, y_te = two_gaussians(jax.random.PRNGKey(201), 512, d)

    def arccos1(a, b):
        """First-order arc-cosine kernel (Cho & Saul 2009), the NNGP of a ReLU layer."""
        na = jnp.linalg.norm(a, axis=1)[:, None]
        nb = jnp.linalg.norm(b, axis=1)[None, :]
        cos = jnp.clip(a @ b.T / (na * nb), -1.0, 1.0)
        th = jnp.arccos(cos)
        return na * nb * (jnp.sin(th) + (jnp.pi - th) * cos) / (2 * jnp.pi * d)

    def experiment(key):
        idx = jax.random.choice(key, n_pool, (m,), replace=False)
        xs, ys = x_pool[idx], y_pool[idx]
        k = arccos1(xs, xs) + ridge * jnp.eye(m)
        alpha = jnp.linalg.solve(k, ys)
        f = arccos1(x_te, xs) @ alpha
        return {"test_acc": jnp.mean((f * y_te) > 0), "test_mse": jnp.mean((f - y_te) ** 2)}

    return experiment


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--k", type=int, default=8, help="number of replicas")
    ap.add_argument("--steps", type=int, default=300, help="GD steps of the MLP experiment")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", default=None, help="also write the numbers to this file")
    args = ap.parse_args(argv)

    out = dict(k=args.k, steps=args.steps, device=str(jax.devices()[0]), experiments={})
    print(f"k = {args.k} replicas, device {out['device']}")
    for name, exp in (("mlp", make_mlp_experiment(args.steps)), ("kernel", make_kernel_experiment())):
        jitted = jax.jit(exp)
        res = {}
        fns = {
            "vmap": lambda: res.__setitem__("vmap", run_replicas(exp, args.k, mode="vmap")),
            "sequential": lambda: res.__setitem__("sequential", run_replicas(jitted, args.k, mode="sequential")),
        }
        t = best_times(fns, args.repeats)
        agree = all(np.allclose(res["vmap"].values[key], res["sequential"].values[key], rtol=1e-3, atol=1e-5)
                    for key in res["vmap"].values)
        acc = res["vmap"].interval(lambda v: v["test_acc"])
        out["experiments"][name] = dict(vmap_seconds=t["vmap"], sequential_seconds=t["sequential"],
                                        speedup=t["sequential"] / t["vmap"], agree=bool(agree),
                                        test_acc=acc.to_json())
        print(f"{name:>7}: sequential {t['sequential']:7.3f} s, vmap {t['vmap']:7.3f} s -> "
              f"speed ratio {t['sequential'] / t['vmap']:5.2f} x; modes agree: {agree}; "
              f"test accuracy {acc}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=2)
    return out


if __name__ == "__main__":
    main()
