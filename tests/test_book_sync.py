"""ntknb.book.sync: paired notebooks in sync, the stored notebooks complete runs at the defaults,
the CI presets."""

import json
from pathlib import Path

import jupytext
import nbformat
import pytest

from ntknb.book.params import RunError
from ntknb.book.sync import check_sync, compare_pair, paired_notebooks, prepare_ci, sync, unexecuted_notebooks

PY = '''\
# %% [markdown]
# # Demo

# %% tags=["parameters"]
seed = 0

# %%
x = seed + 1
print(x)
'''


def _make_pair(root: Path, name: str = "01_demo", source: str = PY) -> tuple[Path, Path]:
    nb_dir = root / "notebooks"
    nb_dir.mkdir(parents=True, exist_ok=True)
    py = nb_dir / f"{name}.py"
    py.write_text(source)
    nb = jupytext.reads(source, fmt="py:percent")
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    ipynb = py.with_suffix(".ipynb")
    # outputs and metadata noise must not matter
    nb.cells[2].outputs = [nbformat.v4.new_output("stream", name="stdout", text="1\n")]
    nb.cells[2].execution_count = 3
    nb.cells[2].metadata["papermill"] = {"duration": 0.1}
    nbformat.write(nb, ipynb)
    return py, ipynb


def test_repository_notebooks_in_sync():
    """Every notebooks/*.py has a paired .ipynb with the same inputs (vacuous while none)."""
    problems = check_sync()
    assert not problems, "\n".join(map(str, problems))


def test_pair_in_sync(tmp_path):
    py, ipynb = _make_pair(tmp_path)
    assert compare_pair(py, ipynb) is None
    assert check_sync(tmp_path) == []


@pytest.mark.parametrize(
    "edit, expected",
    [
        (lambda s: s.replace("x = seed + 1", "x = seed + 2"), "cell 3 differs between 01_demo.py and 01_demo.ipynb: source"),
        (lambda s: s.replace('tags=["parameters"]', ""), "cell 2 differs between 01_demo.py and 01_demo.ipynb: tags"),
        (lambda s: s + "\n# %%\ny = 2\n", "01_demo.py has 4 cells, 01_demo.ipynb has 3"),
        (lambda s: s.replace("# %% [markdown]\n# # Demo", "# %%\n# # Demo"), "cell type code vs markdown"),
    ],
)
def test_pair_out_of_sync_fails(tmp_path, edit, expected):
    py, ipynb = _make_pair(tmp_path)
    py.write_text(edit(PY))
    msg = compare_pair(py, ipynb)
    assert msg is not None and expected in msg
    problems = check_sync(tmp_path)
    assert len(problems) == 1 and problems[0].path == py


def test_missing_partners(tmp_path):
    py, ipynb = _make_pair(tmp_path)
    ipynb.unlink()
    assert "no paired notebook 01_demo.ipynb" in str(check_sync(tmp_path)[0])
    _, orphan = _make_pair(tmp_path, "02_other")
    orphan.with_suffix(".py").unlink()
    messages = [str(p) for p in check_sync(tmp_path)]
    assert any("02_other.ipynb: has no py:percent source 02_other.py" in m for m in messages)


def test_sync_regenerates_inputs_keeping_outputs(tmp_path):
    py, ipynb = _make_pair(tmp_path)
    py.write_text(PY.replace("# # Demo", "# # Demo, revised"))
    assert check_sync(tmp_path)
    assert sync(root=tmp_path) == [ipynb]
    assert check_sync(tmp_path) == []
    nb = nbformat.read(ipynb, as_version=4)
    assert nb.cells[0].source == "# Demo, revised"
    assert nb.cells[2].outputs[0]["text"] == "1\n"  # the stored output survived
    assert nb.metadata["kernelspec"]["name"] == "ntknb"  # the project's kernel, not a user's python3
    assert sync(root=tmp_path) == []  # nothing left to do


def test_sync_applies_tags_over_papermills_empty_tags(tmp_path):
    """papermill stores `tags: []` on every cell; a tag added in the .py must still reach the
    .ipynb (jupytext --update alone keeps the stored empty list)."""
    py, ipynb = _make_pair(tmp_path)
    nb = nbformat.read(ipynb, as_version=4)
    for cell in nb.cells:
        cell.metadata.setdefault("tags", [])
    nbformat.write(nb, ipynb)
    py.write_text(PY.replace("# %%\nx = seed + 1", '# %% tags=["hide-input"]\nx = seed + 1'))
    assert "tags" in compare_pair(py, ipynb)
    assert sync(root=tmp_path) == [ipynb]
    assert check_sync(tmp_path) == []
    nb = nbformat.read(ipynb, as_version=4)
    assert nb.cells[2].metadata["tags"] == ["hide-input"] and nb.cells[1].metadata["tags"] == ["parameters"]
    assert nb.cells[2].outputs[0]["text"] == "1\n"  # outputs kept


def test_sync_keeps_figure_captions_of_the_py_in_the_ipynb(tmp_path):
    """A caption (myst-nb's ``mystnb.figure``) lives in the .py cell header; an .ipynb that lacks
    it (e.g. executed in another checkout and copied in) is out of sync, and sync restores it."""
    py, ipynb = _make_pair(tmp_path)
    caption = {"figure": {"caption": "What the figure shows.", "name": "fig-demo"}}
    py.write_text(PY.replace("# %%\nx = seed + 1", "# %% mystnb=" + json.dumps(caption) + "\nx = seed + 1"))
    assert "caption" in compare_pair(py, ipynb)
    assert sync(root=tmp_path) == [ipynb]
    assert check_sync(tmp_path) == []
    nb = nbformat.read(ipynb, as_version=4)
    assert nb.cells[2].metadata["mystnb"] == caption and nb.cells[2].outputs[0]["text"] == "1\n"
    py.write_text(PY)  # the caption removed from the .py leaves the .ipynb too
    sync(root=tmp_path)
    assert "mystnb" not in nbformat.read(ipynb, as_version=4).cells[2].metadata


def test_unexecuted_notebooks(tmp_path):
    _make_pair(tmp_path)
    (tmp_path / "_toc.yml").write_text(
        "format: jb-book\nroot: intro\nchapters:\n  - file: notebooks/01_demo\n  - file: notebooks/02_gone\n"
    )
    (tmp_path / "intro.md").write_text("# Intro\n")
    bad = unexecuted_notebooks(tmp_path)
    assert bad == ["notebooks/01_demo: not executed (run it at default parameters and save the outputs)",
                   "notebooks/02_gone: missing notebooks/02_gone.ipynb"]


def _toc(root: Path) -> None:
    (root / "_toc.yml").write_text("format: jb-book\nroot: intro\nchapters:\n  - file: notebooks/01_demo\n")
    (root / "intro.md").write_text("# Intro\n")


def _stored(ipynb: Path, edit=None) -> None:
    nb = nbformat.read(ipynb, as_version=4)
    for i, cell in enumerate(c for c in nb.cells if c.cell_type == "code"):
        cell.execution_count = i + 1
    if edit:
        edit(nb)
    nbformat.write(nb, ipynb)


def _inject(nb):
    cell = nbformat.v4.new_code_cell("seed = 5")
    cell.metadata["tags"] = ["injected-parameters"]
    nb.cells.insert(2, cell)
    for i, c in enumerate(c for c in nb.cells if c.cell_type == "code"):
        c.execution_count = i + 1
    nb.metadata["papermill"] = {"parameters": {"seed": 5}}


@pytest.mark.parametrize("edit, expected", [
    (None, None),
    (lambda nb: setattr(nb.cells[2], "execution_count", 9) or setattr(nb.cells[1], "execution_count", 10),
     "out of order"),
    (lambda nb: nb.cells[2].outputs.append(nbformat.v4.new_output("error", ename="E", evalue="x", traceback=[])),
     "is an error"),
    (_inject, "executed with parameters"),
    (lambda nb: nb.metadata.update(papermill={"parameters": {"seed": 5}}), "executed with parameters"),
])
def test_unexecuted_notebooks_requires_one_complete_run_at_the_defaults(tmp_path, edit, expected):
    _py, ipynb = _make_pair(tmp_path)
    _toc(tmp_path)
    _stored(ipynb, edit)
    bad = unexecuted_notebooks(tmp_path)
    if expected is None:
        assert bad == []
    else:
        assert len(bad) == 1 and expected in bad[0] and bad[0].startswith("notebooks/01_demo:")


def test_repository_notebooks_are_complete_runs_at_the_defaults():
    """The book's outputs are the defaults' (CI may execute the chapters at their CI presets)."""
    bad = unexecuted_notebooks()
    assert not bad, "\n".join(bad)


def test_unexecuted_notebooks_skips_pages_generated_at_build_time(tmp_path):
    _py, ipynb = _make_pair(tmp_path)
    _stored(ipynb)
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: intro\nchapters:\n  - file: notebooks/01_demo\n"
                                       "  - file: book/results\n")  # book/results.md not written yet
    (tmp_path / "intro.md").write_text("# Intro\n")
    assert unexecuted_notebooks(tmp_path) == []


def test_prepare_ci_injects_each_preset_and_keeps_the_rest_at_the_defaults(tmp_path):
    py, ipynb = _make_pair(tmp_path)
    _py2, ipynb2 = _make_pair(tmp_path, "02_other")
    (tmp_path / "notebooks" / "data").mkdir()
    (tmp_path / "notebooks" / "01_demo.ci.yaml").write_text("seed: 7\n")
    dest = tmp_path / "ci"
    out = prepare_ci(dest, root=tmp_path)
    assert out == [dest / "01_demo.ipynb", ipynb2]
    nb = nbformat.read(out[0], as_version=4)
    injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1 and "seed = 7" in injected[0].source
    assert all(c.outputs == [] and c.execution_count is None for c in nb.cells if c.cell_type == "code")
    assert (dest / "data").resolve() == (tmp_path / "notebooks" / "data").resolve()
    assert nbformat.read(ipynb, as_version=4).cells[2].outputs  # the stored notebook is untouched
    (tmp_path / "notebooks" / "01_demo.ci.yaml").write_text("sed: 7\n")
    with pytest.raises(RunError, match="unknown parameter 'sed'"):
        prepare_ci(tmp_path / "ci2", root=tmp_path)


def test_repository_ci_presets_are_valid(tmp_path):
    """Every notebooks/NAME.ci.yaml names parameters of its chapter, within its schema."""
    out = prepare_ci(tmp_path)
    assert len(out) == len(paired_notebooks()) and any(p.parent == tmp_path for p in out)
