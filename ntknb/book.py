"""Build the book and keep the paired notebooks in sync.

::

    python -m ntknb.book build [--strict] [--all] [--path-output DIR] [--allow-warnings]
    python -m ntknb.book check-sync      # every notebooks/*.py and its .ipynb hold the same inputs
    python -m ntknb.book sync [NAME...]   # rewrite the .ipynb inputs from the .py, keeping outputs
    python -m ntknb.book execute NAME...  # sync, then execute notebooks/NAME.ipynb in place
    python -m ntknb.book lab [NAME] [JUPYTER-LAB ARGS...]  # JupyterLab on the notebooks, ntknb kernel
    python -m ntknb.book check-html [DIR] # rendering problems of each page of a built book

``bash scripts/dev book`` runs ``build``; ``bash scripts/dev lab`` runs ``lab``.

Every ``notebooks/NN_name.py`` (py:percent, the single source) is paired with
``notebooks/NN_name.ipynb`` (same inputs, plus the outputs of a run at default parameters;
the book renders those outputs, it never executes notebooks). ``check-sync`` compares
the two as jupytext reads them: per cell the type, the source (trailing whitespace
ignored) and the tags; outputs, execution counts and other metadata are ignored.

``build`` first runs ``check-sync``, then ``jupyter-book build`` with warnings as errors
(``--warningiserror --keep-going``, so every warning is reported before it fails), HTML
into ``<path-output>/_build/html`` (default: the repository, i.e. ``_build/html``).
``--strict`` also requires every notebook in the table of contents to have been executed
(each code cell has an execution count), since the book would otherwise silently render
a notebook without results.

``execute`` records, in the executed notebook's metadata (``metadata.ntknb.execution``), when
and where it ran: date, wall time, machine, Python and library versions. The generated
"Execution status" page (:mod:`ntknb.results`, ``book/status.md``) lists them per chapter.

As a Sphinx extension (``_config.yml``), this module also regenerates the generated pages,
serves MathJax from the built book (``_static/mathjax``, copied from the pinned
``sphinx-mathjax-offline`` package, so math renders without network) and sets the
``source_repository`` substitution from the configured repository URL.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from ntknb import paths
from ntknb.runner import DEFAULT_KERNEL

__all__ = [
    "SyncProblem",
    "paired_notebooks",
    "compare_pair",
    "check_sync",
    "sync",
    "unexecuted_notebooks",
    "prepare_ci",
    "execute",
    "glued_claims",
    "seed_checks",
    "execution_record",
    "execution_records",
    "write_results_page",
    "write_status_page",
    "setup",
    "build",
    "html_problems",
    "browser_check",
    "main",
]

@dataclasses.dataclass(frozen=True)
class SyncProblem:
    path: Path
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


def _nb_dir(root: Path | None) -> Path:
    return (Path(root) if root is not None else paths.REPO_ROOT) / "notebooks"


def paired_notebooks(root: str | os.PathLike | None = None) -> list[tuple[Path, Path]]:
    """``(NN_name.py, NN_name.ipynb)`` for every py:percent source in ``root/notebooks``."""
    nb_dir = _nb_dir(root)
    if not nb_dir.is_dir():
        return []
    return [(py, py.with_suffix(".ipynb")) for py in sorted(nb_dir.glob("*.py"))]


def _cells(path: Path):
    import jupytext

    fmt = "py:percent" if path.suffix == ".py" else None
    nb = jupytext.read(path, fmt=fmt)
    out = []
    for cell in nb.cells:
        source = cell.source if isinstance(cell.source, str) else "".join(cell.source)
        lines = [ln.rstrip() for ln in source.strip("\n").splitlines()]
        tags = sorted(cell.get("metadata", {}).get("tags", []) or [])
        out.append((cell.cell_type, "\n".join(lines), tags, cell.get("metadata", {}).get("mystnb") or None))
    return out


def compare_pair(py: str | os.PathLike, ipynb: str | os.PathLike) -> str | None:
    """``None`` when both files hold the same inputs, else a one-line description of the
    first difference (cell number, what differs, a short diff of the sources)."""
    py, ipynb = Path(py), Path(ipynb)
    if not ipynb.is_file():
        return f"no paired notebook {ipynb.name} (run: python -m ntknb.book sync)"
    try:
        a, b = _cells(py), _cells(ipynb)
    except Exception as exc:  # noqa: BLE001 - a corrupt file is a sync problem
        return f"cannot read: {type(exc).__name__}: {exc}"
    for i, (ca, cb) in enumerate(zip(a, b)):
        if ca == cb:
            continue
        where = f"cell {i + 1} differs between {py.name} and {ipynb.name}"
        if ca[0] != cb[0]:
            return f"{where}: cell type {ca[0]} vs {cb[0]}"
        if ca[1] != cb[1]:
            diff = [
                ln for ln in difflib.unified_diff(cb[1].splitlines(), ca[1].splitlines(), lineterm="", n=0)
                if not ln.startswith(("---", "+++", "@@"))
            ]
            return f"{where}: source ({'; '.join(diff[:4])}) — run: python -m ntknb.book sync"
        if ca[2] != cb[2]:
            return f"{where}: tags {ca[2]} vs {cb[2]} — run: python -m ntknb.book sync"
        return f"{where}: mystnb metadata (a figure's caption) {ca[3]} vs {cb[3]} — run: python -m ntknb.book sync"
    if len(a) != len(b):
        return (
            f"{py.name} has {len(a)} cells, {ipynb.name} has {len(b)} — run: python -m ntknb.book sync"
        )
    return None


def check_sync(root: str | os.PathLike | None = None) -> list[SyncProblem]:
    """Every ``notebooks/*.py`` has a paired ``.ipynb`` with the same inputs, and every
    ``.ipynb`` has its ``.py`` source. Returns the problems (empty: in sync)."""
    problems = []
    nb_dir = _nb_dir(root)
    for py, ipynb in paired_notebooks(root):
        msg = compare_pair(py, ipynb)
        if msg:
            problems.append(SyncProblem(py, msg))
    if nb_dir.is_dir():
        for ipynb in sorted(nb_dir.glob("*.ipynb")):
            if not ipynb.with_suffix(".py").is_file():
                problems.append(SyncProblem(ipynb, f"has no py:percent source {ipynb.stem}.py"))
    return problems


def sync(names: Sequence[str] = (), root: str | os.PathLike | None = None) -> list[Path]:
    """Rewrite the inputs of ``notebooks/NAME.ipynb`` from ``NAME.py`` (all when no names),
    keeping the stored outputs where the cells still match (``jupytext --update``)."""
    from jupytext.cli import jupytext as jupytext_cli

    pairs = paired_notebooks(root)
    if names:
        wanted = {Path(n).stem for n in names}
        unknown = wanted - {py.stem for py, _ in pairs}
        if unknown:
            raise SystemExit(f"ntknb.book: error: no notebooks/{sorted(unknown)[0]}.py")
        pairs = [(py, nb) for py, nb in pairs if py.stem in wanted]
    written = []
    for py, ipynb in pairs:
        if compare_pair(py, ipynb) is None:
            continue
        args = ["--quiet", "--to", "ipynb", "--update", "--set-kernel", DEFAULT_KERNEL, str(py)]
        if not ipynb.exists():
            args.remove("--update")
        jupytext_cli(args)
        _copy_cell_metadata(py, ipynb)
        written.append(ipynb)
    return written


#: Cell metadata whose single source is the ``.py``: tags, and myst-nb's ``mystnb`` (a figure's
#: caption and name).
SOURCE_CELL_METADATA = ("tags", "mystnb")


def _copy_cell_metadata(py: Path, ipynb: Path) -> None:
    """Give every cell of ``ipynb`` the :data:`SOURCE_CELL_METADATA` of the same cell of ``py``
    (a key the ``.py`` cell lacks is removed). ``jupytext --update`` keeps a cell's stored
    metadata where the source's filtered metadata lacks the key, and papermill stores
    ``tags: []`` on every cell, so tags or captions added in the ``.py`` would be lost, and an
    executed notebook copied in from another checkout would drop them."""
    import jupytext
    import nbformat

    src = jupytext.read(py, fmt="py:percent")
    nb = nbformat.read(ipynb, as_version=4)
    if len(src.cells) != len(nb.cells):
        return
    changed = False
    for a, b in zip(src.cells, nb.cells):
        for key in SOURCE_CELL_METADATA:
            want = a.get("metadata", {}).get(key)
            want = (list(want or []) or None) if key == "tags" else want
            if b.metadata.get(key) != want or (key in b.metadata and not want):
                if want:
                    b.metadata[key] = want
                else:
                    b.metadata.pop(key, None)
                changed = True
    if changed:
        nbformat.write(nb, ipynb)


def execute(names: Sequence[str], root: str | os.PathLike | None = None,
            kernel_name: str = DEFAULT_KERNEL) -> list[Path]:
    """Sync, then execute ``notebooks/NAME.ipynb`` in place at its default parameters
    (papermill, working directory ``notebooks/``) so the book renders fresh outputs."""
    import papermill

    nb_dir = _nb_dir(root)
    sync(names, root=root)
    done = []
    for name in names:
        ipynb = nb_dir / f"{Path(name).stem}.ipynb"
        papermill.execute_notebook(
            str(ipynb), str(ipynb), kernel_name=kernel_name, cwd=str(nb_dir), progress_bar=sys.stderr.isatty(),
            extra_arguments=["--IPKernelApp.log_level=CRITICAL"],
        )
        _record_execution(ipynb)
        done.append(ipynb)
    return done


#: Libraries whose versions an execution record lists.
RECORDED_PACKAGES = ("ntknb", "jax", "jaxlib", "neural-tangents", "flax", "optax", "numpy", "matplotlib")


def _machine() -> str:
    import platform

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.machine()}"


def execution_record(runtime_s: float | None = None) -> dict:
    """What :func:`execute` stores in ``metadata.ntknb.execution``: ``date`` (UTC, ISO),
    ``runtime_s``, ``machine``, ``python`` and ``versions`` (:data:`RECORDED_PACKAGES`)."""
    import datetime
    import platform
    from importlib import metadata

    versions = {}
    for name in RECORDED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "runtime_s": None if runtime_s is None else round(float(runtime_s), 1),
        "machine": _machine(),
        "python": platform.python_version(),
        "versions": versions,
    }


def _record_execution(ipynb: Path) -> None:
    import nbformat

    nb = nbformat.read(ipynb, as_version=4)
    duration = nb.metadata.get("papermill", {}).get("duration")
    nb.metadata.setdefault("ntknb", {})["execution"] = execution_record(duration)
    nbformat.write(nb, ipynb)


def _toc_files(root: Path) -> list[str]:
    import yaml

    toc = yaml.safe_load((root / "_toc.yml").read_text())
    files: list[str] = []

    def walk(node):
        if isinstance(node, dict):
            for key in ("root", "file"):
                if isinstance(node.get(key), str):
                    files.append(node[key])
            for value in node.values():
                if isinstance(value, (list, dict)):
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(toc)
    return files


def unexecuted_notebooks(root: str | os.PathLike | None = None) -> list[str]:
    """Notebooks of the table of contents whose stored ``.ipynb`` is not one complete run at
    the default parameters: missing; a code cell never executed, or cells executed out of
    order (not one top-to-bottom run); an error output; or run with parameters (a papermill
    ``injected-parameters`` cell, or ``metadata.papermill.parameters`` not empty).

    The book shows the stored outputs, and CI may execute the heavy chapters at their CI
    presets only (:func:`prepare_ci`): this check is what ties the book's numbers to the
    defaults."""
    import nbformat

    root = Path(root) if root is not None else paths.REPO_ROOT
    bad = []
    for entry in _toc_files(root):
        base = root / entry
        # pages outside notebooks/ are Markdown, some generated at build time (results, status)
        if base.suffix == ".md" or base.with_suffix(".md").is_file() or base.parent != _nb_dir(root):
            continue
        ipynb = base.with_suffix(".ipynb")
        if not ipynb.is_file():
            bad.append(f"{entry}: missing {ipynb.relative_to(root)}")
            continue
        nb = nbformat.read(ipynb, as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code" and c.source.strip()]
        counts = [c.get("execution_count") for c in code]
        if any(n is None for n in counts):
            bad.append(f"{entry}: not executed (run it at default parameters and save the outputs)")
        elif counts != sorted(counts) or len(set(counts)) != len(counts):
            bad.append(f"{entry}: cells executed out of order (execute it top to bottom: "
                       f"python -m ntknb.book execute {base.name})")
        if any(o.get("output_type") == "error" for c in code for o in c.get("outputs", [])):
            bad.append(f"{entry}: a cell's stored output is an error")
        injected = any("injected-parameters" in c.get("metadata", {}).get("tags", []) for c in nb.cells)
        if injected or nb.metadata.get("papermill", {}).get("parameters"):
            bad.append(f"{entry}: executed with parameters, not at the defaults "
                       f"(python -m ntknb.book execute {base.name})")
    return bad


#: A chapter's CI preset: ``notebooks/NAME.ci.yaml`` (small parameters, for CI only).
CI_PRESET_SUFFIX = ".ci.yaml"


def prepare_ci(dest: str | os.PathLike, root: str | os.PathLike | None = None,
               kernel_name: str = DEFAULT_KERNEL) -> list[Path]:
    """The notebooks CI validates with nbval, each chapter at most a few minutes.

    A notebook with a CI preset ``notebooks/NAME.ci.yaml`` is written to ``dest/NAME.ipynb``
    with that preset's parameters injected (checked against the chapter's schema first,
    :func:`ntknb.runner.prepare`) and its outputs cleared; ``dest/data`` links to
    ``notebooks/data`` so relative paths resolve as in ``notebooks/``. A notebook without one
    is validated as stored, at its defaults. The book's outputs stay those of the defaults
    (:func:`unexecuted_notebooks` checks that).

    Returns:
      the notebooks to validate, in name order: stored ``notebooks/NAME.ipynb`` or prepared
      ``dest/NAME.ipynb``.
    """
    import nbformat

    from ntknb import runner

    nb_dir = _nb_dir(root)
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    if not (dest / "data").exists() and (nb_dir / "data").is_dir():
        (dest / "data").symlink_to((nb_dir / "data").resolve(), target_is_directory=True)
    out = []
    for py, ipynb in paired_notebooks(root):
        preset = ipynb.with_name(ipynb.stem + CI_PRESET_SUFFIX)
        if not preset.is_file():
            out.append(ipynb)
            continue
        _, nb, _, injected = runner.prepare(py, [("file", str(preset))], kernel_name)
        nb = runner.inject_parameters(nb, injected)
        for cell in nb.cells:
            if cell.cell_type == "code":
                cell.outputs, cell.execution_count = [], None
        target = dest / ipynb.name
        nbformat.write(nb, target)
        out.append(target)
    return out


def glued_claims(root: str | os.PathLike | None = None) -> list[tuple[str, object]]:
    """``(docname, glued claims or None)`` for every notebook of the table of contents, from
    its stored ``.ipynb`` (:func:`ntknb.runner.extract_glued`), in toc order."""
    import nbformat

    from ntknb.runner import extract_glued

    root = Path(root) if root is not None else paths.REPO_ROOT
    out = []
    for entry in _toc_files(root):
        ipynb = (root / entry).with_suffix(".ipynb")
        if ipynb.is_file():
            out.append((entry, extract_glued(nbformat.read(ipynb, as_version=4)).get("claims")))
    return out


def execution_records(root: str | os.PathLike | None = None) -> list[tuple[str, dict]]:
    """``(docname, record)`` for every notebook of the table of contents, from its stored
    ``.ipynb``: ``metadata.ntknb.execution`` (:func:`execution_record`) where :func:`execute`
    wrote one, else what papermill recorded (``date``, ``runtime_s``; the rest ``None``); the
    glued ``runtime_s`` (or ``runtime_seconds``) of the chapter wins for the runtime."""
    import nbformat

    from ntknb.runner import extract_glued

    root = Path(root) if root is not None else paths.REPO_ROOT
    out = []
    for entry in _toc_files(root):
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
    import tempfile

    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".md.tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)
    return path


def write_results_page(root: str | os.PathLike | None = None) -> Path | None:
    """Generate the "Results at a glance" page (:mod:`ntknb.results`) from the stored notebooks'
    glued claims, their titles and execution dates, the chapters' seed-check records and the claim
    register's history (:func:`ntknb.claims.registrations`), if ``_toc.yml`` lists it; written
    atomically and only when its text changed. Returns its path (``None`` when not listed). A
    malformed claim raises ``ValueError``."""
    from ntknb import results
    from ntknb.claims import registrations

    root = Path(root) if root is not None else paths.REPO_ROOT
    if not (root / "_toc.yml").is_file() or results.DOCNAME not in _toc_files(root):
        return None
    glued = glued_claims(root)
    docs = [d for d, _ in glued]
    register = root / "notebooks" / "claims"  # the checkout being built (REGISTER_DIR is the installed one)
    text = results.results_page(glued, seed_checks(root, docs), titles=notebook_titles(root, docs),
                                other_seed_checks=seed_checks(root, docs, at_defaults=False),
                                registrations=registrations(register) if register.is_dir() else {},
                                executed={d: r.get("date") for d, r in execution_records(root)})
    return _write_if_changed(root / results.PAGE, text)


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
    ``notebooks/data/<notebook>`` + :data:`ntknb.claims.SEED_CHECK_SUFFIX` (chapters without
    such a file are left out). ``at_defaults``: only the runs at the stored notebook's default
    parameters (:func:`ntknb.claims.seed_check_mismatch` empty), the ones whose verdicts can be
    compared with the page's; ``False``: only the others, each with ``"mismatch"`` (the
    parameter names at which it differs) added."""
    import nbformat

    from ntknb.claims import SEED_CHECK_SUFFIX, load_seed_checks, seed_check_mismatch
    from ntknb.runner import notebook_parameters

    root = Path(root) if root is not None else paths.REPO_ROOT
    out = {}
    for doc in docnames:
        records = load_seed_checks(_nb_dir(root) / "data" / (Path(doc).name + SEED_CHECK_SUFFIX))
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
    """Generate the "Execution status" page (:func:`ntknb.results.status_page`) from the stored
    notebooks (:func:`execution_records`), if ``_toc.yml`` lists it. Returns its path or ``None``."""
    from ntknb import results

    root = Path(root) if root is not None else paths.REPO_ROOT
    if not (root / "_toc.yml").is_file() or results.STATUS_DOCNAME not in _toc_files(root):
        return None
    return _write_if_changed(root / results.STATUS_PAGE, results.status_page(execution_records(root)))


#: MathJax files served from the built book (``_static/mathjax``): the TeX-to-CommonHTML
#: bundle, its fonts and the TeX extensions it may autoload (not the other bundles, nor the
#: speech rule maps).
_MATHJAX_PARTS = ("tex-chtml.js", "output/chtml", "input/tex/extensions", "ui", "a11y", "adaptors")
MATHJAX_PATH = "mathjax/tex-chtml.js"


def mathjax_source() -> Path:
    """The folder of the pinned MathJax 3 files (package ``sphinx-mathjax-offline``)."""
    from importlib import util

    spec = util.find_spec("sphinx-mathjax-offline")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("ntknb.book: the pinned package sphinx-mathjax-offline is not installed "
                           "(bash scripts/dev setup installs requirements.lock)")
    return Path(list(spec.submodule_search_locations)[0]) / "static" / "mathjax"


def _copy_mathjax(app, exc) -> None:
    import shutil

    if exc is not None or app.builder.format != "html":
        return
    src, dst = mathjax_source(), Path(app.outdir) / "_static" / "mathjax"
    for part in _MATHJAX_PARTS:
        s_, d_ = src / part, dst / part
        d_.parent.mkdir(parents=True, exist_ok=True)
        if s_.is_dir():
            shutil.copytree(s_, d_, dirs_exist_ok=True)
        else:
            shutil.copy2(s_, d_)


#: The book's own CSS / JS (click-to-enlarge, scrolling wide equations and tables).
STATIC_DIR = Path(__file__).resolve().parent / "book_static"


def _docstring_as_text(app, what, name, obj, options, lines) -> None:
    """autodoc: render each docstring as reStructuredText where it parses cleanly, else show it
    as written (a literal block).

    The docstrings are plain text with RST literals and Google-style sections (``Args:``,
    ``Returns:``): sphinx.ext.napoleon's parsers turn the sections into fields (a section given
    on its header's line, ``Returns: text``, is first moved below it), and underlined headings,
    which autodoc cannot nest, become rubrics. The result is parsed by docutils first (Sphinx
    roles read as literals): a docstring with any problem (a stray indent, an unclosed
    backquote, the ``*`` of a product) would be a warning, i.e. a failed build (-W), so that one
    stays literal."""
    import io
    import re

    from docutils.core import publish_doctree
    from docutils.utils import SystemMessage
    from sphinx.ext.napoleon import Config
    from sphinx.ext.napoleon.docstring import GoogleDocstring, NumpyDocstring

    if not lines:
        return
    original = list(lines)
    inline = re.compile(r"^(\s*)(Args|Arguments|Returns|Raises|Yields|Attributes|Note|Example|Examples):\s+(\S.*)$")
    text = []
    for i, line in enumerate(original):
        m = inline.match(line)
        if m:
            follow = original[i + 1] if i + 1 < len(original) else ""
            deeper = len(follow) - len(follow.lstrip()) if follow.strip() else 0
            indent = deeper if deeper > len(m.group(1)) else len(m.group(1)) + 4
            text += [f"{m.group(1)}{m.group(2)}:", " " * indent + m.group(3)]
        else:
            text.append(line)
    config = Config(napoleon_use_ivar=True)  # attributes as fields, not nested directives
    text = NumpyDocstring(GoogleDocstring(text, config, what=what, name=name, obj=obj).lines(),
                          config, what=what, name=name, obj=obj).lines()
    underline = re.compile(r"^([-=~^\"'`#*+])\1{2,}\s*$")
    rst = []
    for line in text:
        if underline.match(line) and rst and rst[-1].strip() and not underline.match(rst[-1]):
            rst[-1:] = [f".. rubric:: {rst[-1].strip()}", ""]
        else:
            rst.append(line)
    probe = re.sub(r":[\w:.+-]+:`([^`]*)`", r"``\1``", "\n".join(rst))
    try:
        publish_doctree(probe, settings_overrides={
            "report_level": 2, "halt_level": 2, "warning_stream": io.StringIO(),
            "file_insertion_enabled": False, "raw_enabled": False, "_disable_config": True})
    except SystemMessage:
        rst = ["::", ""] + ["   " + line for line in original] + [""]
    lines[:] = rst + [""]


def _drop_thebe(app, pagename, templatename, context, doctree) -> None:
    """Remove sphinx-thebe's scripts (Jupyter Book loads it though launch buttons are off): it
    declares ``THEBE_JS_URL`` twice on each page (a console error) and would fetch thebe from a
    CDN; this book runs interactively through ``bash scripts/dev lab`` instead."""
    def keep(item) -> bool:
        body = getattr(item, "attributes", {}).get("body", "") or ""
        return "THEBE_JS_URL" not in body and "sphinx-thebe" not in str(getattr(item, "filename", item) or "")

    for key in ("script_files", "css_files"):
        if key in context:
            context[key] = [item for item in context[key] if keep(item)]


def _claims_summary_directive():
    """The ``{ntknb-claims-summary}`` directive: a chapter's summary in a few sentences
    (:func:`ntknb.claims.summary_markdown`) from the claims its stored notebook glued
    (``claims``), so the text follows the verdicts without a line of notebook code."""
    from docutils import nodes
    from docutils.statemachine import StringList
    from sphinx.util.docutils import SphinxDirective

    class ClaimsSummary(SphinxDirective):
        has_content = False
        optional_arguments = 1  # the glue key (default: claims)

        def run(self):
            from myst_nb.ext.glue.utils import RetrievalError, retrieve_glue_data

            from ntknb.claims import summary_markdown
            from ntknb.runner import _glued_value

            key = self.arguments[0] if self.arguments else "claims"
            try:
                data = retrieve_glue_data(self.state.document, key).data
            except RetrievalError as exc:
                return [self.state.document.reporter.warning(f"ntknb-claims-summary: {exc}", line=self.lineno)]
            text = summary_markdown(_glued_value(data))
            box = nodes.container(classes=["ntknb-claims-summary"])
            self.state.nested_parse(StringList(text.splitlines(), source=self.get_source_info()[0]),
                                    self.content_offset, box)
            return [box]

    return ClaimsSummary


def _verdict_role(name, rawtext, text, lineno, inliner, options=None, content=None):
    """The ``{ntknb-verdict}`` role: a verdict id (:data:`ntknb.claims.VERDICTS`) as a badge
    (``<span class="ntknb-verdict ntknb-v-ID">``, coloured by ``ntknb.css``)."""
    from docutils import nodes

    from ntknb.claims import VERDICT_TEXT

    if text not in VERDICT_TEXT:
        msg = inliner.reporter.error(f"ntknb-verdict: expected one of {list(VERDICT_TEXT)}, got {text!r}", line=lineno)
        return [inliner.problematic(rawtext, rawtext, msg)], [msg]
    return [nodes.inline(rawtext, VERDICT_TEXT[text], classes=["ntknb-verdict", f"ntknb-v-{text}"])], []


def _rerender_claims(app, doctree) -> None:
    """``doctree-read``: replace a notebook's stored claims block (the HTML output of
    :func:`ntknb.claims.glue_claims` when it was executed, old table or new block) by
    :func:`ntknb.claims.claims_html` of the claims it glued, so every page shows the current
    compact view without re-executing a notebook."""
    from docutils import nodes

    raws = [n for n in doctree.findall(nodes.raw) if 'class="ntknb-claims"' in n.astext()]
    path = Path(app.env.doc2path(app.env.docname))
    if not raws or path.suffix != ".ipynb":
        return
    import nbformat

    from ntknb.claims import claims_html
    from ntknb.runner import extract_glued

    glued = extract_glued(nbformat.read(path, as_version=4)).get("claims")
    if glued is None:
        return
    for node in raws:
        node.replace_self(nodes.raw("", claims_html(glued), format="html"))


def _unwrap_imageless_figures(app, doctree) -> None:
    """``doctree-read``: myst-nb (1.4) wraps *every* display output of a cell that has a figure
    caption (cell metadata ``mystnb.figure``) in that figure, so a table the cell also displays
    would be captioned and numbered as the figure. A figure of notebook outputs none of which
    holds an image is replaced by its outputs."""
    from docutils import nodes

    for fig in list(doctree.findall(nodes.figure)):
        bundles = [n for n in fig.children if isinstance(n, nodes.Element) and n.get("nb_element") == "mime_bundle"]
        mimes = [str(m.get("mime_type", "")) for b in bundles for m in b.children if isinstance(m, nodes.Element)]
        if bundles and not any(m.startswith("image/") for m in mimes):
            fig.replace_self([n for n in fig.children if not isinstance(n, (nodes.caption, nodes.legend))])


def _claims_code_changed(app, env, added, changed, removed) -> list[str]:
    """``env-get-outdated``: every notebook is read again when the code that renders claims
    (:mod:`ntknb.claims`, :mod:`ntknb.results`) changed since the last build, so an incremental
    build shows the current claims blocks and summaries (:func:`_rerender_claims`)."""
    import hashlib

    from ntknb import claims, results

    digest = hashlib.sha256(b"".join(Path(m.__file__).read_bytes() for m in (claims, results))).hexdigest()
    if getattr(env, "ntknb_claims_code", None) == digest:
        return []
    env.ntknb_claims_code = digest
    return [d for d in env.found_docs if Path(env.doc2path(d)).suffix == ".ipynb" and d not in changed]


def _config_inited(app, config) -> None:
    write_results_page(app.srcdir)
    write_status_page(app.srcdir)
    config.mathjax_path = MATHJAX_PATH  # served from _static (copied by _copy_mathjax): works offline
    config.html_static_path = [*config.html_static_path, str(STATIC_DIR)]
    # the chapters' .py sources served beside the book: only those this source tree has (a book
    # built from a copy of the configuration, e.g. in a test, may have none)
    config.html_extra_path = [e for e in config.html_extra_path if (Path(app.srcdir) / e).exists()]
    url = (config.html_theme_options or {}).get("repository_url") or ""
    subs = dict(getattr(config, "myst_substitutions", {}) or {})
    subs.setdefault(
        "source_repository",
        f"[{url}]({url})" if url else
        "the source repository (no public address is configured for this book: `repository.url` in "
        "`_config.yml` is empty; ask whoever gave you the book for the repository)")
    config.myst_substitutions = subs


def setup(app) -> dict:
    """Sphinx extension (``sphinx.extra_extensions: [ntknb.book]`` in ``_config.yml``):
    regenerate the generated pages before the sources are read, set the ``source_repository``
    substitution, copy MathJax into the built book (``mathjax_path`` in ``_config.yml``), add the
    ``{ntknb-claims-summary}`` directive and the ``{ntknb-verdict}`` role, and re-render each
    notebook's stored claims block from its glued claims (:func:`_rerender_claims`)."""
    app.connect("config-inited", _config_inited, priority=100)
    app.connect("build-finished", _copy_mathjax)
    app.setup_extension("sphinx.ext.autodoc")  # the API reference page
    app.connect("autodoc-process-docstring", _docstring_as_text)
    app.connect("html-page-context", _drop_thebe)
    app.add_directive("ntknb-claims-summary", _claims_summary_directive())
    app.add_role("ntknb-verdict", _verdict_role)
    app.connect("doctree-read", _rerender_claims)
    app.connect("doctree-read", _unwrap_imageless_figures)
    app.connect("env-get-outdated", _claims_code_changed)
    app.add_css_file("ntknb.css")
    app.add_js_file("ntknb.js")
    return {"parallel_read_safe": True, "parallel_write_safe": True}


def build(
    strict: bool = False,
    path_output: str | os.PathLike | None = None,
    fresh: bool = False,
    warnings_as_errors: bool = True,
    root: str | os.PathLike | None = None,
) -> int:
    """check-sync, write the results page (:func:`write_results_page`), then
    ``jupyter-book build``; returns the exit status."""
    root = Path(root) if root is not None else paths.REPO_ROOT
    problems = check_sync(root)
    if problems:
        for p in problems:
            print(f"ntknb.book: out of sync: {p}", file=sys.stderr)
        return 1
    try:  # the generated pages (also regenerated by the Sphinx extension)
        write_results_page(root)
        write_status_page(root)
    except ValueError as exc:
        print(f"ntknb.book: results page: {exc}", file=sys.stderr)
        return 1
    if strict:
        bad = unexecuted_notebooks(root)
        if bad:
            for b in bad:
                print(f"ntknb.book: {b}", file=sys.stderr)
            return 1
    jb = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(jb) if jb.exists() else "jupyter-book", "build", str(root), "--builder", "html"]
    if warnings_as_errors:
        cmd += ["--warningiserror", "--keep-going"]
    if fresh:
        cmd.append("--all")
    if path_output is not None:
        cmd += ["--path-output", str(path_output)]
    env = dict(os.environ)
    env.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    proc = subprocess.run(cmd, cwd=root, env=env)
    if proc.returncode == 0:
        out = Path(path_output) if path_output is not None else root
        print(f"ntknb.book: the book is in {out / '_build' / 'html' / 'index.html'}")
    return proc.returncode


def lab_command(name: str | None = None, extra: Sequence[str] = (), root: str | os.PathLike | None = None) -> list[str]:
    """The ``jupyter lab`` command line that opens the book's notebooks (``notebooks/NAME.ipynb``
    when ``name`` is given) with the project's kernel (:data:`ntknb.runner.DEFAULT_KERNEL`, the
    kernel every notebook names) as the default for new notebooks too."""
    root = Path(root) if root is not None else paths.REPO_ROOT
    cmd = [sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={root}",
           f"--MappingKernelManager.default_kernel_name={DEFAULT_KERNEL}", *extra]
    if hasattr(os, "geteuid") and os.geteuid() == 0 and "--allow-root" not in cmd:
        cmd.append("--allow-root")  # containers and CI machines run as root
    if name:
        ipynb = _nb_dir(root) / f"{Path(name).stem}.ipynb"
        if not ipynb.is_file():
            raise SystemExit(f"ntknb.book: error: no notebook {ipynb.relative_to(root)}")
        cmd.append(str(ipynb.relative_to(root)))
    return cmd


# ------------------------------------------------------------------ checks of the built book

import re as _re

#: Text of a pipe table that was not rendered as a table (a rule row such as ``| :-- | --: |``).
_RAW_PIPE_TABLE = _re.compile(r"\|\s*:?-{2,}:?\s*\|")
#: Python reprs that leaked into the page (a cell's last expression).
_REPR = _re.compile(r"<(matplotlib\.[\w.]+|Axes\b|Figure size|IPython\.core\.[\w.]+|[\w.]+ (object )?at 0x[0-9a-f]+)")
_GLUE_LEFTOVER = _re.compile(r"\{glue(:\w+)?\}")


def _page_problems(path: Path, html_root: Path) -> list[str]:
    from bs4 import BeautifulSoup

    raw = path.read_bytes()
    problems = []
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:  # report it, and check the rest of the page anyway
        problems.append(f"not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start})")
        text = raw.decode("utf-8", errors="replace")
    soup = BeautifulSoup(text, "html.parser")
    main_ = soup.find("main") or soup
    for tag in soup.find_all("script"):
        src = tag.get("src") or ""
        if src.startswith(("http:", "https:", "//")):
            problems.append(f"script loaded from the network: {src}")
    for tag in soup.find_all("link", rel="stylesheet"):
        href = tag.get("href") or ""
        if href.startswith(("http:", "https:", "//")):
            problems.append(f"stylesheet loaded from the network: {href}")
    for tag in main_.find_all(["p", "div", "td", "li"]):
        if tag.find(["pre", "code"]) is not None and tag.name == "div":
            continue
        text = tag.get_text(" ", strip=True)
        if tag.name == "p" and _RAW_PIPE_TABLE.search(text):
            problems.append(f"raw pipe table: {text[:80]!r}")
    for out in main_.select("div.cell_output"):
        text = out.get_text(" ", strip=True)
        m = _REPR.search(text)
        if m:
            problems.append(f"repr output: {m.group(0)!r}")
        for plain in out.select("div.output.text_plain"):
            problems.append(f"last-expression output: {plain.get_text(' ', strip=True)[:60]!r}")
    prose = BeautifulSoup(str(main_), "html.parser")  # the text outside code
    for tag in prose.find_all(["pre", "code"]) + prose.select("dt.sig"):  # code, API signatures
        tag.decompose()
    body_text = prose.get_text(" ", strip=True)
    for m in _GLUE_LEFTOVER.finditer(body_text):
        problems.append(f"unrendered glue: {body_text[max(0, m.start() - 30):m.end() + 30]!r}")
    for m in _re.finditer(r"\bnan\b", body_text):  # a missing number printed as a value
        problems.append(f"nan in the text: {body_text[max(0, m.start() - 40):m.end() + 20]!r}")
    seen: dict[str, int] = {}
    for img in main_.find_all("img"):
        src = img.get("src") or ""
        if not src.startswith("data:"):
            target = (path.parent / src.split("?")[0].split("#")[0]).resolve()
            if not target.is_file():
                problems.append(f"missing image: {src}")
                continue
            key = target.name
        else:
            key = src[:200]
        seen[key] = seen.get(key, 0) + 1
    problems += [f"image shown {n} times: {k}" for k, n in seen.items() if n > 1]
    # the same figure stored twice under different names (e.g. pasted and shown by the cell)
    import hashlib

    digests: dict[str, list[str]] = {}
    for img in main_.find_all("img"):
        src = (img.get("src") or "").split("?")[0]
        target = (path.parent / src).resolve()
        if not src.startswith("data:") and target.is_file():
            digests.setdefault(hashlib.sha1(target.read_bytes()).hexdigest(), []).append(src)
    problems += [f"same image under {len(v)} names: {', '.join(v)}" for v in digests.values()
                 if len(set(v)) > 1]
    return problems


def html_problems(html_root: str | os.PathLike, pages: Sequence[str] | None = None,
                  root: str | os.PathLike = paths.REPO_ROOT) -> dict[str, list[str]]:
    """``{page: [problem, ...]}`` for the built HTML book in ``html_root`` (pages: docnames, default
    every page of the table of contents of the book in ``root``): raw pipe tables, Python reprs and
    other last-expression outputs, unrendered glue, ``nan`` in the text, missing images, an image
    shown twice, scripts or stylesheets loaded from the network, a page that is not UTF-8. An empty
    list means the page is clean."""
    html_root = Path(html_root)
    pages = list(pages) if pages is not None else _toc_files(Path(root))
    out = {}
    for page in pages:
        path = html_root / f"{page}.html"
        out[page] = _page_problems(path, html_root) if path.is_file() else [f"page not built: {path}"]
    return out


#: Console messages of the theme that are information, not errors.
_BENIGN_CONSOLE = ("[PST]", "Got invalid theme mode", "[togglebutton]")


def browser_check(html_root: str | os.PathLike, page: str, screenshot: str | os.PathLike | None = None,
                  chromium: str = "chromium", width: int = 1280, timeout: float = 60.0) -> list[str]:
    """Load ``page`` of the built book in headless Chromium with every network name unresolvable
    (offline) and return the problems: console messages (other than the theme's information
    messages), and display math left as raw TeX (no MathJax output while the page has math).
    Saves a screenshot to ``screenshot`` when given. Raises ``FileNotFoundError`` when
    ``chromium`` is not installed."""
    import shutil
    import tempfile

    exe = shutil.which(chromium)
    if exe is None:
        raise FileNotFoundError(f"{chromium} not found (Debian: apt-get install chromium)")
    url = (Path(html_root) / f"{page}.html").resolve().as_uri()
    with tempfile.TemporaryDirectory(prefix="ntknb-chromium-") as profile:
        base = [exe, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                "--disable-background-networking", f"--user-data-dir={profile}",
                '--host-resolver-rules=MAP * ~NOTFOUND', "--enable-logging=stderr", "--v=0",
                "--virtual-time-budget=6000", f"--window-size={width},1600"]
        if screenshot is not None:
            base.append(f"--screenshot={Path(screenshot).resolve()}")
        proc = subprocess.run(base + ["--dump-dom", url], capture_output=True, text=True, timeout=timeout)
    problems = []
    for line in proc.stderr.splitlines():
        if ":CONSOLE" in line:
            msg = line.split("] ", 1)[-1]
            if not any(b in msg for b in _BENIGN_CONSOLE):
                problems.append(f"console: {msg[:200]}")
    dom = proc.stdout
    n_math = len(_re.findall(r'class="math[ "]', dom))
    n_rendered = dom.count("<mjx-container")
    if n_math and n_rendered == 0:
        problems.append(f"math not rendered: {n_math} math elements, no MathJax output")
    if "<mjx-merror" in dom:
        problems.append("MathJax error in an expression (mjx-merror)")
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ntknb.book", description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default=str(paths.REPO_ROOT), metavar="DIR",
                        help="the book's folder, holding _config.yml and _toc.yml (default: %(default)s)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    b = sub.add_parser("build", help="check-sync, then build the HTML book (warnings are errors)")
    b.add_argument("--strict", action="store_true",
                   help="also fail when a notebook of the toc has not been executed")
    b.add_argument("--all", dest="fresh", action="store_true", help="rebuild every page, not only changed ones")
    b.add_argument("--path-output", metavar="DIR", help="build into DIR/_build (default: the repository)")
    b.add_argument("--allow-warnings", action="store_true",
                   help="do not turn Sphinx warnings into errors (drafting only)")
    sub.add_parser("check-sync", help="check every notebooks/*.py against its paired .ipynb")
    s = sub.add_parser("sync", help="rewrite the .ipynb inputs from the .py sources, keeping outputs")
    s.add_argument("names", nargs="*", metavar="NAME", help="notebooks to sync (default: all)")
    e = sub.add_parser("execute", help="sync, then execute notebooks in place at default parameters")
    e.add_argument("names", nargs="+", metavar="NAME", help="notebooks to execute (e.g. 00_ntk_basics)")
    lab = sub.add_parser("lab", help="open the notebooks in JupyterLab with the project's kernel")
    lab.add_argument("name", nargs="?", metavar="NAME", help="a notebook to open (e.g. 00_ntk_basics)")
    ci = sub.add_parser("prepare-ci", help="write the chapters with a CI preset (notebooks/NAME.ci.yaml) "
                        "into DIR with it injected; print every notebook CI validates")
    ci.add_argument("dest", metavar="DIR", help="folder for the prepared notebooks (created)")
    c = sub.add_parser("check-html", help="report the rendering problems of each page of a built book")
    c.add_argument("html", nargs="?", default=None, help="the built HTML (default: ROOT/_build/html)")
    args, unknown = parser.parse_known_args(argv)  # `lab` passes the rest on to jupyter lab
    if unknown and args.command != "lab":
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")

    if args.command == "lab":
        os.execv(sys.executable, lab_command(args.name, unknown, root=args.root))
    if args.command == "check-html":
        html = args.html if args.html is not None else str(Path(args.root) / "_build" / "html")
        try:
            found = html_problems(html, root=args.root)
        except (OSError, ValueError) as exc:
            print(f"ntknb.book: check-html: {' '.join(str(exc).split())}", file=sys.stderr)
            return 2
        try:
            for page, problems in found.items():
                print(f"{page}: {'ok' if not problems else f'{len(problems)} problem(s)'}")
                for p in problems:
                    print(f"    {p}")
            sys.stdout.flush()
        except BrokenPipeError:  # `check-html | head`: the reader left
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
        return 1 if any(found.values()) else 0

    if args.command == "build":
        return build(
            strict=args.strict,
            path_output=args.path_output,
            fresh=args.fresh,
            warnings_as_errors=not args.allow_warnings,
            root=args.root,
        )
    if args.command == "check-sync":
        problems = check_sync(args.root)
        for p in problems:
            print(f"out of sync: {p}", file=sys.stderr)
        if not problems:
            n = len(paired_notebooks(args.root))
            print(f"ntknb.book: {n} notebook pair(s) in sync")
        return 1 if problems else 0
    if args.command == "prepare-ci":
        from ntknb.runner import RunError

        try:
            for path in prepare_ci(args.dest, root=Path(args.root)):
                print(path)
        except RunError as exc:
            print(f"ntknb.book: {exc}", file=sys.stderr)
            return 2
        return 0
    if args.command == "execute":
        for path in execute(args.names, root=args.root):
            print(f"executed {path}")
        return 0
    written = sync(args.names, root=args.root)
    for path in written:
        print(f"updated {path}")
    if not written:
        print("ntknb.book: every notebook pair already in sync")
    return 0


if __name__ == "__main__":
    sys.exit(main())
