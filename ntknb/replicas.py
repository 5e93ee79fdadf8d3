"""Repeated seeds, efficiently: run ``k`` replicas of an experiment with different seeds,
batched with ``jax.vmap`` where the experiment is a pure jittable function of its key, one
after the other otherwise.

::

    def experiment(key):                      # pure: key -> pytree of arrays
        params = init(key)
        params = train(params, x_train, y_train)   # lax loops, no Python side effects
        return {"test_acc": accuracy(params, x_test, y_test)}

    reps = run_replicas(experiment, seeds=5)            # vmap over 5 keys, one compilation
    reps.values["test_acc"]                              # shape (5,)
    reps.interval(lambda v: v["test_acc"])               # mean ± t interval (ntknb.stats)

Replica ``i`` gets ``jax.random.PRNGKey(seeds[i])``, in both modes, so a batched replica is
the run a single call ``experiment(jax.random.PRNGKey(seed))`` would give (up to floating
point reassociation in the batched kernels). ``batch_size`` bounds memory: at most that many
replicas run in one vmapped call.

Batching pays when one replica underuses an accelerator (small networks, kernel subsamples,
small batches). On the CPU backend it does not: XLA's batched matrix products run slower than
the plain ones a single replica uses, and one replica already keeps the cores busy
(``benchmarks/bench_replicas.py``, 2-core CPU, 8 replicas: vmap took 2.6x as long as the
sequential loop for MLP training and 1.9x for kernel subsample regression). So
``mode="auto"`` (the default) batches with ``jax.vmap`` on an accelerator and runs the jitted
experiment replica after replica on the CPU; both fall back to a plain loop when the experiment
cannot be traced (Python control flow on values, host callbacks, ...), saying why in
``Replicas.note``.
"""

from __future__ import annotations

import dataclasses
import time
import weakref
from collections.abc import Callable, Sequence
from typing import Any, Optional

import jax
import jax.numpy as jnp
import numpy as np

from ntknb.validation import check_choice, check_devices, check_int

__all__ = ["Replicas", "run_replicas", "replica_keys"]

_TRACE_ERRORS = tuple(
    getattr(jax.errors, name)
    for name in ("ConcretizationTypeError", "TracerArrayConversionError", "TracerBoolConversionError",
                 "TracerIntegerConversionError", "UnexpectedTracerError")
    if hasattr(jax.errors, name)
)


@dataclasses.dataclass(frozen=True, eq=False)  # holds arrays: compare fields explicitly
class Replicas:
    """``k`` replicas of an experiment.

    Attributes:
      seeds: the ``k`` seeds, in order.
      values: the experiment's output pytree with a leading axis of length ``k`` on every
        leaf (numpy arrays).
      mode: ``"vmap"`` or ``"sequential"`` (what actually ran).
      seconds: wall time of all replicas (compilation included).
      note: why ``mode="auto"`` fell back to the sequential loop (empty otherwise).
    """

    seeds: tuple
    values: Any
    mode: str
    seconds: float
    note: str = ""

    @property
    def k(self) -> int:
        return len(self.seeds)

    def interval(self, select: Callable[[Any], Any] = lambda v: v, confidence: float = 0.95):
        """:func:`ntknb.stats.mean_interval` over the replicas of ``select(values)`` (an array
        of shape ``(k,)``)."""
        from ntknb.stats import mean_interval

        v = np.asarray(select(self.values))
        if v.shape != (self.k,):
            raise ValueError(f"Replicas.interval: select(values) must have shape (k,) = ({self.k},); "
                             f"got {v.shape}")
        return mean_interval(v, confidence=confidence)


def _seeds(seeds) -> tuple:
    if isinstance(seeds, (int, np.integer)) and not isinstance(seeds, bool):
        k = check_int("seeds", seeds, min=1)
        return tuple(range(k))
    if isinstance(seeds, (str, bytes)) or not isinstance(seeds, (Sequence, np.ndarray, range)):
        raise ValueError(f"parameter 'seeds' must be a number of replicas k >= 1 or a sequence of "
                         f"integer seeds; got {seeds!r}")
    out = tuple(check_int(f"seeds[{i}]", s, min=0) for i, s in enumerate(seeds))
    if not out:
        raise ValueError("parameter 'seeds' must hold at least one seed")
    if len(set(out)) != len(out):
        raise ValueError(f"parameter 'seeds' must not repeat a seed; got {list(out)!r}")
    return out


def replica_keys(seeds) -> jnp.ndarray:
    """The stacked keys ``PRNGKey(seed)`` of the replicas, shape ``(k, 2)`` (uint32)."""
    return jnp.stack([jax.random.PRNGKey(s) for s in _seeds(seeds)])


def _stack(outs: list) -> Any:
    return jax.tree_util.tree_map(lambda *leaves: np.stack([np.asarray(v) for v in leaves]), *outs)


def _sequential(experiment, keys, devices=(None,)) -> Any:
    """One replica per device at a time (dispatched together, so several devices work at
    once), replica ``i`` on ``devices[i % len(devices)]``; ``(None,)``: default placement."""
    outs = []
    for w0 in range(0, keys.shape[0], len(devices)):
        wave = [experiment(keys[i] if dev is None else jax.device_put(keys[i], dev))
                for i, dev in zip(range(w0, keys.shape[0]), devices)]
        outs.extend(jax.block_until_ready(wave))
    return _stack(outs)


#: ``jax.jit(jax.vmap(experiment))`` / ``jax.jit(experiment)`` per experiment, so repeated
#: calls reuse the compilation.
_COMPILED: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _compiled(experiment, batched: bool):
    make = (lambda: jax.jit(jax.vmap(experiment))) if batched else (lambda: jax.jit(experiment))
    try:
        cache = _COMPILED.setdefault(experiment, {})
    except TypeError:  # not weak-referenceable: compile per call
        return make()
    if batched not in cache:
        cache[batched] = make()
    return cache[batched]


def _batched(experiment, keys, batch_size: Optional[int], devices=(None,)) -> Any:
    """vmapped calls of ``b`` replicas; with several devices the replica axis is sharded over
    them (``b`` rounded up to a multiple of the device count, the padding dropped)."""
    k = keys.shape[0]
    b = k if batch_size is None else min(batch_size, k)
    b = -(-b // len(devices)) * len(devices)
    sharding = None
    if len(devices) > 1:
        from jax.sharding import Mesh, NamedSharding, PartitionSpec

        sharding = NamedSharding(Mesh(np.array(devices), ("replica",)), PartitionSpec("replica"))
    fn = _compiled(experiment, batched=True)
    parts = []
    for start in range(0, k, b):
        chunk = keys[start:start + b]
        n = chunk.shape[0]
        if n < b:  # pad to one compiled shape, drop the padding afterwards
            chunk = jnp.concatenate([chunk, jnp.repeat(chunk[-1:], b - n, axis=0)])
        if sharding is not None:
            chunk = jax.device_put(chunk, sharding)
        out = jax.block_until_ready(fn(chunk))
        parts.append(jax.tree_util.tree_map(lambda v, n=n: np.asarray(v)[:n], out))
    return jax.tree_util.tree_map(lambda *leaves: np.concatenate(leaves), *parts)


def run_replicas(
    experiment: Callable[[jax.Array], Any],
    seeds=5,
    *,
    mode: str = "auto",
    batch_size: Optional[int] = None,
    devices=None,
) -> Replicas:
    """Run ``experiment(jax.random.PRNGKey(seed))`` for every seed.

    Args:
      experiment: ``key (2,) uint32 -> pytree of arrays``. For ``mode="vmap"`` it must be a
        pure function of the key that JAX can trace (``jax.lax`` loops, no Python branches on
        values, no host-side effects).
      seeds: the number of replicas ``k`` (seeds ``0 .. k-1``) or a sequence of distinct seeds.
      mode: ``"vmap"`` (batched; tracing errors propagate), ``"sequential"`` (a Python loop;
        pass a jitted experiment to compile once), or ``"auto"``: on an accelerator vmap, on
        the CPU backend the jitted experiment one replica after the other (measured faster
        there, see the module docstring); either falls back to a plain sequential loop when
        the experiment cannot be traced.
      batch_size: replicas per vmapped call (bounds memory); ``None``: all ``k`` at once.
      devices: the devices replicas are spread over (``None``: all local devices). With
        several, a vmapped call shards its replica axis over them and the jitted sequential
        mode runs one replica per device at a time; each replica is the same computation
        wherever it runs.

    Returns:
      :class:`Replicas` (``values`` with a leading axis ``k``).
    """
    if not callable(experiment):
        raise ValueError(f"parameter 'experiment' must be callable key -> pytree; got {type(experiment).__name__}")
    seeds = _seeds(seeds)
    mode = check_choice("mode", mode, ["auto", "vmap", "sequential"])
    batch_size = check_int("batch_size", batch_size, min=1, none_ok=True)
    devices = check_devices("devices", devices)
    keys = replica_keys(seeds)
    t0 = time.perf_counter()
    note = ""
    if mode == "sequential":
        values, ran = _sequential(experiment, keys), "sequential"
    elif mode == "vmap":
        values, ran = _batched(experiment, keys, batch_size, devices), "vmap"
    else:
        batched = jax.default_backend() != "cpu"
        try:
            if batched:
                values, ran = _batched(experiment, keys, batch_size, devices), "vmap"
            else:
                jitted = _compiled(experiment, batched=False)
                values, ran = _sequential(jitted, keys, devices), "sequential"
                note = "CPU backend: replicas run one after the other, jitted once"
        except _TRACE_ERRORS as exc:
            note = (f"{'vmap' if batched else 'jit'} failed ({type(exc).__name__}: "
                    f"{str(exc).splitlines()[0]}); ran sequentially without jit")
            values, ran = _sequential(experiment, keys), "sequential"
    return Replicas(seeds=seeds, values=values, mode=ran, seconds=time.perf_counter() - t0, note=note)
