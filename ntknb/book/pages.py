"""The book's generated pages: "Results at a glance" (every chapter's claims, counted, grouped by
chapter) and "Execution status" (when and where each chapter was executed).

Every chapter glues its claims (:func:`ntknb.claims.glue_claims`, name ``claims``) into its
executed ``.ipynb``. :func:`write_results_page` reads them back (table-of-contents order,
:func:`glued_claims`, :func:`ntknb.book.run.extract_glued`) at book build time:
:func:`check_claims` validates them (a stored verdict must follow from its interval, threshold
and direction: :meth:`ntknb.claims.Claim.from_json`; ids are unique across the book) and
:func:`results_page` renders the page's MyST Markdown: the counts of the four verdicts and a
table of them per chapter first, then per chapter and source each claim, its verdict badge first
(the ``{ntknb-verdict}`` role of :mod:`ntknb.book.build`), our value with its interval and what
the claim needs, a failed precondition, a link to the claim's entry in the chapter's claims
block, when its threshold was registered (:func:`registration_text`) and the runs at seeds never
used before (:func:`seed_checks`). Nothing on it is typed; without claims the page says so.
:func:`write_status_page` writes the other page from each notebook's execution record
(:func:`execution_records`).

The pages are :data:`PAGE` and :data:`STATUS_PAGE` (``book/results.md``, ``book/status.md``,
git-ignored), written by :func:`ntknb.book.build.build` before ``jupyter-book build`` and by the
Sphinx extension ``ntknb.book`` (``_config.yml``) on ``config-inited``, so a plain
``jupyter-book build .`` regenerates them too.
"""

from __future__ import annotations

import datetime as _dt
import os
import posixpath
import re
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Optional

from ntknb import paths
from ntknb.book.params import notebook_parameters
from ntknb.book.run import extract_glued
from ntknb.book.sync import toc_files
from ntknb.claims import (VERDICT_TEXT, VERDICTS, Claim, claim_anchor, readable, registrations, seed_check_mismatch,
                          seed_check_rows, seed_check_summary)
from ntknb.records import SEED_CHECK_SUFFIX, load_seed_checks

__all__ = ["PAGE", "DOCNAME", "STATUS_PAGE", "STATUS_DOCNAME", "check_claims", "registration_text", "results_page",
           "status_page", "glued_claims", "execution_records", "notebook_titles", "seed_checks", "write_results_page",
           "write_status_page"]

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
    """What the runs at seeds never used before (:func:`ntknb.records.load_seed_checks`) found for
    ``c``: `` · seeds 4000-4002: 1.3 [1.2, 1.4] contradicted (same)`` per run that has it."""
    out = []
    for rec in records:
        for row in seed_check_rows([c], rec["claims"]):
            if row[3] != "only here":
                seeds = rec["seeds"]
                out.append(f" · seeds {seeds[0]}-{seeds[-1]}: {row[2]} ({row[3]})")
    return "".join(out)


def _date(text: Any) -> Optional[_dt.datetime]:
    """An ISO 8601 date (UTC when it names no zone), ``None`` when absent or unreadable."""
    try:
        d = _dt.datetime.fromisoformat(str(text))
    except ValueError:
        return None
    return d if d.tzinfo else d.replace(tzinfo=_dt.timezone.utc)


def registration_text(reg: Optional[Mapping], executed: Any = None) -> str:
    """How a claim's threshold was registered (a :func:`ntknb.claims.registrations` record, or
    ``None`` when no register file holds the claim) and whether the chapter's stored run
    (executed at ``executed``, ISO 8601) preceded the registration."""
    if reg is None:
        return "threshold not in a register"
    if reg["status"] == "not under version control":
        return f"registered in `{reg['file']}` (not under version control)"
    if reg["status"] == "not committed":
        return f"registration in `{reg['file']}` not committed yet"
    text = f"registered in {reg['commit'][:7]} ({reg['date'][:10]})"
    if reg["changes"]:
        text += f", changed {reg['changes']} time{'s' if reg['changes'] != 1 else ''} since first registered"
    run, when = _date(executed), _date(reg["date"])
    if run is None:
        return text + "; the stored run's date is not recorded"
    return text + ("; the stored run (" + str(executed)[:10] + ") came after" if run >= when
                   else "; **the stored run (" + str(executed)[:10] + ") preceded it**")


def _link(doc: str, c: Claim) -> str:
    """An HTML link from this page to the claim's entry in its chapter's claims block."""
    href = posixpath.relpath(doc, posixpath.dirname(DOCNAME)) + ".html#" + claim_anchor(c.id)
    return f'<a href="{href}">evidence</a>'


def _item(doc: str, c: Claim, records: Sequence[Mapping], reg: Optional[Mapping], executed: Any) -> str:
    """One claim as a list item: verdict badge first, then the claim, our value and what it
    needs, the link to its evidence, its registration and the runs at other seeds."""
    why = "".join(f" (not met: {readable(p.text, 'myst')})" for p in c.failed_preconditions)
    return (f"- {{ntknb-verdict}}`{c.verdict}` {readable(c.claim, 'myst')} — ours {readable(c.interval_text, 'myst')}, "
            f"needs {readable(c.requirement_text, 'myst')}{why} · {readable(c.scale.split(',')[0].strip(), 'myst')}, "
            f"{c.counts_text} · {_link(doc, c)} · "
            f"{registration_text(reg, executed)}{readable(_checked(c, records), 'myst')}")


def _numbered(doc: str, title: str) -> str:
    """``"01 · Title"`` for a docname whose name starts with the chapter's number (``01_...``)."""
    number = re.match(r"\d+[a-z]?(?=_)", posixpath.basename(doc))
    return f"{number.group(0)} · {title}" if number and title != doc else title


def _counts(claims: Sequence[Claim]) -> dict:
    return {v: sum(c.verdict == v for c in claims) for v in VERDICTS}


def _other_runs_text(others: Sequence[Mapping]) -> str:
    """A sentence on the seed-check runs at other parameters than the page's (not compared)."""
    if not others:
        return ""
    runs = "; ".join(f"seeds {r['seeds'][0]}-{r['seeds'][-1]} ("
                     + ", ".join(f"`{k}`" for k in r["mismatch"][:6]) + (", ..." if len(r["mismatch"]) > 6 else "")
                     + ")" for r in others)
    return (f" Not compared: {len(others)} recorded run{'s' if len(others) != 1 else ''} at seeds never used "
            f"before, at parameters other than this page's defaults: {runs}.")


def _chapter_section(doc: str, title: str, claims: Sequence[Claim], records: Sequence[Mapping],
                     regs: Mapping[str, Mapping], executed: Any, others: Sequence[Mapping] = ()) -> list[str]:
    """A chapter's heading, its counts, and its claims grouped by source; ``others``: its
    seed-check runs at other parameters (each with ``mismatch``), named but not compared."""
    counts = _counts(claims)
    lines = [f"## {title}", "",
             f"{{doc}}`The chapter </{doc}>`: " + ", ".join(f"{counts[v]} {VERDICT_TEXT[v]}" for v in VERDICTS if counts[v])
             + "." + _other_runs_text(others), ""]
    for source in dict.fromkeys(c.source for c in claims):
        lines += [f"**{{cite:t}}`{source}`**", ""]
        lines += [_item(doc, c, records, regs.get(c.id), executed) for c in claims if c.source == source]
        lines.append("")
    return lines


def results_page(chapters: Sequence[tuple[str, Any]], seed_checks: Mapping[str, Sequence[Mapping]] | None = None,
                 titles: Mapping[str, str] | None = None, registrations: Mapping[str, Mapping] | None = None,
                 executed: Mapping[str, Any] | None = None,
                 other_seed_checks: Mapping[str, Sequence[Mapping]] | None = None) -> str:
    """The page's MyST Markdown from ``(docname, glued claims or None)`` pairs (see
    :func:`check_claims`): first the counts of the four verdicts and a line of them per chapter
    (the first screen answers "what reproduced?"), then one section per chapter (``titles``:
    docname -> title, default the docname; headings are numbered by the docname's leading
    number, ``00a · ...``) with its claims grouped by source, each verdict
    first, linked to the claim's entry in the chapter. Per docname, ``seed_checks`` are the
    chapter's recorded runs at seeds never used before (:func:`ntknb.records.load_seed_checks`),
    whose verdicts each claim shows beside its own; ``registrations`` (claim id ->
    :func:`ntknb.claims.registrations` record) and ``executed`` (docname -> the stored run's
    date) say when each threshold was registered and whether the stored run preceded it;
    ``other_seed_checks`` (docname -> runs at other parameters than the page's, each with
    ``mismatch``: :func:`seed_checks` with ``at_defaults=False``) are named, never
    compared."""

    seed_checks, regs, executed = seed_checks or {}, registrations or {}, executed or {}
    others = other_seed_checks or {}
    titles = {doc: _numbered(doc, (titles or {}).get(doc, doc)) for doc, _ in chapters}
    chapters = [(doc, cs) for doc, cs in check_claims(chapters) if cs]
    claims = [c for _, cs in chapters for c in cs]
    lines = ["# Results at a glance", ""]
    if not claims:
        return "\n".join(lines + [
            "No chapter records claims yet: when a chapter's notebook glues its `claims`, they are "
            "listed here at the next build.", ""])
    counts = _counts(claims)
    checked = {doc: seed_check_summary(cs, seed_checks.get(doc, ()))[1] for doc, cs in chapters}
    n_checked = sum(s["runs"] > 0 for s in checked.values())
    n_other = sum(len(others.get(doc, ())) for doc, _ in chapters)
    per_chapter = [f"- {{doc}}`{titles.get(doc, doc)} </{doc}>`: " + " · ".join(
        f"{{ntknb-verdict}}`{v}` {n}" for v, n in _counts(cs).items() if n) for doc, cs in chapters]
    lines += [
        " · ".join(f"{{ntknb-verdict}}`{v}` **{counts[v]}**" for v in VERDICTS),
        "",
        f"{len(claims)} claim{'s' if len(claims) != 1 else ''} from {len(chapters)} "
        f"chapter{'s' if len(chapters) != 1 else ''}. "
        + (f"{n_checked} chapter{'s' if n_checked != 1 else ''} rerun from seeds never used before: "
           f"{sum(s['compared'] for s in checked.values())} verdicts compared, "
           + ", ".join(f"{sum(s[k] for s in checked.values())} {k}" for k in ("same", "differs", "flips")) + "."
           if n_checked else "No chapter has been rerun from seeds never used before at its defaults yet.")
        + (f" {n_other} earlier run{'s' if n_other != 1 else ''} at other parameters than the pages' "
           f"defaults {'are' if n_other != 1 else 'is'} named in {'their chapters' if n_other != 1 else 'its chapter'} "
           "below, not compared." if n_other else ""),
        "",
        ":::{container} ntknb-results-counts",
        *per_chapter,
        ":::",
        "",
        "This page is generated when the book is built, from the claims each chapter records in its "
        "executed notebook; nothing on it is typed. A claim is *reproduced* when the whole interval "
        "lies beyond the threshold it needs (fixed before measuring) in the claimed direction, "
        "*contradicted* when it lies wholly on the other side, *inconclusive* otherwise, and *not "
        "testable at this scale* when a condition of the regime the claim is about (declared with "
        "the threshold) failed in the run. Each claim says when its threshold was registered "
        "(`notebooks/claims/`, from the repository's history) and, where a chapter was rerun from "
        "seeds never used while it was written (`scripts/seed_check.py`), that run's value and "
        "verdict: the *same*, *differs* (one of the two inconclusive) or *flips* (reproduced "
        "against contradicted).",
        "",
    ]
    for doc, cs in chapters:
        lines += _chapter_section(doc, titles.get(doc, doc), cs, seed_checks.get(doc, ()), regs, executed.get(doc),
                                  others.get(doc, ()))
    return "\n".join(lines)


def _fmt_runtime(seconds) -> str:
    if not isinstance(seconds, (int, float)):
        return "not recorded"
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def status_page(records: Sequence[tuple[str, dict]]) -> str:
    """The "Execution status" page's MyST Markdown from ``(docname, record)`` pairs
    (:func:`execution_records`): per chapter the run time of its defaults, when and on
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


# ------------------------------------------------------------ reading the stored notebooks


def glued_claims(root: str | os.PathLike | None = None) -> list[tuple[str, object]]:
    """``(docname, glued claims or None)`` for every notebook of the table of contents, from
    its stored ``.ipynb`` (:func:`ntknb.book.run.extract_glued`), in toc order."""
    import nbformat

    root = Path(root) if root is not None else paths.REPO_ROOT
    out = []
    for entry in toc_files(root):
        ipynb = (root / entry).with_suffix(".ipynb")
        if ipynb.is_file():
            out.append((entry, extract_glued(nbformat.read(ipynb, as_version=4)).get("claims")))
    return out


def execution_records(root: str | os.PathLike | None = None) -> list[tuple[str, dict]]:
    """``(docname, record)`` for every notebook of the table of contents, from its stored
    ``.ipynb``: ``metadata.ntknb.execution`` (:func:`ntknb.book.sync.execution_record`) where
    :func:`ntknb.book.sync.execute` wrote one, else what papermill recorded (``date``,
    ``runtime_s``; the rest ``None``); the glued ``runtime_s`` (or ``runtime_seconds``) of the
    chapter wins for the runtime."""
    import nbformat

    root = Path(root) if root is not None else paths.REPO_ROOT
    out = []
    for entry in toc_files(root):
        ipynb = (root / entry).with_suffix(".ipynb")
        if not ipynb.is_file():
            continue
        nb = nbformat.read(ipynb, as_version=4)
        pm = nb.metadata.get("papermill", {})
        rec = {"date": pm.get("end_time"), "runtime_s": pm.get("duration"), "machine": None,
               "python": None, "versions": {}}
        rec.update(nb.metadata.get("ntknb", {}).get("execution", {}))
        glued = extract_glued(nb)
        for key in ("runtime_s", "runtime_seconds"):
            if isinstance(glued.get(key), (int, float)):
                rec["runtime_s"] = float(glued[key])
                break
        out.append((entry, rec))
    return out


def _write_if_changed(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically, only when it changed (keeps Sphinx's cache)."""
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".md.tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)
    return path


def write_results_page(root: str | os.PathLike | None = None) -> Path | None:
    """Generate the "Results at a glance" page (:func:`results_page`) from the stored notebooks'
    glued claims, their titles and execution dates, the chapters' seed-check records and the claim
    register's history (:func:`ntknb.claims.registrations`), if ``_toc.yml`` lists it; written
    atomically and only when its text changed. Returns its path (``None`` when not listed). A
    malformed claim raises ``ValueError``."""
    root = Path(root) if root is not None else paths.REPO_ROOT
    if not (root / "_toc.yml").is_file() or DOCNAME not in toc_files(root):
        return None
    glued = glued_claims(root)
    docs = [d for d, _ in glued]
    register = root / "notebooks" / "claims"  # the checkout being built (REGISTER_DIR is the installed one)
    text = results_page(glued, seed_checks(root, docs), titles=notebook_titles(root, docs),
                        other_seed_checks=seed_checks(root, docs, at_defaults=False),
                        registrations=registrations(register) if register.is_dir() else {},
                        executed={d: r.get("date") for d, r in execution_records(root)})
    return _write_if_changed(root / PAGE, text)


def notebook_titles(root: str | os.PathLike | None = None, docnames: Sequence[str] = ()) -> dict[str, str]:
    """``{docname: title}``: the first Markdown heading of each stored notebook (the docname where
    it has none)."""
    import nbformat

    root = Path(root) if root is not None else paths.REPO_ROOT
    out = {}
    for doc in docnames:
        nb = nbformat.read((root / doc).with_suffix(".ipynb"), as_version=4)
        heads = [line[2:].strip() for cell in nb.cells if cell.cell_type == "markdown"
                 for line in cell.source.splitlines() if line.startswith("# ")]
        out[doc] = heads[0] if heads else doc
    return out


def seed_checks(root: str | os.PathLike | None = None, docnames: Sequence[str] = (),
                at_defaults: bool = True) -> dict[str, list]:
    """``{docname: records}``: each chapter's runs at seeds never used before, from
    ``notebooks/data/<notebook>`` + :data:`ntknb.records.SEED_CHECK_SUFFIX` (chapters without
    such a file are left out). ``at_defaults``: only the runs at the stored notebook's default
    parameters (:func:`ntknb.claims.seed_check_mismatch` empty), the ones whose verdicts can be
    compared with the page's; ``False``: only the others, each with ``"mismatch"`` (the
    parameter names at which it differs) added."""
    import nbformat

    root = Path(root) if root is not None else paths.REPO_ROOT
    out = {}
    for doc in docnames:
        records = load_seed_checks(root / "notebooks" / "data" / (Path(doc).name + SEED_CHECK_SUFFIX))
        if not records:
            continue
        nb = nbformat.read((root / doc).with_suffix(".ipynb"), as_version=4)
        defaults = {name: p.default for name, p in notebook_parameters(nb).items()}
        marked = [dict(rec, mismatch=seed_check_mismatch(rec, defaults)) for rec in records]
        kept = [r for r in marked if not r["mismatch"]] if at_defaults else [r for r in marked if r["mismatch"]]
        if kept:
            out[doc] = [{k: v for k, v in r.items() if k != "mismatch"} for r in kept] if at_defaults else kept
    return out


def write_status_page(root: str | os.PathLike | None = None) -> Path | None:
    """Generate the "Execution status" page (:func:`status_page`) from the stored
    notebooks (:func:`execution_records`), if ``_toc.yml`` lists it. Returns its path or ``None``."""
    root = Path(root) if root is not None else paths.REPO_ROOT
    if not (root / "_toc.yml").is_file() or STATUS_DOCNAME not in toc_files(root):
        return None
    return _write_if_changed(root / STATUS_PAGE, status_page(execution_records(root)))
