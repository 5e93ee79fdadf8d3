"""ntknb.book.build: the book builds with warnings as errors; JupyterLab opens the notebooks with the
project's kernel."""

from pathlib import Path

import pytest

from ntknb import paths
from ntknb.book.build import build, lab_command
from ntknb.book.sync import toc_files

@pytest.mark.slow
def test_book_builds_with_warnings_as_errors(tmp_path):
    """The real book: check-sync, every toc notebook executed, jupyter-book -W (~15-30 s)."""
    code = build(strict=True, path_output=tmp_path, fresh=True)
    assert code == 0, "the book build failed; see the captured output above"
    html = tmp_path / "_build" / "html"
    assert (html / "index.html").is_file()
    assert (html / "book" / "intro.html").is_file() and (html / "book" / "running.html").is_file()
    for entry in toc_files(paths.REPO_ROOT):
        assert (html / f"{entry}.html").is_file(), entry


def test_lab_command():
    cmd = lab_command("00_ntk_basics", ["--no-browser"])
    assert cmd[1:3] == ["-m", "jupyterlab"] and "--no-browser" in cmd
    assert "--MappingKernelManager.default_kernel_name=ntknb" in cmd
    assert cmd[-1] == "notebooks/00_ntk_basics.ipynb"
    with pytest.raises(SystemExit, match="no notebook notebooks/99_none.ipynb"):
        lab_command("99_none")


@pytest.mark.slow
def test_jupyterlab_opens_a_chapter_with_the_project_kernel(tmp_path):
    """`bash scripts/dev lab` (= python -m ntknb.book lab): JupyterLab serves the notebooks, and a
    chapter opened there starts the `ntknb` kernel, i.e. this environment's Python (~10 s)."""
    import json
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    import nbformat

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    token = "ntknb-test"
    cmd = lab_command("00_ntk_basics", ["--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
                                             f"--IdentityProvider.token={token}"])
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**__import__("os").environ, "JUPYTER_RUNTIME_DIR": str(tmp_path)})
    base = f"http://127.0.0.1:{port}/api"

    def call(path, data=None, method=None):
        req = urllib.request.Request(base + path, method=method, data=None if data is None else json.dumps(data).encode(),
                                     headers={"Authorization": f"token {token}", "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read() or b"null")

    try:
        for _ in range(120):
            try:
                specs = call("/kernelspecs")
                break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("JupyterLab did not answer within 60 s")
        assert specs["default"] == "ntknb"
        argv0 = specs["kernelspecs"]["ntknb"]["spec"]["argv"][0]
        assert Path(argv0).resolve() == Path(sys.executable).resolve()
        nb = nbformat.read(paths.REPO_ROOT / "notebooks" / "00_ntk_basics.ipynb", as_version=4)
        kernel = nb.metadata["kernelspec"]["name"]
        assert kernel == "ntknb"
        session = call("/sessions", {"path": "notebooks/00_ntk_basics.ipynb", "type": "notebook",
                                     "kernel": {"name": kernel}}, "POST")
        assert session["kernel"]["name"] == "ntknb"
        call(f"/sessions/{session['id']}", method="DELETE")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
