"""ntknb.book.pages: the "Results at a glance" and "Execution status" pages and their generation
from the stored notebooks' glued claims at build time (glued_claims / write_results_page)."""

import shutil
from pathlib import Path

import jupytext
import nbformat
import pytest

from ntknb import paths
from ntknb.book import pages
from ntknb.book.build import build
from ntknb.book.sync import execution_record, toc_files
from ntknb.claims import Claim

CLAIM = dict(
    id="demo.ratio",
    source="loo2022evolution",
    where="Sec. 4, Fig. 3",
    claim="Adversarial training moves the kernel by orders of magnitude more.",
    paper="orders of magnitude",
    direction="greater",
    threshold=10.0,
    measured=1.16,
    low=1.05,
    high=1.27,
    n_seeds=3,
    n_test=None,
    scale="MNIST 0 vs 1, 512 train",
)

TOC = """format: jb-book
root: intro
parts:
  - caption: Results
    chapters:
      - file: book/results
  - caption: Chapters
    chapters:
      - file: notebooks/01_demo
      - file: notebooks/02_plain
"""


def _glue_output(name, value):
    """A display output as myst_nb.glue stores it."""
    prefix = "application/papermill.record/"
    return nbformat.v4.new_output(
        "display_data", data={prefix + "text/plain": repr(value)},
        metadata={"scrapbook": {"name": name, "mime_prefix": prefix}},
    )


def _notebook(path: Path, glued: dict):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells.append(nbformat.v4.new_markdown_cell(f"# {path.stem}\n\nText."))
    cell = nbformat.v4.new_code_cell("glue(...)", execution_count=1)
    cell.outputs = [_glue_output(k, v) for k, v in glued.items()]
    nb.cells.append(cell)
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    jupytext.write(nb, path.with_suffix(".py"), fmt="py:percent")  # the paired source


def _book(root: Path, claims=None):
    root.mkdir(parents=True, exist_ok=True)
    (root / "_toc.yml").write_text(TOC)
    (root / "intro.md").write_text("# Intro\n")
    _notebook(root / "notebooks" / "01_demo.ipynb", {"claims": claims} if claims is not None else {})
    _notebook(root / "notebooks" / "02_plain.ipynb", {"acc": 0.5})
    return root


def test_page_lists_claims_in_toc_order(tmp_path):
    other = Claim(**dict(CLAIM, id="demo.acc", low=10.5, high=12.0, measured=11.0, n_test=200,
                         section="demo-claims")).to_json()
    root = _book(tmp_path, [Claim(**CLAIM).to_json(), other])
    glued = pages.glued_claims(root)
    assert [doc for doc, _ in glued] == ["notebooks/01_demo", "notebooks/02_plain"]
    assert glued[1][1] is None  # 02 glues no claims
    found = pages.check_claims(glued)
    assert [doc for doc, _ in found] == ["notebooks/01_demo"]
    assert [c.id for c in found[0][1]] == ["demo.ratio", "demo.acc"]
    text = pages.results_page(glued, titles={"notebooks/01_demo": "A demo chapter"})
    assert text.startswith("# Results at a glance")
    first = text.split("\n")[2]  # the first line a reader sees: the four verdicts, counted
    assert first == ("{ntknb-verdict}`reproduced` **1** · {ntknb-verdict}`contradicted` **1** · "
                     "{ntknb-verdict}`inconclusive` **0** · {ntknb-verdict}`not_testable` **0**")
    assert "2 claims from 1 chapter." in text
    counts = "- {doc}`01 · A demo chapter </notebooks/01_demo>`: {ntknb-verdict}`reproduced` 1 · {ntknb-verdict}`contradicted` 1"
    assert counts + "\n" in text  # counts per chapter, zeros left out
    assert "\n## 01 · A demo chapter\n" in text and "**{cite:t}`loo2022evolution`**" in text  # by chapter, source
    assert text.index("\n## 01 · A demo chapter") > text.index(counts)  # counts first
    item = [line for line in text.splitlines() if line.startswith("- {ntknb-verdict}`contradicted`")][0]
    assert "ours 1.16 \\[1.05, 1.27\\], needs \\> 10 · MNIST 0 vs 1, 3 seeds ·" in item
    assert '<a href="../notebooks/01_demo.html#claim-demo-ratio">evidence</a>' in item  # to the claim's entry
    assert "threshold not in a register" in item


def test_page_counts_not_testable_and_prints_no_infinite_interval(tmp_path):
    from ntknb.claims import Precondition

    pre = Precondition("reached_plateau", "training reached the plateau before the decay", 0.2, "greater", 0.5)
    guarded = Claim(**dict(CLAIM, id="demo.guarded", low=None, high=None, preconditions=[pre])).to_json()
    root = _book(tmp_path, [Claim(**CLAIM).to_json(), guarded])
    text = pages.results_page(pages.glued_claims(root))
    assert "{ntknb-verdict}`not_testable` **1**" in text
    assert "`: {ntknb-verdict}`contradicted` 1 · {ntknb-verdict}`not_testable` 1\n" in text
    item = [line for line in text.splitlines() if line.startswith("- {ntknb-verdict}`not_testable`")][0]
    assert "1.16 (no interval)" in item and "inf" not in text and "∞" not in text
    assert "not met: reached\\_plateau (training reached the plateau before the decay): measured 0.2" in item


def test_registration_text():
    reg = {"file": "notebooks/claims/01_demo.yaml", "commit": "a" * 40, "date": "2026-12-07T06:00:00+00:00",
           "changes": 0, "status": "registered"}
    assert pages.registration_text(None) == "threshold not in a register"
    assert pages.registration_text(reg, "2026-12-08T00:00:00") == (
        "registered in aaaaaaa (2026-12-07); the stored run (2026-12-08) came after")
    assert "**the stored run (2026-11-27) preceded it**" in pages.registration_text(
        dict(reg, changes=2), "2026-11-27T03:07:19+00:00")
    assert ", changed 2 times since first registered" in pages.registration_text(dict(reg, changes=2), None)
    assert "not under version control" in pages.registration_text(dict(reg, status="not under version control"))
    assert "not committed yet" in pages.registration_text(dict(reg, status="not committed"))


def test_page_without_claims(tmp_path):
    root = _book(tmp_path)
    assert pages.check_claims(pages.glued_claims(root)) == []
    text = pages.results_page(pages.glued_claims(root))
    assert "No chapter records claims yet" in text and "|" not in text


def test_typed_verdict_that_does_not_follow_fails(tmp_path):
    bad = dict(Claim(**CLAIM).to_json(), verdict="reproduced")
    root = _book(tmp_path, [bad])
    with pytest.raises(ValueError, match="notebooks/01_demo: claim 0: .*does not follow"):
        pages.write_results_page(root)
    assert build(root=root) == 1  # the build stops before jupyter-book
    with pytest.raises(ValueError, match="already used"):
        pages.check_claims([("a", [Claim(**CLAIM).to_json()]), ("b", [Claim(**CLAIM).to_json()])])
    with pytest.raises(ValueError, match="must be a list"):
        pages.check_claims([("a", "text")])


def test_write_only_when_listed_and_changed(tmp_path):
    root = _book(tmp_path, [Claim(**CLAIM).to_json()])
    path = pages.write_results_page(root)
    assert path == root / "book" / "results.md" and "moves the kernel by orders" in path.read_text()
    mtime = path.stat().st_mtime_ns
    assert pages.write_results_page(root) == path and path.stat().st_mtime_ns == mtime  # unchanged
    (root / "_toc.yml").write_text(TOC.replace("      - file: book/results\n", "      - file: intro2\n"))
    assert pages.write_results_page(root) is None


def test_the_real_book_lists_the_page_and_loads_the_extension():
    assert pages.DOCNAME in toc_files(paths.REPO_ROOT)
    import yaml

    config = yaml.safe_load((paths.REPO_ROOT / "_config.yml").read_text())
    assert "ntknb.book" in config["sphinx"]["extra_extensions"]


@pytest.mark.slow
def test_page_builds_as_a_table_with_warnings_as_errors(tmp_path):
    """A small book with one claim builds with -W; the claim appears in an HTML table (~20 s)."""
    root = _book(tmp_path / "src", [Claim(**CLAIM).to_json()])
    (root / "intro.md").write_text("# Intro\n\n## References\n\n```{bibliography}\n```\n")
    shutil.copy(paths.REPO_ROOT / "_config.yml", root / "_config.yml")
    (root / "book").mkdir(exist_ok=True)
    shutil.copy(paths.REPO_ROOT / "book" / "references.bib", root / "book" / "references.bib")
    code = build(path_output=tmp_path / "out", fresh=True, root=root)
    assert code == 0
    html = (tmp_path / "out" / "_build" / "html" / "book" / "results.html").read_text()
    assert "moves the kernel by orders" in html
    assert 'class="ntknb-verdict ntknb-v-contradicted"' in html  # the {ntknb-verdict} role
    assert '<a href="../notebooks/01_demo.html#claim-demo-ratio">' in html
    assert "Loo" in html  # the citation resolved


@pytest.mark.slow
def test_chapter_summary_directive_reads_the_glued_claims(tmp_path):
    """{ntknb-claims-summary} in a chapter's Markdown renders the summary in prose of the claims
    its stored notebook glued, and a stored claims table (an old execution's output) is re-rendered
    as the compact block from the glued claims (~20 s)."""
    root = _book(tmp_path / "src", [Claim(**CLAIM).to_json()])
    ipynb = root / "notebooks" / "01_demo.ipynb"
    nb = nbformat.read(ipynb, as_version=4)
    nb.cells[1].outputs.append(nbformat.v4.new_output(
        "display_data", data={"text/html": '<table class="ntknb-claims"><tr><td>old</td></tr></table>'}))
    nb.cells.append(nbformat.v4.new_markdown_cell("## Summary\n\n```{ntknb-claims-summary}\n```\n"))
    nbformat.write(nb, ipynb)
    jupytext.write(nb, ipynb.with_suffix(".py"), fmt="py:percent")
    (root / "intro.md").write_text("# Intro\n\n## References\n\n```{bibliography}\n```\n")
    shutil.copy(paths.REPO_ROOT / "_config.yml", root / "_config.yml")
    (root / "book").mkdir(exist_ok=True)
    shutil.copy(paths.REPO_ROOT / "book" / "references.bib", root / "book" / "references.bib")
    assert build(path_output=tmp_path / "out", fresh=True, root=root) == 0
    html = (tmp_path / "out" / "_build" / "html" / "notebooks" / "01_demo.html").read_text()
    assert "this chapter tests on MNIST 0 vs 1, with 3 seeds: 1 contradicted." in html
    assert "<strong>Contradicted</strong>" in html and "Loo" in html  # the {cite:t} role resolved
    assert '<table class="ntknb-claims">' not in html and 'id="claim-demo-ratio"' in html  # re-rendered
    assert "ours <strong>1.16 [1.05, 1.27]</strong>" in html


def test_glued_claims_survive_the_notebook_text_repr():
    """myst-nb stores a glued list as IPython's text/plain repr; extract_glued reads it back."""
    from IPython.core.formatters import PlainTextFormatter

    from ntknb.book.run import glued_value

    value = [Claim(**dict(CLAIM, id=f"demo.c{i}", low=None, claim="A long sentence " * 8)).to_json()
             for i in range(30)]
    text = PlainTextFormatter()(value)
    assert "\n" in text  # pretty-printed over many lines
    assert glued_value({"text/plain": text}) == value


def test_status_page_from_the_stored_notebooks(tmp_path):
    """The execution status page reads metadata.ntknb.execution, papermill's record and the
    glued runtime; a notebook without a record says so."""
    root = _book(tmp_path, [Claim(**CLAIM).to_json()])
    (root / "_toc.yml").write_text(TOC.replace("      - file: book/results\n",
                                               "      - file: book/results\n      - file: book/status\n"))
    nb_path = root / "notebooks" / "01_demo.ipynb"
    nb = nbformat.read(nb_path, as_version=4)
    nb.metadata["papermill"] = {"duration": 12.5, "end_time": "2026-01-02T03:04:05"}
    nb.metadata["ntknb"] = {"execution": execution_record(12.5)}
    nbformat.write(nb, nb_path)
    _notebook(root / "notebooks" / "02_plain.ipynb", {"runtime_s": 250.0})
    records = dict(pages.execution_records(root))
    assert records["notebooks/01_demo"]["runtime_s"] == 12.5
    assert records["notebooks/01_demo"]["versions"]["numpy"]
    assert records["notebooks/02_plain"]["runtime_s"] == 250.0 and records["notebooks/02_plain"]["machine"] is None
    path = pages.write_status_page(root)
    text = path.read_text()
    assert path == root / "book" / "status.md" and text.startswith("# Execution status")
    assert "| {doc}`/notebooks/01_demo` | 12 s |" in text and "| {doc}`/notebooks/02_plain` | 4.2 min |" in text
    assert "not recorded" in text and "| numpy |" in text
    assert "All chapters together: 4.4 min." in text


def test_page_shows_the_runs_at_seeds_never_used_before(tmp_path):
    import json

    from ntknb.records import SEED_CHECK_SUFFIX

    other = dict(CLAIM, id="demo.acc", claim="Accuracy stays high.", direction="greater", threshold=0.5,
                 measured=0.7, low=0.6, high=0.8)
    root = _book(tmp_path, [Claim(**CLAIM).to_json(), Claim(**other).to_json()])
    brief = {"id": "demo.ratio", "verdict": "reproduced", "measured": 0.5, "low": 0.4, "high": 0.6, "n_seeds": 3}
    data = root / "notebooks" / "data"
    data.mkdir(exist_ok=True)
    import nbformat

    from ntknb.book.params import notebook_parameters

    defaults = {k: p.default for k, p in notebook_parameters(nbformat.read(root / "notebooks" / "01_demo.ipynb",
                                                                           as_version=4)).items()}
    at_defaults = {"seeds": [7, 8, 9], "parameters": dict(defaults, seed=7), "claims": [brief]}
    elsewhere = {"seeds": [20, 21], "parameters": dict(defaults, seed=20, eps=0.5, extra=1), "claims": [brief]}
    unknown = {"seeds": [30], "claims": [brief]}  # an older record without its parameters
    (data / ("01_demo" + SEED_CHECK_SUFFIX)).write_text(
        "".join(json.dumps(r) + "\n" for r in (at_defaults, elsewhere, unknown)))
    checks = pages.seed_checks(root, ["notebooks/01_demo", "notebooks/02_plain"])
    assert list(checks) == ["notebooks/01_demo"] and [r["seeds"] for r in checks["notebooks/01_demo"]] == [[7, 8, 9]]
    others = pages.seed_checks(root, ["notebooks/01_demo", "notebooks/02_plain"], at_defaults=False)
    assert [(r["seeds"], r["mismatch"]) for r in others["notebooks/01_demo"]] == [
        ([20, 21], ["eps", "extra"]), ([30], ["parameters not recorded"])]
    text = pages.results_page(pages.glued_claims(root), checks, other_seed_checks=others)
    assert "1 chapter rerun from seeds never used before: 1 verdicts compared, 0 same, 0 differs, 1 flips." in text
    assert " · seeds 7-9: 0.5 \\[0.4, 0.6\\] reproduced (flips)" in text
    assert text.count(" · seeds 7-9") == 1  # demo.acc has no record
    assert "seeds 20" not in text.replace("seeds 20-21 (`eps`, `extra`)", "")  # named once, never compared
    assert "2 earlier runs at other parameters" in text and "seeds 30-30 (`parameters not recorded`)" in text
    assert "No chapter has been rerun" in pages.results_page(pages.glued_claims(root))
