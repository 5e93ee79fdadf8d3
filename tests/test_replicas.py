"""ntknb.replicas: run_replicas gives the loop's results, bit for bit, on one device, on four
simulated host devices and over two jax.distributed processes."""

import json
import os
import socket
import subprocess
import sys
import textwrap
import threading

import ntknb  # noqa: F401

import numpy as np
import pytest

from ntknb import replicas as R

#: A replica as the chapters write them: Python around jitted pieces, its data drawn from the
#: seed, its result a dict of numpy arrays and floats; ``device`` names where it ran.
REPLICA = """
import jax, jax.numpy as jnp, numpy as np

@jax.jit
def step(w, x, y):
    return w - 0.1 * jax.grad(lambda v: jnp.mean((jnp.tanh(x @ v) - y) ** 2))(w)

def replica(seed):
    kx, kw = jax.random.split(jax.random.PRNGKey(seed))
    x = jax.random.normal(kx, (64, 8))
    y = jnp.sin(x[:, :1])
    w = jax.random.normal(kw, (8, 1))
    losses = []
    for _ in range(10):  # a Python loop of jitted steps
        w = step(w, x, y)
        losses.append(float(jnp.mean((jnp.tanh(x @ w) - y) ** 2)))
    return {"w": np.asarray(w), "losses": losses, "device": next(iter(w.devices())).id}
"""


def _python(script: str, env: dict):
    return subprocess.Popen([sys.executable, "-c", script], env={**os.environ, "JAX_PLATFORMS": "cpu", **env},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _result(proc, timeout: float = 600) -> dict:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


def _same(a: list, b: list):
    assert len(a) == len(b)
    for ra, rb in zip(a, b):
        np.testing.assert_array_equal(np.asarray(ra["w"]), np.asarray(rb["w"]))
        assert ra["losses"] == rb["losses"]  # exact: the same floats


def test_one_device_is_the_plain_loop_in_the_calling_thread():
    namespace = {}
    exec(REPLICA, namespace)
    calls = []

    def replica(seed):
        calls.append((seed, threading.get_ident()))
        return namespace["replica"](seed)

    seeds = [3, 1, 4]
    runs = R.run_replicas(replica, seeds)
    assert calls == [(s, threading.get_ident()) for s in seeds]
    _same(runs, [namespace["replica"](s) for s in seeds])
    assert len({float(r["losses"][-1]) for r in runs}) == 3  # different seeds differ


_FOUR_DEVICES = REPLICA + """
import json
from ntknb import replicas
assert len(jax.local_devices()) == 4
seeds = [5, 2, 7, 0, 11, 3]
threaded = replicas.run_replicas(replica, seeds)
loop = [replica(s) for s in seeds]
def bad(seed):
    if seed == 7:
        raise ArithmeticError("seed 7 fails")
    return replica(seed)
try:
    replicas.run_replicas(bad, seeds)
    raised = ""
except ArithmeticError as exc:
    raised = str(exc)
print(json.dumps({"threaded": threaded, "loop": loop, "raised": raised}, default=np.ndarray.tolist))
"""


def test_four_host_devices_give_the_loops_numbers():
    out = _result(_python(_FOUR_DEVICES, {"XLA_FLAGS": "--xla_force_host_platform_device_count=4"}))
    _same(out["threaded"], out["loop"])
    assert {r["device"] for r in out["loop"]} == {0}
    assert len({r["device"] for r in out["threaded"]}) >= 2  # spread over the devices
    assert out["raised"] == "seed 7 fails"  # a replica's exception reaches the caller


_PROCESS = REPLICA + """
import json
import ntknb
from ntknb import replicas
assert replicas.initialize_processes() and jax.process_count() == 2
ran = []
def counted(seed):
    ran.append(seed)
    return replica(seed)
seeds = [5, 2, 7, 0, 11]
gathered = replicas.run_replicas(counted, seeds)
loop = [replica(s) for s in seeds]
print(json.dumps({"index": jax.process_index(), "ran": ran, "gathered": gathered, "loop": loop},
                 default=np.ndarray.tolist))
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def test_two_distributed_processes_give_the_loops_numbers():
    port = _free_port()
    procs = [_python(_PROCESS, {R.PROCESSES_ENV: f"localhost:{port},2,{i}"}) for i in range(2)]
    try:
        outs = [_result(p) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert [o["index"] for o in outs] == [0, 1]
    assert outs[0]["ran"] == [5, 7, 11] and outs[1]["ran"] == [2, 0]  # positions 0, 2, 4 and 1, 3
    _same(outs[0]["gathered"], outs[0]["loop"])
    _same(outs[1]["gathered"], outs[0]["loop"])  # every process holds all results


def test_process_share_is_round_robin():
    assert R.process_share(5, 0, 2) == [0, 2, 4] and R.process_share(5, 1, 2) == [1, 3]
    assert R.process_share(2, 2, 3) == [] and R.process_share(3, 0, 1) == [0, 1, 2]
    with pytest.raises(ValueError, match="'process_index'"):
        R.process_share(5, 2, 2)


@pytest.mark.parametrize("kwargs, match", [
    (dict(seeds=3), "'seeds' must be a sequence"),
    (dict(seeds=[]), "at least one seed"),
    (dict(seeds=[1, 1]), "must not repeat"),
    (dict(seeds=[0, -1]), r"'seeds\[1\]'"),
    (dict(seeds="abc"), "'seeds'"),
    (dict(seeds=[0], devices=["gpu:0"]), "parameter 'devices'"),
    (dict(replica=3, seeds=[0]), "parameter 'replica'"),
])
def test_bad_input(kwargs, match):
    kwargs = {"replica": lambda seed: seed, **kwargs}
    with pytest.raises(ValueError, match=match):
        R.run_replicas(kwargs.pop("replica"), **kwargs)


def test_processes_variable():
    assert R.initialize_processes({}) is False and R.initialize_processes({R.PROCESSES_ENV: " "}) is False
    for bad in ("localhost:1234,2", "localhost,2,0", "localhost:1234,2,2", "host:0,1,0", "x"):
        with pytest.raises(ValueError, match=f"{R.PROCESSES_ENV} must be 'auto' or"):
            R.initialize_processes({R.PROCESSES_ENV: bad})
