"""A claim of a source, measured: one type, one verdict rule, one compact view.

A :class:`Claim` records what a paper says (``source``, a bib key of ``book/references.bib``;
``where``, its section / figure / equation; ``claim``, one sentence; ``paper``, its number or
words), the effect size the claim needs (``direction`` and ``threshold``, fixed and justified
*before* measuring: "orders of magnitude" is a ratio of at least 10, not 1), the conditions under
which the measurement tests the claim at all (``preconditions``, fixed with the threshold: e.g.
"the white-box attack does not already leave 0 %", "training reached the plateau before the
decay"), and what this book measured (``measured`` with the interval ``[low, high]`` over
``n_seeds`` seeds and ``n_test`` test points, at ``scale``). Its ``verdict`` is computed by
:func:`verdict`, never typed:

* ``"not_testable"`` (shown as "not testable at this scale") — a :class:`Precondition` failed:
  the run is outside the regime the claim is about, whatever the interval says. A failed
  precondition can never rescue a claim: it only ever replaces a verdict by this one;
* ``"reproduced"`` — the whole interval lies beyond the threshold in the claimed direction
  (``low > threshold`` for ``"greater"``, ``high < threshold`` for ``"less"``);
* ``"contradicted"`` — the whole interval lies on the other side (``high < threshold``,
  resp. ``low > threshold``);
* ``"inconclusive"`` — otherwise (the interval contains or touches the threshold, or it is
  unbounded, e.g. a single seed with no other source of variation).

Chapters glue their claims as plain JSON (:func:`glue_claims`, name ``claims``), so
``ntknb run`` writes them into ``metrics.json`` and the book's "Results at a glance" page
(:mod:`ntknb.book.pages`) lists them; :func:`claims_html` renders them as a compact block, verdict
badge first (the book re-renders stored blocks from the glued JSON at build time,
:mod:`ntknb.book.build`). :func:`summary_markdown` turns them into a chapter's summary in a few
sentences (what reproduced, what did not, at what scale); :func:`glue_summary` glues it for
``{glue:md}``. :func:`seed_check_rows` sets a run's claims beside those of another run (e.g. one
with seeds never used before) and says where a verdict flips between reproduced and contradicted.

The claim register (:func:`load_register`, :func:`registered`, :meth:`Claim.from_register`):
each chapter's claims declared once, before the runs that judge them, in
``notebooks/claims/<notebook>.yaml`` (:data:`REGISTER_DIR`; format in :func:`load_register`):
id, the source's words and where they stand, threshold, direction, preconditions and why. The
Results page shows, per claim, the commit that registered its threshold
(:func:`registration`).
"""

from __future__ import annotations

import dataclasses
import html
import math
import numbers
import re
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, Optional

from ntknb import paths
from ntknb.records import unique_runs

__all__ = [
    "DIRECTIONS",
    "VERDICTS",
    "VERDICT_TEXT",
    "Precondition",
    "Claim",
    "verdict",
    "bib_keys",
    "cite_text",
    "cite_keys",
    "readable",
    "claim_anchor",
    "claims_html",
    "show_claims",
    "glue_claims",
    "summary_markdown",
    "glue_summary",
    "REGISTER_DIR",
    "ClaimSpec",
    "load_register",
    "registered",
    "parse_register",
    "registrations",
    "verdict_badge_html",
    "SEED_CHECK_COLUMNS",
    "seed_check_rows",
    "seed_check_summary",
]

DIRECTIONS = ("greater", "less")
#: Machine ids of the verdicts (stable: stored in JSON), in the order pages list them.
VERDICTS = ("reproduced", "contradicted", "inconclusive", "not_testable")
#: How each verdict reads on a page.
VERDICT_TEXT = {"reproduced": "reproduced", "contradicted": "contradicted", "inconclusive": "inconclusive",
                "not_testable": "not testable at this scale"}
_ID = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")


def _beyond(direction: str, threshold: float, value: float) -> bool:
    """``value > threshold`` for ``"greater"``, ``value < threshold`` for ``"less"``."""
    return value > threshold if direction == "greater" else value < threshold


def _check_direction(direction: Any, who: str = "") -> str:
    if direction not in DIRECTIONS:
        raise ValueError(f"{who}parameter 'direction' must be one of {list(DIRECTIONS)!r}, got {direction!r}")
    return direction


def verdict(direction: str, threshold: float, low: Optional[float], high: Optional[float],
            preconditions: Iterable["Precondition"] = ()) -> str:
    """The verdict of a claim (module docstring): ``"not_testable"`` when a precondition is not
    met, else ``"reproduced"``, ``"contradicted"`` or ``"inconclusive"`` from the interval.
    ``low`` / ``high`` of ``None`` (or ``∓inf``) mean an unbounded side."""
    _check_direction(direction)
    if any(not p.met for p in preconditions):
        return "not_testable"
    lo = -math.inf if low is None else float(low)
    hi = math.inf if high is None else float(high)
    t = float(threshold)
    if math.isnan(lo) or math.isnan(hi) or math.isnan(t):
        return "inconclusive"
    other = "less" if direction == "greater" else "greater"
    near, far = (lo, hi) if direction == "greater" else (hi, lo)
    if _beyond(direction, t, near):
        return "reproduced"
    if _beyond(other, t, far):
        return "contradicted"
    return "inconclusive"


# ------------------------------------------------------------------------ bibliography


@lru_cache(maxsize=4)
def _read_bib(path: str, mtime: float) -> dict:
    """``{key: (author field, year field)}`` of a BibTeX file (``""`` where absent)."""
    text = Path(path).read_text(encoding="utf-8")
    out = {}
    for m in re.finditer(r"@\w+\s*\{\s*([^,\s]+)\s*,(.*?)(?=\n@|\Z)", text, flags=re.S):
        field = lambda name: re.search(rf"\b{name}\s*=\s*[{{\"](.*)[}}\"]\s*,?\s*$", m.group(2), re.M | re.I)  # noqa: E731
        author, year = field("author"), field("year")
        out[m.group(1)] = (author.group(1) if author else "", year.group(1) if year else "")
    return out


def _bib(path: str | Path | None = None) -> dict:
    p = Path(path) if path is not None else paths.BIB
    return _read_bib(str(p), p.stat().st_mtime) if p.is_file() else {}


def bib_keys(path: str | Path | None = None) -> frozenset:
    """The entry keys of a BibTeX file (default: the book's ``book/references.bib``);
    empty when the file does not exist."""
    return frozenset(_bib(path))


_TEX_ACCENTS = {"\\'e": "é", "\\'E": "É", '\\"o': "ö", '\\"u': "ü", '\\"a': "ä", "\\`e": "è", "\\k{a}": "ą"}


def _detex(text: str) -> str:
    for tex, char in _TEX_ACCENTS.items():
        text = text.replace("{" + tex + "}", char).replace(tex, char)
    return re.sub(r"\\[A-Za-z]+|[{}\\]", "", text)


def cite_text(key: str, path: str | Path | None = None) -> str:
    """Author-year text of bib entry ``key`` (``"Tsilivis & Kempe 2022"``, ``"Loo et al. 2022"``),
    from ``book/references.bib`` (or ``path``); the key itself when the entry is missing."""
    author, year = _bib(path).get(key, ("", ""))
    if not author:
        return key
    names = [_detex(a.split(",")[0]).strip() for a in re.split(r"\s+and\s+", author)]
    who = names[0] if len(names) == 1 else " & ".join(names) if len(names) == 2 else f"{names[0]} et al."
    return f"{who} {year}".strip()


def cite_keys(text: str, path: str | Path | None = None) -> str:
    """``text`` with every bib key of ``book/references.bib`` (or ``path``) in it replaced by its
    author-year text (:func:`cite_text`): ``"Eq. 18 (jacot2018ntk)"`` -> ``"Eq. 18 (Jacot et al. 2018)"``."""
    keys = sorted(_bib(path), key=len, reverse=True)
    if not keys:
        return text
    return re.sub(r"\b(" + "|".join(map(re.escape, keys)) + r")\b", lambda m: cite_text(m.group(1), path), text)


# ------------------------------------------------------------------------ readable math

#: ASCII math in claim texts and their Unicode reading (applied by :func:`readable`).
_SYMBOLS = (("+-", "±"), (">=", "≥"), ("<=", "≤"), ("!=", "≠"), ("->", "→"), ("||", "‖"))
_SQRT = re.compile(r"\bsqrt\(([^()]*)\)")
_SUP = re.compile(r"\^(\(([^()]+)\)|-?[\w./]+)")
_SUB = re.compile(r"(?<=[A-Za-zΑ-Ωα-ω‖)])_(\w{1,2})\b")


def readable(text: str, fmt: str = "html") -> str:
    """``text`` (a claim sentence with ASCII math: ``m^(-1/2)``, ``sqrt(d)``, ``||w||_1``,
    ``Θ_0``, ``>=``; bib keys) for a reader: bib keys as author-year text (:func:`cite_keys`),
    Unicode symbols, and super- / subscripts as ``<sup>`` /
    ``<sub>`` (``fmt="html"``, the rest HTML-escaped) or as MyST ``{sup}`` / ``{sub}`` roles
    (``fmt="myst"``, the rest escaped for Markdown)."""
    if fmt not in ("html", "myst"):
        raise ValueError(f"parameter 'fmt' must be one of ['html', 'myst'], got {fmt!r}")
    text = cite_keys(text)
    for ascii_, char in _SYMBOLS:
        text = text.replace(ascii_, char)
    text = _SQRT.sub(lambda m: "√" + (m.group(1) if re.fullmatch(r"\w+", m.group(1)) else f"({m.group(1)})"), text)
    marks = []  # (start, end, kind, content): super- and subscripts, found on the plain text

    def keep(kind):
        def sub(m):
            marks.append((kind, m.group(2) if kind == "sup" and m.group(2) else m.group(1)))
            return f"\x00{len(marks) - 1}\x00"
        return sub

    text = _SUB.sub(keep("sub"), _SUP.sub(keep("sup"), text))
    if fmt == "html":
        out = html.escape(text, quote=False)
        render = lambda kind, body: f"<{kind}>{html.escape(body, quote=False)}</{kind}>"  # noqa: E731
    else:
        out = re.sub(r"([\\`*_\[\]<>$|#~{}])", r"\\\1", text)
        render = lambda kind, body: f"{{{kind}}}`{body}`"  # noqa: E731
    return re.sub("\x00(\\d+)\x00", lambda m: render(*marks[int(m.group(1))]), out)


# ------------------------------------------------------------------------------ checks


def _num(name: str, value: Any, *, none_is: Optional[float] = None, who: str = "Claim") -> float:
    if value is None and none_is is not None:
        return none_is
    if getattr(value, "shape", None) == () and hasattr(value, "item"):
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{who}: parameter {name!r} must be a number, got {value!r}")
    value = float(value)
    if math.isnan(value) or (none_is is None and not math.isfinite(value)):
        raise ValueError(f"{who}: parameter {name!r} must be a finite number, got {value!r}")
    return value


def _text(name: str, value: Any, who: str = "Claim") -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{who}: parameter {name!r} must be a non-empty string, got {value!r}")
    return value.strip()


def _count(name: str, value: Any, none_ok: bool = False) -> Optional[int]:
    if value is None and none_ok:
        return None
    if getattr(value, "shape", None) == () and hasattr(value, "item"):
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < (1 if name == "n_seeds" else 0):
        lowest = 1 if name == "n_seeds" else 0
        raise ValueError(f"Claim: parameter {name!r} must be an integer >= {lowest}"
                         f"{' or None' if none_ok else ''}, got {value!r}")
    return int(value)


def _fmt(v: Optional[float]) -> str:
    if v is None or (isinstance(v, float) and math.isinf(v)):
        return "∞" if v is not None and v > 0 else "-∞" if v is not None else "–"
    return f"{v:.3g}"


def _interval(measured: float, low: Optional[float], high: Optional[float]) -> str:
    """``"0.731 [0.702, 0.760]"``; ``"0.731 (no interval)"`` when both sides are unbounded,
    ``"0.731 [0.5, ∞)"`` when one is."""
    lo = -math.inf if low is None else low
    hi = math.inf if high is None else high
    if math.isinf(lo) and math.isinf(hi):
        return f"{_fmt(measured)} (no interval)"
    return f"{_fmt(measured)} {'(' if math.isinf(lo) else '['}{_fmt(lo)}, {_fmt(hi)}{')' if math.isinf(hi) else ']'}"


def _needs(direction: str, threshold: float) -> str:
    return f"{'>' if direction == 'greater' else '<'} {_fmt(threshold)}"


# ------------------------------------------------------------------------ preconditions

_PRE_FIELDS = ("name", "description", "direction", "threshold")


@dataclasses.dataclass(frozen=True)
class Precondition:
    """A condition under which a measurement tests its claim, declared with the claim's threshold
    before measuring (e.g. ``Precondition("white_box_above_zero", "the white-box attack leaves
    the network above 0 % accuracy", measured=0.21, direction="greater", threshold=0.0)``).

    Attributes:
      name: identifier-like, unique within the claim.
      description: what it requires, in words.
      measured: the value measured in this run (a point value).
      direction, threshold: the comparison, with :class:`Claim`'s rule: ``measured > threshold``
        (``"greater"``) or ``measured < threshold`` (``"less"``); equality fails.
      met: computed from the three (not an argument).
    """

    name: str
    description: str
    measured: float
    direction: str
    threshold: float
    met: bool = dataclasses.field(init=False)

    def __post_init__(self):
        if not isinstance(self.name, str) or not _ID.fullmatch(self.name):
            raise ValueError(f"Precondition: parameter 'name' must be identifier-like, got {self.name!r}")
        who = f"Precondition {self.name}"
        object.__setattr__(self, "description", _text("description", self.description, who))
        _check_direction(self.direction, f"{who}: ")
        object.__setattr__(self, "measured", _num("measured", self.measured, who=who))
        object.__setattr__(self, "threshold", _num("threshold", self.threshold, who=who))
        object.__setattr__(self, "met", _beyond(self.direction, self.threshold, self.measured))

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "Precondition":
        """The inverse of :meth:`to_json`; a stored ``met`` that differs from the computed one
        raises ``ValueError``."""
        if not isinstance(data, Mapping) or set(data) - {*_PRE_FIELDS, "measured", "met"} \
                or not {*_PRE_FIELDS, "measured"} <= set(data):
            raise ValueError(f"Precondition.from_json: expected the fields {[*_PRE_FIELDS, 'measured', 'met']}, "
                             f"got {data!r}")
        pre = cls(**{k: data[k] for k in (*_PRE_FIELDS, "measured")})
        if "met" in data and data["met"] != pre.met:
            raise ValueError(f"Precondition {pre.name}: stored met={data['met']!r} does not follow from "
                             f"measured {pre.measured} and {pre.requirement_text}")
        return pre

    def to_json(self) -> dict:
        """Plain JSON values, ``met`` included."""
        return dataclasses.asdict(self)

    @property
    def requirement_text(self) -> str:
        """``"> 0"``: what the condition needs of the measured value."""
        return _needs(self.direction, self.threshold)

    @property
    def text(self) -> str:
        """``"white_box_above_zero (the white-box attack ...): measured 0, needs > 0 — not met"``."""
        return (f"{self.name} ({self.description}): measured {_fmt(self.measured)}, needs "
                f"{self.requirement_text} — {'met' if self.met else 'not met'}")

    @property
    def short_text(self) -> str:
        """``"white_box_above_zero: measured 0, needs > 0"``: :attr:`text` without the description (a
        claim's entry shows this line; its folded part lists the conditions in full)."""
        return f"{self.name}: measured {_fmt(self.measured)}, needs {self.requirement_text}"


def _preconditions(value: Any, who: str) -> tuple:
    if value is None:
        return ()
    if isinstance(value, (str, Mapping)) or not isinstance(value, Iterable):
        raise ValueError(f"{who}: parameter 'preconditions' must be a sequence of Precondition objects or "
                         f"their JSON dicts, got {value!r}")
    out = tuple(p if isinstance(p, Precondition) else Precondition.from_json(p) for p in value)
    names = [p.name for p in out]
    if len(set(names)) != len(names):
        raise ValueError(f"{who}: precondition names must be unique, got {names}")
    return out


# ------------------------------------------------------------------------------- Claim


@dataclasses.dataclass(frozen=True)
class Claim:
    """A claim of a source and what this book measured for it (module docstring).

    Attributes:
      id: identifier-like, unique within the book (``"ch04.kernel_change_ratio"``).
      source: bib key in ``book/references.bib`` (checked when the file is there).
      where: section / figure / equation of the source (``"Sec. 4.2, Fig. 3"``).
      claim: the claim in one sentence.
      paper: the paper's number or words (``"orders of magnitude"``, ``"0.87"``).
      direction: ``"greater"`` or ``"less"``: the measured quantity must exceed / stay below
        ``threshold`` for the claim to hold.
      threshold: the effect size the claim needs, fixed before measuring.
      measured: the measured value (point estimate).
      low, high: its interval (``None`` / ``∓inf``: unbounded on that side).
      n_seeds: independent seeds behind ``measured`` (>= 1).
      n_test: test points behind it (``None`` where it is not an accuracy on test points).
      scale: what was run (``"MNIST 0 vs 1, 512 train, FC-3 width 512, 5 seeds"``).
      section: optional MyST label of the chapter section that shows the evidence (the
        results page links to it).
      preconditions: :class:`Precondition` objects (or their JSON dicts), fixed with the
        threshold; any not met makes the verdict ``"not_testable"``. Default none.
      verdict: computed from ``direction``, ``threshold``, ``low``, ``high`` and
        ``preconditions`` (not an argument).
    """

    id: str
    source: str
    where: str
    claim: str
    paper: str
    direction: str
    threshold: float
    measured: float
    low: Optional[float]
    high: Optional[float]
    n_seeds: int
    n_test: Optional[int]
    scale: str
    section: Optional[str] = None
    preconditions: tuple = ()
    verdict: str = dataclasses.field(init=False)

    def __post_init__(self):
        if not isinstance(self.id, str) or not _ID.fullmatch(self.id):
            raise ValueError(f"Claim: parameter 'id' must be identifier-like (letters, digits, '_', '.', '-'), "
                             f"got {self.id!r}")
        source = _text("source", self.source)
        keys = bib_keys()
        if keys and source not in keys:
            raise ValueError(f"Claim {self.id}: parameter 'source' must be a key of book/references.bib, "
                             f"got {source!r}")
        _check_direction(self.direction, f"Claim {self.id}: ")
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731 (frozen)
        set_("source", source)
        for name in ("where", "claim", "paper", "scale"):
            set_(name, _text(name, getattr(self, name)))
        set_("threshold", _num("threshold", self.threshold))
        set_("measured", _num("measured", self.measured))
        set_("low", _num("low", self.low, none_is=-math.inf))
        set_("high", _num("high", self.high, none_is=math.inf))
        if not self.low <= self.measured <= self.high:
            raise ValueError(f"Claim {self.id}: the interval [low, high] = [{self.low}, {self.high}] must "
                             f"contain measured = {self.measured}")
        set_("n_seeds", _count("n_seeds", self.n_seeds))
        set_("n_test", _count("n_test", self.n_test, none_ok=True))
        if self.section is not None and (not isinstance(self.section, str) or not _ID.fullmatch(self.section)):
            raise ValueError(f"Claim {self.id}: parameter 'section' must be None or a MyST label, "
                             f"got {self.section!r}")
        set_("preconditions", _preconditions(self.preconditions, f"Claim {self.id}"))
        set_("verdict", verdict(self.direction, self.threshold, self.low, self.high, self.preconditions))

    # ------------------------------------------------------------------ constructors

    @classmethod
    def from_interval(cls, interval: Any, **fields: Any) -> "Claim":
        """A claim whose ``measured``, ``low``, ``high`` come from an interval (e.g. a
        :class:`ntknb.stats.Interval`: ``estimate``, ``low``, ``high``). When not given,
        ``n_seeds`` is ``interval.n`` for an interval over seeds (``method`` ``"t"`` or
        ``"logit-t"``) and ``n_test`` is ``interval.n`` for a binomial interval on test points
        (``"wilson"`` / ``"clopper-pearson"``)."""
        method = getattr(interval, "method", None)
        if method in ("t", "logit-t"):
            fields.setdefault("n_seeds", interval.n)
        elif method in ("wilson", "clopper-pearson"):
            fields.setdefault("n_test", interval.n)
        missing = [k for k in ("n_seeds", "n_test") if k not in fields]
        if missing:
            raise ValueError(f"Claim.from_interval: give {missing} (a {method!r} interval does not say them)")
        return cls(measured=interval.estimate, low=interval.low, high=interval.high, **fields)

    @classmethod
    def from_register(cls, spec: "ClaimSpec", *, measured: float, low: Optional[float], high: Optional[float],
                      n_seeds: int, n_test: Optional[int], scale: str, section: Optional[str] = None,
                      conditions: Optional[Mapping[str, float]] = None) -> "Claim":
        """The claim registered as ``spec`` (:func:`registered` / :func:`load_register`) with what
        this run measured: the source, words, threshold and direction come from the register;
        ``conditions`` maps each registered precondition's name to its measured value (every
        registered one, no other: ``ValueError`` otherwise)."""
        if not isinstance(spec, ClaimSpec):
            raise ValueError(f"Claim.from_register: parameter 'spec' must be a ClaimSpec, got {type(spec).__name__}")
        conditions = dict(conditions or {})
        names = [p["name"] for p in spec.preconditions]
        if set(conditions) != set(names):
            raise ValueError(f"Claim.from_register {spec.id}: parameter 'conditions' must give a measured value "
                             f"for exactly the registered preconditions {names}, got {sorted(conditions)}")
        pre = [Precondition(measured=conditions[p["name"]], **p) for p in spec.preconditions]
        return cls(id=spec.id, source=spec.source, where=spec.where, claim=spec.claim, paper=spec.paper,
                   direction=spec.direction, threshold=spec.threshold, measured=measured, low=low, high=high,
                   n_seeds=n_seeds, n_test=n_test, scale=scale, section=section, preconditions=pre)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "Claim":
        """The inverse of :meth:`to_json`. A stored ``verdict`` that differs from the one the
        fields imply raises ``ValueError`` (verdicts are never typed). JSON written before
        preconditions existed (no ``preconditions`` field) loads with none."""
        if not isinstance(data, Mapping):
            raise ValueError(f"Claim.from_json: expected a mapping, got {type(data).__name__}")
        names = [f.name for f in dataclasses.fields(cls) if f.init]
        unknown = set(data) - set(names) - {"verdict"}
        missing = [n for n in names if n not in data and n not in ("section", "preconditions")]
        if unknown or missing:
            raise ValueError(f"Claim.from_json: unknown fields {sorted(unknown)}, missing fields {missing}")
        claim = cls(**{n: data[n] for n in names if n in data})
        stored = data.get("verdict")
        if stored is not None and stored != claim.verdict:
            raise ValueError(f"Claim {claim.id}: stored verdict {stored!r} does not follow from its interval, "
                             f"threshold, direction and preconditions ({claim.verdict!r})")
        return claim

    # -------------------------------------------------------------------- outputs

    def to_json(self) -> dict:
        """Plain JSON values (``str``, ``float``, ``int``, ``None``, lists of dicts): unbounded
        ``low`` / ``high`` become ``None``; ``preconditions`` as :meth:`Precondition.to_json`
        dicts; ``verdict`` included."""
        out = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, float) and not math.isfinite(v):
                v = None
            out[f.name] = [p.to_json() for p in v] if f.name == "preconditions" else v
        return out

    @property
    def verdict_text(self) -> str:
        """The verdict as a page shows it (:data:`VERDICT_TEXT`)."""
        return VERDICT_TEXT[self.verdict]

    @property
    def failed_preconditions(self) -> tuple:
        """The preconditions not met (why the claim is not testable)."""
        return tuple(p for p in self.preconditions if not p.met)

    @property
    def interval_text(self) -> str:
        """``"0.731 [0.702, 0.760]"``; ``"0.731 (no interval)"`` where both sides are unbounded."""
        return _interval(self.measured, self.low, self.high)

    @property
    def requirement_text(self) -> str:
        """``"> 10"`` or ``"< 0"``: what the claim needs of the measured quantity."""
        return _needs(self.direction, self.threshold)

    @property
    def counts_text(self) -> str:
        """``"3 seeds, 500 test points"``."""
        out = f"{self.n_seeds} seed{'s' if self.n_seeds != 1 else ''}"
        return out + (f", {self.n_test} test points" if self.n_test is not None else "")

    @property
    def explanation(self) -> str:
        """The verdict in words, e.g. ``"reproduced: the whole interval [12.1, 15.3] lies above
        the threshold 10"``; for ``"not_testable"`` the failed conditions with their values."""
        side = {"greater": ("above", "below"), "less": ("below", "above")}[self.direction]
        iv = self.interval_text.split(" ", 1)[1]
        t = _fmt(self.threshold)
        if self.verdict == "not_testable":
            return ("not testable at this scale: " + "; ".join(p.text for p in self.failed_preconditions)
                    + f" (the interval {iv} against the threshold {t} is not judged)")
        if self.verdict == "reproduced":
            return f"reproduced: the whole interval {iv} lies {side[0]} the threshold {t}"
        if self.verdict == "contradicted":
            return f"contradicted: the whole interval {iv} lies {side[1]} the threshold {t}"
        if iv == "(no interval)":
            return f"inconclusive: no interval (a single replica), so nothing is decided against the threshold {t}"
        return f"inconclusive: the interval {iv} does not lie wholly {side[0]} or {side[1]} the threshold {t}"


def _as_claims(claims: Iterable[Any]) -> list[Claim]:
    out = []
    for c in claims:
        out.append(c if isinstance(c, Claim) else Claim.from_json(c))
    ids = [c.id for c in out]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        raise ValueError(f"claims: ids must be unique; repeated {dup}")
    return out


#: Badge colours (white text on them passes WCAG AA contrast).
_COLOURS = {"reproduced": "#1a7f37", "contradicted": "#cf222e", "inconclusive": "#9a6700",
            "not_testable": "#57606a"}


def claim_anchor(claim_id: str) -> str:
    """The HTML id of a claim's entry in :func:`claims_html` (``"claim-ch01-ntk_transfer"``): the
    Results page links to it."""
    return "claim-" + re.sub(r"[^A-Za-z0-9_-]", "-", claim_id)


def verdict_badge_html(v: str) -> str:
    """The verdict ``v`` as a coloured badge (inline style, so it shows in JupyterLab too)."""
    return (f'<span class="ntknb-verdict ntknb-v-{v}" style="background:{_COLOURS[v]};color:#fff;'
            f'border-radius:0.25em;padding:0 0.4em;font-weight:600;white-space:nowrap">{VERDICT_TEXT[v]}</span>')


def _claim_html(c: Claim) -> str:
    esc = lambda s: html.escape(s, quote=False)  # noqa: E731
    facts = (f"ours <strong>{esc(c.interval_text)}</strong>, needs {esc(c.requirement_text)} · "
             f"{esc(cite_text(c.source))}, {readable(c.where)}")
    why = "".join(f'<div class="ntknb-claim-why">not met: {readable(p.short_text)}</div>'
                  for p in c.failed_preconditions)
    pre = "".join(f"<li>{readable(p.text)}</li>" for p in c.preconditions)
    details = (f"<p>The claim in full: {readable(c.claim)}</p>"
               f"<p>The paper: {readable(c.paper)}.</p><p>{readable(c.scale)} ({c.counts_text}).</p>"
               f"<p>{readable(c.explanation)}.</p>"
               + (f"<p>Conditions of the claim's regime:</p><ul>{pre}</ul>" if pre else "")
               + f"<p>Claim id <code>{esc(c.id)}</code>.</p>")
    return (f'<div class="ntknb-claim" id="{claim_anchor(c.id)}">{verdict_badge_html(c.verdict)} '
            f'<span class="ntknb-claim-text">{readable(c.claim)}</span>'
            f'<div class="ntknb-claim-facts">{facts}</div>{why}'
            f"<details><summary>claim in full, scale and reasoning</summary>{details}</details></div>")


def claims_html(claims: Sequence[Any]) -> str:
    """A compact HTML block of ``claims`` (:class:`Claim` objects or their :meth:`Claim.to_json`
    dicts), one entry per claim, its verdict badge first: the claim (readable math,
    :func:`readable`), our value with its interval and what the claim needs, the source as
    author-year text (:func:`cite_text`) and where; a failed precondition's name with its measured
    value (:attr:`Precondition.short_text`); the claim in full (a phone shows its first lines only,
    ``ntknb.css``), the paper's value, the scale, the verdict in words and the conditions (with their
    descriptions) folded in a ``<details>``. Each
    entry's HTML id is :func:`claim_anchor`."""
    objs = _as_claims(claims)
    if not objs:
        return "<p><em>No claims.</em></p>"
    return '<div class="ntknb-claims">\n' + "\n".join(map(_claim_html, objs)) + "\n</div>"


def show_claims(claims: Sequence[Any]):
    """``IPython.display.HTML`` of :func:`claims_html` (the last expression of a cell shows it)."""
    from IPython.display import HTML

    return HTML(claims_html(claims))


def glue_claims(claims: Sequence[Any], name: str = "claims"):
    """Glue the claims as a list of plain JSON dicts under ``name`` (``metrics.json`` and the
    results page read it) and return the compact block (:func:`claims_html`) to show in the cell."""
    from ntknb.report import glue

    objs = _as_claims(claims)
    glue(name, [c.to_json() for c in objs])
    return show_claims(objs)


_WHY = {
    "reproduced": "",
    "contradicted": " (the whole interval lies on the other side of the threshold)",
    "inconclusive": " (the interval contains the threshold; more seeds or test points would narrow it)",
    "not_testable": " (the run did not reach the regime the claim is about)",
}


def _clause(c: Claim) -> str:
    """The claim's sentence without its parenthetical remarks (a bracket after a space; ``m^(-1/2)``
    stays), cut to its first clause (plain text)."""
    text, prev = c.claim, None
    while prev != text:
        prev, text = text, re.sub(r"\s+\((?:[^()]|\([^()]*\))*\)", "", text)
    text = re.split(r"(?<=[\w)])[:;] ", text, maxsplit=1)[0].rstrip(" .")
    if len(text) > 110:
        text = text[:110].rsplit(" ", 1)[0] + "…"
    first = text.split(" ", 1)[0]
    return text[0].lower() + text[1:] if len(first) == 1 or first[1:].islower() else text


def _phrases(objs: Sequence[Claim], v: str) -> list[str]:
    """MyST phrases naming the claims of verdict ``v`` among ``objs``: :func:`_clause`, with the
    task (first part of the scale) where another verdict has the same clause, identical ones
    merged ("... (3 claims)"), a failed precondition with its measured value."""
    other = {_clause(c) for c in objs if c.verdict != v}
    texts = []
    for c in objs:
        if c.verdict != v:
            continue
        text = _clause(c)
        if text in other:
            text += f" ({c.scale.split(',')[0].strip()})"
        if c.verdict == "not_testable":
            text += " (" + "; ".join(f"{p.name} measured {_fmt(p.measured)}, needs {p.requirement_text}"
                                     for p in c.failed_preconditions) + ")"
        texts.append(text)
    counts = {t: texts.count(t) for t in texts}
    return [readable(t + (f" ({counts[t]} claims)" if counts[t] > 1 else ""), "myst") for t in dict.fromkeys(texts)]


def _scale_sentence(objs: Sequence[Claim]) -> str:
    """``"on CIFAR-10 airplane vs automobile and MNIST, with 3 seeds and up to 1002 test points"``."""
    tasks = list(dict.fromkeys(c.scale.split(",")[0].split(";")[0].strip() for c in objs))
    seeds = sorted({c.n_seeds for c in objs})
    tests = [c.n_test for c in objs if c.n_test is not None]
    s = f"{seeds[0]}" if len(seeds) == 1 else f"{seeds[0]}-{seeds[-1]}"
    out = (f"on {readable(', '.join(tasks[:-1]) + ' and ' + tasks[-1] if len(tasks) > 1 else tasks[0], 'myst')}"
           if len(tasks) <= 3 else "at the scales listed with each claim")
    out += f", with {s} seed{'s' if seeds[-1] != 1 else ''}"
    return out + (f" and up to {max(tests)} test points" if tests else "")


def summary_markdown(claims: Sequence[Any]) -> str:
    """A chapter's summary in a few sentences of MyST, from its claims (:class:`Claim` objects or
    their JSON dicts): how many claims of which sources ({cite:t} roles) were tested at what
    scale, how many reproduced, were contradicted, stayed inconclusive or were not testable at
    this scale, and then one sentence per verdict naming the claims (their first clause; a
    failed precondition with its measured value). The details are in the claims block
    (:func:`claims_html`). Nothing in it is typed by the chapter."""
    objs = _as_claims(claims)
    if not objs:
        return "This chapter checks no claim of its sources."
    n = len(objs)
    counts = {v: sum(c.verdict == v for c in objs) for v in VERDICTS}
    parts = [f"{counts[v]} {VERDICT_TEXT[v]}" for v in VERDICTS if counts[v]]
    sources = ", ".join(f"{{cite:t}}`{s}`" for s in dict.fromkeys(c.source for c in objs))
    counted = ", ".join(parts[:-1]) + " and " + parts[-1] if len(parts) > 1 else parts[0]
    lines = [f"Of the {n} claim{'s' if n != 1 else ''} of {sources} this chapter tests "
             f"{_scale_sentence(objs)}: {counted}."]
    for v in VERDICTS:
        group = [c for c in objs if c.verdict == v]
        if group:
            text = "; ".join(_phrases(objs, v))
            lines.append(f"**{VERDICT_TEXT[v].capitalize()}**{_WHY[v]}: {text}{'' if text.endswith('…') else '.'}")
    return "\n\n".join(lines) + "\n"


def glue_summary(claims: Sequence[Any], name: str = "claims_summary") -> str:
    """Glue :func:`summary_markdown` of ``claims`` as Markdown under ``name``; paste it with
    the ``{glue:md}`` directive (``:format: myst``). Returns the text (assign it, ``_ = ...``,
    so the cell shows nothing)."""
    from ntknb.report import glue_md

    return glue_md(name, summary_markdown(claims))


# --------------------------------------------------------------------------- register

#: The claim register: one YAML file per chapter, ``notebooks/claims/<notebook>.yaml``
#: (:func:`load_register`), in the checkout (:data:`ntknb.paths.CLAIMS`: beside the package, or
#: found from the working directory by a wheel install).
REGISTER_DIR = paths.CLAIMS
_SPEC_TEXT = ("id", "source", "where", "quote", "claim", "paper", "justification")


@dataclasses.dataclass(frozen=True)
class ClaimSpec:
    """A claim as registered before the runs that judge it (:func:`load_register`).

    Attributes:
      id, source, where, claim, paper, direction, threshold: as in :class:`Claim`.
      quote: the source's own words the claim rests on.
      justification: why this threshold (and these preconditions) test those words.
      preconditions: ``{"name", "description", "direction", "threshold"}`` dicts, each a
        :class:`Precondition` without its measured value.
    """

    id: str
    source: str
    where: str
    quote: str
    claim: str
    paper: str
    direction: str
    threshold: float
    justification: str
    preconditions: tuple = ()

    def key(self) -> tuple:
        """What a registration fixes: ``(direction, threshold, preconditions)`` (the Results page
        dates a claim's registration by the commit that last changed it)."""
        return self.direction, self.threshold, tuple(tuple(sorted(p.items())) for p in self.preconditions)


def _spec(entry: Any, where: str, keys: frozenset) -> ClaimSpec:
    fields = [f.name for f in dataclasses.fields(ClaimSpec)]
    if not isinstance(entry, Mapping) or set(entry) - set(fields) or not set(fields[:-1]) <= set(entry):
        raise ValueError(f"{where}: each entry of 'claims' must be a mapping with the fields {fields[:-1]} "
                         f"(and optionally 'preconditions'), got {entry!r}")
    who = f"{where}: claim {entry.get('id')!r}"
    text = {k: _text(k, entry[k], who) for k in _SPEC_TEXT}
    if not _ID.fullmatch(text["id"]):
        raise ValueError(f"{who}: parameter 'id' must be identifier-like")
    if keys and text["source"] not in keys:
        raise ValueError(f"{who}: parameter 'source' must be a key of book/references.bib, got {text['source']!r}")
    pre = []
    for p in entry.get("preconditions") or ():
        if not isinstance(p, Mapping) or set(p) != set(_PRE_FIELDS):
            raise ValueError(f"{who}: each precondition must be a mapping with exactly the fields "
                             f"{list(_PRE_FIELDS)}, got {p!r}")
        Precondition(measured=0.0, **p)  # validates name, description, direction, threshold
        pre.append({"name": p["name"], "description": p["description"].strip(), "direction": p["direction"],
                    "threshold": float(p["threshold"])})
    _preconditions([Precondition(measured=0.0, **p) for p in pre], who)  # unique names
    return ClaimSpec(**text, direction=_check_direction(entry["direction"], f"{who}: "),
                     threshold=_num("threshold", entry["threshold"], who=who), preconditions=tuple(pre))


def parse_register(text: str, where: str = "register") -> dict:
    """``{id: ClaimSpec}`` of a register file's text (format: :func:`load_register`)."""
    import yaml

    data = yaml.safe_load(text)
    if not isinstance(data, Mapping) or set(data) != {"claims"} or not isinstance(data["claims"], list):
        raise ValueError(f"{where}: a register is a mapping with one key, 'claims', holding a list of claims")
    keys = bib_keys()
    out = {}
    for entry in data["claims"]:
        spec = _spec(entry, where, keys)
        if spec.id in out:
            raise ValueError(f"{where}: claim id {spec.id!r} registered twice")
        out[spec.id] = spec
    return out


def load_register(path: str | Path) -> dict:
    """``{id: ClaimSpec}`` of one chapter's register file (``notebooks/claims/<notebook>.yaml``,
    read with ``yaml.safe_load``)::

        claims:
          - id: ch01.ntk_transfer_cifar
            source: tsilivis2022ntk          # a key of book/references.bib
            where: Sec. 4, Fig. 4
            quote: "... eventually driving robust accuracy to 0 % ..."
            claim: Kernel-attack examples drive the wide network's accuracy to about 0.
            paper: about 0 %
            direction: less                 # greater | less
            threshold: 0.1
            justification: "about 0" read as below 10 % accuracy ...
            preconditions:                  # optional; each is measured by the run
              - name: white_box_below_chance
                description: the white-box attack itself drives the network below chance
                direction: less
                threshold: 0.5

    Raises ``ValueError`` naming the file and the claim when a field is missing, unknown or
    invalid, or an id repeats."""
    path = Path(path)
    return parse_register(path.read_text(encoding="utf-8"), str(path))


def registered(claim_id: str, directory: str | Path | None = None) -> ClaimSpec:
    """The :class:`ClaimSpec` registered as ``claim_id`` in any register file of ``directory``
    (default :data:`REGISTER_DIR`); ``ValueError`` when no file registers it."""
    directory = Path(directory) if directory is not None else REGISTER_DIR
    for path in sorted(directory.glob("*.yaml")):
        specs = load_register(path)
        if claim_id in specs:
            return specs[claim_id]
    raise ValueError(f"registered: parameter 'claim_id' {claim_id!r} is in no register file of {directory}")


def _git(root: Path, *args: str) -> Optional[str]:
    import subprocess

    try:
        proc = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout if proc.returncode == 0 else None


def registrations(directory: str | Path | None = None) -> dict:
    """``{claim id: record}`` for every claim of the register files in ``directory`` (default
    :data:`REGISTER_DIR`), from their git history: ``file`` (relative to the repository),
    ``commit`` and ``date`` (ISO 8601) of the commit since which the claim's threshold, direction
    and preconditions (:meth:`ClaimSpec.key`) are unchanged, ``changes`` (how many commits changed
    them after the first registration) and ``status``: ``"registered"``, ``"not committed"`` (the
    file's current version differs from its last commit, or was never committed) or ``"not under
    version control"`` (no git, or no repository; ``commit`` / ``date`` ``None``)."""
    directory = Path(directory) if directory is not None else REGISTER_DIR
    out = {}
    for path in sorted(directory.glob("*.yaml")):
        current = load_register(path)
        top = _git(path.parent, "rev-parse", "--show-toplevel")
        top = Path(top.strip()).resolve() if top else None
        rel = path.resolve().relative_to(top).as_posix() if top else path.name
        log = _git(top, "log", "--format=%H %cI", "--", rel) if top else None
        history = []  # newest first: (commit, date, {id: key})
        for line in (log or "").splitlines():
            commit, date = line.split()
            text = _git(top, "show", f"{commit}:{rel}")
            try:
                specs = parse_register(text, f"{rel}@{commit[:7]}") if text is not None else {}
            except ValueError:
                specs = {}
            history.append((commit, date, {k: s.key() for k, s in specs.items()}))
        for cid, spec in current.items():
            rec = {"file": rel, "commit": None, "date": None, "changes": 0, "status": "not under version control"}
            if top is not None:
                rec["status"] = "not committed"
                keys = [(c, d, ks.get(cid)) for c, d, ks in history]
                if keys and keys[0][2] == spec.key():
                    i = 0
                    while i + 1 < len(keys) and keys[i + 1][2] == spec.key():
                        i += 1
                    runs = [k for j, (_, _, k) in enumerate(keys) if k is not None and (j == 0 or keys[j - 1][2] != k)]
                    rec.update(commit=keys[i][0], date=keys[i][1], changes=len(runs) - 1, status="registered")
            out[cid] = rec
    return out


# ------------------------------------------------------------------------ seed checks

SEED_CHECK_COLUMNS = ["claim", "this run", "other run", "verdict"]

def _brief(c: Any) -> tuple[str, str, str]:
    """``(id, verdict, "measured [low, high]")`` of a :class:`Claim` or of a claim's JSON dict,
    full or as recorded by :func:`ntknb.records.seed_check_record` (``id``, ``verdict``, ``measured``, ``low``,
    ``high`` at least)."""
    if isinstance(c, Claim) or "direction" in c:
        c = _as_claims([c])[0]
        return c.id, c.verdict, c.interval_text
    return c["id"], c["verdict"], _interval(c["measured"], c["low"], c["high"])  # None: unbounded


def seed_check_rows(claims: Sequence[Any], other: Sequence[Any]) -> list:
    """Rows ``[id, this run's "measured [interval] verdict", the other run's, "same" | "flips" |
    "differs" | "only here"]`` for every claim of ``claims`` (:class:`Claim` objects or their
    JSON dicts), matched by id in ``other`` (the same, or the brief dicts of
    :func:`ntknb.records.seed_check_record`). A verdict *flips* when one run reproduces the claim and the other
    contradicts it; ``"differs"`` when one of them is inconclusive."""
    theirs = {b[0]: b for b in map(_brief, other)}
    rows = []
    for c in _as_claims(claims):
        o = theirs.get(c.id)
        if o is None:
            rows.append([c.id, f"{c.interval_text} {c.verdict}", "–", "only here"])
            continue
        same = "same" if o[1] == c.verdict else (
            "flips" if {c.verdict, o[1]} == {"reproduced", "contradicted"} else "differs")
        rows.append([c.id, f"{c.interval_text} {c.verdict}", f"{o[2]} {o[1]}", same])
    return rows


def seed_check_mismatch(record: Mapping, defaults: Mapping[str, Any]) -> list[str]:
    """The parameters at which ``record`` (a run of :func:`ntknb.records.seed_check_record`) is not the chapter
    at ``defaults`` (its ``parameters`` cell, name -> value), the base ``seed`` apart: names whose
    recorded value differs, names the record lacks (it cannot be shown to be at the default),
    names the chapter no longer has. ``["parameters not recorded"]`` for a record without them.
    Empty: the run repeats the chapter's defaults from other seeds, so its verdicts can be set
    beside the page's (a run at earlier defaults tests other settings and is not compared)."""
    params = record.get("parameters")
    if not isinstance(params, Mapping):
        return ["parameters not recorded"]
    differ = [k for k in defaults if k != "seed" and (k not in params or params[k] != defaults[k])]
    return differ + [k for k in params if k != "seed" and k not in defaults]


def seed_check_summary(claims: Sequence[Any], records: Sequence[Mapping]) -> tuple[list, dict]:
    """``(rows, summary)``: how the verdicts of ``claims`` (a page's) compare with those of the
    recorded runs at seeds never used before (:func:`ntknb.records.load_seed_checks`). ``rows``: the
    :func:`seed_check_rows` of every record (:data:`SEED_CHECK_COLUMNS`; the other run's cell
    names its seeds); ``summary``: ``runs``, ``compared`` (claims matched by id), ``same``,
    ``differs`` (one verdict inconclusive), ``flips`` (reproduced <-> contradicted) and
    ``min_seeds`` (the fewest seeds behind a recorded claim; 0 without records). Records at the
    same seeds count once (:func:`ntknb.records.unique_runs`)."""
    records = unique_runs(records)
    rows = []
    for rec in records:
        seeds = rec["seeds"]
        for r in seed_check_rows(claims, rec["claims"]):
            rows.append(r if r[3] == "only here" else [r[0], r[1], f"{r[2]} (seeds {seeds[0]}-{seeds[-1]})", r[3]])
    n_seeds = [c["n_seeds"] for rec in records for c in rec["claims"] if c.get("n_seeds") is not None]
    count = lambda what: sum(r[3] == what for r in rows)  # noqa: E731
    return rows, {"runs": len(records), "compared": len(rows) - count("only here"), "same": count("same"),
                  "differs": count("differs"), "flips": count("flips"), "min_seeds": min(n_seeds) if n_seeds else 0}
