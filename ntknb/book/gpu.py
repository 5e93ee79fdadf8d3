"""Runs at GPU scale: the runbook behind ``scripts/gpu_runs``.

A chapter may come with ``notebooks/NN_name.gpu.yaml``, a preset sized to a few minutes on one
H100/H200. ``scripts/gpu_runs`` (on the GPU machine) calls ``ntknb gpu smoke`` and ``ntknb gpu run``
(:mod:`ntknb.book.cli`), which

1. runs :func:`smoke_test` (imports, devices, an analytic and an empirical NTK checked against
   the CPU backend) and stops early if it fails;
2. runs the listed presets one after the other with ``ntknb run``, each under what is left of
   a total time budget (:func:`run_presets`), and after each run writes ``manifest.json``
   (device, library versions, each run's wall time and status) and, if asked, packs the
   output folder into one archive, so a run cut off by the budget loses only itself.

Each run's folder holds what ``ntknb run`` writes (the executed notebook, ``metrics.json``,
``parameters.yaml``, ``timings.json``). The runs a chapter shows are the records under
``notebooks/data/`` that the chapter reads itself (``scripts/gpu_cifar_search``:
``notebooks/data/gpu/cifar10_search.jsonl``); nothing is typed.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import platform
import re
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ntknb._compat import x64
from ntknb import paths
from ntknb.book.run import source_folder_problem

__all__ = [
    "PRESET_SUFFIX",
    "smoke_test",
    "library_versions",
    "device_description",
    "preset_path",
    "run_presets",
]

#: A chapter's GPU preset is ``notebooks/<name>.gpu.yaml``.
PRESET_SUFFIX = ".gpu.yaml"
#: A preset's name: a plain file name (the notebook's stem), no path, no dot-file.
_PLAIN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
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
        with x64(), jax.default_device(cpu):
            x_64 = jnp.asarray(x, dtype=jnp.float64)
            p64 = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), params)
            k_ref = np.asarray(kernel_fn(x_64, x_64, "ntk"))
            e_ref = np.asarray(kernels.empirical_ntk(apply_fn, p64, x_64, batch_size=None,
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
    if not isinstance(name, str) or not _PLAIN_NAME.match(name) or ".." in name:
        raise ValueError(f"notebook {name!r} is not a plain name (letters, digits, '_', '.', '-', starting with "
                         "a letter or digit, at most 100 characters; no '/', no '..')")
    path = paths.NOTEBOOKS / f"{name}{PRESET_SUFFIX}"
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

    cmd = [sys.executable, "-m", "ntknb.book.cli", "run", name, "-f", str(preset_path(name)),
           "--out", str(out)]
    if kernel:
        cmd += ["--kernel", kernel]
    proc = subprocess.Popen(cmd, cwd=paths.REPO_ROOT, start_new_session=True)
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
