"""ntknb.book.params: parameters cell parsing, override checking and merging, strict YAML.

The run itself (output folders, papermill) is in test_book_run.py; the end-to-end ``ntknb run``
in test_book_cli.py.
"""

from pathlib import Path

import jupytext
import nbformat
import pytest

from ntknb.book.params import (DEFAULT_KERNEL, RunError, format_parameters, load_notebook, merge_overrides,
                               notebook_parameters, parse_value, prepare, resolve_notebook)

SOURCE = '''\
# %% [markdown]
# # A notebook

# %% tags=["parameters"]
n = 3  # number of points
lr = 0.5
name = "abc"
widths = [1, 2]
flag = True
eps = 8 / 255  # L-inf radius
maybe = None
fn = len  # not a literal
%matplotlib inline

# %%
x = n * lr
'''


@pytest.fixture
def nb():
    return jupytext.reads(SOURCE, fmt="py:percent")


@pytest.fixture
def params(nb):
    return notebook_parameters(nb)


def test_notebook_parameters(params):
    assert list(params) == ["n", "lr", "name", "widths", "flag", "eps", "maybe", "fn"]
    assert params["n"].default == 3 and params["n"].type_name == "int"
    assert params["n"].help == "number of points"
    assert params["eps"].default == pytest.approx(8 / 255) and params["eps"].help == "L-inf radius"
    assert params["widths"].default == [1, 2]
    assert params["flag"].default is True
    assert params["maybe"].type_name == "any"
    assert not params["fn"].evaluated and params["fn"].source == "len"


def test_format_parameters(params):
    text = format_parameters(params)
    assert "n = 3 (int)" in text and "lr = 0.5 (float)" in text and "name = 'abc' (str)" in text
    assert "eps = 8 / 255 = 0.0313725 (float)" in text and "fn = len (any)" in text
    assert "\n" not in text
    assert "# number of points" in format_parameters(params, multiline=True)
    assert format_parameters({}) == "(no parameters cell)"


def test_no_parameters_cell():
    nb = jupytext.reads("# %%\nx = 1\n", fmt="py:percent")
    assert notebook_parameters(nb) == {}


@pytest.mark.parametrize(
    "text, expected",
    [("3", 3), ("0.5", 0.5), ("1e-3", 1e-3), ("-2E5", -2e5), ("true", True), ("[1, 2]", [1, 2]),
     ("mnist", "mnist"), ("'3'", "3"), ("null", None), ("nan", "nan")],
)
def test_parse_value(text, expected):
    out = parse_value(text)
    assert out == expected and type(out) is type(expected)


@pytest.mark.parametrize(
    "name, text, expected",
    [("n", "5", 5), ("lr", "2", 2.0), ("lr", "1e-4", 1e-4), ("name", "2024", "2024"), ("name", "x y", "x y"),
     ("widths", "[3]", [3]), ("flag", "false", False), ("maybe", "[1]", [1]), ("fn", "abc", "abc")],
)
def test_merge_overrides_p(params, name, text, expected):
    out = merge_overrides(params, [("param", name, text)])
    assert out == {name: expected} and type(out[name]) is type(expected)


@pytest.mark.parametrize(
    "name, text", [("n", "1.5"), ("n", "true"), ("n", "abc"), ("lr", "abc"), ("lr", "true"), ("flag", "1"),
                   ("widths", "3"), ("name", "[1, 2]")],
)
def test_merge_overrides_wrong_type(params, name, text):
    with pytest.raises(RunError) as err:
        merge_overrides(params, [("param", name, text)], notebook="tiny")
    msg = str(err.value)
    assert f"bad value for parameter {name!r}" in msg
    assert "parameters of tiny: n = 3 (int); lr = 0.5 (float)" in msg
    assert err.value.exit_code == 2 and "\n" not in msg


def test_merge_overrides_unknown(params):
    with pytest.raises(RunError, match=r"unknown parameter 'nn' \(-p\); parameters of tiny: n = 3 \(int\)"):
        merge_overrides(params, [("param", "nn", "1")], notebook="tiny")


def test_merge_overrides_file_order(params, tmp_path):
    f1 = tmp_path / "a.yaml"
    f1.write_text("n: 10\nlr: 1\nwidths: [4, 5]\neps: 1e-2\n")
    f2 = tmp_path / "b.yaml"
    f2.write_text("n: 20\n")
    out = merge_overrides(params, [("param", "n", "7"), ("file", f1), ("param", "lr", "0.1"), ("file", f2)])
    assert out == {"n": 20, "lr": 0.1, "widths": [4, 5], "eps": 0.01}
    assert type(out["lr"]) is float and type(out["eps"]) is float


def test_param_file_errors(params, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("- 1\n- 2\n")
    with pytest.raises(RunError, match="must hold a mapping"):
        merge_overrides(params, [("file", bad)])
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("zzz: 1\n")
    with pytest.raises(RunError, match=r"unknown parameter 'zzz' \(from .*unknown.yaml\)"):
        merge_overrides(params, [("file", unknown)])
    with pytest.raises(RunError, match="cannot read parameter file"):
        merge_overrides(params, [("file", tmp_path / "missing.yaml")])
    broken = tmp_path / "broken.yaml"
    broken.write_text("a: [1\n")
    with pytest.raises(RunError, match="not valid YAML"):
        merge_overrides(params, [("file", broken)])


def test_resolve_and_load_py(tmp_path, monkeypatch):
    py = tmp_path / "notebooks" / "07_demo.py"
    py.parent.mkdir()
    py.write_text(SOURCE)
    monkeypatch.chdir(tmp_path)
    assert resolve_notebook("07_demo") == py
    assert resolve_notebook("notebooks/07_demo") == py
    assert resolve_notebook(str(py)) == py
    nb = load_notebook(py)
    assert nb.metadata["kernelspec"]["name"] == "ntknb"
    assert [c.cell_type for c in nb.cells] == ["markdown", "code", "code"]
    assert "parameters" in nb.cells[1].metadata["tags"]
    # the .py converts to a valid .ipynb that papermill can read
    nbformat.validate(nbformat.from_dict(nb))
    with pytest.raises(RunError, match="no notebook named 'nope'; available: .*07_demo"):
        resolve_notebook("nope")
    with pytest.raises(RunError, match="notebook file not found"):
        resolve_notebook("missing.ipynb")
    with pytest.raises(RunError, match="must be a name, a .py or an .ipynb"):
        resolve_notebook("x.txt")


def test_prepare_without_parameters_cell(tmp_path):
    py = tmp_path / "plain.py"
    py.write_text("# %%\nx = 1\n")
    with pytest.raises(RunError, match="has no cell tagged 'parameters'"):
        prepare(py, [("param", "x", "2")])
    assert prepare(py)[3] == {}


PRESETS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.paper.yaml"))


@pytest.mark.parametrize("preset", PRESETS, ids=[p.name for p in PRESETS])
def test_paper_presets_name_real_parameters_of_the_right_type(preset):
    """Every key of a ``.paper.yaml`` is a parameter of its notebook and has its type."""
    notebook = preset.name.replace(".paper.yaml", ".py")
    _, _, params, injected = prepare(preset.parent / notebook, [("file", preset)])
    assert injected and set(injected) <= set(params)


def test_every_notebook_has_a_paper_preset():
    stems = {p.stem for p in (Path(__file__).resolve().parents[1] / "notebooks").glob("[0-9]*.py")}
    assert stems and stems == {p.name.replace(".paper.yaml", "") for p in PRESETS}


# ----------------------------------------------------------------- hardening (issue 14)

BINARY = "!!binary Il07b3BlbigibWFya2VyIiwidyIpO1si"  # '"];open("marker","w");["'


@pytest.mark.parametrize(
    "text",
    [f"[{BINARY}]", BINARY, "!!set {a, b}", "[!!pairs [a: 1]]", "!!python/object:os.system x", "!custom 3",
     "[!!timestamp 2024-01-01]", "!!omap [a: 1]"],
)
def test_p_value_refuses_tags_beyond_json(params, text):
    with pytest.raises(RunError, match=r"bad value for parameter 'widths' \(-p\): .*(tag|not allowed)") as err:
        merge_overrides(params, [("param", "widths", text)], notebook="tiny")
    assert "\n" not in str(err.value) and err.value.exit_code == 2


def test_param_file_refuses_tags_aliases_and_bombs(params, tmp_path):
    f = tmp_path / "binary.yaml"
    f.write_text(f"widths: [{BINARY}]\n")
    with pytest.raises(RunError, match="not allowed") as err:
        merge_overrides(params, [("file", f)])
    assert "\n" not in str(err.value)
    bomb = tmp_path / "bomb.yaml"
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i, (prev, cur) in enumerate(zip("abcdefgh", "bcdefghi")):
        lines.append(f"{cur}: &{cur} [" + ",".join([f"*{prev}"] * 9) + "]")
    bomb.write_text("\n".join(lines) + "\nwidths: *i\n")
    import time
    t0 = time.perf_counter()
    with pytest.raises(RunError, match="alias|anchor"):
        merge_overrides(params, [("file", bomb)])
    assert time.perf_counter() - t0 < 1.0
    with pytest.raises(RunError, match="alias|anchor"):
        merge_overrides(params, [("param", "widths", "*x")])


@pytest.mark.parametrize(
    "name, value, match",
    [("widths", "[1, .nan]", "finite"), ("lr", "1e400", "finite"), ("n", "9" * 5000, "too large"),
     ("maybe", "{1: 2}", "key"), ("maybe", "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
                                          "nested")],
)
def test_values_must_be_plain_json(params, name, value, match):
    with pytest.raises(RunError, match=match) as err:
        merge_overrides(params, [("param", name, value)], notebook="tiny")
    assert len(str(err.value)) < 2000 and "\n" not in str(err.value)


def test_param_file_nested_values_checked(params, tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text("maybe: {a: [1, 2, {b: .inf}]}\n")
    with pytest.raises(RunError, match=r"maybe.*finite"):
        merge_overrides(params, [("file", f)])
    f.write_text("n: " + "7" * 5000 + "\n")
    with pytest.raises(RunError, match="too large") as err:
        merge_overrides(params, [("file", f)])
    assert len(str(err.value)) < 2000


def test_duplicate_keys_and_duplicate_p_refused(params, tmp_path):
    f = tmp_path / "dup.yaml"
    f.write_text("n: 1\nlr: 0.1\nn: 2\n")
    with pytest.raises(RunError, match=r"'n'.*twice"):
        merge_overrides(params, [("file", f)])
    with pytest.raises(RunError, match=r"'n'.*twice"):
        merge_overrides(params, [("param", "n", "1"), ("param", "n", "2")])
    # a -p after a file (or a later file) still overrides: documented order
    g = tmp_path / "g.yaml"
    g.write_text("n: 1\n")
    assert merge_overrides(params, [("file", g), ("param", "n", "2")]) == {"n": 2}


def test_non_utf8_param_file(params, tmp_path):
    f = tmp_path / "latin1.yaml"
    f.write_bytes("name: caf\xe9\n".encode("latin-1"))
    with pytest.raises(RunError, match="not UTF-8") as err:
        merge_overrides(params, [("file", f)])
    assert "\n" not in str(err.value)


def test_plain_strings_and_dates_stay_strings(params):
    assert merge_overrides(params, [("param", "name", "2024-01-01")]) == {"name": "2024-01-01"}
    assert merge_overrides(params, [("param", "maybe", "{a: [1, 'x', null, true]}")]) == \
        {"maybe": {"a": [1, "x", None, True]}}


@pytest.mark.parametrize("value, ok", [("0", True), (str(2**32 - 1), True), (str(2**32), False), ("-1", False),
                                       (str(2**64), False)])
def test_seed_bounds(value, ok):
    nb = jupytext.reads('# %% tags=["parameters"]\nseed = 0\ninit_seed = 1\n', fmt="py:percent")
    p = notebook_parameters(nb)
    for name in ("seed", "init_seed"):
        if ok:
            assert merge_overrides(p, [("param", name, value)]) == {name: int(value)}
        else:
            with pytest.raises(RunError, match=rf"'{name}'.*0 <= {name} < 2\*\*32"):
                merge_overrides(p, [("param", name, value)])


def test_default_kernel_is_project_specific():
    assert DEFAULT_KERNEL == "ntknb"


def test_list_items_checked_against_the_default(params):
    """A list default of one item type constrains the items of an override (plain types only)."""
    with pytest.raises(RunError, match=r"'widths'.*item 1 is 'x'"):
        merge_overrides(params, [("param", "widths", "[1, x]")])
    with pytest.raises(RunError, match=r"'widths'.*item 0 is \[1\]"):
        merge_overrides(params, [("param", "widths", "[[1]]")])
    with pytest.raises(RunError, match=r"'widths'.*item 0 is True"):
        merge_overrides(params, [("param", "widths", "[true]")])
    assert merge_overrides(params, [("param", "widths", "[]")]) == {"widths": []}
    nb = jupytext.reads('# %% tags=["parameters"]\nrates = [0.5, 1.0]\nnames = ["a"]\n', fmt="py:percent")
    p = notebook_parameters(nb)
    out = merge_overrides(p, [("param", "rates", "[1, 2.5]"), ("param", "names", "[b, c]")])
    assert out == {"rates": [1.0, 2.5], "names": ["b", "c"]} and type(out["rates"][0]) is float
    with pytest.raises(RunError, match=r"'names'.*item 0 is 3"):
        merge_overrides(p, [("param", "names", "[3]")])
