"""Benchmark: the batched eigen-feature sweep (ntknb.features.feature_sweep) against two
competitors, same inputs, one run: the naive per-feature, per-test-point autodiff loop
(ntknb.features.naive_feature_sweep) and the honest one — per feature, one jitted gradient
batched over all test points (``points_per_pass=None``: what a JAX user would write).

Setting (the chapter's default): CIFAR-10 airplane vs automobile, fully connected NTK of
depth 1, 2000 training images, 500 test images, the first 100 eigen-features, FGSM eps 8/255.

The naive loop costs exactly the same per feature, so by default it is timed on the first
``--naive-features`` features (all 500 test points) and its time is extrapolated linearly to
all features (printed as such); ``--naive-features 100`` times it in full. The batched
competitor is timed on ``--batched-features`` features (default all) the same way. On the
features both ran, the accuracies are compared (float32: a mismatch can only come from the sign
of a gradient component that is zero up to rounding; the exact equality is tested in float64 in
tests/test_features.py). Also printed: the share of plain-GEMM speed that the fast sweep's
dominant products reach.

Run: NTKNB_DATA_DIR=/work/shared/data .venv/bin/python benchmarks/bench_feature_sweep.py
"""

from __future__ import annotations

import argparse
import json
import time

import ntknb  # noqa: F401

import jax
import jax.numpy as jnp
import numpy as np

from ntknb import architectures, data, features, kernels


def sweep_flops(n_train: int, n_test: int, n_features: int, input_dim: int) -> float:
    """FLOPs of the two dominant products of a fully connected sweep: the pullback of the
    ``p`` cotangents through ``x . X^T`` (``2 m p n d``) and the perturbed kernel rows
    ``(p m, d) x (d, n)`` (``2 m p n d``): ``4 m p n d``."""
    return 4.0 * n_test * n_features * n_train * input_dim


def gemm_rate(m: int, k: int, n: int, repeats: int = 3) -> float:
    """FLOP/s of a plain float32 (m, k) x (k, n) jitted matmul on this machine (reference)."""
    a = jnp.ones((m, k), jnp.float32)
    b = jnp.ones((k, n), jnp.float32)
    f = jax.jit(jnp.matmul)
    f(a, b).block_until_ready()
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        f(a, b).block_until_ready()
        best = min(best, time.perf_counter() - t0)
    return 2.0 * m * k * n / best


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--arch", default="fc1")
    ap.add_argument("--n-train", type=int, default=2000)
    ap.add_argument("--n-test", type=int, default=500)
    ap.add_argument("--features", type=int, default=100)
    ap.add_argument("--naive-features", type=int, default=2,
                    help="features on which the naive loop is actually timed (then extrapolated)")
    ap.add_argument("--batched-features", type=int, default=None,
                    help="features on which the batched competitor is timed (default: all)")
    ap.add_argument("--eps", type=float, default=8 / 255)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None, help="also write the numbers to this file")
    args = ap.parse_args(argv)

    ds = data.load_dataset("cifar10")
    task = data.make_task(ds, classes=("airplane", "automobile"), n_train=args.n_train,
                          n_test=args.n_test, seed=args.seed)
    arch = architectures.get_architecture(args.arch)
    k_train = kernels.kernel_matrix(arch.kernel_fn, task.x_train, dtype=np.float64)
    pred = kernels.KernelPredictor.fit(k_train, task.y_train, dtype=np.float64)
    idx = np.arange(args.features)
    common = (arch.kernel_fn, task.x_train, pred, task.x_test, task.y_test, args.eps)

    # warm-up (compilation) on a few points, not timed
    features.feature_sweep(*common[:3], task.x_test[:50], task.y_test[:50], args.eps, indices=idx)
    t0 = time.perf_counter()
    fast = features.feature_sweep(*common, indices=idx)
    t_fast = time.perf_counter() - t0

    nf = min(args.naive_features, args.features)
    features.naive_feature_sweep(*common[:3], task.x_test[:2], task.y_test[:2], args.eps,
                                 indices=idx[:1])  # warm-up
    t0 = time.perf_counter()
    naive = features.naive_feature_sweep(*common, indices=idx[:nf])
    t_naive_measured = time.perf_counter() - t0
    t_naive = t_naive_measured * args.features / nf

    nb = args.features if args.batched_features is None else min(args.batched_features, args.features)
    features.naive_feature_sweep(*common, indices=idx[:1], points_per_pass=None)  # warm-up (compilation)
    t0 = time.perf_counter()
    batched = features.naive_feature_sweep(*common, indices=idx[:nb], points_per_pass=None)
    t_batched_measured = time.perf_counter() - t0
    t_batched = t_batched_measured * args.features / nb

    d = int(np.prod(task.x_train.shape[1:]))
    flops = sweep_flops(args.n_train, args.n_test, args.features, d)
    rate = flops / t_fast
    ref = gemm_rate(args.features * 50, d, args.n_train)
    same_clean = int(np.sum(fast.clean_accuracy[:nf] == naive.clean_accuracy))
    same_robust = int(np.sum(fast.robust_accuracy[:nf] == naive.robust_accuracy))
    same_batched = int(np.sum(fast.robust_accuracy[:nb] == batched.robust_accuracy))
    out = dict(arch=args.arch, n_train=args.n_train, n_test=args.n_test, features=args.features,
               input_dim=d, fast_seconds=t_fast, naive_features_timed=nf,
               naive_seconds_measured=t_naive_measured, naive_seconds_all_features=t_naive,
               naive_extrapolated=nf < args.features, speedup=t_naive / t_fast,
               batched_features_timed=nb, batched_seconds_measured=t_batched_measured,
               batched_seconds_all_features=t_batched, speedup_vs_batched=t_batched / t_fast,
               dominant_flops=flops, achieved_flop_rate=rate, plain_gemm_flop_rate=ref,
               gemm_share=rate / ref, agree_clean=f"{same_clean}/{nf}", agree_robust=f"{same_robust}/{nf}",
               agree_robust_batched=f"{same_batched}/{nb}")
    print(f"setting: {args.arch}, CIFAR-10 airplane/automobile, n_train={args.n_train}, "
          f"n_test={args.n_test}, features={args.features}, eps={args.eps:.4f}")
    print(f"fast sweep:  {t_fast:8.2f} s")
    how = (f"measured on {nf} features ({t_naive_measured:.2f} s), extrapolated linearly"
           if nf < args.features else "measured on all features")
    print(f"naive loop:  {t_naive:8.2f} s  ({how})")
    print(f"speed ratio: {t_naive / t_fast:8.1f} x  (against the per-point loop)")
    how_b = (f"measured on {nb} features ({t_batched_measured:.2f} s), extrapolated linearly"
             if nb < args.features else "measured on all features")
    print(f"batched per-feature autodiff: {t_batched:8.2f} s  ({how_b})")
    print(f"speed ratio: {t_batched / t_fast:8.1f} x  (against one jitted gradient per feature over all test points)")
    print(f"dominant products: {flops / 1e12:.3f} TFLOP (4 m p n d) -> achieved "
          f"{rate / 1e9:.1f} GFLOP/s over the whole fast sweep; plain GEMM on this machine "
          f"{ref / 1e9:.1f} GFLOP/s: {100 * rate / ref:.0f} % of plain-GEMM speed")
    print(f"fast == naive on the {nf} features run by both: clean {same_clean}/{nf}, "
          f"robust {same_robust}/{nf}; fast == batched (robust): {same_batched}/{nb}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=2)
    return out


if __name__ == "__main__":
    main()
