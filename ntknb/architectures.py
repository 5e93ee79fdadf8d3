"""A small zoo of neural networks with their matching infinite-width kernels.

Every factory returns an :class:`Architecture`: the ``(init_fn, apply_fn, kernel_fn)``
triple of :mod:`neural_tangents.stax` (finite network + its infinite-width NNGP/NTK),
a one-line description and the hyper-parameters. Inputs are NHWC images
(``(n, H, W, C)``, float32 in [0, 1]); outputs are ``(n, out_dim)``.

Defaults follow the code of ``tsilivis2022ntk``: NTK parameterisation,
``W_std = sqrt(2)``, ``b_std = 0.1``, ReLU activations (the kernel of Eq. (5) of the
paper is the NTK of these networks as width -> infinity). The Myrtle networks are
those of Shankar et al. (2020), "Neural Kernels Without Tangents".

Shapes
------
``init_fn(key, (-1, H, W, C)) -> (out_shape, params)``;
``apply_fn(params, x: (n, H, W, C)) -> (n, out_dim)``;
``kernel_fn(x1: (n1, H, W, C), x2: (n2, H, W, C) | None, get: "ntk" | "nngp") -> (n1, n2)``
(``x2=None`` means ``x2 = x1``; the analytic kernel is scalar: identical for each output).
``kernel_fn`` is jitted with ``get`` static.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

import ntknb  # noqa: F401  (compat shim before neural_tangents)

import jax
from neural_tangents import stax

from ntknb.validation import check_choice, check_float, check_int

__all__ = [
    "ARCHITECTURE_NAMES",
    "Architecture",
    "convolutional",
    "fully_connected",
    "get_architecture",
    "myrtle",
]

PARAMETERIZATIONS = ("ntk", "standard")
READOUTS = ("flatten", "gap")
MYRTLE_DEPTHS = (5, 7, 10)


@dataclasses.dataclass(frozen=True)
class Architecture:
    """A stax network and its infinite-width kernels.

    Attributes:
      name: registry name (e.g. ``"fc2"``) or a descriptive name for custom builds.
      init_fn: ``init_fn(key, input_shape) -> (output_shape, params)``.
      apply_fn: ``apply_fn(params, x: (n, H, W, C)) -> (n, out_dim)``.
      kernel_fn: jitted ``kernel_fn(x1, x2=None, get="ntk"|"nngp") -> (n1, n2)``,
        the infinite-width NNGP / NTK (``tsilivis2022ntk``, Eqs. (5)-(6) as width -> inf).
      description: one line for tables and figure captions.
      hyperparameters: the arguments the factory was called with (read-only mapping).
    """

    name: str
    init_fn: Callable = dataclasses.field(repr=False)
    apply_fn: Callable = dataclasses.field(repr=False)
    kernel_fn: Callable = dataclasses.field(repr=False)
    description: str = ""
    hyperparameters: Mapping[str, Any] = dataclasses.field(
        default_factory=dict, compare=False, hash=False)

    @property
    def out_dim(self) -> int:
        """Number of network outputs (logits)."""
        return int(self.hyperparameters.get("out_dim", 1))

    def init(self, key: jax.Array, input_shape) -> Any:
        """Initialise parameters for inputs of shape ``(n, H, W, C)`` (``n`` ignored)."""
        _, params = self.init_fn(key, (-1, *tuple(input_shape)[1:]))
        return params


# --------------------------------------------------------------------------- validation

def _check_positive_float(name: str, value, *, allow_zero: bool = False, allow_none: bool = False):
    if value is None and allow_none:
        return None
    return check_float(name, value, min=0.0, min_inclusive=allow_zero)


def _finish(name, layers, description, hyper) -> Architecture:
    init_fn, apply_fn, kernel_fn = stax.serial(*layers)
    return Architecture(
        name=name,
        init_fn=init_fn,
        apply_fn=apply_fn,
        kernel_fn=jax.jit(kernel_fn, static_argnames=("get",)),
        description=description,
        hyperparameters=MappingProxyType(dict(hyper)),
    )


# --------------------------------------------------------------------------- factories

def fully_connected(depth: int = 1, width: int = 1024, out_dim: int = 1,
                    W_std: float = math.sqrt(2.0), b_std: float | None = 0.1,
                    parameterization: str = "ntk", name: str | None = None) -> Architecture:
    """Fully connected ReLU network: Flatten, ``depth`` x [Dense(width), ReLU], Dense(out_dim).

    The network of ``tsilivis2022ntk``, Sec. 4 (NTK parameterisation, ``W_std=sqrt(2)``,
    ``b_std=0.1``); its ``kernel_fn`` gives the infinite-width NTK Theta of Eq. (5).

    Args:
      depth: number of hidden layers (>= 1).
      width: hidden width of the finite network (>= 1; the kernel does not depend on it).
      out_dim: number of outputs k.
      W_std, b_std: weight / bias standard deviations (``b_std=None``: no bias).
      parameterization: ``"ntk"`` or ``"standard"``.
    Shapes: ``apply_fn(params, x: (n, H, W, C)) -> (n, out_dim)``; ``kernel_fn -> (n1, n2)``.
    """
    check_int("depth", depth, min=1)
    check_int("width", width, min=1)
    check_int("out_dim", out_dim, min=1)
    W_std = _check_positive_float("W_std", W_std)
    b_std = _check_positive_float("b_std", b_std, allow_zero=True, allow_none=True)
    check_choice("parameterization", parameterization, PARAMETERIZATIONS)
    dense = dict(W_std=W_std, b_std=b_std, parameterization=parameterization)
    layers = [stax.Flatten()]
    for _ in range(depth):
        layers += [stax.Dense(width, **dense), stax.Relu()]
    layers += [stax.Dense(out_dim, **dense)]
    hyper = dict(depth=depth, width=width, out_dim=out_dim, W_std=W_std, b_std=b_std,
                 parameterization=parameterization)
    desc = (f"fully connected ReLU net, {depth} hidden layer{'s' if depth > 1 else ''} "
            f"of width {width}, {parameterization} parameterisation")
    return _finish(name or f"fc{depth}", layers, desc, hyper)


def convolutional(depth: int = 1, channels: int = 256, kernel_size: int = 3, out_dim: int = 1,
                  W_std: float = math.sqrt(2.0), b_std: float | None = 0.1,
                  parameterization: str = "ntk", readout: str = "flatten",
                  name: str | None = None) -> Architecture:
    """Convolutional ReLU network: ``depth`` x [Conv(channels, k x k, SAME), ReLU], readout, Dense.

    Readout ``"flatten"`` (Flatten then Dense; the analytic kernel then only needs the
    spatially diagonal covariance, cheap) or ``"gap"`` (global average pooling then Dense;
    the analytic kernel needs the full (HW x HW) covariance, ~(HW)^2 times costlier).
    Same parameterisation as :func:`fully_connected` (``tsilivis2022ntk``, Sec. 4).

    Shapes: ``apply_fn(params, x: (n, H, W, C)) -> (n, out_dim)``; ``kernel_fn -> (n1, n2)``.
    """
    check_int("depth", depth, min=1)
    check_int("channels", channels, min=1)
    check_int("kernel_size", kernel_size, min=1)
    check_int("out_dim", out_dim, min=1)
    W_std = _check_positive_float("W_std", W_std)
    b_std = _check_positive_float("b_std", b_std, allow_zero=True, allow_none=True)
    check_choice("parameterization", parameterization, PARAMETERIZATIONS)
    check_choice("readout", readout, READOUTS)
    common = dict(W_std=W_std, b_std=b_std, parameterization=parameterization)
    layers = []
    for _ in range(depth):
        layers += [stax.Conv(channels, (kernel_size, kernel_size), padding="SAME", **common),
                   stax.Relu()]
    layers += [stax.Flatten() if readout == "flatten" else stax.GlobalAvgPool(),
               stax.Dense(out_dim, **common)]
    hyper = dict(depth=depth, channels=channels, kernel_size=kernel_size, out_dim=out_dim,
                 W_std=W_std, b_std=b_std, parameterization=parameterization, readout=readout)
    desc = (f"CNN, {depth} conv layer{'s' if depth > 1 else ''} ({kernel_size}x{kernel_size}, "
            f"{channels} channels, ReLU), {readout} readout, {parameterization} parameterisation")
    default = f"conv{depth}" + ("" if readout == "flatten" else "-gap")
    return _finish(name or default, layers, desc, hyper)


def myrtle(depth: int = 5, channels: int = 256, out_dim: int = 1,
           W_std: float = math.sqrt(2.0), b_std: float | None = 0.0,
           parameterization: str = "ntk", name: str | None = None) -> Architecture:
    """Myrtle network of Shankar et al. (2020) (depth 5, 7 or 10).

    [Conv3x3+ReLU] x a, AvgPool 2x2, [Conv3x3+ReLU] x b, AvgPool 2x2, [Conv3x3+ReLU] x c,
    global average pool, Dense(out_dim), with (a, b, c) = (2, 1, 1), (2, 2, 2), (3, 3, 3)
    for depth 5, 7, 10. (On 32x32 inputs the final global pool equals the paper's three
    2x2 average pools; here it also works on smaller images, H and W >= 4.) Shankar et al.
    use ``b_std=0``. The analytic kernel needs full spatial covariances: expensive on
    32x32 images (use a GPU and small batches).

    Shapes: ``apply_fn(params, x: (n, H, W, C)) -> (n, out_dim)``; ``kernel_fn -> (n1, n2)``.
    """
    check_choice("depth", depth, MYRTLE_DEPTHS)
    check_int("channels", channels, min=1)
    check_int("out_dim", out_dim, min=1)
    W_std = _check_positive_float("W_std", W_std)
    b_std = _check_positive_float("b_std", b_std, allow_zero=True, allow_none=True)
    check_choice("parameterization", parameterization, PARAMETERIZATIONS)
    a, b, c = {5: (2, 1, 1), 7: (2, 2, 2), 10: (3, 3, 3)}[depth]
    common = dict(W_std=W_std, b_std=b_std, parameterization=parameterization)

    def block(m):
        return [stax.Conv(channels, (3, 3), padding="SAME", **common), stax.Relu()] * m

    pool = stax.AvgPool((2, 2), strides=(2, 2))
    layers = [*block(a), pool, *block(b), pool, *block(c), stax.GlobalAvgPool(),
              stax.Dense(out_dim, **common)]
    hyper = dict(depth=depth, channels=channels, out_dim=out_dim, W_std=W_std, b_std=b_std,
                 parameterization=parameterization)
    desc = f"Myrtle-{depth} CNN (Shankar et al. 2020), {channels} channels"
    return _finish(name or f"myrtle{depth}", layers, desc, hyper)


# --------------------------------------------------------------------------- registry

_REGISTRY: dict[str, tuple[Callable[..., Architecture], dict]] = {
    "fc1": (fully_connected, dict(depth=1)),
    "fc2": (fully_connected, dict(depth=2)),
    "fc3": (fully_connected, dict(depth=3)),
    "conv1": (convolutional, dict(depth=1)),
    "conv2": (convolutional, dict(depth=2)),
    "conv2-gap": (convolutional, dict(depth=2, readout="gap")),
    "myrtle5": (myrtle, dict(depth=5)),
    "myrtle7": (myrtle, dict(depth=7)),
    "myrtle10": (myrtle, dict(depth=10)),
}

#: Names accepted by :func:`get_architecture`.
ARCHITECTURE_NAMES: tuple[str, ...] = tuple(_REGISTRY)


def get_architecture(name: str, **overrides) -> Architecture:
    """Build the registry architecture ``name`` (one of :data:`ARCHITECTURE_NAMES`).

    ``overrides`` replace the factory's defaults, e.g. ``get_architecture("fc2", width=512,
    out_dim=10)``. Unknown names or parameters raise ``ValueError`` listing the allowed ones.
    """
    check_choice("name", name, ARCHITECTURE_NAMES)
    factory, defaults = _REGISTRY[name]
    allowed = [p for p in inspect.signature(factory).parameters if p != "name"]
    unknown = sorted(set(overrides) - set(allowed))
    if unknown:
        raise ValueError(f"unknown parameter(s) {unknown} for architecture {name!r}; "
                         f"allowed: {allowed}")
    kwargs = {**defaults, **overrides}
    if any(k in overrides and overrides[k] != v for k, v in defaults.items()):
        custom = name + "(" + ", ".join(f"{k}={overrides[k]!r}" for k in defaults
                                        if k in overrides) + ")"
        return factory(**kwargs, name=custom)
    return factory(**kwargs, name=name)
