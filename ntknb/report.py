"""Glue helpers: store a notebook's results for the book and for ``ntknb run``.

A notebook reports every number it wants quoted in the text with :func:`glue`; the book
pastes it with ``{glue:text}`name`:.3f`` (myst-nb), and ``ntknb run`` collects all glued
values into ``metrics.json`` (:func:`ntknb.book.run.extract_glued`).

:func:`glue` wraps :func:`myst_nb.glue` and first turns numpy / JAX scalars and arrays
into plain Python numbers and lists. Otherwise the stored ``text/plain`` repr is
``np.float64(0.5)`` (numpy 2) or ``Array(0.5, dtype=float32)`` (JAX), which neither the
``{glue:text}`` format spec nor ``metrics.json`` can read as a number.

Many values at once: :func:`glue_values` glues a chapter function's ``{name: value}`` dict,
:func:`glue_params` the parameters the text quotes (``glue_params(P, ["n_seeds", "n_test"])``).

Figures: :func:`glue` makes a glued matplotlib figure readable in the book
(:func:`ntknb.plotting.make_readable`: no text below 8 pt) and closes it, so the book shows
it once, where the text pastes it with ``{glue:figure}`` (the inline backend would otherwise
show it a second time under the cell, and so would a returned figure ending a cell: glue
returns ``None`` for a figure). ``display=True`` shows it under the cell instead.

Tables: pandas is not a dependency. :func:`markdown_table` renders rows as a GitHub /
MyST pipe table and :func:`glue_table` glues it as Markdown (paste it with
``{glue:md}`name``` or the ``{glue:md}`` directive).

The recorded runs the chapters tabulate (``notebooks/data/``) are read and appended by :mod:`ntknb.records`.
"""

from __future__ import annotations

import html
import math
import numbers
import re
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["glue", "glue_values", "glue_params", "glue_md", "glue_table", "glued_values", "load_records", "append_records", "markdown_table", "to_python",
           "NAME_PATTERN"]

#: Allowed glue names: identifier-like, plus ``.`` and ``-`` after the first character
#: (``acc_clean``, ``eps-8``, ``fig.spectrum``).
NAME_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")


def _check_name(name: Any) -> str:
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise ValueError(
            f"glue name must be identifier-like (a letter or '_', then letters, digits, "
            f"'_', '.', '-'), got {name!r}"
        )
    return name


def _is_array_like(value: Any) -> bool:
    """numpy arrays / scalars and JAX arrays (checked without importing JAX)."""
    return hasattr(value, "__array__") and hasattr(value, "dtype") and hasattr(value, "shape")


def to_python(value: Any) -> Any:
    """Convert numpy / JAX scalars and arrays (also nested in lists, tuples, dicts) to
    plain Python ``bool`` / ``int`` / ``float`` / ``complex`` / ``list``.

    Other objects (strings, figures, ``IPython.display`` objects, ...) are returned as is.
    """
    if type(value) in (bool, int, float, complex, str, type(None)):
        return value
    if _is_array_like(value):  # before the number checks: np.float64 subclasses float
        import numpy as np

        arr = np.asarray(value)
        return arr.item() if arr.ndim == 0 else arr.tolist()
    if isinstance(value, numbers.Number):  # e.g. fractions, decimal: best effort
        if isinstance(value, numbers.Integral):
            return int(value)
        if isinstance(value, numbers.Real):
            return float(value)
        return complex(value)
    if isinstance(value, Mapping):
        return {k: to_python(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_python(v) for v in value]
    return value


def glue(name: str, value: Any, display: bool = False) -> Any:
    """Glue ``value`` under ``name`` (see :func:`myst_nb.glue`) and return the plain value.

    Args:
        name: identifier-like key (:data:`NAME_PATTERN`); unique within a notebook.
        value: a number, numpy / JAX scalar or array, string, list, matplotlib figure,
            ``IPython.display`` object, ... Numeric values are stored as Python literals.
        display: also show the value in the cell output (default: hidden, only stored).

    Returns:
        The converted value (handy for ``acc = glue("acc", acc)``); ``None`` for a figure, so
        that a glue call ending a cell does not show the figure again.

    Raises:
        ValueError: if ``name`` is not identifier-like.
    """
    from myst_nb import glue as _myst_glue

    _check_name(name)
    plain = to_python(value)
    figure = _is_figure(plain)
    if figure:
        from ntknb import plotting

        plotting.make_readable(plain)
    _myst_glue(name, plain, display=display)
    _GLUED[name] = plain
    if figure:  # shown once: by the paste (or by display=True), not again by the inline backend
        import matplotlib.pyplot as plt

        plt.close(plain)
        return None  # nor as a cell's last expression
    return plain


def glue_values(values: Mapping[str, Any]) -> None:
    """:func:`glue` every ``name: value`` of ``values``, in order (a chapter's ``{name: value}``
    of numbers to quote). Returns ``None``: a cell ending with it shows nothing."""
    if not isinstance(values, Mapping):
        raise ValueError(f"glue_values: values must be a mapping {{name: value}}, got {type(values).__name__}")
    for name, value in values.items():
        glue(name, value)


def glue_params(params: Any, names: Sequence[str] | Mapping[str, str], suffix: str = "") -> None:
    """Glue parameters the text quotes: each field ``name`` of ``params`` (a chapter's ``Params``)
    under ``name + suffix``; or, with ``names`` a mapping ``{glue name: field name}``, under the
    glue name given. Returns ``None``.

    Raises:
        ValueError: a name that is no field of ``params`` (naming it and the fields), or a
            mapping together with a ``suffix``.
    """
    fields = list(params.names())
    if isinstance(names, str) or not isinstance(names, (Sequence, Mapping)):
        raise ValueError(f"glue_params: names must be a list of parameter names or a mapping {{glue name: "
                         f"parameter name}}, got {names!r}")
    if isinstance(names, Mapping):
        if suffix:
            raise ValueError(f"glue_params: a suffix ({suffix!r}) goes with a list of names, not with a mapping")
        pairs = list(names.items())
    else:
        pairs = [(name + suffix, name) for name in names]
    unknown = [field for _, field in pairs if field not in fields]
    if unknown:
        raise ValueError(f"glue_params: {unknown} are no parameters of {type(params).__name__}; the parameters are "
                         f"{fields}")
    for glue_name, field in pairs:
        glue(glue_name, getattr(params, field))


def _is_figure(value: Any) -> bool:
    """A matplotlib ``Figure`` (checked without importing matplotlib when it is not loaded)."""
    import sys

    module = sys.modules.get("matplotlib.figure")
    return module is not None and isinstance(value, module.Figure)


#: Every value glued in this process (this notebook's kernel), by name; later glues win.
_GLUED: dict[str, Any] = {}


def glued_values() -> dict[str, Any]:
    """A copy of the values glued so far in this process, ``{name: plain value}``: what
    ``ntknb run`` will write to ``metrics.json`` (figures and Markdown included as objects)."""
    return dict(_GLUED)


def _format_cell(value: Any, floatfmt: str) -> str:
    value = to_python(value)
    if isinstance(value, bool):
        text = str(value)
    elif isinstance(value, float):
        text = "—" if math.isnan(value) else format(value, floatfmt) if math.isfinite(value) else str(value)
    else:
        text = str(value)
    return text.replace("|", r"\|").replace("\n", " ")


def html_table(columns: Sequence[str], rows: Sequence[Sequence[Any]], floatfmt: str = ".3g") -> str:
    """A small HTML table of ``rows`` under the header ``columns`` (for
    ``IPython.display.HTML``); floats formatted with ``floatfmt``, everything else escaped."""

    def cell(v):
        real = isinstance(v, numbers.Real) and not isinstance(v, numbers.Integral)
        return f"{v:{floatfmt}}" if real else html.escape(str(v))

    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "\n".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in r) + "</tr>" for r in rows)
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table>"


def markdown_table(
    rows: Sequence[Sequence[Any]],
    columns: Sequence[str],
    floatfmt: str = ".4g",
    align: Sequence[str] | None = None,
) -> str:
    """A pipe table (MyST / GitHub Markdown) of ``rows`` under the header ``columns``.

    Floats are formatted with ``floatfmt``, NaN (not measured) as an em dash; ``align`` holds one of ``"l"``, ``"c"``,
    ``"r"`` per column (default: numbers right-aligned, the rest left-aligned).

    Raises:
        ValueError: if a row's length differs from ``len(columns)`` or ``align`` is bad.
    """
    columns = [str(c) for c in columns]
    if not columns:
        raise ValueError("markdown_table: columns must not be empty")
    rows = [list(r) for r in rows]
    for i, row in enumerate(rows):
        if len(row) != len(columns):
            raise ValueError(
                f"markdown_table: row {i} has {len(row)} cells, expected {len(columns)} "
                f"(columns {columns})"
            )
    if align is None:
        align = [
            "r" if rows and all(isinstance(to_python(r[j]), (int, float)) for r in rows) else "l"
            for j in range(len(columns))
        ]
    if len(align) != len(columns) or any(a not in ("l", "c", "r") for a in align):
        raise ValueError(f"markdown_table: align must hold one of 'l', 'c', 'r' per column, got {align!r}")
    rule = {"l": ":--", "c": ":-:", "r": "--:"}
    lines = [
        "| " + " | ".join(c.replace("|", r"\|") for c in columns) + " |",
        "| " + " | ".join(rule[a] for a in align) + " |",
    ]
    for row in rows:
        lines.append("| " + " | ".join(_format_cell(v, floatfmt) for v in row) + " |")
    return "\n".join(lines)


def glue_table(
    name: str,
    rows: Sequence[Sequence[Any]],
    columns: Sequence[str],
    floatfmt: str = ".4g",
    display: bool = False,
) -> str:
    """Glue a small table as Markdown under ``name``; returns the Markdown text.

    Paste it in the book with ``{glue:md}`name``` (inline) or::

        ```{glue:md} name
        :format: myst
        ```

    In ``metrics.json`` the table appears as its Markdown text.
    """
    from IPython.display import Markdown

    _check_name(name)
    text = markdown_table(rows, columns, floatfmt=floatfmt)
    glue(name, Markdown(text), display=display)
    return text


def glue_md(name: str, text: str) -> str:
    """Glue a sentence (Markdown) under ``name``, pasted with ``{glue:md}`name```; returns it."""
    from IPython.display import Markdown

    _check_name(name)
    glue(name, Markdown(text))
    return text
