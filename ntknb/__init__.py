"""ntknb: the support package of the executable book on the Neural Tangent Kernel
and adversarial robustness.

Importing ``ntknb`` first makes neural-tangents 0.6.5 importable on current JAX
(see :mod:`ntknb._compat`); every module of the package can then use
``import neural_tangents as nt``.
"""

from ntknb import _compat

_compat.install()

__version__ = "0.1.0"
