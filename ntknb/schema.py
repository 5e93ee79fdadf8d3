"""Parameter schemas: a chapter's parameters declared once, checked once.

A notebook's ``parameters`` cell keeps its literal defaults (papermill's contract, and what
the reader sees). The *rules* for those parameters — type, range, allowed values and
cross-parameter constraints — live once, in the chapter's schema: a frozen dataclass
deriving from :class:`Params` whose fields carry a rule each::

    @dataclasses.dataclass(frozen=True)
    class Params(schema.Params):
        n_train: int = schema.param(schema.Int(min=20))
        n_monitor: int = schema.param(schema.Int(min=1, max=schema.Ref("n_train")))
        eps: float = schema.param(schema.Float(min=0.0, max=1.0, min_inclusive=False))
        dataset: str = schema.param(schema.Choice(["mnist", "cifar10"]))

        def check(self):  # optional cross-parameter rules
            ...

A chapter run over replicas derives from :class:`SeededParams` instead: its ``seed`` and
``n_seeds`` fields take :func:`seed_param` and :func:`seed_count_param` (the count's upper bound
is the chapter's), it gets the replica seeds :attr:`SeededParams.seeds`, and every other seed it
draws is named by a purpose, ``p.seed_for("probe")`` (:data:`SeededParams.SEED_PURPOSES`), so
the seed rule also bounds it::

    @dataclasses.dataclass(frozen=True)
    class Params(schema.SeededParams):
        SEED_PURPOSES = {"probe": schema.DerivedSeed(1000)}  # the probe set: seed + 1000
        seed: int = schema.seed_param()
        n_seeds: int = schema.seed_count_param(max=20)
        ...

Building the object checks every field in declaration order (a :class:`Ref` bound names
an *earlier* field), normalises it (``4.0`` -> ``4`` for an integer, tuples -> lists),
then runs :meth:`Params.check`. Every failure is a :class:`ValueError` naming the
parameter and the allowed values (:mod:`ntknb.validation` writes the messages).

The same object serves both ends:

* the notebook's validation is one line, ``P = Params.from_namespace(globals())``;
* ``ntknb run`` / ``--dry-run`` builds it from the defaults plus the overrides before
  papermill starts (:func:`ntknb.chapters.check_parameters`).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any

from ntknb.validation import SEED_LIMIT, check_bool, check_choice, check_float, check_int, check_sequence

__all__ = ["Ref", "Rule", "Int", "Float", "Choice", "Bool", "List", "param", "Params", "seed_param",
           "seed_count_param", "DerivedSeed", "SeededParams", "MAX_WIDTH", "MAX_EPOCHS", "MAX_STEPS", "MAX_ATTACK_STEPS"]

#: Generous but finite upper bounds of the chapters' sizes (``schema.Int(max=...)``): far above
#: every default and preset, low enough that a slip (a few extra zeros) is refused by
#: ``--dry-run`` instead of running out of memory or for days. Network widths (units or
#: channels); training epochs; optimisation steps (gradient descent, KIP); attack iterations.
MAX_WIDTH = 65536
MAX_EPOCHS = 10_000
MAX_STEPS = 100_000
MAX_ATTACK_STEPS = 10_000


@dataclasses.dataclass(frozen=True)
class Ref:
    """A bound taken from an earlier field: ``Ref("epochs", -1)`` is ``epochs - 1``,
    ``Ref("per_class", scale=10)`` is ``10 * per_class``."""

    name: str
    offset: int = 0
    scale: int = 1

    def resolve(self, done: Mapping[str, Any]):
        if self.name not in done:
            raise RuntimeError(f"Ref({self.name!r}) names no earlier field")  # schema bug
        return self.scale * done[self.name] + self.offset

    def __str__(self) -> str:
        text = self.name if self.scale == 1 else f"{self.scale} * {self.name}"
        if not self.offset:
            return text
        return f"{text} {'+' if self.offset > 0 else '-'} {abs(self.offset)}"


def _bound(b, done):
    return b.resolve(done) if isinstance(b, Ref) else b


class Rule:
    """A per-field rule: ``rule(name, value, done) -> normalised value`` or ``ValueError``
    (``done`` maps the earlier fields to their checked values)."""

    def __call__(self, name: str, value: Any, done: Mapping[str, Any]) -> Any:  # pragma: no cover
        raise NotImplementedError

    def describe(self) -> str:  # pragma: no cover
        raise NotImplementedError


@dataclasses.dataclass(frozen=True)
class Int(Rule):
    """An integer (not a bool) in ``[min, max]``; ``none_ok`` also admits ``None``."""

    min: int | Ref | None = None
    max: int | Ref | None = None
    none_ok: bool = False

    def __call__(self, name, value, done):
        return check_int(name, value, min=_bound(self.min, done), max=_bound(self.max, done),
                         none_ok=self.none_ok)

    def describe(self) -> str:
        if self.min is not None and self.max is not None:
            text = f"integer in [{self.min}, {self.max}]"
        elif self.min is not None:
            text = f"integer >= {self.min}"
        elif self.max is not None:
            text = f"integer <= {self.max}"
        else:
            text = "integer"
        return text + (" or None" if self.none_ok else "")


@dataclasses.dataclass(frozen=True)
class Float(Rule):
    """A finite number in the range (bounds inclusive unless told)."""

    min: float | Ref | None = None
    max: float | Ref | None = None
    min_inclusive: bool = True
    max_inclusive: bool = True

    def __call__(self, name, value, done):
        return check_float(name, value, min=_bound(self.min, done), max=_bound(self.max, done),
                           min_inclusive=self.min_inclusive, max_inclusive=self.max_inclusive)

    def describe(self) -> str:
        lo, hi = "[" if self.min_inclusive else "(", "]" if self.max_inclusive else ")"
        if self.min is not None and self.max is not None:
            return f"number in {lo}{self.min}, {self.max}{hi}"
        if self.min is not None:
            return f"number {'>=' if self.min_inclusive else '>'} {self.min}"
        if self.max is not None:
            return f"number {'<=' if self.max_inclusive else '<'} {self.max}"
        return "finite number"


@dataclasses.dataclass(frozen=True)
class Choice(Rule):
    """One of ``options``."""

    options: tuple

    def __init__(self, options: Sequence[Any]):
        object.__setattr__(self, "options", tuple(options))

    def __call__(self, name, value, done):
        return check_choice(name, value, list(self.options))

    def describe(self) -> str:
        return "one of " + ", ".join(repr(o) for o in self.options)


@dataclasses.dataclass(frozen=True)
class Bool(Rule):
    """``True`` or ``False``."""

    def __call__(self, name, value, done):
        return check_bool(name, value)

    def describe(self) -> str:
        return "True or False"


@dataclasses.dataclass(frozen=True)
class List(Rule):
    """A list (or tuple, returned as a list) whose items each pass ``item``, with
    ``min_length <= len <= max_length``; ``increasing``: strictly increasing items."""

    item: Rule | None = None
    min_length: int | None = None
    max_length: int | None = None
    increasing: bool = False

    def __call__(self, name, value, done):
        of = int if isinstance(self.item, Int) else (float if isinstance(self.item, Float) else None)
        check = None if self.item is None else (lambda n, v: self.item(n, v, done))
        items = check_sequence(name, value, of=of, min_length=self.min_length, max_length=self.max_length,
                               item=check)
        if self.increasing and any(b <= a for a, b in zip(items, items[1:])):
            raise ValueError(f"parameter {name!r} must be strictly increasing, got {value!r}")
        return items

    def describe(self) -> str:
        parts = ["list"]
        if self.item is not None:
            parts.append(f"of {self.item.describe()}")
        if self.min_length is not None or self.max_length is not None:
            parts.append(f"with {self.min_length or 0} to {self.max_length if self.max_length is not None else 'any'} "
                         "items")
        if self.increasing:
            parts.append("strictly increasing")
        return " ".join(parts)


def param(rule: Rule, help: str = "") -> Any:
    """A schema field: ``name: type = param(Int(min=0))``. No default: the default lives in
    the notebook's ``parameters`` cell."""
    return dataclasses.field(metadata={"rule": rule, "help": help})


class Params:
    """Base of the chapter schemas (frozen dataclasses whose fields are :func:`param`)."""

    def __post_init__(self) -> None:
        done: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            rule = f.metadata.get("rule")
            value = getattr(self, f.name)
            if rule is not None:
                value = rule(f.name, value, done)
                object.__setattr__(self, f.name, value)
            done[f.name] = value
        self._check_seeds()
        self.check()

    def _check_seeds(self) -> None:
        """The rule every chapter shares: ``seed`` is an integer in ``[0, 2**32 - 1]`` and a
        count of seeds (``n_seeds``, ``*_seeds``: seeds ``seed, seed + 1, ...``) keeps
        ``seed + count <= 2**32`` (NumPy and JAX seeds are 32-bit: a larger one wraps onto
        seed 0's stream or crashes mid-run); every seed of :meth:`derived_seeds` stays ``<= 2**32 - 1``."""
        names = {f.name for f in dataclasses.fields(self)}
        if "seed" not in names:
            return
        seed = check_int("seed", getattr(self, "seed"), min=0, max=SEED_LIMIT - 1)
        for name in sorted(names):
            if name == "n_seeds" or (name.endswith("_seeds") and name != "seeds"):
                count = getattr(self, name)
                if isinstance(count, numbers.Integral) and not isinstance(count, bool) \
                        and seed + int(count) > SEED_LIMIT:
                    raise ValueError(f"parameters 'seed' and {name!r} must keep seed + {name} <= 2**32 "
                                     f"(seeds are 32-bit); got seed = {seed}, {name} = {count}: use "
                                     f"seed <= {SEED_LIMIT - int(count)}")
        for what, largest in self.derived_seeds().items():
            if largest > SEED_LIMIT - 1:
                raise ValueError(f"parameter 'seed' must be an integer in [0, {seed - (largest - SEED_LIMIT + 1)}] "
                                 f"here: {what} must stay <= 2**32 - 1 (seeds are 32-bit), got seed = {seed}")

    def derived_seeds(self) -> dict[str, int]:
        """The seeds a chapter derives beyond ``seed, ..., seed + count - 1`` (an offset it adds):
        ``{"description (the formula)": the largest such seed}`` (override). Each must stay
        ``<= 2**32 - 1``; checked with the seed rule, before :meth:`check`."""
        return {}

    def check(self) -> None:
        """Cross-parameter rules (override; raise ``ValueError`` naming the parameter)."""

    @classmethod
    def names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def from_values(cls, values: Mapping[str, Any]):
        """The checked parameters from a mapping holding exactly the schema's names."""
        names = cls.names()
        unknown = [k for k in values if k not in names]
        missing = [k for k in names if k not in values]
        if unknown or missing:
            raise ValueError(f"parameters {unknown or ''}{' unknown' if unknown else ''}"
                             f"{'; ' if unknown and missing else ''}{missing or ''}{' missing' if missing else ''}; "
                             f"the parameters are {names}")
        return cls(**{k: values[k] for k in names})

    @classmethod
    def from_namespace(cls, namespace: Mapping[str, Any]):
        """The checked parameters read from a namespace (a notebook's ``globals()``);
        other names in it are ignored."""
        missing = [k for k in cls.names() if k not in namespace]
        if missing:
            raise ValueError(f"parameters {missing} are not defined")
        return cls(**{k: namespace[k] for k in cls.names()})

    @classmethod
    def rules(cls) -> dict[str, str]:
        """``{name: description of its rule}`` (for listings)."""
        return {f.name: f.metadata["rule"].describe() for f in dataclasses.fields(cls) if "rule" in f.metadata}

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)



def seed_param(help: str = "") -> Any:
    """The ``seed`` field: an integer in ``[0, 2**32 - 1]`` (NumPy and JAX seeds are 32-bit). With a
    count of seeds and the derived seeds it is also bounded by :meth:`Params._check_seeds`."""
    return param(Int(min=0, max=SEED_LIMIT - 1), help)


def seed_count_param(max: int, help: str = "") -> Any:
    """The ``n_seeds`` field: an integer in ``[1, max]``, ``max`` the chapter's (what its runs afford)."""
    return param(Int(min=1, max=max), help)


@dataclasses.dataclass(frozen=True)
class DerivedSeed:
    """A seed drawn for one purpose, apart from the replica seeds: ``seed + offset``, or with
    ``per_replica`` one per replica, ``s + offset`` for each replica seed ``s`` (the largest then is
    ``seed + n_seeds - 1 + offset``). ``offset`` >= 1 keeps it off the replica seed it is derived from."""

    offset: int
    per_replica: bool = False

    def __post_init__(self) -> None:
        check_int("offset", self.offset, min=1)

    def formula(self) -> str:
        """``"seed + 1000"`` or ``"seed + n_seeds - 1 + 10**6"`` (powers of ten from 10**4 on written as such)."""
        exponent = round(math.log10(self.offset))
        offset = f"10**{exponent}" if exponent >= 4 and 10**exponent == self.offset else str(self.offset)
        return f"seed + n_seeds - 1 + {offset}" if self.per_replica else f"seed + {offset}"


class SeededParams(Params):
    """Base of the schemas of chapters run over replicas: the fields ``seed`` (:func:`seed_param`) and
    ``n_seeds`` (:func:`seed_count_param`), the replica seeds ``seed, ..., seed + n_seeds - 1``
    (:attr:`seeds`) and the seeds derived for named purposes (:meth:`seed_for`), each checked by the
    seed rule (:meth:`derived_seeds`)."""

    #: ``{purpose: DerivedSeed}``: the seeds a chapter draws beyond the replica seeds (override; a
    #: plain class attribute, not a field). Each chapter keeps its offsets: a changed offset moves
    #: every number drawn from that seed.
    SEED_PURPOSES: Mapping[str, DerivedSeed] = {}

    def __post_init__(self) -> None:
        names = self.names()
        if "seed" not in names or "n_seeds" not in names:
            raise RuntimeError(f"{type(self).__name__} needs the fields 'seed' and 'n_seeds'")  # schema bug
        super().__post_init__()

    @property
    def seeds(self) -> list[int]:
        """The replica seeds: ``seed, seed + 1, ..., seed + n_seeds - 1``."""
        return list(range(self.seed, self.seed + self.n_seeds))

    def seed_for(self, purpose: str, replica: int | None = None) -> int:
        """The seed drawn for ``purpose`` (a key of :data:`SEED_PURPOSES`): ``seed + offset``, or for
        a per-replica purpose ``replica + offset`` (``replica``: one of :attr:`seeds`, required there
        and refused otherwise)."""
        if purpose not in self.SEED_PURPOSES:
            raise ValueError(f"seed purpose {purpose!r} unknown: {type(self).__name__} derives seeds for "
                             f"{sorted(self.SEED_PURPOSES) or 'no purpose'}")
        derived = self.SEED_PURPOSES[purpose]
        if not derived.per_replica:
            if replica is not None:
                raise ValueError(f"seed purpose {purpose!r} has one seed (seed + {derived.offset}), not one per "
                                 f"replica: pass no replica, got replica = {replica!r}")
            return self.seed + derived.offset
        if replica not in self.seeds:
            raise ValueError(f"seed purpose {purpose!r} has one seed per replica: replica must be one of the "
                             f"seeds {self.seeds}, got {replica!r}")
        return replica + derived.offset

    def derived_seeds(self) -> dict[str, int]:
        """The largest seed of each purpose, ``{"the probe seed (seed + 1000)": seed + 1000}`` (see
        :meth:`Params.derived_seeds`); a chapter deriving a seed some other way adds its own."""
        return {f"the {purpose} seed{'s' if d.per_replica else ''} ({d.formula()})":
                self.seed + (self.n_seeds - 1 if d.per_replica else 0) + d.offset
                for purpose, d in self.SEED_PURPOSES.items()}
