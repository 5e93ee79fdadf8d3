"""Benchmark: empirical NTK of the chapter-04 CNN on its probe set, by implementation.

Times :func:`ntknb.kernels.empirical_ntk` (the per-logit kernel ``trace_axes=()`` that
:class:`ntknb.ntk_dynamics.KernelTracker` computes every epoch, and the traced kernel) for
each neural-tangents implementation on the same flax model, parameters and probe images,
and prints the time of each relative to the implementation ``"auto"`` picks.

Each implementation runs in its own subprocess (a std::bad_alloc in one — NTK-vector
products on a large block — would otherwise abort the whole run); the first call
(compilation) is excluded, the best of ``--repeats`` calls is reported.

    .venv/bin/python benchmarks/bench_empirical_ntk.py [--n 100] [--width 8] [--hidden 32]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time


def _time_one(impl: str, n: int, width: int, hidden: int, batch_size, repeats: int, trace: str) -> dict:
    import numpy as np

    import ntknb  # noqa: F401
    from ntknb import kernels, models

    try:
        from ntknb import data

        ds = data.load_dataset("cifar10")
        from ntknb.ntk_dynamics import balanced_probe

        x = ds.x_test[balanced_probe(ds.labels_test, n // 10, seed=1)]
        source = "CIFAR-10 test probe"
    except Exception:  # noqa: BLE001 - no data: random images of the same shape
        x = np.random.default_rng(0).random((n, 32, 32, 3)).astype(np.float32)
        source = "random 32x32x3 images"
    model = models.CNN(num_classes=10, width=width, hidden=hidden)
    params, _ = models.init_model(model, x.shape[1:])

    def f(p, xx):
        return model.apply({"params": p}, xx)

    trace_axes = () if trace == "full" else (-1,)
    kernels.empirical_ntk(f, params, x, trace_axes=trace_axes, implementation=impl, batch_size=batch_size)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        kernels.empirical_ntk(f, params, x, trace_axes=trace_axes, implementation=impl, batch_size=batch_size)
        best = min(best, time.perf_counter() - t)
    return {"seconds": best, "source": source, "n": int(x.shape[0])}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100, help="probe images (10 classes, n/10 each)")
    ap.add_argument("--width", type=int, default=8)
    ap.add_argument("--hidden", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=0, help="block size (0: one block)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--trace", default="full", choices=["full", "traced"], help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    bs = args.batch_size or None
    if args.child:
        print(json.dumps(_time_one(args.child, args.n, args.width, args.hidden, bs, args.repeats, args.trace)))
        return

    import ntknb  # noqa: F401
    from ntknb import kernels

    auto = kernels.auto_ntk_implementation()
    impls = [i for i in kernels.NTK_IMPLEMENTATIONS if i != "auto"]
    print(f"model: CNN(width={args.width}, hidden={args.hidden}); auto -> {auto}; block size {bs}")
    for trace in ("full", "traced"):
        times = {}
        for impl in impls:
            cmd = [sys.executable, __file__, "--child", impl, "--trace", trace, "--n", str(args.n), "--width",
                   str(args.width), "--hidden", str(args.hidden), "--batch-size", str(args.batch_size),
                   "--repeats", str(args.repeats)]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            line = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
            try:
                times[impl] = json.loads(line)
            except json.JSONDecodeError:
                times[impl] = {"seconds": float("nan"), "error": (proc.stderr.strip().splitlines() or ["?"])[-1]}
        ref = times[auto]["seconds"]
        src = next((t["source"] for t in times.values() if "source" in t), "?")
        print(f"\n{'per-logit (n,n,k,k)' if trace == 'full' else 'traced (n,n)'} kernel, n={args.n}, {src}:")
        for impl in impls:
            t = times[impl]
            if "error" in t:
                print(f"  {impl:24s}   failed: {t['error'][:80]}")
            else:
                print(f"  {impl:24s} {t['seconds']:8.3f} s   ratio to {auto}: {t['seconds'] / ref:6.2f}")


if __name__ == "__main__":
    main()
