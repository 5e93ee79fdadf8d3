"""The package's structure: imports go one way (library -> chapters -> runner/CLI/book) and
no import cycle anywhere in ``ntknb``; every chapter schema matches its notebook's parameters
cell name for name, every preset passes the schema's full validation, and every chapter has its class
preset ``notebooks/NAME.quick.yaml``."""

import ast
from pathlib import Path

import pytest

from ntknb import chapters, runner

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "ntknb"
#: Modules above the chapters (runner, CLI, book build and its results page, the GPU runbook): they may import a
#: chapter (through ntknb.chapters).
TOOLING = {"ntknb.runner", "ntknb.cli", "ntknb.book", "ntknb.results", "ntknb.gpu", "ntknb.chapters"}


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def import_graph() -> dict:
    """``{module: {ntknb modules it imports anywhere in its code (function bodies too)}}``."""
    modules = {_module_name(p): p for p in PKG.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        deps = set()
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text())):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
                targets = [base] + [f"{base}.{a.name}" for a in node.names]
            for t in targets:
                if t in modules and t != name:
                    deps.add(t)
        graph[name] = deps - {"ntknb"}  # the package __init__ (compat shim) imports no module of ours
    return graph


def find_cycle(graph: dict):
    state, stack = {}, []

    def visit(n):
        state[n] = 1
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state:
                found = visit(m)
                if found:
                    return found
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state:
            found = visit(n)
            if found:
                return found
    return None


def test_find_cycle_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_no_import_cycle_in_ntknb():
    cycle = find_cycle(import_graph())
    assert cycle is None, " -> ".join(cycle)


def _chapter(module: str) -> str:
    """The chapter a module belongs to: ``ntknb.chapters.chNN_x`` of a chapter module or of a chapter package's
    submodule (``ntknb.chapters.ch06_overfitting.runs`` -> ``ntknb.chapters.ch06_overfitting``)."""
    return ".".join(module.split(".")[:3])


def test_library_imports_no_chapter_and_chapters_no_tooling():
    graph = import_graph()
    for mod, deps in graph.items():
        if mod.startswith("ntknb.chapters.") or mod in TOOLING:
            continue
        bad = sorted(d for d in deps if d.startswith("ntknb.chapters") or d in TOOLING)
        assert not bad, f"library module {mod} imports {bad}"
    for mod, deps in graph.items():
        if mod.startswith("ntknb.chapters."):  # a chapter package's modules import each other, no other chapter
            bad = sorted(d for d in deps
                         if d in TOOLING or (d.startswith("ntknb.chapters.") and _chapter(d) != _chapter(mod)))
            assert not bad, f"chapter {mod} imports {bad}"


def test_import_graph_sees_function_level_imports(tmp_path):
    graph = import_graph()
    assert "ntknb.chapters" in graph["ntknb.runner"]  # imported inside check_schema
    assert "ntknb.chapters.ch06_overfitting.variants" in graph["ntknb.chapters.ch06_overfitting.runs"]
    assert _chapter("ntknb.chapters.ch06_overfitting.runs") == _chapter("ntknb.chapters.ch06_overfitting")
    assert _chapter("ntknb.chapters.ch05_bn_buffers") != _chapter("ntknb.chapters.ch06_overfitting")


@pytest.mark.parametrize("notebook", sorted(chapters.CHAPTERS))
def test_schema_matches_the_parameters_cell_name_for_name(notebook):
    params = runner.notebook_parameters(runner.load_notebook(ROOT / "notebooks" / f"{notebook}.py"))
    assert chapters.schema_for(notebook).names() == list(params)


@pytest.mark.parametrize("notebook", sorted(chapters.CHAPTERS))
def test_defaults_and_every_preset_pass_full_validation(notebook):
    presets = sorted((ROOT / "notebooks").glob(f"{notebook}.*.yaml"))
    runner.prepare(ROOT / "notebooks" / f"{notebook}.py")  # the defaults
    for preset in presets:
        runner.prepare(ROOT / "notebooks" / f"{notebook}.py", [("file", str(preset))])


#: The chapter notebooks: every ``notebooks/NN_name.py`` (a chapter without a schema counts too).
CHAPTER_NOTEBOOKS = sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9]*.py"))


def test_every_chapter_notebook_is_a_registered_chapter():
    assert CHAPTER_NOTEBOOKS and CHAPTER_NOTEBOOKS == sorted(chapters.CHAPTERS)


@pytest.mark.parametrize("notebook", CHAPTER_NOTEBOOKS)
def test_every_chapter_has_a_quick_preset_that_passes_full_validation(notebook):
    """The class preset ``notebooks/NAME.quick.yaml`` (about 5 minutes on a 2-core CPU): it exists,
    opens with a header comment naming it, and passes the checks ``ntknb run --dry-run`` makes."""
    preset = ROOT / "notebooks" / f"{notebook}.quick.yaml"
    assert preset.is_file(), f"{notebook} has no class preset notebooks/{notebook}.quick.yaml (about 5 minutes)"
    assert preset.read_text().startswith(f"# Quick (class) preset of {notebook}:"), "header comment missing"
    _, _, params, injected = runner.prepare(ROOT / "notebooks" / f"{notebook}.py", [("file", str(preset))])
    assert injected and set(injected) <= set(params)


def test_run_refuses_an_out_of_range_value_naming_it():
    with pytest.raises(runner.RunError, match=r"'eps' must be a number in \(0.0, 1.0\]") as info:
        runner.prepare(ROOT / "notebooks" / "06_catastrophic_overfitting.py", [("param", "eps", "3")])
    assert info.value.exit_code == 2
