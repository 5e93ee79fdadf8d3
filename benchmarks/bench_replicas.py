"""Benchmark: ``k`` seed replicas through ``ntknb.replicas.run_replicas`` on one device (the plain
loop) against the same replicas spread over ``--devices`` devices (one worker thread each), one
run, the same numbers checked.

The replica is written the way the chapters write theirs: Python around jitted pieces. Per seed a
two-hidden-layer ReLU MLP (width ``--width``) on 512 points of a 64-dimensional two-Gaussian task
drawn from the seed, trained by ``--steps`` full-batch GD steps (one jitted call per step, the loss
read back every 10 steps, as a progress monitor does), then its test accuracy on 512 points.

Each device count runs in its own Python process (the device count is fixed when JAX starts): on
a CPU the extra devices are simulated with ``XLA_FLAGS=--xla_force_host_platform_device_count=N``
and share the same cores, so no gain is expected there; on a multi-GPU node pass ``--platform gpu``
and ``--devices`` up to the number of GPUs. Times: ``first`` is the first call (compilation
included: each device compiles its own copy), ``warm`` the best of ``--repeats`` further calls;
``ratio`` = loop time / spread time (> 1: the spread is faster). The numbers are checked twice:
the spread against the plain loop in its own process (identical, bit for bit), and against the
one-device process (on the CPU they may differ in the last bits: a process with simulated devices
compiles the same program differently, whatever route the replicas take).

Run: .venv/bin/python benchmarks/bench_replicas.py [--k 8] [--devices 4] [--steps 100]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time


def _worker(args) -> dict:
    import ntknb  # noqa: F401

    import jax
    import jax.numpy as jnp
    import numpy as np

    from ntknb.replicas import run_replicas

    d, n, width = 64, 512, args.width

    def two_gaussians(key):
        k1, k2 = jax.random.split(key)
        y = jnp.where(jax.random.bernoulli(k1, 0.5, (n,)), 1.0, -1.0)
        return jax.random.normal(k2, (n, d)) + 0.35 * y[:, None], y[:, None]

    def apply(p, x):
        h = jax.nn.relu(x @ p[0] / jnp.sqrt(d))
        return jax.nn.relu(h @ p[1] / jnp.sqrt(width)) @ p[2] / jnp.sqrt(width)

    def loss(p, x, y):
        return 0.5 * jnp.mean((apply(p, x) - y) ** 2)

    @jax.jit
    def step(p, x, y):
        return jax.tree_util.tree_map(lambda a, g: a - 0.2 * g, p, jax.grad(loss)(p, x, y))

    def replica(seed: int) -> dict:
        kd, kt, *kp = jax.random.split(jax.random.PRNGKey(seed), 5)
        x, y = two_gaussians(kd)
        x_te, y_te = two_gaussians(kt)
        p = (jax.random.normal(kp[0], (d, width)), jax.random.normal(kp[1], (width, width)),
             jax.random.normal(kp[2], (width, 1)))
        monitor = []
        for t in range(args.steps):
            p = step(p, x, y)
            if t % 10 == 9:
                monitor.append(float(loss(p, x, y)))
        return {"test_acc": float(jnp.mean((apply(p, x_te) * y_te) > 0)), "monitor": monitor,
                "w_last": np.asarray(p[2]).ravel().tolist()}

    seeds = list(range(args.k))
    t0, c0 = time.perf_counter(), time.process_time()
    results = run_replicas(replica, seeds)
    first = (time.perf_counter() - t0, time.process_time() - c0)
    warm = [float("inf"), float("inf")]
    for _ in range(args.repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        again = run_replicas(replica, seeds)
        warm = [min(warm[0], time.perf_counter() - t0), min(warm[1], time.process_time() - c0)]
        assert again == results, "a rerun gave other numbers"
    same_as_loop_here = results == [replica(s) for s in seeds]  # the plain loop in this process
    return {"devices": len(jax.local_devices()), "device": str(jax.local_devices()[0]), "first_wall": first[0],
            "first_cpu": first[1], "warm_wall": warm[0], "warm_cpu": warm[1], "results": results,
            "same_as_loop_here": same_as_loop_here}


def _run(args, n_devices: int) -> dict:
    env = dict(os.environ)
    if args.platform == "cpu":
        env.update(JAX_PLATFORMS="cpu", XLA_FLAGS=f"--xla_force_host_platform_device_count={n_devices}")
    else:  # the first n GPUs
        env.update(JAX_PLATFORMS=args.platform, CUDA_VISIBLE_DEVICES=",".join(map(str, range(n_devices))))
    cmd = [sys.executable, __file__, "--worker", "--k", str(args.k), "--steps", str(args.steps),
           "--width", str(args.width), "--repeats", str(args.repeats), "--platform", args.platform]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"{n_devices}-device worker failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--k", type=int, default=8, help="number of replicas (seeds 0 .. k-1)")
    ap.add_argument("--devices", type=int, default=4, help="devices the replicas are spread over")
    ap.add_argument("--steps", type=int, default=100, help="GD steps per replica")
    ap.add_argument("--width", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=2, help="warm calls after the first (best taken)")
    ap.add_argument("--platform", default="cpu", choices=["cpu", "gpu"])
    ap.add_argument("--json", default=None, help="also write the numbers to this file")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(_worker(args)))
        return None

    loop, spread = _run(args, 1), _run(args, args.devices)
    same = loop.pop("results") == spread.pop("results")
    out = {"k": args.k, "steps": args.steps, "width": args.width, "platform": args.platform,
           "loop": loop, "spread": spread, "identical_to_loop_same_process": spread["same_as_loop_here"],
           "identical_to_one_device_process": same,
           "ratio_first": loop["first_wall"] / spread["first_wall"],
           "ratio_warm": loop["warm_wall"] / spread["warm_wall"]}
    print(f"{args.k} replicas, {args.steps} GD steps each, {loop['device']}")
    for name, r in (("loop, 1 device", loop), (f"spread, {spread['devices']} devices", spread)):
        print(f"  {name:>20}: first {r['first_wall']:7.2f} s wall ({r['first_cpu']:7.2f} s CPU), "
              f"warm {r['warm_wall']:7.2f} s wall ({r['warm_cpu']:7.2f} s CPU)")
    print(f"  ratio loop / spread: first call {out['ratio_first']:.2f}x, warm {out['ratio_warm']:.2f}x")
    print(f"  spread results identical to the loop in the same process: {spread['same_as_loop_here']}; "
          f"to the one-device process: {same}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=2)
    return out


if __name__ == "__main__":
    main()
