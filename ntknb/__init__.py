"""ntknb: the support package of the executable book on the Neural Tangent Kernel
and adversarial robustness.

Importing ``ntknb`` first makes neural-tangents 0.6.5 importable on current JAX
(see :mod:`ntknb._compat`); every module of the package can then use
``import neural_tangents as nt``. It also turns on JAX's persistent compilation cache
when ``NTKNB_JAX_CACHE`` asks for it (:mod:`ntknb.compile_cache`; off by default).
"""

from ntknb import _compat, compile_cache

_compat.install()
compile_cache.configure()

__version__ = "0.1.0"
