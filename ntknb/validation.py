"""Value checks: the rules behind the chapters' parameter schemas (:mod:`ntknb.schema`) and the
library's own argument checks.

Every check raises :class:`ValueError` naming the parameter and the allowed values or
range, before any heavy work starts (DEVELOPERS.md), and returns the (normalised) value::

    dataset = check_choice("dataset", dataset, ["mnist", "cifar10"])
    n_train = check_int("n_train", n_train, min=2)
    eps = check_float("eps", eps, min=0.0, max=1.0)
    widths = check_sequence("widths", widths, of=int, min_length=1)

``bool`` is not accepted where a number is expected (``True`` is an ``int`` in Python).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["check_choice", "check_int", "check_float", "check_bool", "check_sequence", "check_clip",
           "check_devices", "SEED_LIMIT"]

#: Seeds are integers in [0, SEED_LIMIT): NumPy's and JAX's PRNG keys take 32 bits, so larger
#: seeds would silently collide with small ones.
SEED_LIMIT = 2**32


def _range_text(min: float | None, max: float | None) -> str:
    if min is not None and max is not None:
        return f"in [{min}, {max}]"
    if min is not None:
        return f">= {min}"
    if max is not None:
        return f"<= {max}"
    return "any value"


def check_choice(name: str, value: Any, allowed: Iterable[Any]) -> Any:
    """``value`` if it is one of ``allowed``, else ``ValueError`` listing them."""
    allowed = list(allowed)
    try:
        ok = value in allowed and not (isinstance(value, bool) and not any(a is value for a in allowed))
    except TypeError:  # unhashable / incomparable value
        ok = False
    if not ok:
        raise ValueError(f"parameter {name!r} must be one of {allowed!r}, got {value!r}")
    return value


def check_int(name: str, value: Any, min: int | None = None, max: int | None = None, *,
              none_ok: bool = False) -> int | None:
    """``value`` as an ``int`` if it is an integer (not a bool) in ``[min, max]``.

    An integral float such as ``4.0`` is accepted and returned as ``4``; ``None`` is returned
    as ``None`` when ``none_ok`` (e.g. "no batching").
    """
    if value is None and none_ok:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"parameter {name!r} must be an integer {_range_text(min, max)}, got {value!r}")
    if not isinstance(value, numbers.Integral):
        if not (math.isfinite(value) and float(value).is_integer()):
            raise ValueError(f"parameter {name!r} must be an integer {_range_text(min, max)}, got {value!r}")
    value = int(value)
    if (min is not None and value < min) or (max is not None and value > max):
        raise ValueError(f"parameter {name!r} must be an integer {_range_text(min, max)}, got {value!r}")
    return value


def check_float(
    name: str,
    value: Any,
    min: float | None = None,
    max: float | None = None,
    *,
    min_inclusive: bool = True,
    max_inclusive: bool = True,
) -> float:
    """``value`` as a finite ``float`` in the range (bounds inclusive unless told)."""
    lo = "[" if min_inclusive else "("
    hi = "]" if max_inclusive else ")"
    if min is not None and max is not None:
        rng = f"in {lo}{min}, {max}{hi}"
    elif min is not None:
        rng = f"{'>=' if min_inclusive else '>'} {min}"
    elif max is not None:
        rng = f"{'<=' if max_inclusive else '<'} {max}"
    else:
        rng = "(finite)"
    msg = f"parameter {name!r} must be a number {rng}, got {value!r}"
    if getattr(value, "shape", None) == () and hasattr(value, "item"):  # 0-d NumPy / JAX array
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(msg)
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(msg)
    if min is not None and (value < min or (not min_inclusive and value == min)):
        raise ValueError(msg)
    if max is not None and (value > max or (not max_inclusive and value == max)):
        raise ValueError(msg)
    return value


def check_bool(name: str, value: Any) -> bool:
    """``value`` if it is ``True`` or ``False``."""
    if not isinstance(value, bool):
        raise ValueError(f"parameter {name!r} must be True or False, got {value!r}")
    return value


def check_sequence(
    name: str,
    value: Any,
    *,
    of: type | tuple[type, ...] | None = None,
    length: int | None = None,
    min_length: int | None = None,
    max_length: int | None = None,
    allowed: Iterable[Any] | None = None,
    item: Callable[[str, Any], Any] | None = None,
) -> list:
    """``value`` as a list if it is a list / tuple satisfying every given constraint.

    Args:
        of: type(s) of every item (``int`` excludes ``bool``; ``float`` also takes ints).
        length / min_length / max_length: constraints on ``len(value)``.
        allowed: every item must be one of these.
        item: a check applied to every item as ``item(f"{name}[i]", v)`` (e.g.
            ``functools.partial(check_float, min=0)``); its return values form the result.
    """
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        raise ValueError(f"parameter {name!r} must be a list, got {value!r}")
    items = list(value)
    n = len(items)
    if length is not None and n != length:
        raise ValueError(f"parameter {name!r} must have exactly {length} items, got {n}: {value!r}")
    if min_length is not None and n < min_length:
        raise ValueError(f"parameter {name!r} must have at least {min_length} items, got {n}: {value!r}")
    if max_length is not None and n > max_length:
        raise ValueError(f"parameter {name!r} must have at most {max_length} items, got {n}: {value!r}")
    if of is not None:
        types = of if isinstance(of, tuple) else (of,)
        for i, v in enumerate(items):
            ok = isinstance(v, types)
            if isinstance(v, bool) and bool not in types:
                ok = False
            if not ok and float in types and isinstance(v, numbers.Integral) and not isinstance(v, bool):
                ok = True
            if not ok:
                tnames = " or ".join(t.__name__ for t in types)
                raise ValueError(f"parameter {name!r} must be a list of {tnames}, item {i} is {v!r}")
    if allowed is not None:
        allowed = list(allowed)
        for i, v in enumerate(items):
            if v not in allowed:
                raise ValueError(
                    f"parameter {name!r}: every item must be one of {allowed!r}, item {i} is {v!r}"
                )
    if item is not None:
        items = [item(f"{name}[{i}]", v) for i, v in enumerate(items)]
    return items


def check_clip(name: str, value: Any) -> tuple[float, float] | None:
    """``None`` (no clipping) or a pair ``(low, high)`` of finite numbers with ``low < high``."""
    msg = f"parameter {name!r} must be None or a pair (low, high) with low < high, got {value!r}"
    if value is None:
        return None
    try:
        lo, hi = (float(c) for c in value)
    except (TypeError, ValueError):
        raise ValueError(msg) from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ValueError(msg)
    return (lo, hi)


def check_devices(name: str, devices: Any) -> tuple:
    """``None`` -> all local JAX devices; otherwise a non-empty sequence of ``jax.Device``,
    returned as a tuple (the devices that blocks or replicas are spread over)."""
    import jax

    if devices is None:
        return tuple(jax.local_devices())
    devices = tuple(devices) if isinstance(devices, Iterable) else (devices,)
    if not devices or not all(isinstance(d, jax.Device) for d in devices):
        raise ValueError(f"parameter '{name}' must be None (all local devices) or a non-empty "
                         f"sequence of jax.Device, got {devices!r}")
    return devices
