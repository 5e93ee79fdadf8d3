"""Converted notebooks read as lectures: no function or class definitions, no validator calls,
no code cell longer than 15 lines (the parameters cell aside), and one line builds the checked
parameters from the chapter's schema (ntknb.chapters)."""

import ast
from pathlib import Path

import pytest

from ntknb import chapters
from ntknb.book.params import load_notebook

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 15
VALIDATORS = {"check_int", "check_float", "check_choice", "check_bool", "check_sequence", "check_clip"}


def code_cells(notebook: str):
    nb = load_notebook(ROOT / "notebooks" / f"{notebook}.py")
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and "parameters" not in cell.get("metadata", {}).get("tags", []):
            yield i, cell.source


def problems(source: str) -> list:
    found = []
    lines = [ln for ln in source.splitlines() if ln.strip()]
    if len(lines) > MAX_LINES:
        found.append(f"{len(lines)} lines")
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            found.append(f"defines {getattr(node, 'name', 'a lambda')}")
        if isinstance(node, ast.Call):
            name = getattr(node.func, "id", getattr(node.func, "attr", ""))
            if name in VALIDATORS:
                found.append(f"calls {name}")
    return found


def test_problems_detects_what_it_should():
    assert problems("def f():\n    pass\n") == ["defines f"]
    assert problems("x = check_int('x', 1)\n") == ["calls check_int"]
    assert problems("\n".join(f"a{i} = {i}" for i in range(16))) == ["16 lines"]
    assert problems("x = 1\n") == []


@pytest.mark.parametrize("notebook", sorted(chapters.CHAPTERS))
def test_converted_notebook_is_thin(notebook):
    bad = {i: p for i, src in code_cells(notebook) if (p := problems(src))}
    assert not bad, f"{notebook}: cells {bad}"
    sources = "\n".join(src for _, src in code_cells(notebook))
    assert "Params.from_namespace(globals())" in sources
