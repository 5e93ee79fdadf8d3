"""Benchmark: cost per iteration of APGD (ntknb.evaluation, one APGD-CE run) against the
existing PGD (ntknb.attacks.pgd), same model, same inputs, one run.

Setting: a random two-hidden-layer ReLU MLP (width 512, 10 classes; ``--model cnn``: two
3x3 stride-2 convolutions) on ``n`` random 32x32x3 images in [0, 1], labelled by the model
itself (so every example is attacked);
l-inf eps 8/255. Each iteration of either attack is one forward and one backward pass; APGD
adds the momentum step, the loss / margin bookkeeping and the checkpoint tests.

The cost per iteration is the slope between a short and a long run,
``(t(long) - t(short)) / (long - short)``, which cancels the fixed costs (the clean pass,
host-side gathering, dispatch); compilation is excluded (each configuration is run once
before timing), and each time is the best of ``--repeats`` interleaved rounds.

Run: .venv/bin/python benchmarks/bench_apgd.py [--n 256] [--short 20] [--long 100]
"""

from __future__ import annotations

import argparse
import json

import ntknb  # noqa: F401

import jax
import jax.numpy as jnp
import numpy as np

from ntknb import attacks, evaluation
from _timing import best_times  # benchmarks/_timing.py (scripts' folder is on sys.path)


def make_mlp(key, d: int, width: int, k: int):
    k1, k2, k3 = jax.random.split(key, 3)
    w1 = jax.random.normal(k1, (d, width)) / np.sqrt(d)
    w2 = jax.random.normal(k2, (width, width)) / np.sqrt(width)
    w3 = jax.random.normal(k3, (width, k)) / np.sqrt(width)

    def predict(x):
        h = x.reshape(x.shape[0], -1) - 0.5
        h = jax.nn.relu(h @ w1)
        h = jax.nn.relu(h @ w2)
        return h @ w3

    return predict


def make_cnn(key, channels: int, k: int):
    """Two 3x3 stride-2 ReLU convolutions (``channels``, ``2 channels``) and a linear head."""
    k1, k2, k3 = jax.random.split(key, 3)
    w1 = jax.random.normal(k1, (3, 3, 3, channels)) / np.sqrt(27)
    w2 = jax.random.normal(k2, (3, 3, channels, 2 * channels)) / np.sqrt(9 * channels)
    w3 = jax.random.normal(k3, (8 * 8 * 2 * channels, k)) / np.sqrt(128 * channels)
    dn = ("NHWC", "HWIO", "NHWC")

    def predict(x):
        h = jax.nn.relu(jax.lax.conv_general_dilated(x - 0.5, w1, (2, 2), "SAME", dimension_numbers=dn))
        h = jax.nn.relu(jax.lax.conv_general_dilated(h, w2, (2, 2), "SAME", dimension_numbers=dn))
        return h.reshape(h.shape[0], -1) @ w3

    return predict


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=256, help="number of images")
    ap.add_argument("--model", choices=["mlp", "cnn"], default="mlp")
    ap.add_argument("--width", type=int, default=512, help="MLP width / CNN channels of the first layer")
    ap.add_argument("--short", type=int, default=20, help="iterations of the short run")
    ap.add_argument("--long", type=int, default=100, help="iterations of the long run")
    ap.add_argument("--eps", type=float, default=8 / 255)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None, help="also write the numbers to this file")
    args = ap.parse_args(argv)

    key = jax.random.PRNGKey(args.seed)
    shape = (32, 32, 3)
    if args.model == "mlp":
        predict = make_mlp(key, int(np.prod(shape)), args.width, 10)
        desc = f"MLP 3072-{args.width}-{args.width}-10"
    else:
        predict = make_cnn(key, args.width, 10)
        desc = f"CNN conv{args.width}-conv{2 * args.width}-10"
    x = np.asarray(jax.random.uniform(jax.random.fold_in(key, 1), (args.n,) + shape))
    c = np.asarray(jnp.argmax(predict(jnp.asarray(x)), axis=1))
    y_onehot = jax.nn.one_hot(c, 10)
    loss = attacks.predictor_loss(predict, "ce")

    def run_pgd(steps):
        return lambda: attacks.pgd(loss, x, y_onehot, args.eps, steps=steps).block_until_ready()

    def run_apgd(steps):
        return lambda: evaluation.robust_evaluation(
            predict, x, c, args.eps, n_iter=steps, n_restarts=1, attacks=("apgd-ce",),
            batch_size=None)

    t = best_times({(name, steps): make(steps)
                    for name, make in (("pgd", run_pgd), ("apgd", run_apgd))
                    for steps in (args.short, args.long)}, args.repeats)
    span = args.long - args.short
    per_it = {name: (t[name, args.long] - t[name, args.short]) / span for name in ("pgd", "apgd")}
    ratio = per_it["apgd"] / per_it["pgd"]
    out = dict(model=desc, n=args.n, width=args.width, short=args.short, long=args.long,
               device=str(jax.devices()[0]),
               seconds={f"{k[0]}_{k[1]}": v for k, v in t.items()},
               seconds_per_iteration=per_it, ratio_apgd_over_pgd=ratio,
               ratio_whole_long_run=t["apgd", args.long] / t["pgd", args.long])
    print(f"setting: {desc}, n = {args.n}, eps = {args.eps:.4f}, "
          f"device {out['device']}")
    for name in ("pgd", "apgd"):
        print(f"{name:>5}: {t[name, args.short]:7.3f} s ({args.short} it), {t[name, args.long]:7.3f} s "
              f"({args.long} it) -> {1e3 * per_it[name]:7.3f} ms per iteration")
    print(f"cost per iteration, APGD / PGD: {ratio:.2f}")
    print(f"whole {args.long}-iteration run (incl. clean pass and bookkeeping), APGD / PGD: "
          f"{out['ratio_whole_long_run']:.2f}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=2)
    return out


if __name__ == "__main__":
    main()
