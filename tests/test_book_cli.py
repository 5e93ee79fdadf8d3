"""ntknb.book.cli, the ``ntknb`` command: exit codes and one-line messages, the ``book`` and ``gpu``
commands, and one real end-to-end run (py:percent → jupytext → papermill with the venv's kernel →
metrics.json)."""

import json
import subprocess
import sys

import nbformat
import pytest
import yaml

from ntknb.book import cli

TINY = '''\
# %% [markdown]
# # Tiny notebook for the ntknb run tests

# %% tags=["parameters"]
n = 3  # an int
lr = 0.5  # a float
name = "abc"
widths = [1, 2]
flag = True

# %%
from ntknb.validation import check_int
n = check_int("n", n, min=1, max=100)

# %%
import numpy as np
from ntknb.report import glue
glue("total", np.float64(n * lr))
glue("n_sq", np.int64(n * n))
glue("widths_sum", np.asarray(widths).sum())
glue("label", f"{name}-{flag}")
glue("curve", np.linspace(0, 1, 3) * lr)
'''


@pytest.fixture
def tiny(tmp_path):
    path = tmp_path / "tiny.py"
    path.write_text(TINY)
    return path


def run_cli(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_params_lists_defaults(capsys, tiny):
    code, out, err = run_cli(capsys, "params", tiny)
    assert code == 0, err
    assert "n = 3 (int)" in out and "# an int" in out
    assert "lr = 0.5 (float)" in out and "widths = [1, 2] (list)" in out and "flag = True (bool)" in out
    code, out, _ = run_cli(capsys, "params", tiny, "--json")
    assert json.loads(out) == {"n": 3, "lr": 0.5, "name": "abc", "widths": [1, 2], "flag": True}


@pytest.mark.parametrize(
    "args, expected",
    [
        (["-p", "foo", "1"], "unknown parameter 'foo' (-p)"),
        (["-p", "n", "2.5"], "bad value for parameter 'n' (-p): expects int like its default 3, got float 2.5"),
        (["-p", "flag", "yes please"], "bad value for parameter 'flag'"),
        (["-p", "widths", "7"], "bad value for parameter 'widths'"),
    ],
)
def test_run_rejects_bad_parameters_before_execution(capsys, tiny, tmp_path, args, expected):
    out_dir = tmp_path / "out"
    code, out, err = run_cli(capsys, "run", tiny, *args, "--out", out_dir)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ntknb: error: ")
    assert expected in err
    # the message lists every parameter with its default
    assert "parameters of tiny: n = 3 (int); lr = 0.5 (float); name = 'abc' (str); widths = [1, 2] (list); " \
           "flag = True (bool)" in err
    assert "Traceback" not in err
    assert not out_dir.exists()  # nothing ran


def test_run_rejects_bad_file(capsys, tiny, tmp_path):
    params = tmp_path / "p.yaml"
    params.write_text("n: 5\nlr: fast\n")
    code, _, err = run_cli(capsys, "run", tiny, "-f", params, "--out", tmp_path / "out")
    assert code == 2 and f"bad value for parameter 'lr' (from {params})" in err


def test_dry_run_merges_in_order(capsys, tiny, tmp_path):
    params = tmp_path / "p.yaml"
    params.write_text("n: 5\nlr: 2\nwidths: [8]\n")
    code, out, err = run_cli(capsys, "run", tiny, "-p", "n", "4", "-f", params, "-p", "lr", "1e-3", "--dry-run")
    assert code == 0, err
    assert json.loads(out)["parameters"] == {"n": 5, "lr": 0.001, "widths": [8]}


def test_usage_errors_are_one_line_status_2(capsys, tiny):
    code, _, err = run_cli(capsys, "run", "no_such_notebook")
    assert code == 2 and err.strip().count("\n") == 0 and "no notebook named 'no_such_notebook'" in err
    with pytest.raises(SystemExit) as exc:
        cli.main(["run", str(tiny), "-p", "n"])
    assert exc.value.code == 2
    _, err = capsys.readouterr()
    assert err.strip().count("\n") == 0 and "error:" in err


def test_one_command_serves_the_book_and_the_gpu_runbook(capsys, tmp_path):
    """``ntknb book ...`` (= ``python -m ntknb.book ...``) and ``ntknb gpu ...``: their refusals are one
    line with status 2, like ``ntknb run``'s, and nothing runs."""
    (tmp_path / "notebooks").mkdir()
    code, out, err = run_cli(capsys, "book", "--root", tmp_path, "check-sync")
    assert code == 0 and "0 notebook pair(s) in sync" in out, err
    (tmp_path / "notebooks" / "01_demo.ipynb").write_text("{}")
    code, _, err = run_cli(capsys, "book", "--root", tmp_path, "check-sync")
    assert code == 1 and "has no py:percent source 01_demo.py" in err
    code, _, err = run_cli(capsys, "book", "--root", tmp_path / "missing", "check-html")
    assert code == 2 and _one_line_error(err) and "check-html" in err
    code, _, err = run_cli(capsys, "gpu", "run", "01_transfer_attacks", "--out", tmp_path / "g", "--budget", "60",
                           "--max", "01_transfer_attacks")
    assert code == 2 and _one_line_error(err) and "--max must be NAME=SECONDS" in err
    code, _, err = run_cli(capsys, "gpu", "run", "../x", "--out", tmp_path / "g", "--budget", "60")
    assert code == 2 and _one_line_error(err) and "not a plain name" in err and not (tmp_path / "g").exists()
    with pytest.raises(SystemExit) as exc:
        cli.main(["book", "no-such-command"])
    assert exc.value.code == 2 and capsys.readouterr().err.strip().count("\n") == 0
    proc = subprocess.run([sys.executable, "-m", "ntknb.book", "--root", str(tmp_path), "check-sync"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "01_demo.py" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.slow
def test_run_end_to_end(tiny, tmp_path):
    """The real pipeline, through the installed command's module: ~5 s (kernel start)."""
    params = tmp_path / "p.yaml"
    params.write_text("lr: 2\nname: xyz\n")
    out_dir = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "ntknb.book.cli", "run", str(tiny), "-p", "n", "4", "-f", str(params),
         "-p", "widths", "[3, 4, 5]", "--out", str(out_dir)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    executed = out_dir / "tiny.ipynb"
    assert executed.is_file()
    nb = nbformat.read(executed, as_version=4)
    assert any("injected-parameters" in c.metadata.get("tags", []) for c in nb.cells)
    metrics = json.loads((out_dir / "metrics.json").read_text())
    assert metrics == {"total": 8.0, "n_sq": 16, "widths_sum": 12, "label": "xyz-True", "curve": [0.0, 1.0, 2.0]}
    assert type(metrics["total"]) is float and type(metrics["n_sq"]) is int
    effective = yaml.safe_load((out_dir / "parameters.yaml").read_text())
    assert effective == {"n": 4, "lr": 2.0, "name": "xyz", "widths": [3, 4, 5], "flag": True}

    # A value the notebook's own check rejects: the run fails (status 1), one line, the
    # executed notebook with the error is still written.
    out2 = tmp_path / "run2"
    proc = subprocess.run(
        [sys.executable, "-m", "ntknb.book.cli", "run", str(tiny), "-p", "n", "1000", "--out", str(out2)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().count("\n") == 0, proc.stderr
    assert "ValueError: parameter 'n' must be an integer in [1, 100], got 1000" in proc.stderr
    assert (out2 / "tiny.ipynb").is_file() and not (out2 / "metrics.json").exists()


# ----------------------------------------------------------------- hardening (issue 14)

PAYLOAD_B64 = "Il07b3BlbigibWFya2VyIiwidyIpO1si"  # base64 of '"];open("marker","w");["'


def _cli(*argv, cwd=None, timeout=300, **kw):
    return subprocess.run([sys.executable, "-m", "ntknb.book.cli", *map(str, argv)], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd, **kw)


def _one_line_error(err):
    lines = err.strip().splitlines()
    return len(lines) == 1 and lines[0].startswith("ntknb: error: ") and "Traceback" not in err


@pytest.mark.parametrize("dry", [False, True])
def test_binary_preset_and_alias_bomb_refused(capsys, tiny, tmp_path, monkeypatch, dry):
    monkeypatch.chdir(tmp_path)  # the payload would create ./marker (and tiny's folder is tmp_path)
    binary = tmp_path / "binary.yaml"
    binary.write_text(f"widths: [!!binary {PAYLOAD_B64}]\n")
    bomb = tmp_path / "bomb.yaml"
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, cur in zip("abcdefgh", "bcdefghi"):
        lines.append(f"{cur}: &{cur} [" + ",".join([f"*{prev}"] * 9) + "]")
    bomb.write_text("\n".join(lines) + "\nwidths: *i\n")
    extra = ["--dry-run"] if dry else ["--out", tmp_path / "out"]
    for args in (["-f", binary], ["-f", bomb], ["-p", "widths", f"[!!binary {PAYLOAD_B64}]"],
                 ["-p", "n", "9" * 5000], ["-p", "widths", "[1, 2]", "-p", "widths", "[3]"]):
        code, out, err = run_cli(capsys, "run", tiny, *args, *extra)
        assert code == 2 and _one_line_error(err), err
        assert out == "" and len(err) < 1000
    assert not (tmp_path / "marker").exists() and not (tmp_path / "out").exists()


def test_out_notebooks_refused(capsys, tmp_path):
    nb_dir = runner_root() / "notebooks"
    before = {p: p.stat().st_mtime_ns for p in nb_dir.glob("*.ipynb")}
    code, _, err = run_cli(capsys, "run", "00_ntk_basics", "--out", nb_dir, "-p", "seed", "1")
    assert code == 2 and _one_line_error(err) and "notebooks" in err
    assert before == {p: p.stat().st_mtime_ns for p in nb_dir.glob("*.ipynb")}
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "tiny.ipynb").write_text("{}")
    code, _, err = run_cli(capsys, "run", runner_root() / "notebooks" / "00_ntk_basics.py", "--out", foreign)
    assert code == 2 and _one_line_error(err) and "not an earlier `ntknb run` output" in err
    assert (foreign / "tiny.ipynb").read_text() == "{}"


def runner_root():
    from ntknb.paths import REPO_ROOT
    return REPO_ROOT


@pytest.mark.slow
def test_failed_rerun_does_not_leave_earlier_results(tiny, tmp_path):
    out = tmp_path / "run"
    proc = _cli("run", tiny, "-p", "n", "4", "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert "Passed unknown parameter" not in proc.stderr and "WARNING" not in proc.stderr, proc.stderr
    status = json.loads((out / "status.json").read_text())
    assert status["status"] == "done" and (out / "metrics.json").is_file()
    finished = {p.name: p.read_bytes() for p in out.iterdir()}
    assert "runtime_s" not in json.loads((out / "metrics.json").read_text())
    assert json.loads((out / "timings.json").read_text())["run_wall_s"] >= 0
    # rerun into the same folder with a value the notebook rejects: the finished run is kept
    # (issue 31) and the failed attempt goes beside it
    proc = _cli("run", tiny, "-p", "n", "1000", "--out", out)
    assert proc.returncode == 1 and _one_line_error(proc.stderr), proc.stderr
    assert "finished run" in proc.stderr and "is kept" in proc.stderr, proc.stderr
    assert {p.name: p.read_bytes() for p in out.iterdir()} == finished
    failed = [p for p in tmp_path.iterdir() if p.name.startswith("run.failed-")]
    assert len(failed) == 1 and str(failed[0]) in proc.stderr
    failed = failed[0]
    assert json.loads((failed / "status.json").read_text())["status"] == "failed"
    assert not (failed / "metrics.json").exists()
    assert yaml.safe_load((failed / "parameters.yaml").read_text())["n"] == 1000
    assert "ValueError" in (failed / "tiny.ipynb").read_text()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temp folders left
    # a failed run is replaced by a later one, a finished one by a finished one
    proc = _cli("run", tiny, "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((out / "status.json").read_text())["status"] == "done"
    assert json.loads((out / "metrics.json").read_text())["n_sq"] == 9
    again = tmp_path / "again"
    assert _cli("run", tiny, "--out", again).returncode == 0
    assert (again / "metrics.json").read_bytes() == (out / "metrics.json").read_bytes()  # identical runs


@pytest.mark.slow
def test_log_output_and_nan_metrics(tmp_path):
    nb = tmp_path / "noisy.py"
    nb.write_text('# %% tags=["parameters"]\nk = 2\nmodes = [1, 2]  # directions (1 = largest)\n\n# %%\n'
                  'print("hello from cell", k, modes)\n'
                  'import math\nfrom ntknb.report import glue\nglue("bad", [1.0, math.nan])\n')
    out = tmp_path / "run"
    proc = _cli("run", nb, "-p", "k", "5", "-p", "modes", "[3]", "--out", out, "--log-output")
    assert proc.returncode == 0, proc.stderr
    # papermill's own parser misses `modes` (the "=" in its comment) and used to warn
    assert "Passed unknown parameter" not in proc.stderr, proc.stderr
    assert "hello from cell 5 [3]" in proc.stdout + proc.stderr
    metrics = json.loads((out / "metrics.json").read_text(), parse_constant=lambda c: pytest.fail(c))
    assert metrics["bad"] == [1.0, None] and "bad[1]" in metrics["_note"]
    assert "null" in proc.stdout


SLEEPY = '''\
# %% tags=["parameters"]
steps = 600

# %%
import os, time
open("kernel.pid", "w").write(str(os.getpid()))

# %%
for _ in range(steps):
    time.sleep(0.1)

# %%
print("never reached")
'''


def _pid_alive(pid):
    import os
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.slow
@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM", "SIGINT-group"])
def test_interrupted_run_is_marked_and_cleaned_up(tmp_path, sig):
    """SIGINT / SIGTERM to ntknb, and Ctrl-C in a terminal (SIGINT to the whole process group)."""
    import os
    import signal
    import time

    work = tmp_path / "work"
    work.mkdir()
    (work / "sleepy.py").write_text(SLEEPY)
    tmpdir, runtime = tmp_path / "tmp", tmp_path / "runtime"
    tmpdir.mkdir()
    runtime.mkdir()
    env = dict(os.environ, TMPDIR=str(tmpdir), JUPYTER_RUNTIME_DIR=str(runtime))
    out = tmp_path / "run"
    group = sig.endswith("-group")
    sig = sig.removesuffix("-group")
    proc = subprocess.Popen([sys.executable, "-m", "ntknb.book.cli", "run", str(work / "sleepy.py"), "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=group)
    pid_file = work / "kernel.pid"
    deadline = time.time() + 120
    while not pid_file.exists() or not pid_file.read_text():
        assert time.time() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.2)
    kernel_pid = int(pid_file.read_text())
    time.sleep(1.0)
    if group:
        os.killpg(proc.pid, getattr(signal, sig))
    else:
        proc.send_signal(getattr(signal, sig))
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == (130 if sig == "SIGINT" else 143), err
    assert _one_line_error(err) and f"interrupted by {sig}" in err, err
    for _ in range(50):
        if not _pid_alive(kernel_pid):
            break
        time.sleep(0.1)
    assert not _pid_alive(kernel_pid), "kernel still running"
    assert list(tmpdir.iterdir()) == [] and [p for p in runtime.iterdir() if p.suffix == ".json"] == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run", "runtime", "tmp", "work"]
    status = json.loads((out / "status.json").read_text())
    assert status["status"] == "interrupted" and not (out / "metrics.json").exists()
    nb = nbformat.read(out / "sleepy.ipynb", as_version=4)
    assert "incomplete" in nb.cells[0].source and nb.metadata["ntknb"]["status"] == "interrupted"
    states = [c.metadata.get("papermill", {}).get("status") for c in nb.cells[1:]]
    assert "interrupted" in states and states[-1] == "pending" and nb.cells[-1].outputs == []


@pytest.mark.slow
def test_interrupt_during_kernel_start_leaves_no_kernel(tiny, tmp_path, monkeypatch):
    """Ctrl-C while the kernel is starting (before papermill's cleanup is armed): the runner
    still stops the kernel and removes its connection file."""
    import os
    import time

    import papermill
    from jupyter_client import AsyncKernelManager
    from jupyter_core.utils import run_sync

    from ntknb.book.params import RunError
    from ntknb.book.run import run_notebook

    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    started = {}

    def fake_execute(*args, km=None, kernel_name=None, **kwargs):
        km = km or AsyncKernelManager(kernel_name=kernel_name)  # papermill's own, when not given one
        run_sync(km.start_kernel)()
        started.update(pid=km.provisioner.process.pid, connection_file=km.connection_file)
        raise KeyboardInterrupt

    monkeypatch.setattr(papermill, "execute_notebook", fake_execute)
    with pytest.raises(RunError, match="interrupted by SIGINT") as err:
        run_notebook(tiny, out_dir=tmp_path / "run")
    assert err.value.exit_code == 130
    for _ in range(50):
        if not _pid_alive(started["pid"]):
            break
        time.sleep(0.1)
    assert not _pid_alive(started["pid"]), "kernel still running"
    assert not os.path.exists(started["connection_file"])
    assert json.loads((tmp_path / "run" / "status.json").read_text())["status"] == "interrupted"
