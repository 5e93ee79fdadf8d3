"""Run a chapter at a base seed never used before and append the run to its seed-check record.

    NTKNB_DATA_DIR=../shared/data .venv/bin/python scripts/seed_check.py 05_bn_buffers 5000

runs ``ntknb run NOTEBOOK -p seed SEED`` (all other parameters at the defaults; ``-p NAME VALUE``
adds overrides, recorded with the run) into a temporary folder, then appends
:func:`ntknb.records.seed_check_record` of the run to ``notebooks/data/NOTEBOOK_seed_check.jsonl``
(:func:`ntknb.records.seed_check_file`; the file is replaced atomically, :func:`ntknb.records.append_records`).
The book's "Results at a glance" page sets every claim's verdict beside the verdicts of these runs
(:func:`ntknb.claims.seed_check_summary`); a run that fails appends nothing.

NOTEBOOK is a chapter of the book: its name (``05_bn_buffers``) or its file in the repository's
``notebooks/`` (``notebooks/05_bn_buffers``, ``notebooks/05_bn_buffers.py``). Before anything
runs, the script refuses (one line ``seed_check.py: error: ...``, exit status 2) a notebook that is
not a chapter, parameters the chapter refuses, and a seed range ``SEED .. SEED + n_seeds - 1``
that is not new: one overlapping the seeds of the chapter's defaults or of its presets
(``NN_name.*.yaml``: paper, quick, CI, GPU) or of a run already in its seed-check record. ``--dry-run``
runs these checks only.
"""

import argparse
import json
import sys
import tempfile
from pathlib import Path

from ntknb import chapters, records
from ntknb.book.params import INT_RE, RunError, load_param_file, prepare, resolve_notebook
from ntknb.book.run import RUN_TIMINGS, run_notebook
from ntknb.paths import NOTEBOOKS


class SeedCheckError(Exception):
    """A refused input: the message is one line."""


def chapter_name(spec: str) -> str:
    """The chapter's notebook name for ``spec`` (a name or a file in ``notebooks/``)."""
    try:
        path = resolve_notebook(spec)
    except RunError as exc:
        raise SeedCheckError(str(exc)) from None
    if path.parent != NOTEBOOKS.resolve() or path.stem not in chapters.CHAPTERS:
        raise SeedCheckError(f"{spec!r} is not a chapter of the book; give one of {', '.join(chapters.CHAPTERS)} "
                             f"(or its file in {NOTEBOOKS})")
    return path.stem


def seed_range(values: dict) -> range:
    """The seeds a run at ``values`` uses: ``seed .. seed + count - 1``, ``count`` the largest of its
    seed counts (``n_seeds`` and every ``*_seeds``, as the schema's seed rule counts them: chapter
    00's ``ntk_seeds``), at least 1."""
    seed = int(values.get("seed", 0))
    counts = [v for n, v in values.items() if (n == "n_seeds" or (n.endswith("_seeds") and n != "seeds"))
              and isinstance(v, int) and not isinstance(v, bool)]
    return range(seed, seed + max([1, *counts]))


def used_seeds(name: str, defaults: dict, record: Path) -> list[tuple[str, range]]:
    """Every seed range already used by the chapter: its defaults, its presets, its seed checks."""
    used = [("the defaults", seed_range(defaults))]
    for preset in sorted(NOTEBOOKS.glob(f"{name}.*.yaml")):
        values = dict(defaults)
        values.update(load_param_file(preset))
        used.append((f"the preset {preset.name}", seed_range(values)))
    try:
        recorded = records.load_records(record, records.check_seed_check, missing_ok=True)
    except (OSError, UnicodeDecodeError, records.RecordError) as exc:
        raise SeedCheckError(f"cannot read the seed-check record: {exc}") from None
    for i, rec in enumerate(recorded, 1):
        seeds = rec["seeds"]
        run = range(min(seeds), max(seeds) + 1)
        if isinstance(rec.get("parameters"), dict):  # the seeds its parameters use, if more
            by_params = seed_range(rec["parameters"])
            run = range(min(run.start, by_params.start), max(run.stop, by_params.stop))
        used.append((f"recorded run {i} of {record.name}", run))
    return used


def check_new(name: str, values: dict, defaults: dict, record: Path) -> range:
    """The seed range of ``values``; :class:`SeedCheckError` if it overlaps one already used."""
    new = seed_range(values)
    for what, seeds in used_seeds(name, defaults, record):
        if new.start < seeds.stop and seeds.start < new.stop:
            raise SeedCheckError(
                f"seeds {new.start}..{new.stop - 1} of {name} overlap seeds {seeds.start}..{seeds.stop - 1} of "
                f"{what}; a seed check needs a base seed never used before (e.g. {_free_seed(name, defaults, record, len(new))})"
            )
    return new


def _free_seed(name: str, defaults: dict, record: Path, n: int) -> int:
    top = max(s.stop for _, s in used_seeds(name, defaults, record))
    return max(top, 1000)


def _parser() -> argparse.ArgumentParser:
    class OneLine(argparse.ArgumentParser):
        def error(self, message):
            self.exit(2, f"seed_check.py: error: {' '.join(message.split())}\n")

    parser = OneLine(prog="seed_check.py", description=__doc__.splitlines()[0])
    parser.add_argument("notebook", help="chapter notebook, e.g. 05_bn_buffers or notebooks/05_bn_buffers.py")
    parser.add_argument("seed", help="base seed never used before (seeds seed, seed + 1, ...)")
    parser.add_argument("-p", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                        help="another parameter override (recorded with the run)")
    parser.add_argument("--dry-run", action="store_true", help="only run the checks")
    return parser


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _main(args)
    except (SeedCheckError, RunError, ValueError) as exc:
        print(f"seed_check.py: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return getattr(exc, "exit_code", 2)


def _main(args) -> int:
    name = chapter_name(args.notebook)
    if any(n == "seed" for n, _ in args.p):
        raise SeedCheckError("give the seed as the second argument, not with -p seed")
    if not INT_RE.match(args.seed.strip()):
        raise SeedCheckError(f"the seed must be a decimal integer in [0, 2**32), got {args.seed!r}")
    overrides = [("seed", args.seed.strip()), *map(tuple, args.p)]
    path, _, params, injected = prepare(name, [("param", n, v) for n, v in overrides])
    defaults = {n: p.default for n, p in params.items() if p.evaluated}
    values = {**defaults, **injected}
    out = records.seed_check_file(name)
    seeds = check_new(name, values, defaults, out)
    command = " ".join(["ntknb run", name, *(f"-p {n} {v}" for n, v in overrides)])
    if args.dry_run:
        print(f"would run {command} (seeds {seeds.start}..{seeds.stop - 1}) and append to {out}")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        result = run_notebook(path, [("param", n, v) for n, v in overrides],
                              out_dir=Path(tmp) / "run", progress_bar=sys.stderr.isatty())
        record = records.seed_check_record(result.out_dir, command=command + " (other parameters at the defaults)")
        if record.get("runtime_s") is None:  # wall-clock values live in timings.json (issue 31)
            timings = json.loads((result.out_dir / RUN_TIMINGS).read_text())
            record["runtime_s"] = timings.get("runtime_s", timings.get("run_wall_s"))
    check_new(name, values, defaults, out)  # again: another check may have recorded these seeds meanwhile
    records.append_records(out, [record], records.check_seed_check)
    print(f"appended the run's {len(record['claims'])} claims to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
