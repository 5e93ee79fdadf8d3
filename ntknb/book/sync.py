"""The stored notebooks: each py:percent source paired with its executed ``.ipynb``.

Every ``notebooks/NN_name.py`` (py:percent, the single source) is paired with
``notebooks/NN_name.ipynb`` (same inputs, plus the outputs of a run at default parameters;
the book renders those outputs, it never executes notebooks). :func:`check_sync` compares
the two as jupytext reads them: per cell the type, the source (trailing whitespace
ignored), the tags and the figure caption; outputs, execution counts and other metadata are
ignored. :func:`sync` rewrites the ``.ipynb`` inputs from the ``.py`` keeping the outputs;
:func:`execute` then executes a notebook in place at its defaults and records, in its metadata
(``metadata.ntknb.execution``, :func:`execution_record`), when and where it ran.
:func:`unexecuted_notebooks` checks that every stored notebook of the table of contents is one
complete run at the defaults; :func:`prepare_ci` writes the chapters with a CI preset for nbval.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from ntknb import paths
from ntknb.book.params import DEFAULT_KERNEL, prepare
from ntknb.book.run import inject_parameters

__all__ = [
    "SyncProblem",
    "paired_notebooks",
    "compare_pair",
    "check_sync",
    "sync",
    "SOURCE_CELL_METADATA",
    "execute",
    "RECORDED_PACKAGES",
    "execution_record",
    "toc_files",
    "unexecuted_notebooks",
    "CI_PRESET_SUFFIX",
    "prepare_ci",
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


def toc_files(root: str | os.PathLike) -> list[str]:
    """The documents of the book in ``root`` (``root`` and ``file`` entries of its ``_toc.yml``), in order."""
    import yaml

    toc = yaml.safe_load((Path(root) / "_toc.yml").read_text())
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
    for entry in toc_files(root):
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
    :func:`ntknb.book.params.prepare`) and its outputs cleared; ``dest/data`` links to
    ``notebooks/data`` so relative paths resolve as in ``notebooks/``. A notebook without one
    is validated as stored, at its defaults. The book's outputs stay those of the defaults
    (:func:`unexecuted_notebooks` checks that).

    Returns:
      the notebooks to validate, in name order: stored ``notebooks/NAME.ipynb`` or prepared
      ``dest/NAME.ipynb``.
    """
    import nbformat

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
        _, nb, _, injected = prepare(py, [("file", str(preset))], kernel_name)
        nb = inject_parameters(nb, injected)
        for cell in nb.cells:
            if cell.cell_type == "code":
                cell.outputs, cell.execution_count = [], None
        target = dest / ipynb.name
        nbformat.write(nb, target)
        out.append(target)
    return out
