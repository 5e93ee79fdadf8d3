"""A claim of a source, measured: one type, one verdict rule, one table.

A :class:`Claim` records what a paper says (``source``, a bib key of ``book/references.bib``;
``where``, its section / figure / equation; ``claim``, one sentence; ``paper``, its number or
words), the effect size the claim needs (``direction`` and ``threshold``, fixed and justified
*before* measuring: "orders of magnitude" is a ratio of at least 10, not 1), and what this
book measured (``measured`` with the interval ``[low, high]`` over ``n_seeds`` seeds and
``n_test`` test points, at ``scale``). Its ``verdict`` is computed by :func:`verdict`, never
typed:

* ``"reproduced"`` — the whole interval lies beyond the threshold in the claimed direction
  (``low > threshold`` for ``"greater"``, ``high < threshold`` for ``"less"``);
* ``"contradicted"`` — the whole interval lies on the other side (``high < threshold``,
  resp. ``low > threshold``);
* ``"inconclusive"`` — otherwise (the interval contains or touches the threshold, or it is
  unbounded, e.g. a single seed with no other source of variation).

Chapters glue their claims as plain JSON (:func:`glue_claims`, name ``claims``), so
``ntknb run`` writes them into ``metrics.json`` and the book's "Results at a glance" page
(:mod:`ntknb.results`) lists them; :func:`claims_html` renders them as an HTML table.
:func:`summary_markdown` turns them into a chapter's summary in words (what reproduces, what
does not, and why, from the verdicts); :func:`glue_summary` glues it for ``{glue:md}``.
:func:`seed_check_rows` sets a run's claims beside those of another run (e.g. one with seeds never
used before) and says where a verdict flips between reproduced and contradicted.
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

__all__ = [
    "DIRECTIONS",
    "VERDICTS",
    "Claim",
    "verdict",
    "bib_keys",
    "claims_html",
    "show_claims",
    "glue_claims",
    "summary_markdown",
    "glue_summary",
    "SEED_CHECK_COLUMNS",
    "seed_check_rows",
    "SEED_CHECK_SUFFIX",
    "seed_check_record",
    "load_seed_checks",
    "seed_check_summary",
]

DIRECTIONS = ("greater", "less")
VERDICTS = ("reproduced", "contradicted", "inconclusive")
_ID = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")
_BIB = Path(__file__).resolve().parents[1] / "book" / "references.bib"


def verdict(direction: str, threshold: float, low: Optional[float], high: Optional[float]) -> str:
    """The verdict of a claim (module docstring): ``"reproduced"``, ``"contradicted"`` or
    ``"inconclusive"``. ``low`` / ``high`` of ``None`` (or ``∓inf``) mean an unbounded side."""
    if direction not in DIRECTIONS:
        raise ValueError(f"parameter 'direction' must be one of {list(DIRECTIONS)!r}, got {direction!r}")
    lo = -math.inf if low is None else float(low)
    hi = math.inf if high is None else float(high)
    t = float(threshold)
    if math.isnan(lo) or math.isnan(hi) or math.isnan(t):
        return "inconclusive"
    beyond, short = (lo > t, hi < t) if direction == "greater" else (hi < t, lo > t)
    if beyond:
        return "reproduced"
    if short:
        return "contradicted"
    return "inconclusive"


@lru_cache(maxsize=4)
def _read_keys(path: str, mtime: float) -> frozenset:
    text = Path(path).read_text(encoding="utf-8")
    return frozenset(re.findall(r"@\w+\s*\{\s*([^,\s]+)\s*,", text))


def bib_keys(path: str | Path | None = None) -> frozenset:
    """The entry keys of a BibTeX file (default: the book's ``book/references.bib``);
    empty when the file does not exist."""
    p = Path(path) if path is not None else _BIB
    if not p.is_file():
        return frozenset()
    return _read_keys(str(p), p.stat().st_mtime)


def _num(name: str, value: Any, *, none_is: Optional[float] = None) -> float:
    if value is None and none_is is not None:
        return none_is
    if getattr(value, "shape", None) == () and hasattr(value, "item"):
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"Claim: parameter {name!r} must be a number, got {value!r}")
    value = float(value)
    if math.isnan(value) or (none_is is None and not math.isfinite(value)):
        raise ValueError(f"Claim: parameter {name!r} must be a finite number, got {value!r}")
    return value


def _text(name: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"Claim: parameter {name!r} must be a non-empty string, got {value!r}")
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
      verdict: computed from ``direction``, ``threshold``, ``low``, ``high`` (not an argument).
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
        if self.direction not in DIRECTIONS:
            raise ValueError(f"Claim {self.id}: parameter 'direction' must be one of {list(DIRECTIONS)!r}, "
                             f"got {self.direction!r}")
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
        set_("verdict", verdict(self.direction, self.threshold, self.low, self.high))

    # ------------------------------------------------------------------ constructors

    @classmethod
    def from_interval(cls, interval: Any, **fields: Any) -> "Claim":
        """A claim whose ``measured``, ``low``, ``high`` come from an interval (e.g. a
        :class:`ntknb.stats.Interval`: ``estimate``, ``low``, ``high``). When not given,
        ``n_seeds`` is ``interval.n`` for a t interval over seeds (``method == "t"``) and
        ``n_test`` is ``interval.n`` for a binomial interval on test points
        (``"wilson"`` / ``"clopper-pearson"``)."""
        method = getattr(interval, "method", None)
        if method == "t":
            fields.setdefault("n_seeds", interval.n)
        elif method in ("wilson", "clopper-pearson"):
            fields.setdefault("n_test", interval.n)
        missing = [k for k in ("n_seeds", "n_test") if k not in fields]
        if missing:
            raise ValueError(f"Claim.from_interval: give {missing} (a {method!r} interval does not say them)")
        return cls(measured=interval.estimate, low=interval.low, high=interval.high, **fields)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "Claim":
        """The inverse of :meth:`to_json`. A stored ``verdict`` that differs from the one the
        fields imply raises ``ValueError`` (verdicts are never typed)."""
        if not isinstance(data, Mapping):
            raise ValueError(f"Claim.from_json: expected a mapping, got {type(data).__name__}")
        names = [f.name for f in dataclasses.fields(cls) if f.init]
        unknown = set(data) - set(names) - {"verdict"}
        missing = [n for n in names if n not in data and n != "section"]
        if unknown or missing:
            raise ValueError(f"Claim.from_json: unknown fields {sorted(unknown)}, missing fields {missing}")
        claim = cls(**{n: data[n] for n in names if n in data})
        stored = data.get("verdict")
        if stored is not None and stored != claim.verdict:
            raise ValueError(f"Claim {claim.id}: stored verdict {stored!r} does not follow from its interval, "
                             f"threshold and direction ({claim.verdict!r})")
        return claim

    # -------------------------------------------------------------------- outputs

    def to_json(self) -> dict:
        """Plain JSON values (``str``, ``float``, ``int``, ``None``): unbounded ``low`` /
        ``high`` become ``None``; ``verdict`` included."""
        out = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, float) and not math.isfinite(v):
                v = None
            out[f.name] = v
        return out

    @property
    def interval_text(self) -> str:
        """``"0.731 [0.702, 0.760]"``; unbounded sides as ``-∞`` / ``∞``."""
        return f"{_fmt(self.measured)} [{_fmt(self.low)}, {_fmt(self.high)}]"

    @property
    def requirement_text(self) -> str:
        """``"> 10"`` or ``"< 0"``: what the claim needs of the measured quantity."""
        return f"{'>' if self.direction == 'greater' else '<'} {_fmt(self.threshold)}"

    @property
    def explanation(self) -> str:
        """The verdict in words, e.g. ``"reproduced: the whole interval [12.1, 15.3] lies above
        the threshold 10"``."""
        side = {"greater": ("above", "below"), "less": ("below", "above")}[self.direction]
        iv = f"[{_fmt(self.low)}, {_fmt(self.high)}]"
        if self.verdict == "reproduced":
            return f"reproduced: the whole interval {iv} lies {side[0]} the threshold {_fmt(self.threshold)}"
        if self.verdict == "contradicted":
            return f"contradicted: the whole interval {iv} lies {side[1]} the threshold {_fmt(self.threshold)}"
        return (f"inconclusive: the interval {iv} does not lie wholly {side[0]} or {side[1]} "
                f"the threshold {_fmt(self.threshold)}")


def _fmt(v: Optional[float]) -> str:
    if v is None or (isinstance(v, float) and math.isinf(v)):
        return "∞" if v is not None and v > 0 else "-∞" if v is not None else "–"
    return f"{v:.3g}"


def _as_claims(claims: Iterable[Any]) -> list[Claim]:
    out = []
    for c in claims:
        out.append(c if isinstance(c, Claim) else Claim.from_json(c))
    ids = [c.id for c in out]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        raise ValueError(f"claims: ids must be unique; repeated {dup}")
    return out


_HEAD = ("Claim", "Source", "Paper", "Needs", "Measured [interval]", "Scale", "Verdict")
_COLOURS = {"reproduced": "#1a7f37", "contradicted": "#cf222e", "inconclusive": "#9a6700"}


def claims_html(claims: Sequence[Any]) -> str:
    """An HTML table of ``claims`` (:class:`Claim` objects or their :meth:`Claim.to_json`
    dicts): claim, source and where, the paper's value, what the claim needs, the measured
    value with its interval, the scale (with seeds and test points), and the verdict in words."""
    rows = []
    for c in _as_claims(claims):
        counts = f"{c.n_seeds} seed{'s' if c.n_seeds != 1 else ''}"
        if c.n_test is not None:
            counts += f", {c.n_test} test points"
        cells = [
            f"<strong>{html.escape(c.id)}</strong><br>{html.escape(c.claim)}",
            f"{html.escape(c.source)}<br>{html.escape(c.where)}",
            html.escape(c.paper),
            html.escape(c.requirement_text),
            html.escape(c.interval_text),
            f"{html.escape(c.scale)}<br>({counts})",
            f'<span style="color:{_COLOURS[c.verdict]}"><strong>{c.verdict}</strong></span>'
            f"<br>{html.escape(c.explanation.split(': ', 1)[1])}",
        ]
        rows.append("<tr>" + "".join(f"<td>{x}</td>" for x in cells) + "</tr>")
    if not rows:
        return "<p><em>No claims.</em></p>"
    head = "<tr>" + "".join(f"<th>{h}</th>" for h in _HEAD) + "</tr>"
    return (f'<table class="ntknb-claims">\n<thead>{head}</thead>\n<tbody>\n' + "\n".join(rows)
            + "\n</tbody>\n</table>")


def show_claims(claims: Sequence[Any]):
    """``IPython.display.HTML`` of :func:`claims_html` (the last expression of a cell shows it)."""
    from IPython.display import HTML

    return HTML(claims_html(claims))


def glue_claims(claims: Sequence[Any], name: str = "claims"):
    """Glue the claims as a list of plain JSON dicts under ``name`` (``metrics.json`` and the
    results page read it) and return the HTML table to show in the cell."""
    from ntknb.report import glue

    objs = _as_claims(claims)
    glue(name, [c.to_json() for c in objs])
    return show_claims(objs)


_WHY = {
    "reproduced": "the whole interval lies beyond the threshold the claim needs",
    "contradicted": "the whole interval lies on the other side of the threshold",
    "inconclusive": "the interval contains the threshold, so this run cannot tell; more seeds "
                    "or test points, or the paper's scale, would narrow it",
}
_HEADS = {"reproduced": "Reproduced", "contradicted": "Not reproduced (contradicted)",
          "inconclusive": "Undecided (inconclusive)"}


def summary_markdown(claims: Sequence[Any]) -> str:
    """A chapter's summary in words, from its claims (:class:`Claim` objects or their JSON
    dicts): a count sentence, then one bullet per claim grouped by verdict (reproduced,
    contradicted, inconclusive), each with the claim, the measured value and interval, what it
    needs, the scale, and why the verdict follows. Nothing in it is typed by the chapter."""
    objs = _as_claims(claims)
    if not objs:
        return "This chapter checks no claim of its sources."
    n = len(objs)
    counts = {v: sum(c.verdict == v for c in objs) for v in VERDICTS}
    words = {"reproduced": "reproduced", "contradicted": "contradicted", "inconclusive": "inconclusive"}
    parts = [f"{counts[v]} {words[v]}" for v in VERDICTS if counts[v]]
    lines = [f"Of the {n} claim{'s' if n != 1 else ''} this chapter checks, " + ", ".join(parts) + ".", ""]
    for v in VERDICTS:
        group = [c for c in objs if c.verdict == v]
        if not group:
            continue
        lines.append(f"**{_HEADS[v]}** ({_WHY[v]}):")
        lines.append("")
        for c in group:
            counts_ = f"{c.n_seeds} seed{'s' if c.n_seeds != 1 else ''}"
            if c.n_test is not None:
                counts_ += f", {c.n_test} test points"
            lines.append(f"- {c.claim} ({c.source}, {c.where}; the paper: {c.paper}.) Measured "
                         f"{c.interval_text}, needs {c.requirement_text}; {c.scale} ({counts_}).")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def glue_summary(claims: Sequence[Any], name: str = "claims_summary") -> str:
    """Glue :func:`summary_markdown` of ``claims`` as Markdown under ``name``; paste it with
    the ``{glue:md}`` directive (``:format: myst``). Returns the text (assign it, ``_ = ...``,
    so the cell shows nothing)."""
    from ntknb.report import glue_md

    return glue_md(name, summary_markdown(claims))


SEED_CHECK_COLUMNS = ["claim", "this run", "other run", "verdict"]

#: A chapter's runs at base seeds never used before: ``notebooks/data/<notebook>`` + this suffix,
#: one JSON record a run (:func:`seed_check_record`, read by :func:`load_seed_checks`).
SEED_CHECK_SUFFIX = "_seed_check.jsonl"


def _brief(c: Any) -> tuple[str, str, str]:
    """``(id, verdict, "measured [low, high]")`` of a :class:`Claim` or of a claim's JSON dict,
    full or as recorded by :func:`seed_check_record` (``id``, ``verdict``, ``measured``, ``low``,
    ``high`` at least)."""
    if isinstance(c, Claim) or "direction" in c:
        c = _as_claims([c])[0]
        return c.id, c.verdict, c.interval_text
    low, high = (-math.inf if c["low"] is None else c["low"]), (math.inf if c["high"] is None else c["high"])
    return c["id"], c["verdict"], f"{_fmt(c['measured'])} [{_fmt(low)}, {_fmt(high)}]"  # None: unbounded


def seed_check_rows(claims: Sequence[Any], other: Sequence[Any]) -> list:
    """Rows ``[id, this run's "measured [interval] verdict", the other run's, "same" | "flips" |
    "differs" | "only here"]`` for every claim of ``claims`` (:class:`Claim` objects or their
    JSON dicts), matched by id in ``other`` (the same, or the brief dicts of
    :func:`seed_check_record`). A verdict *flips* when one run reproduces the claim and the other
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


def seed_check_record(run_dir: str | Path, *, command: str) -> dict:
    """The record of one run of a chapter at a base seed never used before, from the output folder
    of ``ntknb run NAME -p seed SEED`` (its ``metrics.json`` and ``parameters.yaml``):
    ``{"seeds", "parameters", "runtime_s", "loadavg", "command", "claims"}``, ``claims`` holding
    each claim's ``id``, ``verdict``, ``measured``, ``low``, ``high``, ``n_seeds`` and ``n_test``.
    Raises ``ValueError`` when the run glued no claims."""
    import json
    import os

    import yaml

    run_dir = Path(run_dir)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    params = yaml.safe_load((run_dir / "parameters.yaml").read_text())
    if not metrics.get("claims"):
        raise ValueError(f"{run_dir}: the run glued no 'claims'; nothing to record")
    keep = ("id", "verdict", "measured", "low", "high", "n_seeds", "n_test")
    seed, n = int(params["seed"]), int(params.get("n_seeds", 1))
    return {"seeds": list(range(seed, seed + n)), "parameters": params,
            "runtime_s": metrics.get("runtime_s"), "loadavg": " ".join(f"{v:.2f}" for v in os.getloadavg()),
            "command": command, "claims": [{k: c.get(k) for k in keep} for c in metrics["claims"]]}


def load_seed_checks(path: str | Path) -> list:
    """The records of a chapter's seed-check file (:data:`SEED_CHECK_SUFFIX`; ``[]`` when there is
    none)."""
    from ntknb.report import load_records

    return load_records(path, missing_ok=True)


def seed_check_summary(claims: Sequence[Any], records: Sequence[Mapping]) -> tuple[list, dict]:
    """``(rows, summary)``: how the verdicts of ``claims`` (a page's) compare with those of the
    recorded runs at seeds never used before (:func:`load_seed_checks`). ``rows``: the
    :func:`seed_check_rows` of every record (:data:`SEED_CHECK_COLUMNS`; the other run's cell
    names its seeds); ``summary``: ``runs``, ``compared`` (claims matched by id), ``same``,
    ``differs`` (one verdict inconclusive), ``flips`` (reproduced <-> contradicted) and
    ``min_seeds`` (the fewest seeds behind a recorded claim; 0 without records)."""
    rows = []
    for rec in records:
        seeds = rec["seeds"]
        for r in seed_check_rows(claims, rec["claims"]):
            rows.append(r if r[3] == "only here" else [r[0], r[1], f"{r[2]} (seeds {seeds[0]}-{seeds[-1]})", r[3]])
    n_seeds = [c["n_seeds"] for rec in records for c in rec["claims"] if c.get("n_seeds") is not None]
    count = lambda what: sum(r[3] == what for r in rows)  # noqa: E731
    return rows, {"runs": len(records), "compared": len(rows) - count("only here"), "same": count("same"),
                  "differs": count("differs"), "flips": count("flips"), "min_seeds": min(n_seeds) if n_seeds else 0}
