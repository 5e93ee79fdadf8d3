"""The ``ntknb`` command line: exit codes and one-line messages, and one real end-to-end run
(py:percent → jupytext → papermill with the venv's ``python3`` kernel → metrics.json)."""

import json
import subprocess
import sys

import nbformat
import pytest
import yaml

from ntknb import cli

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


@pytest.mark.slow
def test_run_end_to_end(tiny, tmp_path):
    """The real pipeline, through the installed command's module: ~5 s (kernel start)."""
    params = tmp_path / "p.yaml"
    params.write_text("lr: 2\nname: xyz\n")
    out_dir = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "ntknb.cli", "run", str(tiny), "-p", "n", "4", "-f", str(params),
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
        [sys.executable, "-m", "ntknb.cli", "run", str(tiny), "-p", "n", "1000", "--out", str(out2)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().count("\n") == 0, proc.stderr
    assert "ValueError: parameter 'n' must be an integer in [1, 100], got 1000" in proc.stderr
    assert (out2 / "tiny.ipynb").is_file() and not (out2 / "metrics.json").exists()
