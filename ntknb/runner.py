"""Rerun a notebook with new parameters: the logic behind ``ntknb run`` / ``ntknb params``.

A notebook's parameters are the assignments in its cell tagged ``parameters`` (papermill's
convention), e.g.::

    # %% tags=["parameters"]
    seed = 0            # PRNG seed
    n_train = 256       # training examples
    eps = 8 / 255       # L-inf radius
    dataset = "mnist"

:func:`notebook_parameters` reads them with :mod:`ast` (literals and simple arithmetic on
literals; anything else is shown as source text and accepts any value). Overrides come
from ``-p NAME VALUE`` (VALUE parsed as YAML) and ``-f FILE.yaml`` (a mapping), applied in
command-line order, later wins. Every override is checked against the defaults *before*
anything runs: an unknown name or a value of the wrong type raises :class:`RunError` with
the list of parameters and their defaults.

:func:`run_notebook` then converts a py:percent source to a temporary ``.ipynb`` with
jupytext, executes it with papermill (kernel ``python3``, working directory = the
notebook's folder, like nbval and the book), and writes into the output folder

* ``<name>.ipynb`` — the executed notebook (written even when a cell fails),
* ``metrics.json`` — every value the notebook glued (:func:`extract_glued`),
* ``parameters.yaml`` — the effective parameters (defaults plus overrides).
"""

from __future__ import annotations

import ast
import dataclasses
import datetime as _dt
import json
import math
import numbers
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "RunError",
    "Parameter",
    "RunResult",
    "REPO_ROOT",
    "resolve_notebook",
    "load_notebook",
    "notebook_parameters",
    "format_parameters",
    "parse_value",
    "coerce_value",
    "load_param_file",
    "merge_overrides",
    "extract_glued",
    "run_notebook",
]

#: The repository checkout this package lives in (``notebooks/`` is looked up there too).
REPO_ROOT = Path(__file__).resolve().parents[1]
GLUE_PREFIX = "application/papermill.record/"
PARAMETERS_TAG = "parameters"
DEFAULT_KERNEL = "python3"


class RunError(Exception):
    """A user error (bad notebook, bad parameter) or a failed run; the message is one line.

    ``exit_code`` is 2 for errors detected before execution, 1 when the notebook failed.
    """

    def __init__(self, message: str, exit_code: int = 2):
        super().__init__(" ".join(str(message).split("\n")))
        self.exit_code = exit_code


@dataclasses.dataclass(frozen=True)
class Parameter:
    """One assignment of the parameters cell."""

    name: str
    default: Any  #: the evaluated default (``None`` when it could not be evaluated)
    source: str  #: the right-hand side as written
    evaluated: bool  #: whether ``default`` could be computed from ``source``
    help: str = ""  #: the trailing ``# comment`` of the line, if any

    @property
    def type_name(self) -> str:
        if not self.evaluated:
            return "any"
        return type(self.default).__name__ if self.default is not None else "any"

    def describe(self) -> str:
        if not self.evaluated:
            return f"{self.name} = {self.source} ({self.type_name})"
        default = repr(self.default)
        try:
            ast.literal_eval(self.source)
        except (ValueError, SyntaxError, TypeError):  # an expression such as 8 / 255
            value = f"{self.default:.6g}" if isinstance(self.default, float) else default
            default = f"{self.source} = {value}"
        return f"{self.name} = {default} ({self.type_name})"


@dataclasses.dataclass
class RunResult:
    notebook: Path  #: the source notebook
    out_dir: Path
    executed: Path  #: the executed notebook
    metrics_path: Path
    metrics: dict[str, Any]
    parameters: dict[str, Any]  #: effective parameters (defaults + overrides)


# --------------------------------------------------------------------------- notebooks


def _notebook_dirs() -> list[Path]:
    dirs = [Path.cwd() / "notebooks", REPO_ROOT / "notebooks"]
    out = []
    for d in dirs:
        if d not in out:
            out.append(d)
    return out


def available_notebooks() -> list[str]:
    names: set[str] = set()
    for d in _notebook_dirs():
        if d.is_dir():
            names.update(p.stem for p in d.iterdir() if p.suffix in (".py", ".ipynb"))
    return sorted(names)


def resolve_notebook(spec: str | os.PathLike) -> Path:
    """The notebook file for ``spec``: a ``.py`` / ``.ipynb`` path, or a name such as
    ``00_ntk_basics`` looked up in ``./notebooks`` then in the repository's ``notebooks/``
    (the py:percent source is preferred over the paired ``.ipynb``)."""
    text = os.fspath(spec)
    path = Path(text).expanduser()
    if path.suffix in (".py", ".ipynb"):
        if not path.is_file():
            raise RunError(f"notebook file not found: {text}")
        return path.resolve()
    if path.suffix:
        raise RunError(f"notebook must be a name, a .py or an .ipynb file, got {text!r}")
    if path.parent != Path("."):  # e.g. notebooks/00_ntk_basics
        for suffix in (".py", ".ipynb"):
            cand = path.with_suffix(suffix)
            if cand.is_file():
                return cand.resolve()
    for d in _notebook_dirs():
        for suffix in (".py", ".ipynb"):
            cand = d / (path.name + suffix)
            if cand.is_file():
                return cand.resolve()
    known = available_notebooks()
    raise RunError(
        f"no notebook named {text!r}; available: {', '.join(known) if known else '(none)'}"
    )


def load_notebook(path: str | os.PathLike, kernel_name: str = DEFAULT_KERNEL):
    """Read a ``.ipynb`` or py:percent ``.py`` notebook (jupytext) as an nbformat v4 node.

    A ``.py`` source gets the kernelspec ``kernel_name`` (its header may name a kernel
    that only exists on its author's machine).
    """
    import jupytext

    path = Path(path)
    try:
        if path.suffix == ".py":
            nb = jupytext.read(path, fmt="py:percent")
            nb.metadata["kernelspec"] = {
                "name": kernel_name,
                "display_name": "Python 3",
                "language": "python",
            }
            nb.metadata.setdefault("language_info", {"name": "python"})
        else:
            nb = jupytext.read(path)
    except Exception as exc:  # noqa: BLE001 - report any parse failure in one line
        raise RunError(f"cannot read notebook {path}: {type(exc).__name__}: {exc}") from exc
    return nb


# -------------------------------------------------------------------------- parameters

_BINOPS = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
    ast.FloorDiv: lambda a, b: a // b,
    ast.Mod: lambda a, b: a % b,
    ast.Pow: lambda a, b: a**b,
}


def _safe_eval(node: ast.AST) -> Any:
    """Literals, containers of literals and +-*/ // % ** on numbers; else ValueError."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
        items = [_safe_eval(e) for e in node.elts]
        return {ast.List: list, ast.Tuple: tuple, ast.Set: set}[type(node)](items)
    if isinstance(node, ast.Dict):
        return {_safe_eval(k): _safe_eval(v) for k, v in zip(node.keys, node.values)}
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        v = _safe_eval(node.operand)
        if isinstance(v, numbers.Number) and not isinstance(v, bool):
            return -v if isinstance(node.op, ast.USub) else +v
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        a, b = _safe_eval(node.left), _safe_eval(node.right)
        if all(isinstance(v, numbers.Number) and not isinstance(v, bool) for v in (a, b)):
            if isinstance(node.op, ast.Pow) and abs(b) > 64:
                raise ValueError("exponent too large")
            return _BINOPS[type(node.op)](a, b)
    raise ValueError(f"not a literal: {ast.dump(node)}")


def _parameters_cell(nb):
    for cell in nb.cells:
        if cell.cell_type == "code" and PARAMETERS_TAG in cell.get("metadata", {}).get("tags", []):
            return cell
    return None


def notebook_parameters(nb) -> dict[str, Parameter]:
    """The parameters (name → :class:`Parameter`) of the notebook's ``parameters`` cell,
    in order; empty when it has none."""
    cell = _parameters_cell(nb)
    if cell is None:
        return {}
    source = cell.source if isinstance(cell.source, str) else "".join(cell.source)
    # IPython magics would not parse: blank them out.
    lines = source.splitlines()
    clean = "\n".join("" if ln.lstrip().startswith(("%", "!")) else ln for ln in lines)
    try:
        tree = ast.parse(clean)
    except SyntaxError as exc:
        raise RunError(f"cannot parse the parameters cell: {exc}") from exc
    params: dict[str, Parameter] = {}
    for stmt in tree.body:
        if isinstance(stmt, ast.Assign):
            targets = [t for t in stmt.targets if isinstance(t, ast.Name)]
            if len(targets) != len(stmt.targets):
                continue
            value_node = stmt.value
        elif isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and stmt.value:
            targets = [stmt.target]
            value_node = stmt.value
        else:
            continue
        rhs = ast.get_source_segment(clean, value_node) or ""
        try:
            default, evaluated = _safe_eval(value_node), True
        except (ValueError, TypeError, ZeroDivisionError, OverflowError):
            default, evaluated = None, False
        line = lines[stmt.end_lineno - 1] if stmt.end_lineno else ""
        help_text = ""
        tail = line[stmt.end_col_offset:] if stmt.end_col_offset is not None else ""
        if "#" in tail:
            help_text = tail.split("#", 1)[1].strip()
        for target in targets:
            params[target.id] = Parameter(target.id, default, rhs, evaluated, help_text)
    return params


def format_parameters(params: Mapping[str, Parameter], multiline: bool = False) -> str:
    """``name = default (type)`` for every parameter, joined by ``; `` (or newlines)."""
    if not params:
        return "(no parameters cell)"
    if not multiline:
        return "; ".join(p.describe() for p in params.values())
    width = max(len(p.describe()) for p in params.values())
    return "\n".join(
        (p.describe().ljust(width) + f"  # {p.help}") if p.help else p.describe()
        for p in params.values()
    )


def parse_value(text: str) -> Any:
    """A ``-p`` value: parsed as YAML (``3`` → int, ``0.5`` / ``1e-3`` → float,
    ``true`` → bool, ``[1, 2]`` → list, anything else → the string)."""
    import yaml

    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    if isinstance(value, str) and not text.strip().startswith(("'", '"')):  # '3' stays a str
        value = _number_or_self(value)
    return value


def _number_or_self(text: str) -> Any:
    """``"1e-3"`` → ``0.001`` (PyYAML's YAML 1.1 floats need a dot); other strings as is."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        f = float(text)
    except ValueError:
        return text
    return f if text.strip().lower() not in ("nan", "inf", "-inf", "+inf", "infinity") else text


def coerce_value(param: Parameter, value: Any, raw: str | None = None) -> Any:
    """``value`` checked against (and normalised to) the type of ``param``'s default.

    bool ← bool; int ← int; float ← int or float; str ← str (a ``-p`` value is taken
    verbatim for a str default, so ``-p tag 2024`` gives ``"2024"``); list / tuple ←
    list or tuple; dict ← mapping. A default of ``None`` or one that could not be
    evaluated accepts anything. Raises ValueError on a mismatch.
    """
    if not param.evaluated or param.default is None:
        return value
    default = param.default
    want = type(default).__name__
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
    elif isinstance(default, numbers.Integral):
        if isinstance(value, numbers.Integral) and not isinstance(value, bool):
            return int(value)
    elif isinstance(default, numbers.Real):
        if isinstance(value, str):
            value = _number_or_self(value)
        if isinstance(value, numbers.Real) and not isinstance(value, bool):
            return float(value)
    elif isinstance(default, str):
        if isinstance(value, str):
            return value
        if raw is not None and not isinstance(value, (list, dict)):
            return raw
    elif isinstance(default, (list, tuple)):
        if isinstance(value, (list, tuple)):
            return type(default)(value)
    elif isinstance(default, dict):
        if isinstance(value, Mapping):
            return dict(value)
    else:  # complex, set, ...: exact type
        if type(value) is type(default):
            return value
    raise ValueError(f"expects {want} like its default {default!r}, got {type(value).__name__} {value!r}")


def load_param_file(path: str | os.PathLike) -> dict[str, Any]:
    """A ``-f`` file: a YAML mapping of parameter names to values."""
    import yaml

    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise RunError(f"cannot read parameter file {path}: {exc.strerror or exc}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RunError(f"parameter file {path} is not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict) or not all(isinstance(k, str) for k in data):
        raise RunError(f"parameter file {path} must hold a mapping of parameter names to values")
    return data


Override = tuple  # ("file", path) or ("param", name, text)


def merge_overrides(
    params: Mapping[str, Parameter], overrides: Iterable[Override], notebook: str = "notebook"
) -> dict[str, Any]:
    """Apply ``-f``/``-p`` overrides in order (later wins) after checking each one.

    Returns only the overridden names (what papermill injects). Raises :class:`RunError`
    (listing the parameters and their defaults) on an unknown name or a wrong type.
    """
    listing = f"parameters of {notebook}: {format_parameters(params)}"
    result: dict[str, Any] = {}

    def put(name: str, value: Any, raw: str | None, origin: str) -> None:
        if name not in params:
            raise RunError(f"unknown parameter {name!r} ({origin}); {listing}")
        try:
            result[name] = coerce_value(params[name], value, raw)
        except ValueError as exc:
            raise RunError(f"bad value for parameter {name!r} ({origin}): {exc}; {listing}") from exc

    for ov in overrides:
        if ov[0] == "file":
            for name, value in load_param_file(ov[1]).items():
                put(name, value, None, f"from {ov[1]}")
        elif ov[0] == "param":
            _, name, text = ov
            put(name, parse_value(text), text, "-p")
        else:  # pragma: no cover - programming error
            raise ValueError(f"unknown override kind {ov[0]!r}")
    return result


# ------------------------------------------------------------------------------ glue


def _literal(text: str) -> Any:
    """A Python literal from a text/plain repr (``nan`` / ``inf`` allowed); else raise."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        pass
    tree = ast.parse(text.strip(), mode="eval")
    allowed = (ast.Expression, ast.Constant, ast.List, ast.Tuple, ast.Dict, ast.UnaryOp,
               ast.USub, ast.UAdd, ast.Name, ast.Load)
    for node in ast.walk(tree):
        if not isinstance(node, allowed) or (isinstance(node, ast.Name) and node.id not in ("nan", "inf")):
            raise ValueError("not a literal")
    return eval(compile(tree, "<glue>", "eval"), {"__builtins__": {}}, {"nan": math.nan, "inf": math.inf})


def _glued_value(data: Mapping[str, Any]) -> Any:
    text = data.get("text/plain")
    if isinstance(text, list):
        text = "".join(text)
    if text is not None:
        try:
            return _literal(text)
        except (ValueError, SyntaxError, RecursionError):
            pass
    md = data.get("text/markdown")
    if md is not None:
        return "".join(md) if isinstance(md, list) else md
    if text is not None:
        return text
    return "<" + ", ".join(sorted(data)) + ">"


def extract_glued(nb) -> dict[str, Any]:
    """Every value glued in ``nb`` (myst-nb ``glue`` / :func:`ntknb.report.glue`):
    outputs whose metadata holds ``scrapbook.name``. Numbers, strings, lists and dicts
    come back as Python values (from the stored ``text/plain`` literal), Markdown as its
    text, figures and other rich outputs as ``"<mime types>"``. Later glues of the same
    name win."""
    out: dict[str, Any] = {}
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        for output in cell.get("outputs", []):
            meta = output.get("metadata", {}) or {}
            scrap = meta.get("scrapbook")
            if not isinstance(scrap, Mapping) or "name" not in scrap:
                continue
            prefix = scrap.get("mime_prefix", "")
            data = {
                (k[len(prefix):] if prefix and k.startswith(prefix) else k): v
                for k, v in (output.get("data", {}) or {}).items()
            }
            out[scrap["name"]] = _glued_value(data)
    return out


# ------------------------------------------------------------------------------- run


def _default_out_dir(stem: str) -> Path:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = Path("runs") / f"{stem}-{stamp}"
    out, i = base, 1
    while out.exists():
        out = base.with_name(f"{base.name}-{i}")
        i += 1
    return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (set, frozenset, complex)):
        return repr(value)
    return value


def prepare(
    notebook: str | os.PathLike, overrides: Sequence[Override] = (), kernel_name: str = DEFAULT_KERNEL
):
    """Resolve, read and validate: (path, nb, parameters, injected overrides). No execution."""
    path = resolve_notebook(notebook)
    nb = load_notebook(path, kernel_name)
    params = notebook_parameters(nb)
    if overrides and not params:
        raise RunError(f"{path.name} has no cell tagged {PARAMETERS_TAG!r}; it takes no parameters")
    injected = merge_overrides(params, overrides, notebook=path.stem)
    return path, nb, params, injected


def run_notebook(
    notebook: str | os.PathLike,
    overrides: Sequence[Override] = (),
    out_dir: str | os.PathLike | None = None,
    kernel_name: str = DEFAULT_KERNEL,
    progress_bar: bool = False,
    log_output: bool = False,
    cell_timeout: int | None = None,
) -> RunResult:
    """Validate the overrides, execute the notebook with papermill, write the outputs.

    Raises :class:`RunError` (exit code 2) before execution for bad input, and
    (exit code 1) when a cell fails; the executed notebook is written in both cases
    where execution started.
    """
    path, nb, params, injected = prepare(notebook, overrides, kernel_name)
    import nbformat
    import papermill
    from papermill.exceptions import PapermillExecutionError

    out = Path(out_dir) if out_dir is not None else _default_out_dir(path.stem)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunError(f"cannot create output folder {out}: {exc.strerror or exc}") from exc
    executed = out / f"{path.stem}.ipynb"
    effective = {name: p.default if p.evaluated else p.source for name, p in params.items()}
    effective.update(injected)

    with tempfile.TemporaryDirectory(prefix="ntknb-run-") as tmp:
        source = Path(tmp) / f"{path.stem}.ipynb"
        nbformat.write(nb, source)
        try:
            papermill.execute_notebook(
                str(source),
                str(executed),
                parameters=injected,
                kernel_name=kernel_name,
                cwd=str(path.parent),
                progress_bar=progress_bar,
                log_output=log_output,
                execution_timeout=cell_timeout,
                # ipykernel logs a TCP-encryption warning at start and a spurious
                # "KeyboardInterrupt caught" at shutdown; cell errors still surface.
                extra_arguments=["--IPKernelApp.log_level=CRITICAL"],
            )
        except PapermillExecutionError as exc:
            evalue = str(exc.evalue).strip().splitlines()
            raise RunError(
                f"{path.name} failed in cell {exc.exec_count}: {exc.ename}: "
                f"{evalue[0] if evalue else ''} (executed notebook: {executed})",
                exit_code=1,
            ) from exc
        except Exception as exc:  # noqa: BLE001 - kernel missing, dead kernel, ...
            raise RunError(f"could not execute {path.name}: {type(exc).__name__}: {exc}", exit_code=1) from exc

    metrics = extract_glued(nbformat.read(executed, as_version=4))
    metrics_path = out / "metrics.json"
    tmp_path = metrics_path.with_suffix(".json.tmp")
    tmp_path.write_text(json.dumps(_jsonable(metrics), indent=2, sort_keys=False) + "\n")
    os.replace(tmp_path, metrics_path)

    import yaml

    (out / "parameters.yaml").write_text(
        yaml.safe_dump(_jsonable(effective), sort_keys=False, default_flow_style=None)
    )
    return RunResult(path, out, executed, metrics_path, metrics, effective)
