"""Execute a notebook with new parameters: the run behind ``ntknb run`` (its checks before
execution are :mod:`ntknb.book.params`).

:func:`run_notebook` converts a py:percent source to a temporary ``.ipynb`` with
jupytext, writes the overrides into an ``injected-parameters`` cell as Python literals
(:func:`inject_parameters`), executes it with papermill (kernel ``ntknb``, the project's
kernelspec in ``.venv``; working directory = the notebook's folder, like nbval and the
book) in a partial folder ``.<out>.ntknb-partial-*`` next to the output folder (same file
system), and renames that into place when the run ends (:func:`check_out_dir` refuses,
before any work, folders it would overwrite or could not move into). The output folder holds

* ``<name>.ipynb`` — the executed notebook (also when a cell fails or the run is
  interrupted; then marked incomplete),
* ``status.json`` — ``done``, ``failed`` or ``interrupted``, with times and the error,
* ``metrics.json`` — every value the notebook glued (:func:`extract_glued`) except wall-clock
  times, NaN written as ``null`` (:func:`write_metrics`); only for a finished run, and
  byte-identical for identical runs,
* ``timings.json`` — the glued wall-clock values (``runtime_s``, ...) and the run's wall time,
* ``parameters.yaml`` — the effective parameters (defaults plus overrides),
* ``.ntknb-run.json`` — the marker: the run's id, process, host, status and the files above.

Only what a marker proves is ever replaced or deleted: an earlier run's folder (its marker
lists everything in it), and stale partial folders of this tool whose process is gone. A run
that fails never replaces a finished one (it goes beside it, ``<out>.failed-<timestamp>``); a
second run into the same folder while one is going is refused (a lock ``.<out>.ntknb-lock``
created with ``O_EXCL``). SIGINT, SIGTERM and SIGHUP stop the kernel and leave the run
``interrupted``. SIGKILL runs no cleanup: the kernel dies with the runner (``PR_SET_PDEATHSIG``
on Linux), its connection file lies in the partial folder, and the next run beside it removes
the partial folder and the stale lock (:func:`clean_stale_partials`, :class:`_OutLock`).
"""

from __future__ import annotations

import ast
import dataclasses
import datetime as _dt
import json
import logging
import math
import os
import re
import shutil
import signal
import socket
import stat
import sys
import tempfile
import threading
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ntknb import paths
from ntknb.book.params import (DEFAULT_KERNEL, PARAMETERS_TAG, Override, RunError, check_plain, prepare,
                               read_bounded, short_repr)

__all__ = [
    "RunResult",
    "glued_value",
    "extract_glued",
    "kernel_startup_arguments",
    "RUN_STATUS",
    "RUN_MARKER",
    "RUN_TIMINGS",
    "MAX_OUT_NAME",
    "SOURCE_DIRS",
    "KERNEL_CONNECTION",
    "is_timing",
    "split_timings",
    "read_marker",
    "source_folder_problem",
    "check_out_dir",
    "check_cell_timeout",
    "clean_stale_partials",
    "inject_parameters",
    "write_metrics",
    "check_kernel",
    "run_notebook",
]


@dataclasses.dataclass
class RunResult:
    """What :func:`run_notebook` returns: where the run's files are, its glued values and parameters."""

    notebook: Path  #: the source notebook
    out_dir: Path
    executed: Path  #: the executed notebook
    metrics_path: Path
    metrics: dict[str, Any]
    parameters: dict[str, Any]  #: effective parameters (defaults + overrides)


# ------------------------------------------------------------------------------ glue


def _literal(text: str) -> Any:
    """A Python literal from a text/plain repr (``nan`` / ``inf`` allowed); else raise."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        pass
    tree = ast.parse(text.strip(), mode="eval")
    allowed = (ast.Expression, ast.Constant, ast.List, ast.Tuple, ast.Dict, ast.UnaryOp,
               ast.USub, ast.UAdd, ast.Name, ast.Load)
    for node in ast.walk(tree):
        if not isinstance(node, allowed) or (isinstance(node, ast.Name) and node.id not in ("nan", "inf")):
            raise ValueError("not a literal")
    return eval(compile(tree, "<glue>", "eval"), {"__builtins__": {}}, {"nan": math.nan, "inf": math.inf})


def glued_value(data: Mapping[str, Any]) -> Any:
    """The value of one glued output from its MIME bundle ``data``: the Python literal of its
    ``text/plain`` (``nan`` / ``inf`` allowed), else its Markdown, else the text, else
    ``"<mime types>"`` (a figure or another rich output)."""
    text = data.get("text/plain")
    if isinstance(text, list):
        text = "".join(text)
    if text is not None:
        try:
            return _literal(text)
        except (ValueError, SyntaxError, RecursionError):
            pass
    md = data.get("text/markdown")
    if md is not None:
        return "".join(md) if isinstance(md, list) else md
    if text is not None:
        return text
    return "<" + ", ".join(sorted(data)) + ">"


def extract_glued(nb) -> dict[str, Any]:
    """Every value glued in ``nb`` (myst-nb ``glue`` / :func:`ntknb.report.glue`):
    outputs whose metadata holds ``scrapbook.name``. Numbers, strings, lists and dicts
    come back as Python values (from the stored ``text/plain`` literal), Markdown as its
    text, figures and other rich outputs as ``"<mime types>"``. Later glues of the same
    name win."""
    out: dict[str, Any] = {}
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        for output in cell.get("outputs", []):
            meta = output.get("metadata", {}) or {}
            scrap = meta.get("scrapbook")
            if not isinstance(scrap, Mapping) or "name" not in scrap:
                continue
            prefix = scrap.get("mime_prefix", "")
            data = {
                (k[len(prefix):] if prefix and k.startswith(prefix) else k): v
                for k, v in (output.get("data", {}) or {}).items()
            }
            out[scrap["name"]] = glued_value(data)
    return out


# ------------------------------------------------------------------------------- run


def _default_out_dir(stem: str) -> Path:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = Path("runs") / f"{stem}-{stamp}"
    out, i = base, 1
    while out.exists():
        out = base.with_name(f"{base.name}-{i}")
        i += 1
    return out


RUN_STATUS = "status.json"
#: The marker every run folder holds: the run's id, process, host and the files it wrote. A
#: folder is only ever replaced (or a partial folder removed) when its marker proves that
#: ``ntknb run`` wrote it and nothing else was added since.
RUN_MARKER = ".ntknb-run.json"
#: Wall-clock values of a run: written to ``timings.json``, never to ``metrics.json``, so two
#: identical runs give byte-identical ``metrics.json``.
RUN_TIMINGS = "timings.json"
_TIMING_RE = re.compile(r"(^|_)(runtime|time|wall|duration|elapsed)(_s|_sec|_seconds|_min|_minutes)?$")
_MAX_MARKER_BYTES = 1 << 16
#: The longest ``--out`` folder name: the partial folder beside it adds a prefix and a suffix.
MAX_OUT_NAME = 200
#: Folders of the repository that hold tracked sources: never an output folder (nor inside one).
SOURCE_DIRS = ("notebooks", "ntknb", "book", "tests", "scripts", "benchmarks", ".ci", ".git")
_HOST = socket.gethostname()


def is_timing(name: str) -> bool:
    """Whether the glued value ``name`` is a wall-clock time (``runtime_s``, ``cpu_time_s``,
    ``wall_s``, ...): those go to ``timings.json``, not ``metrics.json``."""
    return bool(_TIMING_RE.search(name))


def split_timings(metrics: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(results, timings)``: the glued values without / with the wall-clock ones."""
    results = {k: v for k, v in metrics.items() if not is_timing(k)}
    return results, {k: v for k, v in metrics.items() if is_timing(k)}


def _pid_alive(pid: Any) -> bool:
    """Whether process ``pid`` runs on this host (a zombie, dead but not yet reaped, does not)."""
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    try:  # Linux: the state after the command name in /proc/PID/stat
        return Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return True


def read_marker(folder: str | os.PathLike) -> dict[str, Any] | None:
    """The run marker (:data:`RUN_MARKER`) of ``folder`` if it holds a valid one (a regular
    file, not a link, at most 64 KiB, with ``ntknb_run``, a ``run_id`` and the list of
    ``files``), else ``None``."""
    try:
        raw = read_bounded(Path(folder) / RUN_MARKER, _MAX_MARKER_BYTES, "run marker", follow_symlinks=False)
        data = json.loads(raw.decode("utf-8"))
    except (OSError, RunError, ValueError):
        return None
    if not (isinstance(data, dict) and data.get("ntknb_run") == 1 and isinstance(data.get("run_id"), str)
            and isinstance(data.get("files"), list) and all(isinstance(f, str) for f in data["files"])):
        return None
    return data


def _write_marker(folder: Path, marker: Mapping[str, Any]) -> None:
    tmp = folder / f"{RUN_MARKER}.tmp"
    tmp.write_text(json.dumps(_jsonable(dict(marker)), indent=2) + "\n")
    os.replace(tmp, folder / RUN_MARKER)


def _foreign_entries(folder: Path, marker: Mapping[str, Any]) -> list[str]:
    """The entries of ``folder`` its marker does not list as plain files the run wrote."""
    own = set(marker["files"]) | {RUN_MARKER}
    foreign = []
    for entry in sorted(os.listdir(folder)):
        if entry not in own or not stat.S_ISREG(os.lstat(folder / entry).st_mode):
            foreign.append(entry)
    return foreign


def source_folder_problem(out: str | os.PathLike) -> str | None:
    """Why ``out`` may not be an output folder (the repository, one of its tracked source folders
    :data:`SOURCE_DIRS` or a folder inside one), or ``None``."""
    resolved = Path(os.path.abspath(Path(out).expanduser()))
    try:
        resolved = resolved.resolve()
    except (OSError, RuntimeError):
        pass
    root = paths.REPO_ROOT.resolve()
    if resolved == root or resolved in root.parents:
        return f"{out} would hold the project's checkout ({root})"
    for name in SOURCE_DIRS:
        src = root / name
        if resolved == src or src in resolved.parents:
            return f"{out} is inside the project's tracked folder {name}/ ({src})"
    return None


def check_out_dir(out: str | os.PathLike, stem: str, notebook: str | os.PathLike | None = None) -> None:
    """Refuse an output folder that would overwrite files ``ntknb run`` did not write, or that
    the run could not be moved into at its end.

    Allowed: a new folder, an empty one, or the folder of an earlier ``ntknb run`` (its
    :data:`RUN_MARKER` lists every file in it; it is replaced as a whole when the new run
    finishes). Refused (:class:`RunError`, exit code 2, before any work): the repository, its
    ``notebooks/`` or another tracked source folder or anything inside them, the folder holding
    ``notebook``, a file, a symbolic link, a folder with other content (also a folder holding
    only ``status.json`` or downloaded notebooks: no marker, no proof), a mount point (the run
    is written beside its target and renamed into place, which cannot cross file systems), a
    folder that is not writable, and a name longer than :data:`MAX_OUT_NAME` bytes."""
    out = Path(out)
    try:
        _check_out_dir(out, stem, notebook)
    except OSError as exc:
        raise RunError(f"--out {out}: {exc.strerror or exc}") from None


def _check_out_dir(out: Path, stem: str, notebook) -> None:  # noqa: ARG001
    name = Path(os.path.abspath(out)).name
    if len(os.fsencode(name)) > MAX_OUT_NAME:
        raise RunError(f"--out name is {len(os.fsencode(name))} bytes long ({short_repr(name, 40)}); "
                       f"the limit is {MAX_OUT_NAME} bytes (the run is written beside it under a longer name)")
    problem = source_folder_problem(out)
    if problem is not None:
        raise RunError(f"--out {problem}; choose another folder (default: runs/<notebook>-<timestamp>/)")
    if notebook is not None:
        src = Path(notebook).resolve()
        if Path(os.path.abspath(out)).resolve() in src.parents:
            raise RunError(f"--out {out} holds the notebook being run ({src.name}), which the run would "
                           "overwrite; choose another folder")
    if out.is_symlink():
        raise RunError(f"--out {out} is a symbolic link{' (dangling)' if not out.exists() else ''}; "
                       "give a real folder")
    if not out.exists():  # created at the start of the run: its nearest existing folder must allow that
        above = Path(os.path.abspath(out)).parent
        while not os.path.lexists(above):
            above = above.parent
        if not above.is_dir():
            raise RunError(f"--out {out} cannot be created: {above} is not a folder")
        if not os.access(above, os.W_OK | os.X_OK):
            raise RunError(f"--out {out} cannot be created: {above} is not writable; choose another folder")
        return
    if not out.is_dir():
        raise RunError(f"--out {out} exists and is not a folder")
    parent = Path(os.path.abspath(out)).parent
    if os.stat(out).st_dev != os.stat(parent).st_dev:
        raise RunError(f"--out {out} is a mount point (another file system than {parent}); the run is written "
                       f"next to its target and renamed into place: use a folder inside it, e.g. {out / stem}")
    if not os.access(out, os.W_OK | os.X_OK) or not os.access(parent, os.W_OK | os.X_OK):
        raise RunError(f"--out {out} is not writable (nor would the run be movable into it); choose another folder")
    entries = sorted(os.listdir(out))
    if not entries:
        return
    marker = read_marker(out)
    if marker is None:
        shown = ", ".join(entries[:3]) + (", ..." if len(entries) > 3 else "")
        raise RunError(f"--out {out} is not empty and not an earlier `ntknb run` output (it holds {shown} and "
                       f"no {RUN_MARKER} marker); ntknb run replaces only folders it wrote: choose a new or "
                       "empty folder")
    foreign = _foreign_entries(out, marker)
    if foreign:
        raise RunError(f"--out {out} is an earlier run's folder but also holds {', '.join(foreign[:3])}, "
                       "which the new run would delete; move it or choose another folder")


class _OutLock:
    """An exclusive lock on an output folder: ``.<name>.ntknb-lock`` beside it, created with
    ``O_EXCL`` and holding the run's id, process and host. A lock whose process is gone (on this
    host) is stale and taken over; a live one refuses the second run (:class:`RunError`)."""

    def __init__(self, out: Path, run_id: str):
        self.out = out
        self.path = Path(os.path.abspath(out)).parent / f".{Path(os.path.abspath(out)).name}.ntknb-lock"
        self.run_id = run_id
        self.held = False

    def acquire(self) -> None:
        body = json.dumps({"ntknb_run": 1, "run_id": self.run_id, "pid": os.getpid(), "host": _HOST,
                           "started": _now()}).encode()
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                try:
                    other = json.loads(read_bounded(self.path, _MAX_MARKER_BYTES, "lock", follow_symlinks=False))
                except (OSError, RunError, ValueError):
                    other = {}
                if isinstance(other, dict) and other.get("host") == _HOST and not _pid_alive(other.get("pid")):
                    try:
                        os.unlink(self.path)  # stale: its run is gone
                    except FileNotFoundError:
                        pass
                    continue
                pid = other.get("pid") if isinstance(other, dict) else None
                raise RunError(f"another `ntknb run` (pid {pid}) is writing into --out {self.out}; "
                               f"wait for it or choose another --out (if no such run is going, delete {self.path})") from None
            with os.fdopen(fd, "wb") as fh:
                fh.write(body)
            self.held = True
            return
        raise RunError(f"cannot lock the output folder ({self.path})")

    def release(self) -> None:
        if not self.held:
            return
        try:
            data = json.loads(read_bounded(self.path, _MAX_MARKER_BYTES, "lock", follow_symlinks=False))
            if isinstance(data, dict) and data.get("run_id") == self.run_id:
                os.unlink(self.path)
        except (OSError, RunError, ValueError):
            pass
        self.held = False


_PARTIAL_RE = re.compile(r"^\.(?P<name>.+)\.ntknb-(?P<kind>partial|old)-[A-Za-z0-9_]+$")


def clean_stale_partials(out: str | os.PathLike) -> list[Path]:
    """Remove what runs killed beside ``out``'s folder left and this tool provably owns; returns
    the folders removed. Called under ``out``'s lock (:class:`_OutLock`).

    * a partial folder ``.<any name>.ntknb-partial-*`` holding a run marker that names this host
      and a process that is gone (the run that created it, killed by SIGKILL or a power cut):
      its kernel is stopped if it still runs (:func:`_stop_orphan_kernel`), and the folder with
      the kernel's connection file goes;
    * ``.<out's name>.ntknb-old-*`` (an earlier finished run being swapped out, only under ``out``'s
      lock, which its creator no longer holds): deleted when ``out`` holds a run again, else moved
      back to ``out`` (the swap was cut between its two renames: the finished run is kept).

    Anything without such a marker (or of a live process, or of another host) is left alone."""
    out = Path(os.path.abspath(out))
    removed = []
    try:
        entries = sorted(os.listdir(out.parent))
    except OSError:
        return removed
    for entry in entries:
        match = _PARTIAL_RE.match(entry)
        if match is None or (match["kind"] == "old" and match["name"] != out.name):
            continue
        folder = out.parent / entry
        if folder.is_symlink() or not folder.is_dir():
            continue
        marker = read_marker(folder) if match["kind"] == "partial" else read_marker(folder / "run")
        if marker is None or marker.get("host") != _HOST or _pid_alive(marker.get("pid")):
            continue
        if match["kind"] == "partial":
            _stop_orphan_kernel(folder, marker)
        elif not os.path.lexists(out):
            os.rename(folder / "run", out)
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    return removed


def inject_parameters(nb, parameters: Mapping[str, Any]):
    """``nb`` with a cell tagged ``injected-parameters`` right after its ``parameters`` cell
    (replacing an earlier injected cell), assigning each value as a Python literal
    (``repr`` of plain JSON types, checked to evaluate back to the same value), and
    ``metadata.papermill.parameters`` set. papermill gets no parameters of its own, so it
    neither translates values nor warns about parameters it fails to detect."""
    import nbformat

    lines = ["# Parameters"]
    for name, value in parameters.items():
        if not name.isidentifier():
            raise RunError(f"not a parameter name: {short_repr(name)}")
        check_plain(value, name)
        text = repr(value)
        if ast.literal_eval(text) != value:  # pragma: no cover - plain JSON values round-trip
            raise RunError(f"cannot write parameter {name!r} as a Python literal")
        lines.append(f"{name} = {text}")
    cells = [c for c in nb.cells if "injected-parameters" not in c.get("metadata", {}).get("tags", [])]
    cell = nbformat.v4.new_code_cell("\n".join(lines) + "\n")
    cell.metadata["tags"] = ["injected-parameters"]
    where = next((i + 1 for i, c in enumerate(cells) if PARAMETERS_TAG in c.get("metadata", {}).get("tags", [])), 0)
    nb.cells = cells[:where] + [cell] + cells[where:]
    nb.metadata.setdefault("papermill", {})["parameters"] = dict(parameters)
    return nb


def write_metrics(path: str | os.PathLike, metrics: Mapping[str, Any]) -> list[str]:
    """Write ``metrics`` as strict JSON (atomically). NaN and ±Infinity are not JSON: they
    are written as ``null`` and listed under the key ``"_note"``. Returns those locations."""
    nulls: list[str] = []

    def clean(value: Any, where: str) -> Any:
        if isinstance(value, float) and not math.isfinite(value):
            nulls.append(f"{where} ({value!r})")
            return None
        if isinstance(value, (list, tuple)):
            return [clean(v, f"{where}[{i}]") for i, v in enumerate(value)]
        if isinstance(value, dict):
            return {str(k): clean(v, f"{where}[{k!r}]") for k, v in value.items()}
        if isinstance(value, (set, frozenset, complex)):
            return repr(value)
        return value

    data = {str(k): clean(v, str(k)) for k, v in metrics.items()}
    if nulls:
        shown = ", ".join(nulls[:10]) + (f" and {len(nulls) - 10} more" if len(nulls) > 10 else "")
        data["_note"] = f"JSON has no NaN or Infinity: these values are written as null: {shown}"
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, allow_nan=False) + "\n")
    os.replace(tmp, path)
    return nulls


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (set, frozenset, complex)):
        return repr(value)
    return value


class _QuietAfterInterrupt(logging.Filter):
    """Drops the records of papermill / nbclient / asyncio once a run is interrupted: stopping
    the kernel makes the pending cell's task fail ("Kernel died while waiting for execute
    reply", "Task exception was never retrieved"), which is expected, and the one-line
    message of ``ntknb run`` already says what happened."""

    active = False

    def filter(self, record: logging.LogRecord) -> bool:
        return not self.active


_QUIET = _QuietAfterInterrupt()
for _name in ("papermill", "nbclient", "asyncio", "traitlets"):
    logging.getLogger(_name).addFilter(_QUIET)


class _Signals:
    """While active (main thread only): SIGINT, SIGTERM and SIGHUP raise KeyboardInterrupt once, so
    papermill / nbclient stop the kernel and every ``finally`` runs; ``received`` names the
    signal. Once ``deferred`` (cleanup under way) or after the first one, signals are noted
    and ignored."""

    def __init__(self):
        self.received: str | None = None
        self.deferred = False
        self._old: dict[int, Any] = {}

    def _handler(self, signum, frame):  # noqa: ARG002
        if self.received is None:
            self.received = signal.Signals(signum).name
            _QUIET.active = True
            if not self.deferred:
                raise KeyboardInterrupt
        # a second Ctrl-C while cleaning up is ignored: cleanup finishes

    def __enter__(self):
        _QUIET.active = False
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)):
                if sig is not None:
                    self._old[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)
        return False


def _now() -> str:
    return _dt.datetime.now().astimezone().isoformat(timespec="seconds")


def _write_status(folder: Path, **fields: Any) -> None:
    status = {"ntknb_run": 1, **fields}
    tmp = folder / f".{RUN_STATUS}.tmp"
    tmp.write_text(json.dumps(_jsonable(status), indent=2) + "\n")
    os.replace(tmp, folder / RUN_STATUS)


def _mark_incomplete(executed: Path, reason: str) -> str:
    """Mark a partially executed notebook: cells that never started get papermill status
    ``pending`` again (papermill marks them ``completed`` at shutdown), the running cell
    ``interrupted``, and a first markdown cell says so. Returns where it stopped."""
    import nbformat

    try:
        nb = nbformat.read(executed, as_version=4)
    except Exception:  # noqa: BLE001 - nothing usable was written
        return "before the first cell"
    stopped = "before the first cell"
    for i, cell in enumerate(nb.cells):
        meta = cell.get("metadata", {}).get("papermill")
        if not isinstance(meta, dict):
            continue
        if meta.get("start_time"):
            if meta.get("status") != "failed":
                meta["status"] = "completed"
            stopped = f"cell {i + 1} of {len(nb.cells)}"
            last = meta
        else:
            meta["status"] = "pending"
            meta["end_time"] = None
    if stopped != "before the first cell":
        last["status"] = "interrupted"
    note = nbformat.v4.new_markdown_cell(
        f"**ntknb run: {reason} in {stopped}; the cells after it did not run. "
        "This notebook is incomplete.**"
    )
    note.metadata["tags"] = ["ntknb-incomplete"]
    nb.cells.insert(0, note)
    nb.metadata.setdefault("ntknb", {})["status"] = "interrupted"
    nb.metadata["ntknb"]["reason"] = reason
    nbformat.write(nb, executed)
    return stopped


def _stop_kernel(km) -> None:
    """Stop the kernel of ``km`` (if it runs) and remove its connection file; never raises."""
    from jupyter_core.utils import run_sync

    try:
        if km.has_kernel:
            run_sync(km.shutdown_kernel)(now=True)
    except Exception:  # noqa: BLE001 - already dead, or never started
        pass
    try:
        run_sync(km.cleanup_resources)()
    except Exception:  # noqa: BLE001
        pass


def _beside(out: Path, kind: str) -> Path:
    """A new name next to ``out``: ``<name>.<kind>-<timestamp>[-i]``."""
    base = f"{out.name}.{kind}-{_dt.datetime.now().strftime('%Y%m%d-%H%M%S')}"
    cand, i = out.parent / base, 1
    while os.path.lexists(cand):
        cand = out.parent / f"{base}-{i}"
        i += 1
    return cand


def _install_run(tmp_dir: Path, out: Path, status: str = "done",
                 previous: Mapping[str, Any] | None = None) -> tuple[Path, str]:
    """Move the run in ``tmp_dir`` (beside ``out``, same file system) to ``out``; returns where
    it went and why, if not to ``out``.

    A new folder is a rename; an empty folder receives the files; an earlier run's folder (its
    marker ``previous`` still lists everything in it) is swapped out as a whole and only then
    deleted. A run that did not finish never replaces a finished one, and nothing replaces a
    folder that changed since the run started (another run's, or files added to it): the new
    run then goes beside it, ``<name>.failed-<timestamp>`` / ``<name>.run-<timestamp>``."""
    if not os.path.lexists(out):
        os.rename(tmp_dir, out)
        return out, ""
    if out.is_dir() and not out.is_symlink() and not os.listdir(out):
        for p in sorted(tmp_dir.iterdir()):
            os.replace(p, out / p.name)
        tmp_dir.rmdir()
        return out, ""
    marker = read_marker(out) if out.is_dir() and not out.is_symlink() else None
    ours = (marker is not None and not _foreign_entries(out, marker)
            and (previous is None or marker.get("run_id") == previous.get("run_id")))
    if not ours:
        beside = _beside(out, "failed" if status != "done" else "run")
        os.rename(tmp_dir, beside)
        return beside, f"{out} changed while this run was going (not replaced)"
    if status != "done" and marker.get("status") == "done":
        beside = _beside(out, "failed")
        os.rename(tmp_dir, beside)
        return beside, f"the finished run in {out} is kept"
    old = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.ntknb-old-"))
    os.replace(out, old / "run")
    try:
        os.rename(tmp_dir, out)
    except OSError:
        os.replace(old / "run", out)
        raise
    shutil.rmtree(old, ignore_errors=True)
    return out, ""


#: The kernel's connection file, inside the partial folder (not Jupyter's runtime folder): a run
#: killed with SIGKILL leaves it only there, and the next run removes it with the folder.
KERNEL_CONNECTION = ".kernel-connection.json"


#: Run by ``python -c`` before the kernel: ``prctl(PR_SET_PDEATHSIG, SIGKILL)``, exit if the runner
#: (argv[1]) is already gone, then exec the kernel's command (the setting survives ``execve``).
_DIE_WITH_PARENT = ("import ctypes, os, sys; ctypes.CDLL(None).prctl(1, 9, 0, 0, 0); "
                    "os.getppid() == int(sys.argv[1]) or os._exit(1); os.execvp(sys.argv[2], sys.argv[2:])")


def _die_with_parent(cmd: Sequence[str]) -> list[str]:
    """``cmd`` wrapped so that, on Linux, the process is killed (SIGKILL) when this process dies, even
    by SIGKILL, which runs no cleanup (``prctl(PR_SET_PDEATHSIG)`` in a small launcher that then
    execs ``cmd``; no ``preexec_fn``, which would fork a multithreaded JAX process). Elsewhere ``cmd``
    as is: ipykernel's parent poller (``JPY_PARENT_PID``) still stops the kernel within seconds."""
    if not sys.platform.startswith("linux"):
        return list(cmd)
    return [sys.executable, "-c", _DIE_WITH_PARENT, str(os.getpid()), *cmd]


def kernel_startup_arguments(environ: Mapping[str, str] | None = None) -> list[str]:
    """The kernel's extra command-line arguments of ``environ`` (default ``os.environ``): when
    :data:`ntknb.replicas.PROCESSES_ENV` is set, the kernel joins that ``jax.distributed`` run
    before the first cell (:func:`ntknb.replicas.initialize_processes`; it must precede any JAX
    computation, and this launcher, which imports the chapter modules, must not join itself);
    otherwise none."""
    from ntknb.replicas import PROCESSES_ENV

    env = os.environ if environ is None else environ
    if not env.get(PROCESSES_ENV, "").strip():
        return []
    return ["--IPKernelApp.exec_lines=import ntknb.replicas; ntknb.replicas.initialize_processes()"]


def _kernel_manager(kernel_name: str, folder: Path, marker: dict[str, Any]):
    """An ``AsyncKernelManager`` whose kernel dies with this process (:func:`_die_with_parent`),
    writes its connection file into ``folder`` (:data:`KERNEL_CONNECTION`) and records its process
    id in ``folder``'s marker (``kernel_pid``), so :func:`clean_stale_partials` can stop a kernel
    that outlived its run and prove it is that run's (its command line names the file)."""
    from jupyter_client import AsyncKernelManager

    class _OwnedKernelManager(AsyncKernelManager):
        async def _async_launch_kernel(self, kernel_cmd, **kw):
            await super()._async_launch_kernel(_die_with_parent(kernel_cmd), **kw)
            marker["kernel_pid"] = getattr(self.provisioner, "pid", None)
            _write_marker(folder, marker)

    km = _OwnedKernelManager(kernel_name=kernel_name)
    km.connection_file = str(folder / KERNEL_CONNECTION)
    return km


def _stop_orphan_kernel(folder: Path, marker: Mapping[str, Any]) -> None:
    """SIGKILL the kernel ``marker`` records if it still runs and its command line names this
    folder's :data:`KERNEL_CONNECTION` (proof that it is this run's kernel, not a reused pid)."""
    pid = marker.get("kernel_pid")
    if not _pid_alive(pid):
        return
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return
    if os.fsencode(os.path.realpath(folder / KERNEL_CONNECTION)) in cmdline:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def check_kernel(kernel_name: str) -> None:
    """:class:`RunError` (exit code 2) unless Jupyter knows a kernel named ``kernel_name``."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    ksm = KernelSpecManager()
    try:
        ksm.get_kernel_spec(kernel_name)
    except NoSuchKernel:
        known = ", ".join(sorted(ksm.find_kernel_specs())) or "(none)"
        hint = " (`bash scripts/dev setup` installs it into .venv)" if kernel_name == DEFAULT_KERNEL else ""
        raise RunError(f"no Jupyter kernel named {kernel_name!r}{hint}; available: {known}") from None


def run_notebook(
    notebook: str | os.PathLike,
    overrides: Sequence[Override] = (),
    out_dir: str | os.PathLike | None = None,
    kernel_name: str = DEFAULT_KERNEL,
    progress_bar: bool = False,
    log_output: bool = False,
    cell_timeout: int | None = None,
) -> RunResult:
    """Validate the overrides, execute the notebook with papermill, write the outputs.

    Raises :class:`RunError` (exit code 2) before execution for bad input (nothing is
    written), (exit code 1) when a cell fails and (130 / 143) when interrupted by SIGINT /
    SIGTERM. The run is written into a temporary folder next to ``out_dir`` and moved into
    place when it ends, whatever the outcome, with ``status.json`` saying ``done``,
    ``failed`` or ``interrupted``; ``metrics.json`` is written only for a finished run, so an
    earlier run's results never sit beside a failed rerun. An interrupted notebook is
    marked incomplete and its kernel is stopped.
    """
    path, nb, params, injected = prepare(notebook, overrides, kernel_name)
    import nbformat
    import papermill
    import yaml
    from papermill.exceptions import PapermillExecutionError

    check_cell_timeout(cell_timeout)
    out = Path(out_dir) if out_dir is not None else _default_out_dir(path.stem)
    check_out_dir(out, path.stem, path)
    check_kernel(kernel_name)
    effective = {name: p.default if p.evaluated else p.source for name, p in params.items()}
    effective.update(injected)
    nb = inject_parameters(nb, injected)
    run_id = uuid.uuid4().hex
    lock = _OutLock(out, run_id)
    with _Signals() as signals:
        signals.deferred = True  # a signal while setting up is noted and acted on below
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            lock.acquire()
        except OSError as exc:
            raise RunError(f"cannot create output folder {out}: {exc.strerror or exc}") from exc
        try:
            check_out_dir(out, path.stem, path)  # again, under the lock
            clean_stale_partials(out)
            previous = read_marker(out) if out.is_dir() and not out.is_symlink() else None
            tmp_dir = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.ntknb-partial-"))
        except OSError as exc:
            lock.release()
            raise RunError(f"cannot create output folder {out}: {exc.strerror or exc}") from exc
        except BaseException:
            lock.release()
            raise
        marker: dict[str, Any] = {"ntknb_run": 1, "run_id": run_id, "pid": os.getpid(), "host": _HOST,
                                  "notebook": str(path), "started": _now(), "status": "running", "files": []}
        executed_tmp = tmp_dir / f"{path.stem}.ipynb"
        executed = out / executed_tmp.name
        status: dict[str, Any] = {"status": "running", "notebook": str(path), "started": _now()}
        error: RunError | None = None
        metrics: dict[str, Any] = {}
        source = tmp_dir / f".{path.stem}.source.ipynb"  # inside the partial folder: cleaned with it
        # Our own kernel manager (papermill / nbclient do not shut down a kernel they did not
        # create), so the kernel is stopped and its connection file removed whatever happens,
        # even on Ctrl-C while it is still starting; the kernel dies with this process (SIGKILL
        # included) and its connection file lies in the partial folder (_kernel_manager).
        km = _kernel_manager(kernel_name, tmp_dir, marker)
        t0 = _dt.datetime.now().timestamp()
        try:
            _write_marker(tmp_dir, marker)
            _write_status(tmp_dir, **status)
            (tmp_dir / "parameters.yaml").write_text(
                yaml.safe_dump(_jsonable(effective), sort_keys=False, default_flow_style=None)
            )
            nbformat.write(nb, source)
            signals.deferred = False
            if signals.received:
                raise KeyboardInterrupt
            papermill.execute_notebook(
                str(source),
                str(executed_tmp),
                parameters=None,  # injected above (inject_parameters)
                kernel_name=kernel_name,
                cwd=str(path.parent),
                progress_bar=progress_bar,
                log_output=False,
                stdout_file=sys.stdout if log_output else None,
                stderr_file=sys.stderr if log_output else None,
                execution_timeout=cell_timeout,
                km=km,
                # ipykernel logs a TCP-encryption warning at start and a spurious
                # "KeyboardInterrupt caught" at shutdown; cell errors still surface.
                extra_arguments=["--IPKernelApp.log_level=CRITICAL", *kernel_startup_arguments()],
            )
            signals.deferred = True
            metrics = extract_glued(nbformat.read(executed_tmp, as_version=4))
            results, timings = split_timings(metrics)
            nulls = write_metrics(tmp_dir / "metrics.json", results)
            timings["run_wall_s"] = round(_dt.datetime.now().timestamp() - t0, 1)
            write_metrics(tmp_dir / RUN_TIMINGS, timings)
            status.update(status="done", finished=_now())
            if nulls:
                status["note"] = f"{len(nulls)} NaN/Infinity value(s) written as null in metrics.json"
        except KeyboardInterrupt:
            signals.deferred = True
            how = signals.received or "SIGINT"
            where = _mark_incomplete(executed_tmp, f"interrupted by {how}") if executed_tmp.exists() else \
                "before the first cell"
            status.update(status="interrupted", finished=_now(), message=f"interrupted by {how} in {where}")
            error = RunError(
                f"{path.name} interrupted by {how} in {where}; kernel stopped; run folder {{where_run}} "
                f"(status interrupted, notebook marked incomplete)",
                exit_code={"SIGTERM": 143, "SIGHUP": 129}.get(how, 130),
            )
        except PapermillExecutionError as exc:
            signals.deferred = True
            evalue = str(exc.evalue).strip().splitlines()
            msg = f"failed in cell {exc.exec_count}: {exc.ename}: {evalue[0] if evalue else ''}"
            status.update(status="failed", finished=_now(), message=msg)
            error = RunError(f"{path.name} {msg} (executed notebook: {{where_nb}}; status failed)", exit_code=1)
        except Exception as exc:  # noqa: BLE001 - kernel died, disk full, ...
            signals.deferred = True
            msg = f"could not execute {path.name}: {type(exc).__name__}: {str(exc).strip()}"
            status.update(status="failed", finished=_now(), message=msg)
            error = RunError(f"{msg} (run folder {{where_run}}; status failed)", exit_code=1)
        finally:
            signals.deferred = True
            _stop_kernel(km)
            where_run, note = out, ""
            try:
                if status["status"] == "running":  # an unexpected BaseException
                    status.update(status="failed", finished=_now(), message="aborted")
                source.unlink(missing_ok=True)
                _write_status(tmp_dir, **status)
                marker.update(status=status["status"], finished=status.get("finished"),
                              files=sorted(n for n in os.listdir(tmp_dir) if n != RUN_MARKER))
                _write_marker(tmp_dir, marker)
                where_run, note = _install_run(tmp_dir, out, status["status"], previous)
            except OSError as exc:
                error = RunError(f"cannot write the run into {out}: {exc.strerror or exc}; "
                                 f"the run is left in {tmp_dir}", exit_code=1)
            finally:
                lock.release()
    if error is not None:
        text = str(error).replace("{where_run}", str(where_run)).replace(
            "{where_nb}", str(where_run / executed_tmp.name))
        if note:
            text += f"; {note}"
        raise RunError(text, exit_code=error.exit_code)
    if note:  # a finished run that could not replace a changed folder
        raise RunError(f"{path.name} finished, written into {where_run}: {note}", exit_code=1)
    return RunResult(path, out, executed, out / "metrics.json", metrics, effective)


def check_cell_timeout(cell_timeout: Any) -> None:
    """``None`` (no limit) or a whole number of seconds >= 1; :class:`RunError` otherwise
    (``0`` would silently mean "no limit" to nbclient)."""
    if cell_timeout is None:
        return
    if isinstance(cell_timeout, bool) or not isinstance(cell_timeout, int) or cell_timeout < 1:
        raise RunError(f"--cell-timeout must be a whole number of seconds >= 1 (leave it out for no limit), "
                       f"got {cell_timeout!r}")
