"""The book's "Results at a glance" page: every chapter's claims in one table.

Every chapter glues its claims (:func:`ntknb.claims.glue_claims`, name ``claims``) into its
executed ``.ipynb``. :func:`ntknb.book.write_results_page` reads them back (table-of-contents
order, :func:`ntknb.runner.extract_glued`) at book build time and passes them here:
:func:`check_claims` validates them (a stored verdict must follow from its interval, threshold
and direction: :meth:`ntknb.claims.Claim.from_json`; ids are unique across the book) and
:func:`results_page` renders the page's MyST Markdown: claim, source and where, the paper's
value, our value with its interval, what the claim needs, the scale, the verdict, and a link to
the chapter (or to the chapter section labelled ``claim.section``). Nothing on it is typed;
without claims the page says so.

The page is :data:`PAGE` (``book/results.md``, git-ignored), written by
:func:`ntknb.book.build` before ``jupyter-book build`` and by the Sphinx extension
``ntknb.book`` (``_config.yml``) on ``config-inited``, so a plain ``jupyter-book build .``
regenerates it too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ntknb.claims import VERDICTS, Claim, seed_check_rows, seed_check_summary

__all__ = ["PAGE", "DOCNAME", "STATUS_PAGE", "STATUS_DOCNAME", "check_claims", "results_page", "status_page"]

#: The generated page, relative to the book's root (listed in ``_toc.yml``).
PAGE = "book/results.md"
#: Its Sphinx docname.
DOCNAME = PAGE[: -len(".md")]
#: The generated "Execution status" page (:func:`status_page`) and its docname.
STATUS_PAGE = "book/status.md"
STATUS_DOCNAME = STATUS_PAGE[: -len(".md")]


def check_claims(chapters: Sequence[tuple[str, Any]]) -> list[tuple[str, list[Claim]]]:
    """``(docname, claims)`` for every chapter that glued claims, in the given order.

    ``chapters``: ``(docname, glued)`` pairs, ``glued`` being the chapter's glued ``claims``
    value (a list of :meth:`Claim.to_json` dicts) or ``None`` when it glues none. Raises
    ``ValueError`` naming the chapter when a claim is malformed, its verdict does not follow
    from its numbers, or an id repeats."""
    out, seen = [], {}
    for doc, raw in chapters:
        if raw is None:
            continue
        if not isinstance(raw, list):
            raise ValueError(f"{doc}: glued 'claims' must be a list of claim dicts, got {type(raw).__name__}")
        claims = []
        for i, item in enumerate(raw):
            try:
                claim = Claim.from_json(item)
            except ValueError as exc:
                raise ValueError(f"{doc}: claim {i}: {exc}") from None
            if claim.id in seen:
                raise ValueError(f"{doc}: claim id {claim.id!r} already used in {seen[claim.id]}")
            seen[claim.id] = doc
            claims.append(claim)
        out.append((doc, claims))
    return out


def _checked(c: Claim, records: Sequence[Mapping]) -> str:
    """What the runs at seeds never used before (:func:`ntknb.claims.load_seed_checks`) found for
    ``c``: `` · seeds 4000-4002: 1.3 [1.2, 1.4] contradicted (same)`` per run that has it."""
    out = []
    for rec in records:
        for row in seed_check_rows([c], rec["claims"]):
            if row[3] != "only here":
                seeds = rec["seeds"]
                out.append(f" · seeds {seeds[0]}-{seeds[-1]}: {row[2]} ({row[3]})")
    return "".join(out)


def _row(doc: str, c: Claim, records: Sequence[Mapping] = ()) -> list[str]:
    link = f"{{ref}}`evidence <{c.section}>`" if c.section else f"{{doc}}`evidence </{doc}>`"
    counts = f"{c.n_seeds} seed{'s' if c.n_seeds != 1 else ''}"
    if c.n_test is not None:
        counts += f", {c.n_test} test points"
    return [
        f"**{c.id}**: {c.claim} ({{cite:t}}`{c.source}`, {c.where}; paper: {c.paper}; "
        f"here: {c.scale} ({counts}))",
        f"{c.interval_text}, needs {c.requirement_text}",
        f"**{c.verdict}** ({link}){_checked(c, records)}",
    ]


#: Three columns, so that the table stays readable on a phone (the details sit in the claim cell).
_COLUMNS = ["Claim (source; paper; our scale)", "Ours [interval], needs", "Verdict"]


def results_page(chapters: Sequence[tuple[str, Any]], seed_checks: Mapping[str, Sequence[Mapping]] | None = None) -> str:
    """The page's MyST Markdown from ``(docname, glued claims or None)`` pairs (see
    :func:`check_claims`) and, per docname, the chapter's recorded runs at seeds never used before
    (``seed_checks``; :func:`ntknb.claims.load_seed_checks`), whose verdicts each claim's row
    shows beside its own."""
    from ntknb.report import markdown_table

    seed_checks = seed_checks or {}
    chapters = check_claims(chapters)
    claims = [(doc, c) for doc, cs in chapters for c in cs]
    lines = [
        "# Results at a glance",
        "",
        "This page is generated when the book is built, from the claims each chapter records in its "
        "executed notebook; nothing on it is typed. Each row is a claim of a source, the effect size "
        "the claim needs (fixed before measuring), and what the chapter measured, with its interval. "
        "A claim is *reproduced* when the whole interval lies beyond the threshold in the claimed "
        "direction, *contradicted* when it lies wholly on the other side, and *inconclusive* "
        "otherwise. Where a chapter was also run from seeds never used while it was written "
        "(`scripts/seed_check.py`, recorded in `notebooks/data/`), the verdict cell adds that run's "
        "value and verdict, and whether it is the *same*, *differs* (one of the two inconclusive) or "
        "*flips* (reproduced against contradicted).",
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
    checked = {doc: seed_check_summary(cs, seed_checks.get(doc, ()))[1] for doc, cs in chapters}
    n_checked = sum(s["runs"] > 0 for s in checked.values())
    lines += [
        f"{len(claims)} claim{'s' if len(claims) != 1 else ''} from {n_ch} chapter{'s' if n_ch != 1 else ''}: "
        + ", ".join(f"{counts[v]} {v}" for v in VERDICTS) + ". "
        + (f"{n_checked} chapter{'s' if n_checked != 1 else ''} rerun from seeds never used before: "
           f"{sum(s['compared'] for s in checked.values())} verdicts compared, "
           + ", ".join(f"{sum(s[k] for s in checked.values())} {k}" for k in ("same", "differs", "flips")) + "."
           if n_checked else "No chapter has been rerun from seeds never used before yet."),
        "",
        ":::{container} ntknb-results",  # stacked into one block per claim on a phone (ntknb.css)
        markdown_table([_row(doc, c, seed_checks.get(doc, ())) for doc, c in claims], _COLUMNS,
                       align=["l"] * len(_COLUMNS)),
        ":::",
        "",
    ]
    return "\n".join(lines)


def _fmt_runtime(seconds) -> str:
    if not isinstance(seconds, (int, float)):
        return "not recorded"
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def status_page(records: Sequence[tuple[str, dict]]) -> str:
    """The "Execution status" page's MyST Markdown from ``(docname, record)`` pairs
    (:func:`ntknb.book.execution_records`): per chapter the run time of its defaults, when and on
    what machine it was executed, and the library versions; nothing on it is typed."""
    from ntknb.report import markdown_table

    lines = [
        "# Execution status",
        "",
        "This page is generated when the book is built, from the executed notebooks stored with the "
        "book: how long each chapter took at its default parameters, when and where it ran, and with "
        "which library versions (recorded by `python -m ntknb.book execute`). Timings were taken on a "
        "shared machine; expect them to vary by a factor of about two. \"not recorded\" marks a "
        "notebook executed before this record existed.",
        "",
    ]
    if not records:
        return "\n".join(lines + ["No executed notebook is listed in the table of contents.", ""])
    rows, versions = [], {}
    for doc, rec in records:
        rows.append([f"{{doc}}`/{doc}`", _fmt_runtime(rec.get("runtime_s")),
                     str(rec.get("date") or "not recorded")[:16].replace("T", " "),
                     rec.get("machine") or "not recorded"])
        for name, v in (rec.get("versions") or {}).items():
            if v:
                versions.setdefault(name, set()).add(v)
    total = sum(r.get("runtime_s") for _, r in records if isinstance(r.get("runtime_s"), (int, float)))
    lines += [
        markdown_table(rows, ["Chapter", "Run time (defaults)", "Executed (UTC)", "Machine"],
                       align=["l", "r", "l", "l"]),
        "",
        f"All chapters together: {_fmt_runtime(total)}.",
        "",
        "## Library versions",
        "",
    ]
    if versions:
        lines += [markdown_table([[n, ", ".join(sorted(v))] for n, v in sorted(versions.items())],
                                 ["Package", "Version(s)"], align=["l", "l"]), ""]
        pythons = sorted({r.get("python") for _, r in records if r.get("python")})
        lines += [f"Python {', '.join(pythons)}.", ""]
    else:
        lines += ["Not recorded yet (the notebooks were executed before `ntknb.book execute` recorded "
                  "versions); the pinned versions are in `requirements.lock`.", ""]
    return "\n".join(lines)
