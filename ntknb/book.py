"""Build the book and keep the paired notebooks in sync.

::

    python -m ntknb.book build [--strict] [--all] [--path-output DIR] [--allow-warnings]
    python -m ntknb.book check-sync      # every notebooks/*.py and its .ipynb hold the same inputs
    python -m ntknb.book sync [NAME...]   # rewrite the .ipynb inputs from the .py, keeping outputs
    python -m ntknb.book execute NAME...  # sync, then execute notebooks/NAME.ipynb in place

``bash scripts/dev book`` runs ``build``.

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

from ntknb.runner import DEFAULT_KERNEL

__all__ = [
    "ROOT",
    "SyncProblem",
    "paired_notebooks",
    "compare_pair",
    "check_sync",
    "sync",
    "unexecuted_notebooks",
    "execute",
    "glued_claims",
    "write_results_page",
    "setup",
    "build",
    "main",
]

ROOT = Path(__file__).resolve().parents[1]


@dataclasses.dataclass(frozen=True)
class SyncProblem:
    path: Path
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


def _nb_dir(root: Path | None) -> Path:
    return (Path(root) if root is not None else ROOT) / "notebooks"


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
        out.append((cell.cell_type, "\n".join(lines), tags))
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
        return f"{where}: tags {ca[2]} vs {cb[2]} — run: python -m ntknb.book sync"
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
        written.append(ipynb)
    return written


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
        done.append(ipynb)
    return done


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
    """Notebooks of the table of contents whose stored ``.ipynb`` has a code cell that was
    never executed (or that are missing)."""
    import nbformat

    root = Path(root) if root is not None else ROOT
    bad = []
    for entry in _toc_files(root):
        base = root / entry
        if base.suffix == ".md" or base.with_suffix(".md").is_file():
            continue
        ipynb = base.with_suffix(".ipynb")
        if not ipynb.is_file():
            bad.append(f"{entry}: missing {ipynb.relative_to(root)}")
            continue
        nb = nbformat.read(ipynb, as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code" and c.source.strip()]
        if any(c.get("execution_count") is None for c in code):
            bad.append(f"{entry}: not executed (run it at default parameters and save the outputs)")
    return bad


def glued_claims(root: str | os.PathLike | None = None) -> list[tuple[str, object]]:
    """``(docname, glued claims or None)`` for every notebook of the table of contents, from
    its stored ``.ipynb`` (:func:`ntknb.runner.extract_glued`), in toc order."""
    import nbformat

    from ntknb.runner import extract_glued

    root = Path(root) if root is not None else ROOT
    out = []
    for entry in _toc_files(root):
        ipynb = (root / entry).with_suffix(".ipynb")
        if ipynb.is_file():
            out.append((entry, extract_glued(nbformat.read(ipynb, as_version=4)).get("claims")))
    return out


def write_results_page(root: str | os.PathLike | None = None) -> Path | None:
    """Generate the "Results at a glance" page (:mod:`ntknb.results`) from the stored notebooks'
    glued claims, if ``_toc.yml`` lists it; written atomically and only when its text changed.
    Returns its path (``None`` when not listed). A malformed claim raises ``ValueError``."""
    import tempfile

    from ntknb import results

    root = Path(root) if root is not None else ROOT
    if not (root / "_toc.yml").is_file() or results.DOCNAME not in _toc_files(root):
        return None
    path = root / results.PAGE
    text = results.results_page(glued_claims(root))
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".results.", suffix=".md.tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)
    return path


def setup(app) -> dict:
    """Sphinx extension (``sphinx.extra_extensions: [ntknb.book]`` in ``_config.yml``):
    regenerate the results page before the sources are read."""
    app.connect("config-inited", lambda app_, config: write_results_page(app_.srcdir), priority=100)
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
    root = Path(root) if root is not None else ROOT
    problems = check_sync(root)
    if problems:
        for p in problems:
            print(f"ntknb.book: out of sync: {p}", file=sys.stderr)
        return 1
    try:  # the generated "Results at a glance" page (also regenerated by the Sphinx extension)
        write_results_page(root)
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


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ntknb.book", description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default=str(ROOT), metavar="DIR",
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
    args = parser.parse_args(argv)

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
