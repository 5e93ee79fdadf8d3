"""The package's structure: imports go one way (library -> chapters -> the tooling wing ``ntknb.book``),
no import cycle anywhere in ``ntknb``, nothing outside ``ntknb/book/`` imports the wing, the wing's
``__all__`` lists exactly its public names, no module of the package, notebook or script reaches into another
module's private names (tests and benchmarks may); every
chapter schema matches its notebook's parameters cell name for name, every preset passes the schema's
full validation, and every chapter has its class preset ``notebooks/NAME.quick.yaml``."""

import ast
from pathlib import Path

import pytest

from ntknb import chapters
from ntknb.book.params import RunError, load_notebook, notebook_parameters, prepare

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "ntknb"
#: The tooling wing above the chapters (parameters, runs, sync, build, generated pages, HTML checks, GPU runbook,
#: the command): its modules may import a chapter (through ntknb.chapters).
WING = "ntknb.book"


def is_tooling(module: str) -> bool:
    """Whether ``module`` is above the chapters: the wing ``ntknb.book`` and its modules, or the chapter registry
    ``ntknb.chapters`` (which imports each chapter by name)."""
    return module == "ntknb.chapters" or module == WING or module.startswith(WING + ".")


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
        if mod.startswith("ntknb.chapters.") or is_tooling(mod):
            continue
        bad = sorted(d for d in deps if d.startswith("ntknb.chapters") or is_tooling(d))
        assert not bad, f"library module {mod} imports {bad}"
    for mod, deps in graph.items():
        if mod.startswith("ntknb.chapters."):  # a chapter package's modules import each other, no other chapter
            bad = sorted(d for d in deps
                         if is_tooling(d) or (d.startswith("ntknb.chapters.") and _chapter(d) != _chapter(mod)))
            assert not bad, f"chapter {mod} imports {bad}"


def test_import_graph_sees_function_level_imports(tmp_path):
    graph = import_graph()
    assert "ntknb.chapters" in graph["ntknb.book.params"]  # imported inside check_schema
    assert "ntknb.chapters.ch06_overfitting.variants" in graph["ntknb.chapters.ch06_overfitting.runs"]
    assert _chapter("ntknb.chapters.ch06_overfitting.runs") == _chapter("ntknb.chapters.ch06_overfitting")
    assert _chapter("ntknb.chapters.ch05_bn_buffers") != _chapter("ntknb.chapters.ch06_overfitting")


def test_nothing_outside_the_wing_imports_it():
    graph = import_graph()
    for mod, deps in graph.items():
        if mod != WING and not mod.startswith(WING + "."):
            bad = sorted(d for d in deps if d == WING or d.startswith(WING + "."))
            assert not bad, f"{mod} imports the tooling wing: {bad}"


#: What only a tool needs: running notebooks, reading and writing them, building and checking the book, a CLI.
TOOLING_LIBRARIES = ("papermill", "jupytext", "nbformat", "nbclient", "jupyter_client", "sphinx", "docutils",
                     "myst_nb.ext", "bs4", "argparse")


def _imported(path: Path) -> set:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level:
            names.add(node.module or "")
    return names


def test_the_top_level_holds_only_library_and_evidence_modules():
    """Every module outside ``ntknb/book/`` (the library, the evidence modules, the chapters) is free of the
    tools' libraries; the tools live in the wing."""
    for path in sorted(PKG.rglob("*.py")):
        if path.is_relative_to(PKG / "book"):
            continue
        bad = sorted(n for n in _imported(path) if n.split(".")[0] in TOOLING_LIBRARIES or n in TOOLING_LIBRARIES)
        assert not bad, f"{path.relative_to(ROOT)} imports the tools' {bad}: it belongs in ntknb/book/"
    assert (PKG / "book" / "__init__.py").is_file() and not list(PKG.glob("book*.py"))


def _wing_modules() -> list[Path]:
    return sorted((PKG / "book").glob("*.py")) + [PKG / "paths.py", PKG / "records.py"]


def _public_definitions(tree: ast.Module) -> set:
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return {n for n in names if not n.startswith("_")}


@pytest.mark.parametrize("path", _wing_modules(), ids=lambda p: p.name)
def test_all_lists_exactly_the_public_names(path):
    """``__all__`` of the wing's modules (and ``ntknb.paths``, ``ntknb.records``) is true: every name it lists exists, and every
    public name the module defines is in it (``__main__`` defines none)."""
    import importlib

    if path.name == "__main__.py":
        assert not _public_definitions(ast.parse(path.read_text()))
        return
    module = importlib.import_module(_module_name(path))
    listed = list(module.__all__)
    assert len(listed) == len(set(listed)), f"{path.name}: a name listed twice"
    assert not [n for n in listed if not hasattr(module, n)], f"{path.name}: __all__ names what it lacks"
    defined = _public_definitions(ast.parse(path.read_text()))
    if path.name != "__init__.py":
        assert sorted(defined - set(listed)) == [], f"{path.name}: public names missing from __all__"


def chapter_names_called(notebook: Path) -> dict[str, set]:
    """``{chapter module: names}``: every ``alias.NAME`` the notebook's code takes from a module of
    ``ntknb.chapters`` it imports (``from ntknb.chapters import ch04_kernel_dynamics as ch``)."""
    tree = ast.parse(notebook.read_text())
    aliases = {a.asname or a.name: f"{node.module}.{a.name}" for node in ast.walk(tree)
               if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("ntknb.chapters")
               for a in node.names}
    called: dict[str, set] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases:
            called.setdefault(aliases[node.value.id], set()).add(node.attr)
    return called


@pytest.mark.parametrize("name", chapters.CHAPTERS)
def test_chapter_all_holds_what_its_notebook_calls(name):
    """A chapter module's ``__all__`` is its public face: every name its notebook calls is listed, and
    every listed name exists, once."""
    import importlib

    called = chapter_names_called(ROOT / "notebooks" / f"{name}.py")
    assert called, f"{name}: the notebook imports no chapter module"
    for module_name, names in called.items():
        module = importlib.import_module(module_name)
        listed = list(module.__all__)
        assert len(listed) == len(set(listed)), f"{module_name}: a name listed twice"
        assert not [n for n in listed if not hasattr(module, n)], f"{module_name}: __all__ names what it lacks"
        assert sorted(names - set(listed)) == [], f"{module_name}: the notebook calls names missing from __all__"


def test_chapter_all_check_can_fail(tmp_path):
    """The check above sees a name the notebook takes from its chapter module."""
    nb = tmp_path / "nb.py"
    nb.write_text("from ntknb.chapters import ch04_kernel_dynamics as ch\nch.not_listed(ch.Params)\n")
    assert chapter_names_called(nb) == {"ntknb.chapters.ch04_kernel_dynamics": {"not_listed", "Params"}}


def private_reach_ins(path: Path) -> list[str]:
    """``module._name`` and ``from module import _name`` of another ntknb module in ``path``'s code."""
    tree = ast.parse(path.read_text())
    aliases, found = {}, []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("ntknb"):
                    aliases[a.asname or a.name] = a.name
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("ntknb"):
            for a in node.names:
                if a.name.startswith("_") and not a.name.startswith("__"):
                    found.append(f"from {node.module} import {a.name}")
                else:
                    aliases[a.asname or a.name] = f"{node.module}.{a.name}"
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
            value = node.value
            dotted = []
            while isinstance(value, ast.Attribute):
                dotted.append(value.attr)
                value = value.value
            if isinstance(value, ast.Name) and value.id in aliases:
                found.append(".".join([value.id, *reversed(dotted), node.attr]))
    return found


def test_private_reach_ins_are_found(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("from ntknb import attacks\nfrom ntknb.book.params import _short\nattacks._pgd_impl(1)\n")
    assert private_reach_ins(probe) == ["from ntknb.book.params import _short", "attacks._pgd_impl"]


#: Private modules of the package itself, which its own modules may import (not their private names).
PACKAGE_PRIVATE_MODULES = ("from ntknb import _compat",)


def _code_that_must_not_reach_in() -> list[Path]:
    """Every module of the package (library, chapters, wing), the notebooks and the scripts. Tests and
    benchmarks may reach into a module's private names: they check and time its internals (e.g. the
    per-step update that the compiled epoch must equal)."""
    return (sorted(PKG.rglob("*.py")) + sorted((ROOT / "notebooks").glob("*.py"))
            + sorted((ROOT / "scripts").rglob("*.py")))


@pytest.mark.parametrize("path", _code_that_must_not_reach_in(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_reaches_into_another_modules_private_names(path):
    """What one module uses of another is public (in the other's interface, documented there); a private
    name used across modules is a missing public helper."""
    found = private_reach_ins(path)
    if path.is_relative_to(PKG):
        found = [f for f in found if f not in PACKAGE_PRIVATE_MODULES]
    assert found == [], f"{path.relative_to(ROOT)} reaches into private names {found}: make them public helpers"


@pytest.mark.parametrize("notebook", sorted(chapters.CHAPTERS))
def test_schema_matches_the_parameters_cell_name_for_name(notebook):
    params = notebook_parameters(load_notebook(ROOT / "notebooks" / f"{notebook}.py"))
    assert chapters.schema_for(notebook).names() == list(params)


@pytest.mark.parametrize("notebook", sorted(chapters.CHAPTERS))
def test_defaults_and_every_preset_pass_full_validation(notebook):
    presets = sorted((ROOT / "notebooks").glob(f"{notebook}.*.yaml"))
    prepare(ROOT / "notebooks" / f"{notebook}.py")  # the defaults
    for preset in presets:
        prepare(ROOT / "notebooks" / f"{notebook}.py", [("file", str(preset))])


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
    _, _, params, injected = prepare(ROOT / "notebooks" / f"{notebook}.py", [("file", str(preset))])
    assert injected and set(injected) <= set(params)


def test_run_refuses_an_out_of_range_value_naming_it():
    with pytest.raises(RunError, match=r"'eps' must be a number in \(0.0, 1.0\]") as info:
        prepare(ROOT / "notebooks" / "06_catastrophic_overfitting.py", [("param", "eps", "3")])
    assert info.value.exit_code == 2


#: Library functions longer than :data:`MAX_FUNCTION_LINES` lines of code, each with its reason written beside it.
LONG_FUNCTIONS = {"ntknb/evaluation.py": {"robust_evaluation"}, "ntknb/kip.py": {"learn_support"},
                  "ntknb/robust_kernels.py": {"adversarial_train_kernel"}, "ntknb/transfer.py": {"evaluate_transfer"}}
#: The longest a library function may be, counted without its docstring (which carries shapes and equations).
MAX_FUNCTION_LINES = 80


def long_functions(path: Path) -> dict:
    """``{name: lines of code}`` of the functions in ``path`` longer than :data:`MAX_FUNCTION_LINES`, docstrings
    not counted (nested functions count in their parent and on their own)."""
    found = {}
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            lines = node.end_lineno - node.lineno + 1
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                lines -= first.end_lineno - first.lineno + 1
            if lines > MAX_FUNCTION_LINES:
                found[node.name] = lines
    return found


def test_long_functions_are_found(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    \"\"\"doc\n\n    more\"\"\"\n" + "    x = 1\n" * 79 + "\n\ndef g():\n" + "    x = 1\n" * 81)
    assert long_functions(probe) == {"g": 82}


@pytest.mark.parametrize("path", sorted(PKG.glob("*.py")), ids=lambda p: p.name)
def test_library_functions_are_short_or_say_why(path):
    """No library function (chapters and the wing aside) over about 80 lines of code, except those of
    :data:`LONG_FUNCTIONS`, each with a comment beside it saying why it is one piece."""
    rel = str(path.relative_to(ROOT))
    allowed = LONG_FUNCTIONS.get(rel, set())
    found = long_functions(path)
    assert sorted(set(found) - allowed) == [], f"{rel}: split {found} or list it here with its reason beside it"
    source = path.read_text()
    for name in allowed:
        assert name in found, f"{rel}: {name} is short now; drop it from LONG_FUNCTIONS"
        before = source[:source.index(f"def {name}(")].rstrip().splitlines()[-1]
        assert before.startswith("# "), f"{rel}: {name} needs its reason in a comment beside it"


def test_api_page_documents_every_module():
    """``book/api.md`` shows every public module of the package: the library's, the wing's and each
    chapter's (an ``automodule`` directive, or for the chapters their summary section)."""
    text = (ROOT / "book" / "api.md").read_text()
    library = [f"ntknb.{p.stem}" for p in PKG.glob("*.py") if not p.stem.startswith("_")]
    wing = [f"ntknb.book.{p.stem}" for p in (PKG / "book").glob("*.py") if not p.stem.startswith("_")]
    chapter_modules = [f"ntknb.chapters.{name}" for name in sorted(
        {p.stem for p in (PKG / "chapters").glob("ch*.py")} | {p.name for p in (PKG / "chapters").glob("ch*/")})]
    missing = [m for m in library + wing + chapter_modules if f"`{m}`" not in text]
    assert missing == [], f"book/api.md lacks {missing}"


def test_mean_and_interval_written_in_one_place():
    """"mean [low, high]" is written by :meth:`ntknb.stats.Interval.text` alone: no other module of the
    package formats an estimate followed by its interval's ends."""
    import re

    pattern = re.compile(r"\{[^{}]*\.estimate[^{}]*\}\s*\[\{[^{}]*\.low")
    found = [str(p.relative_to(ROOT)) for p in PKG.rglob("*.py") if p.name != "stats.py" and pattern.search(p.read_text())]
    assert found == [], f"format intervals with Interval.text: {found}"
    assert pattern.search('f"{iv.estimate:.3f} [{iv.low:.3f}, {iv.high:.3f}]"')  # the check sees the copy
