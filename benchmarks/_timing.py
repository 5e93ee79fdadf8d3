"""Shared by the benchmarks (run as scripts: ``.venv/bin/python benchmarks/bench_*.py``)."""

import time

import numpy as np


def best_times(fns: dict, repeats: int) -> dict:
    """Best wall time of each ``fns[name]()`` over ``repeats`` rounds, after one warm-up call
    each (compilation); the rounds interleave the functions, so a load change on a shared
    machine hits all of them alike."""
    for fn in fns.values():
        fn()
    best = {name: np.inf for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t0)
    return best
