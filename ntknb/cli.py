"""The ``ntknb`` command line (entry point ``ntknb = "ntknb.cli:main"``).

::

    ntknb run NOTEBOOK [-p NAME VALUE]... [-f PARAMS.yaml]... [--out DIR]
    ntknb params NOTEBOOK

NOTEBOOK is a name (``00_ntk_basics``), a py:percent ``.py`` or an ``.ipynb`` path.
Errors print one line ``ntknb: error: ...`` on stderr and exit with status 2 (bad
input, detected before anything runs) or 1 (the notebook failed while running).
The logic lives in :mod:`ntknb.runner`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

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


def build_parser() -> argparse.ArgumentParser:
    parser = _OneLineParser(
        prog="ntknb",
        description="Rerun the notebooks of the ntknb book with new parameters.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_OneLineParser)
    sub.required = True

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
    return parser


def _cmd_params(args) -> int:
    from ntknb import runner

    path, nb, params, _ = runner.prepare(args.notebook)
    if args.json:
        print(json.dumps({n: (p.default if p.evaluated else p.source) for n, p in params.items()}, indent=2))
    else:
        print(f"# parameters of {path}")
        print(runner.format_parameters(params, multiline=True))
    return 0


def _cmd_run(args) -> int:
    from ntknb import runner

    overrides = args.overrides or []
    kernel = args.kernel or runner.DEFAULT_KERNEL
    runner.check_cell_timeout(args.cell_timeout)
    if args.dry_run:  # every check that needs no execution: parameters, schema, --out, kernel
        path, _, _, injected = runner.prepare(args.notebook, overrides, kernel)
        if args.out is not None:
            runner.check_out_dir(args.out, path.stem, path)
        runner.check_kernel(kernel)
        print(json.dumps({"notebook": str(path), "parameters": injected}, indent=2))
        return 0
    result = runner.run_notebook(
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
    note = json.loads((result.out_dir / runner.RUN_STATUS).read_text()).get("note")
    if note:
        print(f"note: {note}")
    return 0


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
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    argv, values = _protect_values(argv)
    args = parser.parse_args(argv)
    if getattr(args, "overrides", None):
        args.overrides = [
            (ov[0], ov[1], values[int(ov[2][len(_VALUE_SLOT):])])
            if ov[0] == "param" and isinstance(ov[2], str) and ov[2].startswith(_VALUE_SLOT) else ov
            for ov in args.overrides
        ]
    from ntknb.runner import RunError

    try:
        if args.command == "params":
            return _cmd_params(args)
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
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


if __name__ == "__main__":
    sys.exit(main())
