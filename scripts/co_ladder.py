"""Climb chapter 06's collapse ladder: run the pre-registered protocol and record every run.

Reads the protocol (notebooks/data/06_co_protocol.yaml), and for each rung in order runs its
never-used seeds that have no record yet, appending one record a run to
notebooks/data/06_co_ladder.jsonl (ntknb.chapters.ch06_overfitting.ladder.ladder_run), until the rung
is decided (passed: stop the ladder; failed: go on to the next rung). Runs already recorded are
never repeated, so an interrupted climb continues where it stopped:

    NTKNB_DATA_DIR=../shared/data nice .venv/bin/python scripts/co_ladder.py [--rung NAME] [--max-runs N]
"""

import argparse
import os
import sys
import time


def main(argv=None) -> int:
    from ntknb import data, records
    from ntknb.chapters.ch06_overfitting import ladder as lad

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--protocol", default=str(lad.PROTOCOL_FILES[0]))
    parser.add_argument("--out", default=str(records.LADDER_FILE))
    parser.add_argument("--rung", default=None, help="climb only this rung (default: the ladder in order)")
    parser.add_argument("--max-runs", type=int, default=None, help="stop after this many new runs")
    parser.add_argument("--progress", action="store_true", help="a progress bar per run (stderr)")
    args = parser.parse_args(argv)
    if args.max_runs is not None and args.max_runs < 1:
        parser.error(f"--max-runs must be an integer >= 1; got {args.max_runs}")

    try:
        protocol = lad.load_protocol(args.protocol)
        names = [r["name"] for r in protocol["ladder"]["rungs"]]
        if args.rung is not None:
            lad.rung(protocol, args.rung)
            names = [args.rung]
    except (OSError, ValueError) as e:
        print(f"co_ladder: {e}", file=sys.stderr)
        return 2
    ds = data.load_dataset(protocol["recipe"]["dataset"])
    made = 0
    for name in names:
        while True:
            status = lad.rung_status(protocol, name, records.load_ladder_records(args.out, missing_ok=True))
            print(f"rung {name}: {status['collapsed']} of {status['runs']} collapsed, {status['status']}", flush=True)
            if status["status"] != "open" or not status["seeds_left"]:
                break
            if args.max_runs is not None and made >= args.max_runs:
                return 0
            seed = status["seeds_left"][0]
            t0 = time.time()
            rec = lad.ladder_run(protocol, name, seed, ds, progress=args.progress)
            rec["loadavg"] = " ".join(f"{v:.2f}" for v in os.getloadavg())
            rec["xla_flags"] = os.environ.get("XLA_FLAGS", "")
            records.append_records(args.out, [rec], fields=records.LADDER_FIELDS)
            made += 1
            j = rec["judgement"]
            print(f"  seed {seed}: ended collapsed {j['ended_collapsed']} (final strong {j['final_strong']:.3f}, "
                  f"FGSM {j['final_fgsm']:.3f}, clean {j['final_clean']:.3f}, peak {j['peak']:.3f} at epoch "
                  f"{j['peak_epoch']}); {time.time() - t0:.0f} s", flush=True)
        if status["status"] == "passed":
            print(f"rung {name} passed: the chapter's setting", flush=True)
            return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
