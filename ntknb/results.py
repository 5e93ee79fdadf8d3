"""The book's "Results at a glance" page, generated at build time from the stored notebooks.

Every chapter glues its claims (:func:`ntknb.claims.glue_claims`, name ``claims``) into its
executed ``.ipynb``. :func:`results_page` reads them back with
:func:`ntknb.runner.extract_glued`, in table-of-contents order, checks each one (a stored
verdict must follow from its interval, threshold and direction: :meth:`Claim.from_json`),
and renders one MyST table: claim, source and where, the paper's value, our value with its
interval, what the claim needs, the scale, the verdict, and a link to the chapter (or to the
chapter section labelled ``claim.section``). Nothing on the page is typed.

The page is written to :data:`PAGE` (``book/results.md``, git-ignored) by
:func:`write_results_page`, which runs

* in :func:`ntknb.book.build` before ``jupyter-book build``, and
* as a Sphinx extension (``sphinx.extra_extensions: [ntknb.results]`` in ``_config.yml``) on
  ``config-inited``, so a plain ``jupyter-book build .`` regenerates it too.

The file is only rewritten when its text changes (Sphinx then rebuilds only that page).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from ntknb.claims import VERDICTS, Claim

__all__ = ["PAGE", "collect_claims", "results_page", "listed", "write_results_page", "setup"]

#: The generated page, relative to the book's root (listed in ``_toc.yml``).
PAGE = "book/results.md"
_DOC = PAGE[: -len(".md")]


def _root(root) -> Path:
    from ntknb.book import ROOT

    return Path(root) if root is not None else ROOT


def collect_claims(root: str | os.PathLike | None = None) -> list[tuple[str, list[Claim]]]:
    """``(docname, claims)`` for every notebook of the table of contents whose stored
    ``.ipynb`` glues ``claims`` (toc order). Raises ``ValueError`` naming the notebook when a
    glued claim is malformed, or its verdict does not follow from its numbers, or an id repeats."""
    import nbformat

    from ntknb.book import _toc_files
    from ntknb.runner import extract_glued

    root = _root(root)
    out, seen = [], {}
    for entry in _toc_files(root):
        ipynb = (root / entry).with_suffix(".ipynb")
        if not ipynb.is_file():
            continue
        glued = extract_glued(nbformat.read(ipynb, as_version=4))
        if "claims" not in glued:
            continue
        raw = glued["claims"]
        if not isinstance(raw, list):
            raise ValueError(f"{ipynb.relative_to(root)}: glued 'claims' must be a list of claim dicts, "
                             f"got {type(raw).__name__}")
        claims = []
        for i, item in enumerate(raw):
            try:
                claim = Claim.from_json(item)
            except ValueError as exc:
                raise ValueError(f"{ipynb.relative_to(root)}: claim {i}: {exc}") from None
            if claim.id in seen:
                raise ValueError(f"{ipynb.relative_to(root)}: claim id {claim.id!r} already used in {seen[claim.id]}")
            seen[claim.id] = entry
            claims.append(claim)
        out.append((entry, claims))
    return out


def _row(doc: str, c: Claim) -> list[str]:
    link = f"{{ref}}`{c.section}`" if c.section else f"{{doc}}`/{doc}`"
    counts = f"{c.n_seeds} seed{'s' if c.n_seeds != 1 else ''}"
    if c.n_test is not None:
        counts += f", {c.n_test} test points"
    return [
        f"**{(c.id)}**: {(c.claim)}",
        f"{{cite:t}}`{c.source}`, {(c.where)}",
        (c.paper),
        (c.interval_text),
        (c.requirement_text),
        f"{(c.scale)} ({counts})",
        f"**{c.verdict}**",
        link,
    ]


_COLUMNS = ["Claim", "Source", "Paper", "Ours [interval]", "Needs", "Scale", "Verdict", "Evidence"]


def results_page(root: str | os.PathLike | None = None) -> str:
    """The page's MyST Markdown (see the module docstring)."""
    from ntknb.report import markdown_table

    chapters = collect_claims(root)
    claims = [(doc, c) for doc, cs in chapters for c in cs]
    lines = [
        "# Results at a glance",
        "",
        "This page is generated when the book is built, from the claims each chapter records in its "
        "executed notebook; nothing on it is typed. Each row is a claim of a source, the effect size "
        "the claim needs (fixed before measuring), and what the chapter measured, with its interval. "
        "A claim is *reproduced* when the whole interval lies beyond the threshold in the claimed "
        "direction, *contradicted* when it lies wholly on the other side, and *inconclusive* "
        "otherwise.",
        "",
    ]
    if not claims:
        lines += [
            "No chapter records claims yet: when a chapter's notebook glues its `claims`, they are "
            "listed here at the next build.",
            "",
        ]
        return "\n".join(lines)
    counts = {v: sum(c.verdict == v for _, c in claims) for v in VERDICTS}
    n_ch = len([1 for _, cs in chapters if cs])
    lines += [
        f"{len(claims)} claim{'s' if len(claims) != 1 else ''} from {n_ch} chapter{'s' if n_ch != 1 else ''}: "
        + ", ".join(f"{counts[v]} {v}" for v in VERDICTS) + ".",
        "",
        markdown_table([_row(doc, c) for doc, c in claims], _COLUMNS, align=["l"] * len(_COLUMNS)),
        "",
    ]
    return "\n".join(lines)


def listed(root: str | os.PathLike | None = None) -> bool:
    """Whether the book's ``_toc.yml`` lists the page."""
    from ntknb.book import _toc_files

    root = _root(root)
    return (root / "_toc.yml").is_file() and _DOC in _toc_files(root)


def write_results_page(root: str | os.PathLike | None = None) -> Path | None:
    """Write :func:`results_page` to ``root/book/results.md`` (atomically, and only when the
    text changed) if ``_toc.yml`` lists it. Returns the path, or ``None`` when not listed."""
    root = _root(root)
    if not listed(root):
        return None
    path = root / PAGE
    text = results_page(root)
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".results.", suffix=".md.tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)
    return path


def _on_config_inited(app: Any, config: Any) -> None:
    write_results_page(app.srcdir)


def setup(app: Any) -> dict:
    """Sphinx extension: regenerate the page before the sources are read."""
    app.connect("config-inited", _on_config_inited, priority=100)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
