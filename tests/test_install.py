"""The package installs from its built wheel into a fresh virtual environment and runs a chapter.

This is the "run it from anywhere" route of ``book/running.md`` (issue 30): ``pip install`` of
the package resolves its dependencies from the ranges in ``pyproject.toml`` (not from the
Linux lock that ``scripts/dev`` installs with ``--no-deps``). The test builds the wheel from a
copy of the sources, installs it into a new venv of the newest supported Python found on this
machine (3.12, else the running interpreter), registers the ``ntknb`` kernel there and runs the
cheapest chapter's CI preset with the installed ``ntknb`` command. On Linux the dependencies
are installed with ``requirements.lock`` as constraints, so the run is deterministic; pip's
cache is reused (a second run downloads nothing). It needs the package index: without it the
test is skipped, saying so.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: The chapter whose CI preset (notebooks/NAME.ci.yaml) the installed package runs: the
#: cheapest one (kernel machines on a few hundred points; about a minute on 2 cores).
CHAPTER = "03_robust_only_kernels"
#: What a wheel is built from (the rest of the checkout is not part of the package).
WHEEL_SOURCES = ("pyproject.toml", "README.md", "LICENSE", "ntknb")
SUPPORTED = ((3, 12), (3, 11))  # requires-python = ">=3.11,<3.13", newest first


def _version(python: str) -> tuple[int, int] | None:
    """(major, minor) of the interpreter ``python``, or None if it does not run."""
    try:
        out = subprocess.run([python, "-c", "import sys; print(*sys.version_info[:2])"],
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    major, minor = out.stdout.split()
    return int(major), int(minor)


def install_python() -> str:
    """The interpreter to create the fresh venv with: the newest supported Python on PATH (or
    under pyenv's versions), else the one running the tests."""
    candidates = []
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    for major, minor in SUPPORTED:
        candidates.append(shutil.which(f"python{major}.{minor}"))
        candidates += sorted(map(str, pyenv_root.glob(f"versions/{major}.{minor}.*/bin/python{major}.{minor}")))
        for cand in filter(None, candidates):
            if _version(cand) == (major, minor):
                return cand
        candidates = []
    return sys.executable


def _clean_env(venv: Path) -> dict[str, str]:
    """This process's environment without the test venv's traces, with ``venv`` first on PATH and
    its kernelspecs first for Jupyter."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["JUPYTER_PATH"] = str(venv / "share" / "jupyter")
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow (pulled in by neural-tangents) is quiet
    shared = ROOT.parent / "shared" / "data"  # where CI finds the data sets (as scripts/dev)
    if "NTKNB_DATA_DIR" not in env and shared.is_dir():
        env["NTKNB_DATA_DIR"] = str(shared)
    return env


def _run(cmd: list[str], timeout: int, **kwargs) -> subprocess.CompletedProcess:
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kwargs)
    assert res.returncode == 0, f"{' '.join(map(str, cmd))} failed:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
    return res


@pytest.fixture(scope="module")
def index_reachable() -> None:
    """Skip unless pip can reach the package index (pip's own configuration, no address here)."""
    try:
        res = subprocess.run([sys.executable, "-m", "pip", "index", "versions", "pip", "--timeout", "10",
                              "--retries", "0", "--disable-pip-version-check"],
                             capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        res = None
    if res is None or res.returncode != 0:
        pytest.skip("the package index is unreachable: cannot test `pip install` of the wheel")


def test_install_python_is_supported():
    assert _version(install_python()) in SUPPORTED


@pytest.mark.slow
def test_wheel_installs_into_fresh_venv_and_runs_a_ci_preset(tmp_path, index_reachable):
    src, dist, venv, out = (tmp_path / name for name in ("src", "dist", "venv", "run"))
    src.mkdir()
    for name in WHEEL_SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(ROOT / name, src / name)
    # The wheel, built with this environment's setuptools (pinned in requirements.lock).
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
          "--disable-pip-version-check", "-q", "-w", str(dist), str(src)], timeout=300)
    (wheel,) = dist.glob("ntknb-*.whl")

    python = install_python()
    _run([python, "-m", "venv", str(venv)], timeout=120)
    py, env = str(venv / "bin" / "python"), _clean_env(venv)
    constraints = ["-c", str(ROOT / "requirements.lock")] if sys.platform.startswith("linux") else []
    _run([py, "-m", "pip", "install", "-q", str(wheel), *constraints], timeout=1500, env=env)
    _run([py, "-m", "ipykernel", "install", "--sys-prefix", "--name", "ntknb"], timeout=120, env=env)

    where = _run([py, "-c", "import ntknb, sys; print(ntknb.__file__); print(sys.version.split()[0])"],
                 timeout=300, env=env, cwd=tmp_path).stdout.split()
    assert Path(where[0]).is_relative_to(venv), where  # the installed package, not the checkout
    print(f"installed {wheel.name} on Python {where[1]} ({python})")

    # From the checkout's root, so that `ntknb run NAME` finds notebooks/NAME.py.
    _run([str(venv / "bin" / "ntknb"), "run", CHAPTER, "-f", f"notebooks/{CHAPTER}.ci.yaml",
          "--out", str(out)], timeout=900, env=env, cwd=ROOT)
    assert json.loads((out / "status.json").read_text())["status"] == "done"
    assert json.loads((out / "metrics.json").read_text())
