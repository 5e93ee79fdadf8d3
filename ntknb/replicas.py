"""Repeated seeds: one route for every chapter that runs an experiment once per seed.

::

    def replica(seed: int) -> SeedRun:        # any Python: jitted pieces, loops, prints
        task = data.make_task(ds, n_train=..., seed=seed)
        ...
        return SeedRun(seed, ...)

    runs = run_replicas(replica, [0, 1, 2, 3])   # [replica(0), replica(1), replica(2), replica(3)]

:func:`run_replicas` returns ``[replica(s) for s in seeds]``, in the order of ``seeds``, and
decides only *where* each call runs:

* **one process, one device** (the CPU, one GPU): exactly that list comprehension, one replica
  after the other in the calling thread; nothing else changes.
* **one process, several local devices** (a multi-GPU node; on the CPU
  ``XLA_FLAGS=--xla_force_host_platform_device_count=N``): one worker thread per device, each
  under ``jax.default_device(device)`` (a thread-local setting), taking the next seed in order
  until none is left; the arrays a replica creates without an explicit device, and the
  computations on them, live on its thread's device.
* **several processes** (``jax.distributed``, :func:`initialize_processes`): process ``r`` of
  ``P`` runs the seeds at positions ``r, r + P, r + 2P, ...`` of ``seeds`` (over its local
  devices as above); the results are pickled and gathered with
  :func:`jax.experimental.multihost_utils.process_allgather`, so every process returns the whole
  list. Every process must call :func:`run_replicas` with the same seeds (a collective); the
  results must pickle.

Why whole replicas and not ``jax.vmap`` / ``shard_map`` over a replica axis: the chapters'
replicas are Python functions of the seed (data subsamples, training loops with callbacks,
attack suites, masking checks), not one traceable function of a key, and batching traceable
replicas did not pay on the CPU anyway (a vmapped MLP training ran 2.6x slower than the loop,
kernel subsample regression 1.9x: the batched matrix products are slower and one replica
already keeps the cores busy). Dispatching whole replicas keeps each one the very computation
a single run does, so its numbers are the same on any number of devices or processes (the
devices being of one kind: a compiled program gives the same bits on every device of that
kind; ``tests/test_replicas.py`` checks 4 host devices and 2 processes against the loop).
What it buys is measured by ``benchmarks/bench_replicas.py``: on a CPU the simulated devices
share the same cores (no gain expected); on a multi-GPU node each GPU runs its own replicas.

Caveats of the threaded route: a replica should not rely on process-wide mutable state
(``numpy``'s global random state, ``time.process_time`` as its own CPU time, ``pyplot``
figures); each device compiles its own copy of a jitted function (once per device, shared by
the replicas run there).
"""

from __future__ import annotations

import os
import pickle
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Optional, TypeVar

import jax
import numpy as np

from ntknb.validation import check_devices, check_int

__all__ = ["PROCESSES_ENV", "run_replicas", "process_share", "initialize_processes"]

T = TypeVar("T")

#: The environment variable that joins this process to a ``jax.distributed`` run
#: (:func:`initialize_processes`): ``COORDINATOR_HOST:PORT,NUM_PROCESSES,PROCESS_ID``, or
#: ``auto`` (JAX detects SLURM, Open MPI, Kubernetes, Cloud TPU); unset or empty: one process.
PROCESSES_ENV = "NTKNB_PROCESSES"


def _seeds(seeds) -> tuple:
    if isinstance(seeds, (str, bytes)) or not isinstance(seeds, (Sequence, np.ndarray, range)):
        raise ValueError(f"parameter 'seeds' must be a sequence of integer seeds; got {seeds!r}")
    out = tuple(check_int(f"seeds[{i}]", s, min=0) for i, s in enumerate(seeds))
    if not out:
        raise ValueError("parameter 'seeds' must hold at least one seed")
    if len(set(out)) != len(out):
        raise ValueError(f"parameter 'seeds' must not repeat a seed; got {list(out)!r}")
    return out


def process_share(n_replicas: int, process_index: int, process_count: int) -> list:
    """The positions ``[r, r + P, r + 2P, ...] < n_replicas`` of the replicas that process
    ``r = process_index`` of ``P = process_count`` runs (round robin, so that consecutive seeds,
    often of similar cost, spread over the processes)."""
    n = check_int("n_replicas", n_replicas, min=0)
    count = check_int("process_count", process_count, min=1)
    return list(range(check_int("process_index", process_index, min=0, max=count - 1), n, count))


def _on_devices(replica: Callable[[int], T], seeds: Sequence[int], devices: tuple) -> list:
    """``[replica(s) for s in seeds]``, one worker thread per device taking the next seed in
    order; the first failing replica's exception (in seed order) is raised once all workers
    stopped (no new replica starts after a failure)."""
    results: list = [None] * len(seeds)
    errors: dict = {}
    next_position = iter(range(len(seeds)))
    lock = threading.Lock()

    def work(device):
        with jax.default_device(device):
            while True:
                with lock:
                    if errors:
                        return
                    i = next(next_position, None)
                if i is None:
                    return
                try:
                    results[i] = replica(seeds[i])
                except BaseException as exc:  # re-raised in the calling thread
                    with lock:
                        errors[i] = exc
                    return

    workers = [threading.Thread(target=work, args=(d,), name=f"replicas-{d}", daemon=True) for d in devices]
    for w in workers:
        w.start()
    try:
        for w in workers:
            while w.is_alive():
                w.join(0.2)  # a short wait, so that Ctrl-C reaches the calling thread
    except BaseException as exc:
        with lock:
            errors.setdefault(-1, exc)  # stops the workers after their current replica
        raise
    if errors:
        raise errors[min(errors)]
    return results


def _local(replica: Callable[[int], T], seeds: Sequence[int], devices: Optional[tuple]) -> list:
    """This process's replicas: the plain loop for one device (under ``jax.default_device``
    only when the device was named), worker threads for several."""
    if devices is None:
        devices = check_devices("devices", None)
        if len(devices) == 1:
            return [replica(s) for s in seeds]
    if len(devices) == 1:
        with jax.default_device(devices[0]):
            return [replica(s) for s in seeds]
    return _on_devices(replica, seeds, devices)


def _allgather_objects(obj: Any) -> list:
    """``[obj of process 0, obj of process 1, ...]`` on every process: ``obj`` pickled to bytes,
    padded to the longest, gathered with ``process_allgather`` (a ``(P, n_bytes)`` uint8 array)."""
    from jax.experimental import multihost_utils

    try:
        payload = np.frombuffer(pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL), np.uint8)
    except (pickle.PicklingError, TypeError, AttributeError) as exc:
        raise TypeError(f"run_replicas over {jax.process_count()} processes: a replica's result must pickle "
                        f"to be gathered ({type(exc).__name__}: {exc})") from exc
    sizes = np.asarray(multihost_utils.process_allgather(np.array([payload.size], np.int64))).reshape(-1)
    padded = np.zeros(int(sizes.max()), np.uint8)
    padded[:payload.size] = payload
    gathered = np.asarray(multihost_utils.process_allgather(padded))
    return [pickle.loads(gathered[r, :int(sizes[r])].tobytes()) for r in range(gathered.shape[0])]


def run_replicas(replica: Callable[[int], T], seeds: Sequence[int], *, devices: Optional[Iterable] = None) -> list:
    """``[replica(s) for s in seeds]``, the replicas spread over the local devices and the
    ``jax.distributed`` processes (see the module docstring for the three cases).

    Args:
      replica: ``seed (int) -> result``, any Python function; its result must pickle when
        several processes run (it is gathered).
      seeds: the ``k`` distinct seeds (non-negative integers), in the order of the results.
      devices: this process's devices to spread the replicas over (``None``: all local devices;
        one device: the plain loop under ``jax.default_device``).

    Returns:
      A list of ``k`` results, ``result[i] = replica(seeds[i])``, the same on every process.
    """
    if not callable(replica):
        raise ValueError(f"parameter 'replica' must be callable seed -> result; got {type(replica).__name__}")
    seeds = _seeds(seeds)
    devices = None if devices is None else check_devices("devices", devices)
    count = jax.process_count()
    if count == 1:
        return _local(replica, seeds, devices)
    mine = process_share(len(seeds), jax.process_index(), count)
    local = dict(zip(mine, _local(replica, [seeds[i] for i in mine], devices)))
    parts = _allgather_objects((seeds, local))
    if any(s != seeds for s, _ in parts):
        raise ValueError(f"run_replicas over {count} processes: every process must pass the same seeds; got "
                         f"{[list(s) for s, _ in parts]}")
    results: dict = {}
    for _, part in parts:
        results.update(part)
    return [results[i] for i in range(len(seeds))]


def _parse_processes(value: str) -> dict:
    """``jax.distributed.initialize`` keyword arguments of a :data:`PROCESSES_ENV` value."""
    if value.strip().lower() == "auto":
        return {}
    parts = [v.strip() for v in value.split(",")]
    try:
        address, count, index = parts
        count, index = int(count), int(index)
        host, port = address.rsplit(":", 1)
        ok = bool(host) and 0 < int(port) < 65536 and count >= 1 and 0 <= index < count
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"environment variable {PROCESSES_ENV} must be 'auto' or 'HOST:PORT,NUM_PROCESSES,"
                         f"PROCESS_ID' (0 <= PROCESS_ID < NUM_PROCESSES, e.g. '10.0.0.1:1234,2,0'); got {value!r}")
    return dict(coordinator_address=address, num_processes=count, process_id=index)


def initialize_processes(environ: Optional[Mapping[str, str]] = None) -> bool:
    """Join the ``jax.distributed`` run that :data:`PROCESSES_ENV` (in ``environ``, default
    ``os.environ``) names; ``False`` (nothing done) when it is unset or empty, or when this
    process joined already.

    Must run before this process's first JAX computation (``jax.distributed.initialize``'s
    rule). ``ntknb run`` calls it in the notebook's kernel before the first cell when the
    variable is set; a script calls it first thing. Raises ``ValueError`` for a malformed value.
    """
    value = (os.environ if environ is None else environ).get(PROCESSES_ENV, "")
    if not value.strip():
        return False
    kwargs = _parse_processes(value)
    if jax.distributed.is_initialized():
        return False
    jax.distributed.initialize(**kwargs)
    return True
