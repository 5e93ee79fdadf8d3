"""A notebook's parameters and how overrides are read: the checks behind ``ntknb params`` and
``ntknb run`` that need no execution (pure, fast; :mod:`ntknb.book.run` executes).

A notebook's parameters are the assignments in its cell tagged ``parameters`` (papermill's
convention), e.g.::

    # %% tags=["parameters"]
    seed = 0            # PRNG seed
    n_train = 256       # training examples
    eps = 8 / 255       # L-inf radius
    dataset = "mnist"

:func:`notebook_parameters` reads them with :mod:`ast` (literals and simple arithmetic on
literals; anything else is shown as source text and accepts any value). Overrides come
from ``-p NAME VALUE`` (VALUE parsed as YAML) and ``-f FILE.yaml`` (a UTF-8 mapping), applied
in command-line order, later wins (one ``-p`` per name). YAML is read with a restricted
loader: only the JSON types (no ``!!binary`` / ``!!set`` / ... tags, no anchors or aliases,
no duplicate keys), and every value is checked recursively to be plain JSON (finite
floats, 64-bit integers, string keys; :func:`check_plain`); a ``seed`` / ``*_seed``
parameter must lie in ``[0, 2**32)``. Every override is checked against the defaults
*before* anything runs (:func:`merge_overrides`), then the effective parameters against the
chapter's schema (:func:`check_schema`): an unknown name or a value of the wrong type raises
:class:`RunError` (one line) with the list of parameters and their defaults. :func:`prepare`
does all of it for one notebook.
"""

from __future__ import annotations

import ast
import dataclasses
import math
import numbers
import os
import re
import stat
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ntknb import paths
from ntknb.validation import SEED_LIMIT  # parameters named seed / *_seed lie in [0, SEED_LIMIT)

__all__ = [
    "PARAMETERS_TAG",
    "DEFAULT_KERNEL",
    "RunError",
    "Parameter",
    "Override",
    "available_notebooks",
    "resolve_notebook",
    "load_notebook",
    "notebook_parameters",
    "format_parameters",
    "INT_RE",
    "MAX_INT",
    "MAX_DEPTH",
    "MAX_TEXT_BYTES",
    "short_repr",
    "check_plain",
    "parse_value",
    "check_seed",
    "coerce_value",
    "load_param_file",
    "read_bounded",
    "merge_overrides",
    "check_schema",
    "prepare",
]

#: The tag of the cell that holds a notebook's parameters (papermill's convention).
PARAMETERS_TAG = "parameters"
DEFAULT_KERNEL = "ntknb"  #: the kernelspec `scripts/dev setup` installs into .venv


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


# --------------------------------------------------------------------------- notebooks


def _notebook_dirs() -> list[Path]:
    dirs = [Path.cwd() / "notebooks", paths.NOTEBOOKS]
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
                "display_name": "Python 3 (ntknb)",
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


# ------------------------------------------------------------- restricted YAML loading

#: The only YAML tags a parameter value may carry: the JSON types.
_JSON_TAGS = frozenset("tag:yaml.org,2002:" + t for t in ("str", "int", "float", "bool", "null", "seq", "map"))
#: Limits of a parameter value: 64-bit integers, nesting depth, size of a file / -p text.
MAX_INT = 2**63
MAX_DEPTH = 32
MAX_TEXT_BYTES = 1 << 20


class _Refused(ValueError):
    """A parameter value or file that is refused (tags, aliases, duplicate keys, ...)."""


def short_repr(value: Any, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters (a huge integer by its number of digits), for messages."""
    text = repr(value) if not isinstance(value, int) or abs(value) < 10**30 else f"<integer of {len(str(abs(value)))} digits>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


_LOADER = None
#: YAML 1.2 core-schema numbers: a decimal integer without leading zeros (:data:`INT_RE`), a decimal float.
INT_RE = re.compile(r"^[-+]?(?:0|[1-9][0-9]*)$")
_FLOAT_TEXT = r"[-+]?(?:(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?|[0-9]+[eE][-+]?[0-9]+)"
_FLOAT_RE = re.compile(rf"^(?:{_FLOAT_TEXT}|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$")
_FLOAT_TEXT_RE = re.compile(rf"^{_FLOAT_TEXT}$")
_BOOL_RE = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
#: What YAML 1.1 (and Python's int()) would read as a number but is refused for a number parameter.
_AMBIGUOUS_NUMBER_RE = re.compile(r"^[-+]?(?:0[0-9_]+|0[xXoObB][0-9a-fA-F_]+|[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?|"
                                  r"[0-9]*_[0-9_]*(?:\.[0-9_]*)?(?:[eE][-+]?[0-9]+)?)$")


def _strict_loader():
    """A ``yaml.SafeLoader`` that builds only JSON types: no tags beyond the JSON ones
    (``!!binary``, ``!!set``, ``!!pairs``, ``!!timestamp``, ``!custom``, ... are refused), no
    anchors or aliases (no alias bombs), no duplicate mapping keys; unquoted dates stay strings."""
    global _LOADER
    if _LOADER is not None:
        return _LOADER
    import yaml

    class StrictLoader(yaml.SafeLoader):
        def compose_node(self, parent, index):
            event = self.peek_event()
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
                raise _Refused("YAML anchors and aliases (&name, *name) are not allowed in parameters "
                               "(quote a value that starts with & or *)")
            return super().compose_node(parent, index)

        def construct_object(self, node, deep=False):
            if node.tag not in _JSON_TAGS:
                raise _Refused(f"the YAML tag {node.tag.replace('tag:yaml.org,2002:', '!!')} is not allowed "
                               "(only strings, numbers, true/false, null, lists and mappings)")
            return super().construct_object(node, deep=deep)

        def construct_mapping(self, node, deep=False):
            seen = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)
                if isinstance(key, (str, int, float, bool, type(None))):
                    if key in seen:
                        raise _Refused(f"key {short_repr(key)} appears twice (give each key once)")
                    seen.add(key)
            return super().construct_mapping(node, deep=deep)

    # implicit types: only the JSON ones (no timestamps, no '<<' merge keys, no '=' values), and
    # integers / floats as in YAML 1.2's core schema: decimal only, so ``017``, ``0x10``, ``0o17``,
    # ``1_000`` and ``1:30`` (YAML 1.1 octal, hex, underscores, base 60) stay strings; a parameter
    # whose default is a number then refuses them by name (:func:`coerce_value`).
    # Booleans too: only true / false (YAML 1.2), so ``yes``, ``no``, ``on``, ``off`` stay strings.
    StrictLoader.yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers
                if tag in _JSON_TAGS and not tag.endswith((":int", ":float", ":bool"))]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    for tag, regexp, first in (("tag:yaml.org,2002:int", INT_RE, "-+0123456789"),
                               ("tag:yaml.org,2002:float", _FLOAT_RE, "-+0123456789."),
                               ("tag:yaml.org,2002:bool", _BOOL_RE, "tTfF")):
        for ch in first:
            StrictLoader.yaml_implicit_resolvers.setdefault(ch, []).append((tag, regexp))
    StrictLoader.construct_yaml_int = lambda self, node: int(self.construct_scalar(node))
    StrictLoader.add_constructor("tag:yaml.org,2002:int", StrictLoader.construct_yaml_int)
    StrictLoader.add_constructor("tag:yaml.org,2002:float",
                                 lambda self, node: float(self.construct_scalar(node).replace(".inf", "inf")
                                                          .replace(".Inf", "inf").replace(".INF", "inf")
                                                          .replace(".nan", "nan").replace(".NaN", "nan")
                                                          .replace(".NAN", "nan")))
    _LOADER = StrictLoader
    return _LOADER


def _load_yaml(text: str) -> Any:
    """``text`` loaded with the restricted loader; :class:`_Refused` for refused input,
    ``yaml.YAMLError`` for a syntax error."""
    import yaml

    if len(text.encode("utf-8", "surrogatepass")) > MAX_TEXT_BYTES:
        raise _Refused(f"more than {MAX_TEXT_BYTES} bytes")
    try:
        return yaml.load(text, Loader=_strict_loader())  # noqa: S506 - restricted SafeLoader
    except (_Refused, yaml.YAMLError):
        raise
    except RecursionError:
        raise _Refused(f"nested more than {MAX_DEPTH} levels deep") from None
    except (ValueError, OverflowError) as exc:  # e.g. an integer of more than 4300 digits
        if "digits" in str(exc):
            raise _Refused("integer too large (more than 4300 digits)") from None
        raise _Refused(f"cannot read a value ({type(exc).__name__}: {' '.join(str(exc).split())[:120]})") from None


def check_plain(value: Any, where: str = "value", depth: int = 0) -> None:
    """Raise :class:`ValueError` unless ``value`` is built from plain JSON types only:
    ``None``, ``bool``, ``int`` (|v| < 2**63), finite ``float``, ``str``, lists / tuples of
    them and mappings with string keys, nested at most :data:`MAX_DEPTH` levels."""
    if depth > MAX_DEPTH:
        raise ValueError(f"{where} is nested more than {MAX_DEPTH} levels deep")
    if value is None or isinstance(value, (bool, str)):
        return
    if isinstance(value, int):
        if abs(value) >= MAX_INT:
            raise ValueError(f"{where}: integer too large ({short_repr(value)}; the limit is |n| < 2**63)")
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{where}: {value!r} is not a finite number")
        return
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            check_plain(item, f"{where}[{i}]", depth + 1)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"{where}: mapping key {short_repr(key)} is not a string")
            check_plain(item, f"{where}[{key!r}]", depth + 1)
        return
    raise ValueError(f"{where}: a {type(value).__name__} is not allowed "
                     "(only strings, numbers, true/false, null, lists and mappings)")


def parse_value(text: str) -> Any:
    """A ``-p`` value: parsed as YAML (``3`` → int, ``0.5`` / ``1e-3`` → float,
    ``true`` → bool, ``[1, 2]`` → list, anything else → the string) with the restricted
    loader: a tag beyond the JSON types, an anchor / alias or a duplicate key raises
    :class:`ValueError`."""
    import yaml

    if "#" in text and not text.lstrip().startswith(("'", '"', "[", "{")):
        return text  # one value, no YAML comment: ``-p dataset 'cifar10 # x'`` keeps its '#'
    try:
        value = _load_yaml(text)
    except yaml.YAMLError:
        return text
    if isinstance(value, str) and not text.strip().startswith(("'", '"')):  # '3' stays a str
        value = _number_or_self(value)
    return value


def _number_or_self(text: str) -> Any:
    """``"1e-3"`` → ``0.001`` (decimal numbers only: ``017``, ``0x10``, ``1_000`` stay strings);
    other strings as is."""
    stripped = text.strip()
    if INT_RE.match(stripped):
        return int(stripped)
    if not (_FLOAT_TEXT_RE.match(stripped) or stripped.lower().lstrip("+-") in ("nan", "inf", "infinity")):
        return text
    f = float(stripped)
    if not math.isfinite(f) and text.strip().lower().lstrip("+-") not in ("nan", "inf", "infinity"):
        raise _Refused(f"{short_repr(text)} is not a finite number (too large)")
    return f if text.strip().lower() not in ("nan", "inf", "-inf", "+inf", "infinity") else text


def check_seed(name: str, value: Any) -> None:
    """A parameter named ``seed`` or ``*_seed`` must be an integer in ``[0, 2**32)``: NumPy and
    JAX seeds are 32-bit (larger seeds collide with small ones, or crash mid-run)."""
    if (name == "seed" or name.endswith("_seed")) and isinstance(value, int) and not isinstance(value, bool):
        if not 0 <= value < SEED_LIMIT:
            raise ValueError(f"a seed must be an integer with 0 <= {name} < 2**32, got {short_repr(value)}")


def _item_kind(v: Any) -> str | None:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float"
    if isinstance(v, str):
        return "str"
    return None


def _coerce_items(default: Sequence[Any], value: Sequence[Any]) -> list:
    """The items of a list override, checked against the default's items when those share
    one plain type (``[64, 128]``: integers; ``[0.5, 1]``: numbers, returned as floats)."""
    kinds = {_item_kind(v) for v in default}
    if kinds == {"int", "float"}:
        kinds = {"float"}
    if len(kinds) != 1 or None in kinds:
        return list(value)
    kind = kinds.pop()
    out = []
    for i, v in enumerate(value):
        k = _item_kind(v)
        if k != kind and not (kind == "float" and k == "int"):
            raise ValueError(f"expects a list of {kind} like its default {short_repr(default)}, item {i} is {short_repr(v)}")
        out.append(float(v) if kind == "float" else v)
    return out


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
            return type(default)(_coerce_items(default, value))
    elif isinstance(default, dict):
        if isinstance(value, Mapping):
            return dict(value)
    else:  # complex, set, ...: exact type
        if type(value) is type(default):
            return value
    hint = ""
    if isinstance(value, str) and isinstance(default, numbers.Real) and _AMBIGUOUS_NUMBER_RE.match(value.strip()):
        hint = (" (only decimal numbers are read as numbers: leading zeros, 0x / 0o / 0b prefixes, '_' and "
                "'a:b' are ambiguous; write e.g. 17 or 16)")
    raise ValueError(f"expects {want} like its default {short_repr(default)}, got {type(value).__name__} "
                     f"{short_repr(value)}{hint}")


def load_param_file(path: str | os.PathLike) -> dict[str, Any]:
    """A ``-f`` file: a YAML mapping of parameter names to values."""
    import yaml

    path = Path(path)
    try:
        raw = read_bounded(path, MAX_TEXT_BYTES, "parameter file")
    except OSError as exc:
        raise RunError(f"cannot read parameter file {path}: {exc.strerror or exc}") from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RunError(
            f"parameter file {path} is not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}); "
            "save it as UTF-8"
        ) from None
    try:
        data = _load_yaml(text)
    except _Refused as exc:
        raise RunError(f"parameter file {path} refused: {exc}") from None
    except yaml.YAMLError as exc:
        raise RunError(f"parameter file {path} is not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict) or not all(isinstance(k, str) for k in data):
        raise RunError(f"parameter file {path} must hold a mapping of parameter names to values")
    return data


def read_bounded(path: str | os.PathLike, limit: int, what: str = "file", *, follow_symlinks: bool = True) -> bytes:
    """The bytes of the regular file ``path``, at most ``limit`` of them; :class:`RunError`
    (naming ``what`` and the limit) for a device, a FIFO, a socket or a folder (checked with
    ``os.stat`` / ``S_ISREG`` before opening, so a FIFO without writer never blocks), for a
    symbolic link when ``follow_symlinks`` is false, and for a longer file (only
    ``limit + 1`` bytes are ever read, whatever ``st_size`` says). ``OSError`` for a missing or
    unreadable file."""
    path = Path(path)
    st = os.stat(path, follow_symlinks=follow_symlinks)
    if not follow_symlinks and stat.S_ISLNK(st.st_mode):
        raise RunError(f"{what} {path} is a symbolic link; give the file itself")
    if not stat.S_ISREG(st.st_mode):
        kind = ("a folder" if stat.S_ISDIR(st.st_mode) else "a FIFO" if stat.S_ISFIFO(st.st_mode)
                else "a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)
                else "a socket" if stat.S_ISSOCK(st.st_mode) else "not a regular file")
        raise RunError(f"{what} {path} is {kind}; only a regular file is read")
    if st.st_size > limit:
        raise RunError(f"{what} {path} is larger than {limit} bytes ({st.st_size})")
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | (0 if follow_symlinks else getattr(os, "O_NOFOLLOW", 0))
    fd = os.open(path, flags)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # swapped since the check
            raise RunError(f"{what} {path} is not a regular file; only a regular file is read")
        with os.fdopen(fd, "rb", closefd=False) as fh:
            raw = fh.read(limit + 1)
    finally:
        os.close(fd)
    if len(raw) > limit:
        raise RunError(f"{what} {path} is larger than {limit} bytes")
    return raw


#: One override, in command-line order: ``("file", path)`` (``-f``) or ``("param", name, text)`` (``-p``).
Override = tuple


def merge_overrides(
    params: Mapping[str, Parameter], overrides: Iterable[Override], notebook: str = "notebook"
) -> dict[str, Any]:
    """Apply ``-f``/``-p`` overrides in order (later wins) after checking each one.

    Returns only the overridden names (what papermill injects). Raises :class:`RunError`
    (listing the parameters and their defaults) on an unknown name or a wrong type.
    """
    listing = f"parameters of {notebook}: {format_parameters(params)}"
    result: dict[str, Any] = {}
    given_p: dict[str, str] = {}

    def put(name: str, value: Any, raw: str | None, origin: str) -> None:
        if name not in params:
            raise RunError(f"unknown parameter {name!r} ({origin}); {listing}")
        try:
            check_seed(name, value)
            check_plain(value, name)
            value = coerce_value(params[name], value, raw)
            check_plain(value, name)
        except ValueError as exc:
            raise RunError(f"bad value for parameter {name!r} ({origin}): {exc}; {listing}") from None
        result[name] = value

    for ov in overrides:
        if ov[0] == "file":
            for name, value in load_param_file(ov[1]).items():
                put(name, value, None, f"from {ov[1]}")
        elif ov[0] == "param":
            _, name, text = ov
            if name in given_p:
                raise RunError(
                    f"parameter {name!r} given twice with -p ({short_repr(given_p[name])} and {short_repr(text)}); "
                    "give it once"
                )
            given_p[name] = text
            try:
                value = parse_value(text)
            except ValueError as exc:
                raise RunError(f"bad value for parameter {name!r} (-p): {exc}") from None
            put(name, value, text, "-p")
        else:  # pragma: no cover - programming error
            raise ValueError(f"unknown override kind {ov[0]!r}")
    return result


# ------------------------------------------------------------------ checks before a run


def check_schema(stem: str, params: Mapping[str, Parameter], injected: Mapping[str, Any]) -> None:
    """Check the effective parameters (defaults + ``injected``) against the chapter's schema
    (:func:`ntknb.chapters.check_parameters`: ranges, allowed values, cross-parameter rules)
    before anything runs; :class:`RunError` with the chapter's message on a bad value."""
    from ntknb import chapters

    if chapters.schema_for(stem) is None:
        return
    values = {name: p.default if p.evaluated else p.source for name, p in params.items()}
    values.update(injected)
    try:
        chapters.check_parameters(stem, values)
    except ValueError as exc:
        raise RunError(f"bad parameters for {stem}: {exc}") from exc


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
    check_schema(path.stem, params, injected)
    return path, nb, params, injected
