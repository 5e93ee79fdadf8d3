"""Runs at GPU scale: the runbook behind ``scripts/gpu_runs``, and the recorded runs the book shows.

A chapter may come with ``notebooks/NN_name.gpu.yaml``, a preset sized to a few minutes on one
H100/H200. ``scripts/gpu_runs`` (on the GPU machine) calls :func:`main`, which

1. runs :func:`smoke_test` (imports, devices, an analytic and an empirical NTK checked against
   the CPU backend) and stops early if it fails;
2. runs the listed presets one after the other with ``ntknb run``, each under what is left of
   a total time budget (:func:`run_presets`), and after each run writes ``manifest.json``
   (device, library versions, each run's wall time and status) and, if asked, packs the
   output folder into one archive, so a run cut off by the budget loses only itself.

Back on the CPU machine, :func:`record` copies each finished run's ``metrics.json`` and
``parameters.yaml`` with its device, versions and wall time into ``notebooks/data/gpu/NN_name/``.
A chapter reads its record with :func:`load_recorded` and shows it beside its CPU numbers
(:func:`comparison_rows`); nothing is typed.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
import html
import json
import math
import os
import platform
import re
import shutil
import stat
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "PRESET_SUFFIX",
    "RECORD_DIR",
    "RecordedRun",
    "smoke_test",
    "library_versions",
    "device_description",
    "preset_path",
    "run_presets",
    "record",
    "RecordError",
    "check_run_name",
    "load_recorded",
    "comparison_rows",
    "recorded_section",
    "main",
]

REPO_ROOT = Path(__file__).resolve().parents[1]
#: A chapter's GPU preset is ``notebooks/<name>.gpu.yaml``.
PRESET_SUFFIX = ".gpu.yaml"
#: Recorded GPU runs, one folder per notebook: ``metrics.json``, ``parameters.yaml``, ``run.json``.
RECORD_DIR = REPO_ROOT / "notebooks" / "data" / "gpu"
#: The files of one record (``record`` writes these and only replaces a folder holding no others).
_RECORD_FILES = ("metrics.json", "parameters.yaml", "run.json", "timings.json")
_LIBRARIES = ("jax", "jaxlib", "flax", "optax", "numpy", "neural_tangents", "papermill", "matplotlib")


# ------------------------------------------------------------------------ environment


def library_versions() -> dict[str, str]:
    """Python and the versions of the libraries a run depends on (``"missing"`` if absent)."""
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for name in _LIBRARIES:
        try:
            out[name] = md.version(name.replace("_", "-"))
        except md.PackageNotFoundError:
            out[name] = "missing"
    return out


def device_description() -> dict[str, Any]:
    """The JAX backend and its devices, e.g. ``{"backend": "gpu", "devices": ["NVIDIA H200"]}``."""
    import jax

    devices = jax.devices()
    return {
        "backend": jax.default_backend(),
        "device_count": len(devices),
        "devices": [getattr(d, "device_kind", str(d)) for d in devices],
    }


def smoke_test(tol: float = 1e-3) -> dict[str, Any]:
    """Check that ``ntknb`` works on this machine before spending GPU time on presets.

    Computes, on the default backend, the analytic fc1 NTK (``architectures.get_architecture``) of 16
    random inputs through :func:`ntknb.kernels.kernel_matrix` (blocks spread over all local
    devices) and the empirical NTK of a width-64 network (:func:`ntknb.kernels.empirical_ntk`),
    and compares both with the same computation on the CPU backend in float64 (relative error
    below ``tol``). Returns a dict with the errors, the device and ``ok``; raises nothing.
    """
    result: dict[str, Any] = {"ok": False}
    try:
        import jax
        import jax.numpy as jnp
        import numpy as np

        from ntknb import architectures, kernels

        result["device"] = device_description()
        x = np.asarray(jax.random.uniform(jax.random.PRNGKey(0), (16, 48)), dtype=np.float32)
        arch = architectures.get_architecture("fc1", width=64)
        init_fn, apply_fn, kernel_fn = arch.init_fn, arch.apply_fn, arch.kernel_fn
        _, params = init_fn(jax.random.PRNGKey(1), (-1, 48))
        k_dev = np.asarray(kernels.kernel_matrix(kernel_fn, x, batch_size=8))
        e_dev = np.asarray(kernels.empirical_ntk(apply_fn, params, x, batch_size=8))
        cpu = jax.devices("cpu")[0]
        with kernels.x64(), jax.default_device(cpu):
            x64 = jnp.asarray(x, dtype=jnp.float64)
            p64 = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), params)
            k_ref = np.asarray(kernel_fn(x64, x64, "ntk"))
            e_ref = np.asarray(kernels.empirical_ntk(apply_fn, p64, x64, batch_size=None,
                                                     devices=[cpu]))
        result["analytic_rel_err"] = float(np.abs(k_dev - k_ref).max() / np.abs(k_ref).max())
        result["empirical_rel_err"] = float(np.abs(e_dev - e_ref).max() / np.abs(e_ref).max())
        result["ok"] = bool(result["analytic_rel_err"] < tol and result["empirical_rel_err"] < tol)
    except Exception as exc:  # the runbook must report any failure and stop, not crash
        result["error"] = f"{type(exc).__name__}: {exc}"
    return result


# ------------------------------------------------------------------------------ runs


def preset_path(name: str) -> Path:
    """``notebooks/<name>.gpu.yaml``; ``ValueError`` naming the presets that exist otherwise."""
    try:
        check_run_name(name, "notebook")
    except RecordError as exc:
        raise ValueError(str(exc)) from None
    path = REPO_ROOT / "notebooks" / f"{name}{PRESET_SUFFIX}"
    if not path.is_file():
        known = sorted(p.name[: -len(PRESET_SUFFIX)] for p in path.parent.glob(f"*{PRESET_SUFFIX}"))
        raise ValueError(f"no GPU preset for {name!r}: presets: {', '.join(known) or 'none'}")
    return path


def _write_json(path: Path, value: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(value, indent=2, sort_keys=True, allow_nan=False) + "\n")
    os.replace(tmp, path)


def _pack(out_dir: Path, archive: Path) -> None:
    tmp = archive.with_name(archive.name + ".tmp")
    with tarfile.open(tmp, "w:gz") as tar:
        tar.add(out_dir, arcname=out_dir.name)
    os.replace(tmp, archive)


def _default_runner(name: str, out: Path, timeout_s: float, kernel: str | None) -> int:
    """``ntknb run NAME -f NAME.gpu.yaml --out OUT`` in its own process group; at the time limit
    the group gets SIGTERM (``ntknb run`` stops its kernel and marks the run interrupted), then
    SIGKILL after 20 s, so no kernel is left holding the GPU. Returns 124 on time-out."""
    import signal

    cmd = [sys.executable, "-m", "ntknb.cli", "run", name, "-f", str(preset_path(name)),
           "--out", str(out)]
    if kernel:
        cmd += ["--kernel", kernel]
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, start_new_session=True)
    try:
        return proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        try:  # the kernel runs in a session of its own: remember it to end it too
            import psutil

            family = psutil.Process(proc.pid).children(recursive=True)
        except Exception:  # noqa: BLE001 - psutil missing or the process already gone
            family = []
        for sig, grace in ((signal.SIGTERM, 20), (signal.SIGKILL, 5)):
            try:
                os.killpg(proc.pid, sig)
                proc.wait(timeout=grace)
                break
            except subprocess.TimeoutExpired:
                continue
            except ProcessLookupError:
                break
        for child in family:
            try:
                child.kill()
            except Exception:  # noqa: BLE001 - already ended
                pass
        return 124


def run_presets(
    names: Sequence[str],
    out_dir: str | os.PathLike,
    budget_s: float,
    *,
    min_run_s: float = 30.0,
    max_run_s: Mapping[str, float] | None = None,
    kernel: str | None = None,
    archive: str | os.PathLike | None = None,
    runner: Callable[[str, Path, float, str | None], int] = _default_runner,
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, Any]:
    """Run each preset in order under a total budget of ``budget_s`` seconds.

    Each run gets what is left of the budget, capped by ``max_run_s[name]`` (if given); a run
    that would get less than ``min_run_s`` is skipped. After every run ``manifest.json`` in
    ``out_dir`` is rewritten (device, versions, per-run ``status`` in {"done", "failed",
    "timeout", "skipped"}, ``wall_s``), and ``out_dir`` is packed into ``archive`` if given.
    Returns the manifest.
    """
    for name in names:
        preset_path(name)  # refuse unknown names before anything runs
    if not (isinstance(budget_s, (int, float)) and budget_s > 0 and math.isfinite(budget_s)):
        raise ValueError(f"budget_s must be a positive number of seconds, got {budget_s!r}")
    from ntknb.runner import source_folder_problem

    problem = source_folder_problem(out_dir)
    if problem is not None:
        raise ValueError(f"--out {problem}; choose a folder outside the checkout's sources")
    out = Path(out_dir)
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise ValueError(f"--out {out} must be a folder (not a file or a symbolic link)")
    out.mkdir(parents=True, exist_ok=True)
    start = clock()
    manifest: dict[str, Any] = {
        "started": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "budget_s": budget_s, "device": device_description(), "versions": library_versions(),
        "matmul_precision": os.environ.get("JAX_DEFAULT_MATMUL_PRECISION", "default"),
        "runs": {},
    }
    for name in names:
        left = budget_s - (clock() - start)
        cap = min(left, (max_run_s or {}).get(name, left))
        entry: dict[str, Any] = {"preset": preset_path(name).name, "timeout_s": round(cap, 1)}
        if cap < min_run_s:
            entry.update(status="skipped", wall_s=0.0)
        else:
            t0 = clock()
            code = runner(name, out / name, cap, kernel)
            entry.update(wall_s=round(clock() - t0, 1), returncode=code,
                         status="done" if code == 0 else "timeout" if code == 124 else "failed")
        manifest["runs"][name] = entry
        manifest["elapsed_s"] = round(clock() - start, 1)
        _write_json(out / "manifest.json", manifest)
        if archive is not None:
            _pack(out, Path(archive))
    return manifest


# -------------------------------------------------------------------------- records


@dataclasses.dataclass(frozen=True)
class RecordedRun:
    """A finished GPU run of one notebook: its glued values, parameters and provenance."""

    name: str
    metrics: dict[str, Any]
    parameters: dict[str, Any]
    device: str
    versions: dict[str, str]
    wall_s: float
    date: str

    def get(self, key: str, default: Any = None) -> Any:
        """A glued value of the run (``default`` if the run did not glue ``key``)."""
        return self.metrics.get(key, default)


def _cell_timings(notebook: Path) -> list[dict[str, Any]]:
    """Per code cell of an executed notebook: papermill's status and duration, the first
    source line and the last line the cell printed (for runs that did not finish)."""
    import nbformat

    nb = nbformat.read(notebook, as_version=4)
    cells = []
    for i, cell in enumerate(nb.cells):
        meta = cell.metadata.get("papermill", {})
        if cell.cell_type != "code" or meta.get("status") in (None, "pending"):
            continue
        printed = [o.get("text", "") for o in cell.get("outputs", []) if o.get("output_type") == "stream"]
        last = " ".join("".join(printed).replace("\r", "\n").strip().splitlines()[-1:])
        cells.append({"cell": i, "status": meta.get("status"),
                      "duration_s": round(float(meta.get("duration") or 0.0), 1),
                      "source": cell.source.strip().splitlines()[0][:100] if cell.source.strip() else "",
                      "last_output": last[-200:]})
    return cells


#: A recorded run's name: a plain file name (the notebook's stem), no path, no dot-file.
_PLAIN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
_MAX_JSON_BYTES = 16 << 20


class RecordError(ValueError):
    """A run folder that cannot be recorded: the message names the file and what is allowed."""


def check_run_name(name: Any, where: str = "run name") -> str:
    """``name`` if it is a plain name (letters, digits, ``_ . -``, starting with a letter or
    digit, at most 100 characters: no ``/``, no ``..``, no absolute path, not empty, no dot-file),
    else :class:`RecordError`."""
    if not isinstance(name, str) or not _PLAIN_NAME.match(name) or ".." in name:
        raise RecordError(f"{where} {name!r} is not a plain name (letters, digits, '_', '.', '-', starting with "
                          "a letter or digit, at most 100 characters; no '/', no '..')")
    return name


def _read_file(path: Path, what: str, limit: int = _MAX_JSON_BYTES) -> str:
    """The UTF-8 text of the regular file ``path`` (not a symbolic link, at most ``limit`` bytes)."""
    from ntknb.runner import RunError, read_bounded

    try:
        return read_bounded(path, limit, what, follow_symlinks=False).decode("utf-8")
    except FileNotFoundError:
        raise RecordError(f"{what} {path} is missing") from None
    except RunError as exc:
        raise RecordError(str(exc)) from None
    except OSError as exc:
        raise RecordError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise RecordError(f"{what} {path} is not UTF-8 text") from None


def _strict_json(text: str, what: str) -> Any:
    def refuse(c):
        raise RecordError(f"{what} holds {c}, which is not a number JSON allows (NaN / Infinity are refused)")

    def pairs(items):
        keys = [k for k, _ in items]
        twice = sorted({k for k in keys if keys.count(k) > 1})
        if twice:
            raise RecordError(f"{what} gives the key {twice[0]!r} twice (JSON would keep only the last one)")
        return dict(items)

    try:
        return json.loads(text, parse_constant=refuse, object_pairs_hook=pairs)
    except RecordError:
        raise
    except ValueError as exc:
        raise RecordError(f"{what} is not valid JSON: {exc}") from None


def _no_symlinks_below(folder: Path, what: str) -> None:
    if folder.is_symlink():
        raise RecordError(f"{what} {folder} is a symbolic link; give the folder itself")


def _load_manifest(src: Path) -> dict[str, Any]:
    _no_symlinks_below(src, "run folder")
    if not src.is_dir():
        raise RecordError(f"{src} is not a folder of `python -m ntknb.gpu run` output")
    manifest = _strict_json(_read_file(src / "manifest.json", "manifest"), f"{src / 'manifest.json'}")
    problems = []
    if not isinstance(manifest, dict):
        raise RecordError(f"{src / 'manifest.json'} must hold a JSON object")
    dev = manifest.get("device")
    if not (isinstance(dev, dict) and isinstance(dev.get("devices"), list)
            and all(isinstance(d, str) for d in dev["devices"]) and isinstance(dev.get("backend"), str)):
        problems.append("device must be {backend: str, devices: [str, ...]}")
    if not (isinstance(manifest.get("versions"), dict)
            and all(isinstance(v, str) for v in manifest["versions"].values())):
        problems.append("versions must map names to version strings")
    if not isinstance(manifest.get("started"), str) or len(manifest["started"]) < 10:
        problems.append("started must be an ISO date string")
    runs = manifest.get("runs")
    if not isinstance(runs, dict):
        problems.append("runs must map run names to entries")
    else:
        for name, entry in runs.items():
            check_run_name(name, f"run name in {src / 'manifest.json'}:")
            if not (isinstance(entry, dict) and entry.get("status") in ("done", "failed", "timeout", "skipped")
                    and isinstance(entry.get("preset"), str)):
                problems.append(f"runs[{name!r}] must hold status (done / failed / timeout / skipped) and preset")
            elif entry["status"] == "done" and not (isinstance(entry.get("wall_s"), (int, float))
                                                    and math.isfinite(entry["wall_s"]) and entry["wall_s"] >= 0):
                problems.append(f"runs[{name!r}].wall_s must be a finite number of seconds >= 0")
    if problems:
        raise RecordError(f"malformed {src / 'manifest.json'}: " + "; ".join(problems))
    return manifest


def _plain_yaml(path: Path, what: str) -> Any:
    from ntknb import runner

    text = _read_file(path, what, runner.MAX_TEXT_BYTES)
    try:
        data = runner._load_yaml(text)
        runner.check_plain(data, what)
    except (ValueError, Exception) as exc:  # noqa: BLE001 - YAML syntax errors too
        raise RecordError(f"{what} {path} refused: {' '.join(str(exc).split())[:200]}") from None
    return data


def record(out_dir: str | os.PathLike, dest: str | os.PathLike = RECORD_DIR) -> list[str]:
    """Copy the finished runs of a ``run_presets`` folder into ``dest/<name>/``.

    For each run whose status is ``done`` and whose ``metrics.json`` exists, writes
    ``metrics.json``, ``parameters.yaml``, ``timings.json`` (if the run wrote one) and
    ``run.json`` (device, versions, wall time, date, preset); an earlier record of the same name
    (a folder holding ``run.json``) is replaced whole. Every other run is appended to
    ``dest/attempts.jsonl`` as data (device, versions, its parameters, time limit, status and
    per-cell timings; a "done" run without ``metrics.json`` as ``incomplete``), so the next
    attempt can be sized from it. Returns the names recorded.

    Everything is checked before anything is written (:class:`RecordError`, a ``ValueError``):
    run names must be plain names (:func:`check_run_name`), files are read as regular files
    (no symbolic links, bounded size), metrics must be strict JSON without NaN / Infinity,
    parameters plain YAML. No temporary ``.NAME.tmp/`` is left behind on any failure.
    """
    src = Path(out_dir)
    dest = Path(dest)
    manifest = _load_manifest(src)
    device = ", ".join(manifest["device"]["devices"])
    common = {"device": device, "backend": manifest["device"]["backend"],
              "versions": manifest["versions"],
              "matmul_precision": manifest.get("matmul_precision", "default"),
              "date": manifest["started"][:10]}
    records, attempts = [], []
    for name, entry in manifest["runs"].items():
        run = src / name
        _no_symlinks_below(run, "run folder")
        has_metrics = os.path.lexists(run / "metrics.json")
        if entry["status"] != "done" or not has_metrics:
            if entry["status"] == "skipped" or not run.is_dir():
                continue
            notebook = run / f"{name}.ipynb"
            params = run / "parameters.yaml"
            status = entry["status"] if entry["status"] != "done" else "incomplete (no metrics.json)"
            cells = []
            if notebook.is_file() and not notebook.is_symlink():
                try:
                    cells = _cell_timings(notebook)
                except Exception:  # noqa: BLE001 - an unreadable notebook: no timings
                    cells = []
            attempts.append(dict(common, name=name, preset=entry["preset"], status=status,
                                 timeout_s=entry.get("timeout_s"), wall_s=entry.get("wall_s"),
                                 parameters=_plain_yaml(params, "parameters") if params.exists() else None,
                                 cells=cells))
            continue
        files = {"metrics.json": _read_file(run / "metrics.json", "metrics"),
                 "parameters.yaml": _read_file(run / "parameters.yaml", "parameters")}
        if not isinstance(_strict_json(files["metrics.json"], f"{run / 'metrics.json'}"), dict):
            raise RecordError(f"{run / 'metrics.json'} must hold a JSON object of glued values")
        _plain_yaml(run / "parameters.yaml", "parameters")
        if os.path.lexists(run / "timings.json"):
            files["timings.json"] = _read_file(run / "timings.json", "timings")
            _strict_json(files["timings.json"], f"{run / 'timings.json'}")
        target = dest / name
        if os.path.lexists(target) and (target.is_symlink() or not (target / "run.json").is_file()):
            raise RecordError(f"{target} exists and is not a GPU record (no run.json); it is not replaced")
        if os.path.lexists(target):
            foreign = sorted(e for e in os.listdir(target) if e not in _RECORD_FILES
                             or not stat.S_ISREG(os.lstat(target / e).st_mode))
            if foreign:
                raise RecordError(f"{target} also holds {', '.join(foreign[:3])}, which replacing the record "
                                  f"would delete (a record holds only {', '.join(_RECORD_FILES)}); move it first")
        records.append((name, entry, files))
    for attempt in attempts:
        json.dumps(attempt, allow_nan=False)  # refuse NaN before writing anything
    dest.mkdir(parents=True, exist_ok=True)
    done = []
    for name, entry, files in records:
        target = dest / name
        tmp = dest / f".{name}.tmp"
        if tmp.is_symlink() or tmp.is_file():
            tmp.unlink()
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            tmp.mkdir(parents=True)
            for fname, text in files.items():
                (tmp / fname).write_text(text)
            _write_json(tmp / "run.json", dict(common, wall_s=entry["wall_s"], preset=entry["preset"]))
            old = None
            if target.is_dir():
                old = dest / f".{name}.old"
                shutil.rmtree(old, ignore_errors=True)
                os.replace(target, old)
            os.replace(tmp, target)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        done.append(name)
    if attempts:
        with open(dest / "attempts.jsonl", "a") as fh:
            for attempt in attempts:
                fh.write(json.dumps(attempt, sort_keys=True, allow_nan=False) + "\n")
    return done


def load_recorded(name: str, root: str | os.PathLike = RECORD_DIR) -> RecordedRun | None:
    """The recorded GPU run of notebook ``name`` (``None`` if there is none)."""
    import yaml

    folder = Path(root) / name
    if not (folder / "run.json").is_file():
        return None
    info = json.loads((folder / "run.json").read_text())
    return RecordedRun(
        name=name,
        metrics=json.loads((folder / "metrics.json").read_text()),
        parameters=yaml.safe_load((folder / "parameters.yaml").read_text()) or {},
        device=info["device"], versions=info["versions"], wall_s=float(info["wall_s"]),
        date=info["date"],
    )


def comparison_rows(cpu: Mapping[str, Any], gpu: RecordedRun,
                    keys: Sequence[tuple[str, str]]) -> list[list[Any]]:
    """Rows ``[label, cpu value, gpu value]`` for ``keys`` = ``[(glue name, label), ...]``.

    A value missing on either side is ``None`` (the two runs may glue different names).
    """
    return [[label, cpu.get(key), gpu.get(key)] for key, label in keys]


def _fmt(value: Any) -> str:
    if value is None:
        return "&ndash;"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return "nan" if not math.isfinite(value) else f"{value:.4g}"
    return html.escape(str(value))


def recorded_section(name: str, keys: Sequence[tuple[str, str]], *, prefix: str = "gpu_",
                     root: str | os.PathLike = RECORD_DIR):
    """The "GPU scale" part of chapter ``name``: its recorded GPU run beside this run's values.

    Glues, for the text, ``{prefix}device``, ``{prefix}date``, ``{prefix}wall_min`` (wall time of
    the whole notebook in minutes), ``{prefix}setting`` (the preset's parameters, one line) and
    ``{prefix}<key>`` for every ``key`` of ``keys = [(glue name, label), ...]`` that the GPU run
    glued; the CPU column is what this notebook has glued so far
    (:func:`ntknb.report.glued_values`). Returns an ``IPython.display.HTML`` table (the cell
    shows it), or a note saying how to record a run if there is none.
    """
    from IPython.display import HTML

    from ntknb.report import glue, glued_values

    rec = load_recorded(name, root)
    if rec is None:
        glue(f"{prefix}device", "none")
        return HTML(f"<p>No GPU run of this chapter is recorded yet: run <code>bash scripts/gpu_runs "
                    f"--out DIR {html.escape(name)}</code> on a GPU machine, then "
                    f"<code>python -m ntknb.gpu record DIR</code>.</p>")
    glue(f"{prefix}device", rec.device)
    glue(f"{prefix}date", rec.date)
    glue(f"{prefix}wall_min", rec.wall_s / 60.0)
    try:
        import yaml

        preset = yaml.safe_load(preset_path(name).read_text()) or {}
    except (OSError, ValueError):
        preset = {}
    setting = ", ".join(f"{k} = {rec.parameters.get(k, v)}" for k, v in preset.items())
    glue(f"{prefix}setting", setting)
    for key, _ in keys:
        if rec.get(key) is not None:
            glue(f"{prefix}{key}", rec.get(key))
    rows = comparison_rows(glued_values(), rec, keys)
    body = "".join(f"<tr><td>{html.escape(label)}</td><td>{_fmt(cpu)}</td><td>{_fmt(g)}</td></tr>"
                   for label, cpu, g in rows)
    versions = ", ".join(f"{k} {v}" for k, v in rec.versions.items() if v != "missing")
    return HTML(
        "<table><thead><tr><th>quantity</th><th>this page (CPU, parameters above)</th>"
        f"<th>GPU preset ({html.escape(rec.device)})</th></tr></thead><tbody>{body}</tbody></table>"
        f"<p><small>GPU run of {html.escape(rec.date)}: {rec.wall_s / 60:.1f} min on "
        f"{html.escape(rec.device)}; {html.escape(versions)}. Preset "
        f"<code>notebooks/{html.escape(name)}{PRESET_SUFFIX}</code>; record "
        f"<code>notebooks/data/gpu/{html.escape(name)}/</code>.</small></p>")


# ------------------------------------------------------------------------------ CLI


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m ntknb.gpu {smoke,run,record}``: see ``scripts/gpu_runs``."""
    parser = argparse.ArgumentParser(prog="python -m ntknb.gpu")
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("smoke", help="import-and-kernel smoke test; exit 1 if it fails")
    run = sub.add_parser("run", help="run GPU presets under a total time budget")
    run.add_argument("names", nargs="+", metavar="NOTEBOOK")
    run.add_argument("--out", required=True, metavar="DIR")
    run.add_argument("--budget", type=float, required=True, metavar="SECONDS")
    run.add_argument("--max", action="append", default=[], metavar="NAME=SECONDS",
                     help="cap one run's time (repeatable)")
    run.add_argument("--kernel", default=None)
    run.add_argument("--archive", default=None, metavar="FILE.tar.gz")
    rec = sub.add_parser("record", help="copy finished runs into notebooks/data/gpu/")
    rec.add_argument("out", metavar="DIR")
    args = parser.parse_args(argv)
    if args.cmd == "smoke":
        res = smoke_test()
        print(json.dumps(res, indent=2))
        return 0 if res["ok"] else 1
    if args.cmd == "run":
        caps = {}
        for item in args.max:
            name, _, secs = item.partition("=")
            try:
                caps[name] = float(secs)
            except ValueError:
                parser.error(f"--max must be NAME=SECONDS, got {item!r}")
        try:
            manifest = run_presets(args.names, args.out, args.budget, max_run_s=caps,
                                   kernel=args.kernel, archive=args.archive)
        except ValueError as exc:
            parser.error(str(exc))
        print(json.dumps(manifest["runs"], indent=2))
        return 0 if all(r["status"] == "done" for r in manifest["runs"].values()) else 1
    try:
        names = record(args.out)
    except (ValueError, OSError) as exc:
        print(f"python -m ntknb.gpu record: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    print("recorded: " + (", ".join(names) or "nothing"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
