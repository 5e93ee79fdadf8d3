"""ntknb.book.run: glue extraction, the injected parameters cell, metrics.json and the output
folder checks. The end-to-end ``ntknb run`` (papermill execution, signals) is in test_book_cli.py.
"""

import math

import jupytext
import nbformat
import pytest

from ntknb import paths
from ntknb.book.params import RunError
from ntknb.book.run import RUN_MARKER, check_out_dir, extract_glued, inject_parameters, write_metrics

def _glue_output(name, data, prefix="application/papermill.record/"):
    return nbformat.v4.new_output(
        "display_data",
        data={prefix + k: v for k, v in data.items()},
        metadata={"scrapbook": {"name": name, "mime_prefix": prefix}},
    )


def test_extract_glued():
    cell = nbformat.v4.new_code_cell("...")
    cell.outputs = [
        nbformat.v4.new_output("stream", name="stdout", text="hello\n"),
        _glue_output("acc", {"text/plain": "0.875"}),
        _glue_output("n", {"text/plain": "16"}),
        _glue_output("curve", {"text/plain": "[0.5, nan, inf]"}, prefix=""),
        _glue_output("label", {"text/plain": "'mnist'"}),
        _glue_output("tab", {"text/plain": "<IPython.core.display.Markdown object>", "text/markdown": "| a |"}),
        _glue_output("fig", {"text/plain": "<Figure size 640x480 with 1 Axes>", "image/png": "iVBOR"}),
        _glue_output("img", {"image/png": "iVBOR"}),
        _glue_output("acc", {"text/plain": "0.9"}),  # a later glue wins
    ]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("x"), cell])
    out = extract_glued(nb)
    assert out["acc"] == 0.9 and out["n"] == 16 and type(out["n"]) is int
    assert out["curve"][0] == 0.5 and math.isnan(out["curve"][1]) and out["curve"][2] == math.inf
    assert out["label"] == "mnist" and out["tab"] == "| a |"
    assert out["fig"] == "<Figure size 640x480 with 1 Axes>" and out["img"] == "<image/png>"
    assert list(out) == ["acc", "n", "curve", "label", "tab", "fig", "img"]


def test_injected_cell_is_plain_literals():
    nb = jupytext.reads('# %% tags=["parameters"]\nname = "abc"\nmaybe = None\n\n# %%\nx = 1\n', fmt="py:percent")
    injected = {"name": 'a"b\\', "maybe": [1, "x"]}
    out = inject_parameters(nb, injected)
    cell = next(c for c in out.cells if "injected-parameters" in c.metadata.get("tags", []))
    import ast
    tree = ast.parse(cell.source)
    values = {s.targets[0].id: ast.literal_eval(s.value) for s in tree.body}
    assert values == {"name": 'a"b\\', "maybe": [1, "x"]}
    assert out.metadata["papermill"]["parameters"] == injected


def test_metrics_nan_written_as_null(tmp_path):
    path = tmp_path / "metrics.json"
    write_metrics(path, {"acc": 0.5, "curve": [0.1, math.nan, math.inf], "d": {"x": -math.inf}})
    import json
    data = json.loads(path.read_text(), parse_constant=lambda c: pytest.fail(f"not JSON: {c}"))
    assert data["curve"] == [0.1, None, None] and data["d"] == {"x": None} and data["acc"] == 0.5
    assert "curve[1]" in data["_note"] and "null" in data["_note"]
    write_metrics(path, {"acc": 0.5})
    assert json.loads(path.read_text()) == {"acc": 0.5}


def test_out_dir_checks(tmp_path):
    nbdir = paths.REPO_ROOT / "notebooks"
    with pytest.raises(RunError, match="notebooks"):
        check_out_dir(nbdir, "00_ntk_basics")
    with pytest.raises(RunError, match="notebooks"):
        check_out_dir(nbdir / ".." / "notebooks", "00_ntk_basics")
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "tiny.ipynb").write_text("{}")
    with pytest.raises(RunError, match="not an earlier .ntknb run. output"):
        check_out_dir(foreign, "tiny")
    (tmp_path / "empty").mkdir()
    check_out_dir(tmp_path / "empty", "tiny")
    check_out_dir(tmp_path / "new" / "sub", "tiny")
    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(RunError, match="not a folder"):
        check_out_dir(afile, "tiny")
    prev = tmp_path / "prev"
    prev.mkdir()
    for name in ("tiny.ipynb", "metrics.json", "parameters.yaml"):
        (prev / name).write_text("{}")
    (prev / "status.json").write_text('{"ntknb_run": 1, "status": "done"}')
    with pytest.raises(RunError, match="no .ntknb-run.json marker"):  # status.json alone proves nothing
        check_out_dir(prev, "tiny")
    (prev / RUN_MARKER).write_text(
        '{"ntknb_run": 1, "run_id": "x", "files": ["tiny.ipynb", "metrics.json", "parameters.yaml", "status.json"]}')
    check_out_dir(prev, "tiny")
    (prev / "notes.txt").write_text("mine")
    with pytest.raises(RunError, match="notes.txt"):
        check_out_dir(prev, "tiny")


def test_kernel_joins_the_distributed_run_only_when_asked():
    """NTKNB_PROCESSES set: the kernel runs ntknb.replicas.initialize_processes before the first cell."""
    from ntknb.book.run import kernel_startup_arguments
    from ntknb.replicas import PROCESSES_ENV

    assert kernel_startup_arguments({}) == [] and kernel_startup_arguments({PROCESSES_ENV: ""}) == []
    (arg,) = kernel_startup_arguments({PROCESSES_ENV: "localhost:1234,2,0"})
    assert arg.startswith("--IPKernelApp.exec_lines=") and "ntknb.replicas.initialize_processes()" in arg
