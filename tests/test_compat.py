"""Tests of ntknb._compat: neural-tangents 0.6.5 imports and runs on the installed JAX."""

import importlib.util
import subprocess
import sys
import types

import pytest

import ntknb
from ntknb import _compat

HAS_TF = importlib.util.find_spec("tensorflow") is not None


def _run(code: str) -> str:
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    return res.stdout


def test_restored_names_exist():
    import jax.core
    import jax.interpreters.ad as ad
    import jax.util

    for name in ("Jaxpr", "JaxprEqn", "Literal", "Var", "Primitive", "ClosedJaxpr",
                 "ShapedArray"):
        assert hasattr(jax.core, name), name
    assert callable(jax.util.safe_map) and callable(jax.util.safe_zip)
    assert list(jax.util.safe_map(lambda a, b: a + b, [1, 2], [3, 4])) == [4, 6]
    for name in ("zeros_like_p", "source_info_util", "config", "UndefinedPrimal", "Zero",
                 "backward_pass", "linearize", "primitive_jvps"):
        assert hasattr(ad, name), name


def test_install_is_idempotent():
    first = _compat.install()
    second = _compat.install()
    assert first is second
    assert set(first) == {"restored", "experimental_stubbed"}
    # a fresh patch pass finds nothing missing any more
    assert _compat._patch_jax() == []


def test_restore_missing_never_overwrites():
    target = types.SimpleNamespace(a=1)
    source = types.SimpleNamespace(a=2, b=3)
    assert _compat._restore_missing(target, source, ["a", "b", "c"]) == ["b"]
    assert target.a == 1 and target.b == 3 and not hasattr(target, "c")


def test_install_keeps_existing_jax_names_in_fresh_process():
    """Every name JAX already had is the same object after ``import ntknb``."""
    out = _run(
        "import warnings; warnings.simplefilter('ignore')\n"
        "import jax, jax.core, jax.interpreters.ad as ad\n"
        "mods = {'core': jax.core, 'ad': ad}\n"
        "before = {m: {n: getattr(mod, n) for n in dir(mod)} for m, mod in mods.items()}\n"
        "import ntknb\n"
        "changed = [(m, n) for m, d in before.items() for n, v in d.items()\n"
        "           if getattr(mods[m], n) is not v]\n"
        "print('CHANGED', changed)\n"
        "print('RESTORED', ntknb._compat._REPORT['restored'])\n"
    )
    assert "CHANGED []" in out, out


@pytest.mark.skipif(HAS_TF, reason="TensorFlow installed: the real experimental module is used")
def test_neural_tangents_imports_without_tensorflow():
    out = _run(
        "import warnings; warnings.simplefilter('ignore')\n"
        "import sys, ntknb\n"
        "import neural_tangents as nt\n"
        "from neural_tangents import stax\n"
        "import jax.numpy as jnp\n"
        "assert 'tensorflow' not in sys.modules\n"
        "assert 'tf2jax' not in sys.modules\n"
        "assert 'Stub installed by ntknb' in sys.modules['neural_tangents.experimental'].__doc__\n"
        "assert ntknb._compat._REPORT['experimental_stubbed'] is True\n"
        "_, _, kfn = stax.serial(stax.Dense(4), stax.Relu(), stax.Dense(1))\n"
        "print('K', kfn(jnp.ones((2, 3)), None, 'ntk').shape)\n"
    )
    assert "K (2, 2)" in out


def test_package_import_installs_shim():
    assert ntknb._compat._INSTALLED
    import neural_tangents as nt

    assert hasattr(nt, "stax") and hasattr(nt, "empirical_ntk_fn")
