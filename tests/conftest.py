"""Shared test helpers."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

_TWO_DEVICES_PRELUDE = """
import json, jax
devs = jax.local_devices()
assert len(devs) == 2, devs
used = set()  # ids of the devices jax.device_put placed something on
_put = jax.device_put
def _spy(v, d=None, *a, **k):
    for dev in getattr(d, "device_set", None) or ([d] if isinstance(d, jax.Device) else []):
        used.add(dev.id)
    return _put(v, d, *a, **k)
jax.device_put = _spy
out = {}
"""


@pytest.fixture
def on_two_host_devices():
    """``run(body) -> dict``: execute ``body`` in a fresh Python with two forced host (CPU)
    devices (``XLA_FLAGS=--xla_force_host_platform_device_count=2``). ``body`` sees ``devs``
    (the two devices) and fills the dict ``out``; the result is ``out`` plus ``"used"``, the
    sorted ids of the devices that ``jax.device_put`` placed data on."""

    def run(body: str) -> dict:
        script = _TWO_DEVICES_PRELUDE + textwrap.dedent(body) + \
            '\nout["used"] = sorted(used)\nprint(json.dumps(out))\n'
        env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2",
                   JAX_PLATFORMS="cpu")
        res = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                             text=True, timeout=600)
        assert res.returncode == 0, res.stderr[-2000:]
        return json.loads(res.stdout.strip().splitlines()[-1])

    return run
