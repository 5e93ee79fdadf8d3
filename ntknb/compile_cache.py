"""JAX's persistent compilation cache for the book's runs: a rerun loads its compiled XLA programs
instead of compiling them again.

The setting is the environment variable ``NTKNB_JAX_CACHE`` (:data:`CACHE_ENV`):

* unset, ``off`` (or ``0``, ``false``, ``no``, empty): no persistent cache (the default);
* ``user``: the user's cache folder, ``$XDG_CACHE_HOME/ntknb/jax`` (``~/.cache/ntknb/jax`` when
  ``XDG_CACHE_HOME`` is unset), never a folder of the checkout;
* any other value: that folder.

Off by default: with the cache warm, ``tests/test_transfer.py::test_loss_gradients_align_better_when_wider``
(a float64 width comparison, :func:`ntknb._compat.x64`) got NaN gradient cosines in a clean-clone CI
run, and passes with the cache off. Until that is understood a cached program is not known to be
the same executable in every setting, so a run that records results should leave the cache off.

JAX's own setting wins: when ``JAX_COMPILATION_CACHE_DIR`` (``jax_compilation_cache_dir``) is
already set, it is left as it is. :func:`configure` runs once, on ``import ntknb``, before the
process compiles anything (JAX decides on its first compilation whether a process uses the
cache). Every compilation is written (``jax_persistent_cache_min_compile_time_secs = 0``): most of
a chapter's compile time is in programs compiling in under a second, which JAX's default
threshold of 1 s would compile again on every run. The folder grows with each new program (JAX evicts nothing without
``jax_compilation_cache_max_size``); deleting it is always safe.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Optional

__all__ = ["CACHE_ENV", "OFF_VALUES", "cache_dir", "configure"]

#: The environment variable naming the cache folder (or ``off``).
CACHE_ENV = "NTKNB_JAX_CACHE"
#: Values of :data:`CACHE_ENV` that turn the cache off (case-insensitive, surrounding blanks ignored);
#: unset is off too.
OFF_VALUES = ("", "off", "0", "false", "no", "none")


def cache_dir(environ: Optional[Mapping[str, str]] = None) -> Optional[Path]:
    """The folder :data:`CACHE_ENV` names in ``environ`` (default ``os.environ``), ``None`` for off."""
    env = os.environ if environ is None else environ
    value = env.get(CACHE_ENV)
    if value is None or value.strip().lower() in OFF_VALUES:
        return None
    if value.strip().lower() == "user":
        base = env.get("XDG_CACHE_HOME") or str(Path(env.get("HOME") or Path.home()) / ".cache")
        return Path(base).expanduser() / "ntknb" / "jax"
    return Path(value).expanduser()


def configure(environ: Optional[Mapping[str, str]] = None) -> Optional[Path]:
    """Point JAX's persistent compilation cache at :func:`cache_dir` (unless JAX's own setting is
    already made) and cache every compilation; the folder used, or ``None`` when there is none.
    A folder that cannot be created leaves the cache off, with a warning naming it."""
    import jax

    if jax.config.jax_compilation_cache_dir:
        return Path(jax.config.jax_compilation_cache_dir)
    path = cache_dir(environ)
    if path is None:
        return None
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        warnings.warn(f"{CACHE_ENV}: cannot create the compilation cache folder {path} ({exc}); "
                      f"compiling without a persistent cache (set {CACHE_ENV}=off to silence this)", stacklevel=2)
        return None
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    return path
