"""Run a chapter at a base seed never used before and append the run to its seed-check record.

    NTKNB_DATA_DIR=../shared/data .venv/bin/python scripts/seed_check.py 05_bn_buffers 5000

runs ``ntknb run NOTEBOOK -p seed SEED`` (all other parameters at the defaults; ``-p NAME VALUE``
adds overrides, recorded with the run) into a temporary folder, then appends
:func:`ntknb.claims.seed_check_record` of the run to ``notebooks/data/NOTEBOOK_seed_check.jsonl``
(:data:`ntknb.claims.SEED_CHECK_SUFFIX`). The book's "Results at a glance" page sets every claim's
verdict beside the verdicts of these runs (:func:`ntknb.claims.seed_check_summary`); a run that
fails appends nothing.
"""

import argparse
import json
import sys
import tempfile
from pathlib import Path

from ntknb import claims, runner

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebook", help="chapter notebook, e.g. 05_bn_buffers")
    parser.add_argument("seed", type=int, help="base seed never used before (seeds seed, seed + 1, ...)")
    parser.add_argument("-p", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                        help="another parameter override (recorded with the run)")
    args = parser.parse_args(argv)
    if any(name == "seed" for name, _ in args.p):
        parser.error("give the seed as the second argument, not with -p seed")
    overrides = [("seed", str(args.seed)), *map(tuple, args.p)]
    command = " ".join(["ntknb run", args.notebook, *(f"-p {n} {v}" for n, v in overrides)])
    out = ROOT / "notebooks" / "data" / f"{args.notebook}{claims.SEED_CHECK_SUFFIX}"
    with tempfile.TemporaryDirectory() as tmp:
        result = runner.run_notebook(args.notebook, [("param", n, v) for n, v in overrides],
                                     out_dir=Path(tmp) / "run", progress_bar=sys.stderr.isatty())
        record = claims.seed_check_record(result.out_dir, command=command + " (other parameters at the defaults)")
    with open(out, "a") as fh:
        fh.write(json.dumps(record) + "\n")
    print(f"appended the run's {len(record['claims'])} claims to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
