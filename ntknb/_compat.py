"""Make neural-tangents 0.6.5 (its last release) import and run on current JAX.

neural-tangents 0.6.5 was written against JAX <= 0.5.3. Later JAX releases moved
or removed names it imports at module level:

* ``jax.core.{Jaxpr, JaxprEqn, Literal, Var, Primitive, ClosedJaxpr, ...}``
  (now in ``jax.extend.core`` / ``jax._src.core``);
* ``jax.util.{safe_map, safe_zip}`` (now ``jax._src.util``);
* ``jax.interpreters.ad.{zeros_like_p, source_info_util, config}``.

:func:`install` restores exactly the missing names (it never overwrites one that
exists), so on JAX 0.5.3 it is a no-op. It also replaces
``neural_tangents.experimental`` (which imports TensorFlow and tf2jax, ~1.9 GB,
used only for TF model conversion) by an empty module when TensorFlow is not
installed, so ``import neural_tangents`` stays lean and silent.

The package calls :func:`install` once, on ``import ntknb``, before anything
imports neural-tangents.
"""

from __future__ import annotations

import importlib.util
import sys
import types
import warnings

_INSTALLED = False


def _restore_missing(target: types.ModuleType, source: types.ModuleType, names) -> list[str]:
    """Copy ``names`` that ``source`` has and ``target`` lacks; return those copied."""
    restored = []
    with warnings.catch_warnings():  # probing deprecated aliases must not warn
        warnings.simplefilter("ignore", DeprecationWarning)
        for name in names:
            if not hasattr(target, name) and hasattr(source, name):
                setattr(target, name, getattr(source, name))
                restored.append(name)
    return restored


# The names neural-tangents 0.6.5 takes from these modules (grep of its source).
_CORE_NAMES = (
    "AbstractValue", "ClosedJaxpr", "DShapedArray", "Jaxpr", "JaxprEqn", "Literal",
    "Primitive", "ShapedArray", "Value", "Var", "eval_context", "get_aval", "lattice_join",
)
_AD_NAMES = (
    "UndefinedPrimal", "Zero", "add_jaxvals_p", "add_tangents", "backward_pass",
    "get_primitive_transpose", "is_undefined_primal", "linearize", "primitive_jvps",
    "reducing_transposes",
)


def _patch_jax() -> list[str]:
    import jax
    import jax.core
    import jax.interpreters.ad as ad
    from jax._src import core as src_core
    from jax._src import source_info_util
    from jax._src import util as src_util
    from jax._src.interpreters import ad as src_ad

    restored = []
    try:  # jax.extend.core is the official new home of the jaxpr types.
        import jax.extend.core as ext_core

        restored += ["jax.core." + n for n in _restore_missing(jax.core, ext_core, _CORE_NAMES)]
    except ImportError:  # pragma: no cover - old JAX has no jax.extend.core
        pass
    restored += ["jax.core." + n for n in _restore_missing(jax.core, src_core, _CORE_NAMES)]
    try:
        import jax.util as jax_util
    except ImportError:  # removed in recent JAX: register an empty module in its place
        jax_util = types.ModuleType("jax.util")
        sys.modules["jax.util"] = jax.util = jax_util
        restored.append("jax.util")
    restored += ["jax.util." + n for n in _restore_missing(jax_util, src_util, ["safe_map", "safe_zip"])]
    restored += ["jax.interpreters.ad." + n for n in _restore_missing(ad, src_ad, _AD_NAMES)]

    if not hasattr(ad, "source_info_util"):
        ad.source_info_util = source_info_util
        restored.append("jax.interpreters.ad.source_info_util")
    if not hasattr(ad, "config"):
        ad.config = jax.config
        restored.append("jax.interpreters.ad.config")
    if not hasattr(ad, "zeros_like_p"):
        # Only used as a dictionary key in neural-tangents' structure rules; a
        # primitive that no traced program emits keeps those tables valid.
        ad.zeros_like_p = src_core.Primitive("zeros_like")
        restored.append("jax.interpreters.ad.zeros_like_p")
    return restored


def x64():
    """Context manager enabling float64 in JAX, on old and new JAX alike: ``jax.experimental.enable_x64()``
    (JAX <= 0.5) or ``jax.enable_x64(True)`` (newer JAX, where the experimental one was removed).
    Computations inside it run in float64 (``jax_enable_x64``); NumPy float64 results keep their precision
    outside it."""
    import jax

    if hasattr(jax, "enable_x64") and callable(jax.enable_x64):
        try:
            return jax.enable_x64(True)
        except TypeError:  # pragma: no cover - some versions take no argument
            pass
    from jax import experimental

    return experimental.enable_x64()


def _stub_experimental() -> bool:
    """Register an empty ``neural_tangents.experimental`` if TensorFlow is absent."""
    if "neural_tangents" in sys.modules or importlib.util.find_spec("tensorflow") is not None:
        return False
    stub = types.ModuleType(
        "neural_tangents.experimental",
        doc="Stub installed by ntknb: TensorFlow is not installed, so the "
        "TF-conversion tools of neural_tangents.experimental are unavailable.",
    )
    sys.modules["neural_tangents.experimental"] = stub
    return True


def install() -> dict:
    """Apply the JAX patches and the experimental stub once; return what was done."""
    global _INSTALLED, _REPORT
    if _INSTALLED:
        return _REPORT
    _REPORT = {"restored": _patch_jax(), "experimental_stubbed": _stub_experimental()}
    _INSTALLED = True
    return _REPORT


_REPORT: dict = {}
