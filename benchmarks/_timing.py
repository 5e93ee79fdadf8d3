"""Shared by the benchmarks (run as scripts: ``.venv/bin/python benchmarks/bench_*.py``)."""

import time

import numpy as np


def best_wall_and_cpu(fns: dict, repeats: int) -> dict:
    """``{name: (best wall seconds, best CPU seconds of this process)}`` of each ``fns[name]()`` over
    ``repeats`` rounds, after one warm-up call each (compilation); the rounds interleave the functions,
    so a load change on a shared machine hits all of them alike. CPU seconds count the work done,
    whatever other jobs take of the cores."""
    for fn in fns.values():
        fn()
    best = {name: [np.inf, np.inf] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0, c0 = time.perf_counter(), time.process_time()
            fn()
            best[name][0] = min(best[name][0], time.perf_counter() - t0)
            best[name][1] = min(best[name][1], time.process_time() - c0)
    return {name: tuple(v) for name, v in best.items()}


def best_times(fns: dict, repeats: int) -> dict:
    """Best wall time of each ``fns[name]()`` over ``repeats`` rounds (:func:`best_wall_and_cpu`)."""
    return {name: wall for name, (wall, _) in best_wall_and_cpu(fns, repeats).items()}
