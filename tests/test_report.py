"""ntknb.report: glue conversion to plain Python, name validation, Markdown tables."""

import ast

import numpy as np
import pytest

from ntknb import report


def _captured_glue(monkeypatch):
    """Replace IPython's display used by myst_nb.glue; return the list of (data, metadata)."""
    import myst_nb.ext.glue as myst_glue

    calls = []
    monkeypatch.setattr(myst_glue, "ipy_display", lambda data, raw, metadata: calls.append((data, metadata)))
    return calls


@pytest.mark.parametrize(
    "value, expected",
    [
        (np.float64(0.5), 0.5),
        (np.float32(0.25), 0.25),
        (np.int64(7), 7),
        (np.bool_(True), True),
        (np.arange(3), [0, 1, 2]),
        (np.zeros((2, 2), np.float32), [[0.0, 0.0], [0.0, 0.0]]),
        (np.array(3.5), 3.5),
        ({"a": np.float64(1.0), "b": [np.int32(2), (np.float16(0.5),)]}, {"a": 1.0, "b": [2, [0.5]]}),
        ("text", "text"),
        (None, None),
    ],
)
def test_to_python(value, expected):
    out = report.to_python(value)
    assert out == expected
    assert type(out) is type(expected)
    if isinstance(out, list) and out and not isinstance(out[0], list):
        assert all(type(v) in (int, float, bool) for v in out)


def test_to_python_jax_array():
    import jax.numpy as jnp

    assert report.to_python(jnp.float32(0.5)) == 0.5
    assert type(report.to_python(jnp.asarray(0.5))) is float
    assert report.to_python(jnp.arange(3)) == [0, 1, 2]


def test_glue_stores_literal_repr(monkeypatch):
    calls = _captured_glue(monkeypatch)
    out = report.glue("acc", np.float64(0.875))
    assert out == 0.875 and type(out) is float
    (data, metadata), = calls
    text = data["application/papermill.record/text/plain"]
    assert ast.literal_eval(text) == 0.875  # not 'np.float64(0.875)'
    assert metadata["scrapbook"]["name"] == "acc"


def test_glue_display_true_unprefixed(monkeypatch):
    calls = _captured_glue(monkeypatch)
    report.glue("curve", np.array([1.0, 2.0]), display=True)
    (data, metadata), = calls
    assert ast.literal_eval(data["text/plain"]) == [1.0, 2.0]
    assert metadata["scrapbook"] == {"name": "curve", "mime_prefix": ""}


@pytest.mark.parametrize("name", ["", "1abc", "a b", "x/y", "acc!", None, 3])
def test_glue_rejects_bad_names(monkeypatch, name):
    _captured_glue(monkeypatch)
    with pytest.raises(ValueError, match="identifier-like"):
        report.glue(name, 1.0)


@pytest.mark.parametrize("name", ["acc", "_x", "acc_clean", "eps-8", "fig.spectrum", "A1"])
def test_glue_accepts_good_names(monkeypatch, name):
    calls = _captured_glue(monkeypatch)
    report.glue(name, 1)
    assert calls[0][1]["scrapbook"]["name"] == name


def test_glue_values_glues_each_pair_in_order_and_returns_none(monkeypatch):
    calls = _captured_glue(monkeypatch)
    assert report.glue_values({"b": np.float64(0.5), "a": 3}) is None
    assert [(m["scrapbook"]["name"], ast.literal_eval(d["application/papermill.record/text/plain"]))
            for d, m in calls] == [("b", 0.5), ("a", 3)]
    with pytest.raises(ValueError, match="values must be a mapping"):
        report.glue_values([("a", 1)])


def _toy_params():
    import dataclasses

    from ntknb import schema

    @dataclasses.dataclass(frozen=True)
    class Toy(schema.Params):
        n_seeds: int = schema.param(schema.Int(min=1))
        eps: float = schema.param(schema.Float(min=0.0))

    return Toy(n_seeds=3, eps=0.25)


def test_glue_params_glues_fields_under_their_names_a_suffix_or_a_mapping(monkeypatch):
    calls = _captured_glue(monkeypatch)
    p = _toy_params()
    report.glue_params(p, ["n_seeds", "eps"])
    report.glue_params(p, ["eps"], suffix="_g")
    report.glue_params(p, {"radius": "eps"})
    names = [m["scrapbook"]["name"] for _, m in calls]
    values = [ast.literal_eval(d["application/papermill.record/text/plain"]) for d, _ in calls]
    assert list(zip(names, values)) == [("n_seeds", 3), ("eps", 0.25), ("eps_g", 0.25), ("radius", 0.25)]


@pytest.mark.parametrize("names, suffix, message", [
    (["n_seed"], "", r"\['n_seed'\] are no parameters of Toy; the parameters are \['n_seeds', 'eps'\]"),
    ({"r": "radius"}, "", r"\['radius'\] are no parameters"),
    ({"r": "eps"}, "_g", "a suffix"),
    ("eps", "", "names must be a list"),
])
def test_glue_params_refuses_unknown_names(monkeypatch, names, suffix, message):
    calls = _captured_glue(monkeypatch)
    with pytest.raises(ValueError, match=message):
        report.glue_params(_toy_params(), names, suffix=suffix)
    assert calls == []  # nothing glued before the check


def test_markdown_table():
    text = report.markdown_table([["mnist", np.float64(0.91234), 3], ["cifar|10", 0.5, 4]], ["data", "acc", "n"])
    lines = text.splitlines()
    assert lines[0] == "| data | acc | n |"
    assert lines[1] == "| :-- | --: | --: |"
    assert lines[2] == "| mnist | 0.9123 | 3 |"
    assert lines[3] == r"| cifar\|10 | 0.5 | 4 |"


def test_markdown_table_shows_nan_as_not_measured():
    text = report.markdown_table([["a", float("nan"), np.float32("nan"), float("inf")]], ["m", "x", "y", "z"])
    assert text.splitlines()[2] == "| a | — | — | inf |"


def test_markdown_table_errors():
    with pytest.raises(ValueError, match="row 1 has 1 cells, expected 2"):
        report.markdown_table([[1, 2], [3]], ["a", "b"])
    with pytest.raises(ValueError, match="align"):
        report.markdown_table([[1, 2]], ["a", "b"], align=["l"])


def test_glue_table(monkeypatch):
    calls = _captured_glue(monkeypatch)
    text = report.glue_table("tab", [[1, 0.5]], ["a", "b"])
    (data, metadata), = calls
    assert data["application/papermill.record/text/markdown"] == text
    assert metadata["scrapbook"]["name"] == "tab"


def test_glued_figure_is_shown_once_and_readable(monkeypatch):
    """A glued figure is closed (the inline backend will not show it again under the cell) and
    its text is raised to the book's minimum size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ntknb import plotting

    calls = _captured_glue(monkeypatch)
    fig, ax = plt.subplots()
    ax.plot([0, 1], label="x")
    ax.legend(fontsize=5)
    assert plt.fignum_exists(fig.number)
    assert report.glue("fig_demo", fig) is None  # a glue call ending a cell shows nothing
    assert not plt.fignum_exists(fig.number)
    assert min(t.get_fontsize() for t in ax.get_legend().get_texts()) >= plotting.MIN_FONT_SIZE
    assert calls[0][1]["scrapbook"]["name"] == "fig_demo"


def test_html_table_formats_reals_and_escapes_the_rest():
    text = report.html_table(["a<b", "x"], [["<i>", np.float32(0.12345)], [3, True], ["s", 0.5]], floatfmt=".3f")
    assert "<th>a&lt;b</th><th>x</th>" in text
    assert "<tr><td>&lt;i&gt;</td><td>0.123</td></tr>" in text
    assert "<tr><td>3</td><td>True</td></tr>" in text  # integers and booleans are not formatted as floats
    assert "<tr><td>s</td><td>0.500</td></tr>" in text
    assert text.startswith("<table>") and text.endswith("</table>")
