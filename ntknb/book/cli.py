"""The ``ntknb`` command (entry point ``ntknb = "ntknb.book.cli:main"``): every tool of the book.

::

    ntknb run NOTEBOOK [-p NAME VALUE]... [-f PARAMS.yaml]... [--out DIR] [--dry-run]
    ntknb params NOTEBOOK [--json]
    ntknb book [--root DIR] build [--strict] [--all] [--path-output DIR] [--allow-warnings]
    ntknb book check-sync        # every notebooks/*.py and its .ipynb hold the same inputs
    ntknb book sync [NAME...]     # rewrite the .ipynb inputs from the .py, keeping outputs
    ntknb book execute NAME...    # sync, then execute notebooks/NAME.ipynb in place
    ntknb book lab [NAME] [JUPYTER-LAB ARGS...]  # JupyterLab on the notebooks, ntknb kernel
    ntknb book prepare-ci DIR     # the chapters with a CI preset, prepared for nbval
    ntknb book check-html [DIR]   # rendering problems of each page of a built book
    ntknb gpu smoke               # the GPU machine's smoke test
    ntknb gpu run NOTEBOOK... --out DIR --budget SECONDS [--max NAME=SECONDS]... [--archive FILE]

``python -m ntknb.book ARGS`` is ``ntknb book ARGS`` (``scripts/dev book`` runs ``build``,
``scripts/dev lab`` runs ``lab``); ``python -m ntknb.book.cli ARGS`` is ``ntknb ARGS`` where the
command is not installed (``scripts/gpu_runs``). NOTEBOOK is a name (``00_ntk_basics``), a
py:percent ``.py`` or an ``.ipynb`` path. Errors print one line ``ntknb: error: ...`` on stderr
and exit with status 2 (bad input, detected before anything runs) or 1 (the notebook failed
while running). The logic lives in :mod:`ntknb.book.params` and :mod:`ntknb.book.run` (run,
params), :mod:`ntknb.book.sync`, :mod:`ntknb.book.build` and :mod:`ntknb.book.html` (book) and
:mod:`ntknb.book.gpu` (gpu).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from ntknb import paths
from ntknb.book.build import build, lab_command
from ntknb.book.gpu import run_presets, smoke_test
from ntknb.book.html import html_problems
from ntknb.book.params import DEFAULT_KERNEL, RunError, format_parameters, prepare
from ntknb.book.run import RUN_STATUS, check_cell_timeout, check_kernel, check_out_dir, run_notebook
from ntknb.book.sync import check_sync, execute, paired_notebooks, prepare_ci, sync

__all__ = ["main", "build_parser"]


class _OneLineParser(argparse.ArgumentParser):
    def error(self, message: str):  # usage errors: one line, status 2
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())}\n")


class _Ordered(argparse.Action):
    """Collect ``-p NAME VALUE`` and ``-f FILE`` into one list, in command-line order."""

    def __call__(self, parser, namespace, values, option_string=None):
        items = list(getattr(namespace, self.dest, None) or [])
        if option_string in ("-p", "--param", "--parameter"):
            items.append(("param", values[0], values[1]))
        else:
            items.append(("file", values))
        setattr(namespace, self.dest, items)


def _add_run(sub) -> None:
    run = sub.add_parser(
        "run",
        help="execute a notebook with new parameters (papermill)",
        description=(
            "Execute NOTEBOOK with papermill after checking the overrides against its "
            "'parameters' cell. Writes DIR/<notebook>.ipynb (executed), DIR/metrics.json "
            "(every glued value) and DIR/parameters.yaml (the effective parameters)."
        ),
    )
    run.add_argument("notebook", metavar="NOTEBOOK", help="name (00_ntk_basics), .py or .ipynb path")
    run.add_argument(
        "-p", "--param", dest="overrides", nargs=2, metavar=("NAME", "VALUE"), action=_Ordered,
        help="set a parameter; VALUE is parsed as YAML (3, 0.5, 1e-3, true, '[1, 2]', text)",
    )
    run.add_argument(
        "-f", "--params-file", dest="overrides", metavar="PARAMS.yaml", action=_Ordered,
        help="a YAML mapping of parameters (e.g. notebooks/NN_name.paper.yaml); "
             "-p and -f apply in order, later wins",
    )
    run.add_argument("--out", metavar="DIR", help="output folder (default: runs/<notebook>-<timestamp>/)")
    run.add_argument("--kernel", default=None, help="Jupyter kernel name (default: ntknb, installed into .venv by scripts/dev)")
    run.add_argument("--cell-timeout", type=int, default=None, metavar="SECONDS",
                     help="fail a cell that runs longer than this many seconds, >= 1 (default: no limit)")
    run.add_argument("--log-output", action="store_true", help="stream the cells' output to the terminal")
    run.add_argument("--dry-run", action="store_true",
                     help="only check the parameters and print the ones that would be injected")

    params = sub.add_parser(
        "params", help="list a notebook's parameters and their defaults",
        description="List the assignments of NOTEBOOK's 'parameters' cell.",
    )
    params.add_argument("notebook", metavar="NOTEBOOK", help="name (00_ntk_basics), .py or .ipynb path")
    params.add_argument("--json", action="store_true", help="print the defaults as a JSON object")


def _add_book(sub) -> None:
    book = sub.add_parser("book", help="build the book, keep the paired notebooks in sync, check the HTML",
                          description="Build the book and keep the paired notebooks in sync "
                                      "(also: python -m ntknb.book ...).")
    book.add_argument("--root", default=str(paths.REPO_ROOT), metavar="DIR",
                      help="the book's folder, holding _config.yml and _toc.yml (default: %(default)s)")
    cmds = book.add_subparsers(dest="book_command", required=True, metavar="COMMAND", parser_class=_OneLineParser)
    b = cmds.add_parser("build", help="check-sync, then build the HTML book (warnings are errors)")
    b.add_argument("--strict", action="store_true",
                   help="also fail when a notebook of the toc has not been executed")
    b.add_argument("--all", dest="fresh", action="store_true", help="rebuild every page, not only changed ones")
    b.add_argument("--path-output", metavar="DIR", help="build into DIR/_build (default: the repository)")
    b.add_argument("--allow-warnings", action="store_true",
                   help="do not turn Sphinx warnings into errors (drafting only)")
    cmds.add_parser("check-sync", help="check every notebooks/*.py against its paired .ipynb")
    s = cmds.add_parser("sync", help="rewrite the .ipynb inputs from the .py sources, keeping outputs")
    s.add_argument("names", nargs="*", metavar="NAME", help="notebooks to sync (default: all)")
    e = cmds.add_parser("execute", help="sync, then execute notebooks in place at default parameters")
    e.add_argument("names", nargs="+", metavar="NAME", help="notebooks to execute (e.g. 00_ntk_basics)")
    lab = cmds.add_parser("lab", help="open the notebooks in JupyterLab with the project's kernel")
    lab.add_argument("name", nargs="?", metavar="NAME", help="a notebook to open (e.g. 00_ntk_basics)")
    ci = cmds.add_parser("prepare-ci", help="write the chapters with a CI preset (notebooks/NAME.ci.yaml) "
                         "into DIR with it injected; print every notebook CI validates")
    ci.add_argument("dest", metavar="DIR", help="folder for the prepared notebooks (created)")
    c = cmds.add_parser("check-html", help="report the rendering problems of each page of a built book")
    c.add_argument("html", nargs="?", default=None, help="the built HTML (default: ROOT/_build/html)")


def _add_gpu(sub) -> None:
    gpu = sub.add_parser("gpu", help="the GPU runbook (scripts/gpu_runs): smoke test, budgeted preset runs")
    cmds = gpu.add_subparsers(dest="gpu_command", required=True, metavar="COMMAND", parser_class=_OneLineParser)
    cmds.add_parser("smoke", help="import-and-kernel smoke test; exit 1 if it fails")
    run = cmds.add_parser("run", help="run GPU presets under a total time budget")
    run.add_argument("names", nargs="+", metavar="NOTEBOOK")
    run.add_argument("--out", required=True, metavar="DIR")
    run.add_argument("--budget", type=float, required=True, metavar="SECONDS")
    run.add_argument("--max", action="append", default=[], metavar="NAME=SECONDS",
                     help="cap one run's time (repeatable)")
    run.add_argument("--kernel", default=None)
    run.add_argument("--archive", default=None, metavar="FILE.tar.gz")


def build_parser() -> argparse.ArgumentParser:
    """The parser of the ``ntknb`` command: ``run``, ``params``, ``book ...`` and ``gpu ...``."""
    parser = _OneLineParser(
        prog="ntknb",
        description="The tools of the ntknb book: rerun a notebook with new parameters, build the book, "
                    "run the GPU presets.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_OneLineParser)
    sub.required = True
    _add_run(sub)
    _add_book(sub)
    _add_gpu(sub)
    return parser


def _cmd_params(args) -> int:
    path, nb, params, _ = prepare(args.notebook)
    if args.json:
        print(json.dumps({n: (p.default if p.evaluated else p.source) for n, p in params.items()}, indent=2))
    else:
        print(f"# parameters of {path}")
        print(format_parameters(params, multiline=True))
    return 0


def _cmd_run(args) -> int:
    overrides = args.overrides or []
    kernel = args.kernel or DEFAULT_KERNEL
    check_cell_timeout(args.cell_timeout)
    if args.dry_run:  # every check that needs no execution: parameters, schema, --out, kernel
        path, _, _, injected = prepare(args.notebook, overrides, kernel)
        if args.out is not None:
            check_out_dir(args.out, path.stem, path)
        check_kernel(kernel)
        print(json.dumps({"notebook": str(path), "parameters": injected}, indent=2))
        return 0
    result = run_notebook(
        args.notebook,
        overrides,
        out_dir=args.out,
        kernel_name=kernel,
        progress_bar=sys.stderr.isatty(),
        log_output=args.log_output,
        cell_timeout=args.cell_timeout,
    )
    print(f"executed notebook: {result.executed}")
    print(f"metrics ({len(result.metrics)} glued values): {result.metrics_path}")
    note = json.loads((result.out_dir / RUN_STATUS).read_text()).get("note")
    if note:
        print(f"note: {note}")
    return 0


def _cmd_book(args, extra: Sequence[str]) -> int:
    command = args.book_command
    if command == "lab":
        os.execv(sys.executable, lab_command(args.name, extra, root=args.root))
    if command == "check-html":
        html = args.html if args.html is not None else str(Path(args.root) / "_build" / "html")
        try:
            found = html_problems(html, root=args.root)
        except (OSError, ValueError) as exc:
            raise RunError(f"check-html: {' '.join(str(exc).split())}") from None
        for page, problems in found.items():
            print(f"{page}: {'ok' if not problems else f'{len(problems)} problem(s)'}")
            for p in problems:
                print(f"    {p}")
        sys.stdout.flush()
        return 1 if any(found.values()) else 0
    if command == "build":
        return build(strict=args.strict, path_output=args.path_output, fresh=args.fresh,
                     warnings_as_errors=not args.allow_warnings, root=args.root)
    if command == "check-sync":
        problems = check_sync(args.root)
        for p in problems:
            print(f"out of sync: {p}", file=sys.stderr)
        if not problems:
            print(f"ntknb.book: {len(paired_notebooks(args.root))} notebook pair(s) in sync")
        return 1 if problems else 0
    if command == "prepare-ci":
        for path in prepare_ci(args.dest, root=Path(args.root)):
            print(path)
        return 0
    if command == "execute":
        for path in execute(args.names, root=args.root):
            print(f"executed {path}")
        return 0
    written = sync(args.names, root=args.root)
    for path in written:
        print(f"updated {path}")
    if not written:
        print("ntknb.book: every notebook pair already in sync")
    return 0


def _cmd_gpu(args) -> int:
    if args.gpu_command == "smoke":
        res = smoke_test()
        print(json.dumps(res, indent=2))
        return 0 if res["ok"] else 1
    caps = {}
    for item in args.max:
        name, _, secs = item.partition("=")
        try:
            caps[name] = float(secs)
        except ValueError:
            raise RunError(f"--max must be NAME=SECONDS, got {item!r}") from None
    try:
        manifest = run_presets(args.names, args.out, args.budget, max_run_s=caps,
                               kernel=args.kernel, archive=args.archive)
    except ValueError as exc:
        raise RunError(str(exc)) from None
    print(json.dumps(manifest["runs"], indent=2))
    return 0 if all(r["status"] == "done" for r in manifest["runs"].values()) else 1


_VALUE_SLOT = "\x00ntknb-value-"


def _protect_values(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """``argv`` with every ``-p NAME VALUE``'s VALUE replaced by a placeholder, so a VALUE that
    starts with ``-`` (``-p lr_fraction -1e-3``, ``-p label -x``) is not taken for an option;
    returns the new list and the values. ``--`` ends the options as usual."""
    out, values, i = [], [], 0
    argv = list(argv)
    while i < len(argv):
        tok = argv[i]
        if tok == "--":
            out.extend(argv[i:])
            break
        if tok in ("-p", "--param", "--parameter") and i + 2 < len(argv):
            out += [tok, argv[i + 1], f"{_VALUE_SLOT}{len(values)}"]
            values.append(argv[i + 2])
            i += 3
            continue
        out.append(tok)
        i += 1
    return out, values


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``ntknb`` command with ``argv`` (default: the process's arguments); returns the exit status."""
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    argv, values = _protect_values(argv)
    args, extra = parser.parse_known_args(argv)  # `book lab` passes the rest on to jupyter lab
    if extra and not (args.command == "book" and args.book_command == "lab"):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if getattr(args, "overrides", None):
        args.overrides = [
            (ov[0], ov[1], values[int(ov[2][len(_VALUE_SLOT):])])
            if ov[0] == "param" and isinstance(ov[2], str) and ov[2].startswith(_VALUE_SLOT) else ov
            for ov in args.overrides
        ]
    try:
        if args.command == "params":
            return _cmd_params(args)
        if args.command == "book":
            return _cmd_book(args, extra)
        if args.command == "gpu":
            return _cmd_gpu(args)
        return _cmd_run(args)
    except RunError as exc:
        print(f"ntknb: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("ntknb: error: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `ntknb params X | head -1`: the reader left, nothing to say
        _silence_stdout()
        return 141


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush raises no second BrokenPipeError."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


if __name__ == "__main__":
    sys.exit(main())
