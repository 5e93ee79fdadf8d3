"""Run settings of the catastrophic-overfitting search and append them to the chapter's record.

Every run is ``ntknb.chapters.ch06_overfitting.search.search_run`` (FGSM-AT / PGD-AT / standard training with
per-epoch PGD test accuracy and FGSM training accuracy); chapter 06 tabulates the file with
``ntknb.chapters.ch06_overfitting.search.search_table``. Defaults are the chapter's CNN setting; override with
KEY=VALUE:

    NTKNB_DATA_DIR=../shared/data .venv/bin/python scripts/co_search.py clean_epochs=1 width=16 \\
        hidden=64 epochs=22 --modes fgsm --seeds 1,2,3

XLA runs single-threaded on CPU unless XLA_FLAGS is set: the recorded runs were made that way,
and a rerun reproduces them exactly only with the same threading (multi-threaded reductions
round differently, and training amplifies the difference). Each record stores its XLA_FLAGS and,
for runs made since the GPU runs, the device it ran on (e.g. "cpu", "NVIDIA H200").
"""

import argparse
import json
import os
import sys

SINGLE_THREADED = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
os.environ.setdefault("XLA_FLAGS", SINGLE_THREADED)  # before jax is imported

import jax  # noqa: E402

from ntknb import data  # noqa: E402
from ntknb.chapters.ch06_overfitting import search as co  # noqa: E402

BASE = dict(dataset="mnist", model="cnn", width=8, hidden=32, n_train=1600, n_test=200, n_monitor=200,
            batch_size=32, learning_rate=0.02, momentum=0.9, weight_decay=5e-4, eps=0.3, attack_steps=3,
            eval_attack_steps=5, clean_epochs=0, epochs=20)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("settings", nargs="*", metavar="KEY=VALUE",
                        help=f"override a setting (JSON value); defaults {json.dumps(BASE)}")
    parser.add_argument("--modes", default="fgsm", help="comma-separated: standard, fgsm, pgd")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds")
    parser.add_argument("--out", default="notebooks/data/06_settings_search.jsonl", help="JSON-lines file to extend")
    parser.add_argument("--suite-iter", type=int, default=0,
                        help="if > 0, also evaluate each final network with the standard evaluation (APGD-CE/"
                             "APGD-DLR/PGD, this many iterations) on its n_test points")
    parser.add_argument("--progress", action="store_true", help="show a progress bar per run (on stderr)")
    args = parser.parse_args(argv)
    setting = dict(BASE)
    for item in args.settings:
        key, sep, value = item.partition("=")
        if not sep or key not in co.SEARCH_SETTINGS + ("hidden", "stage_sizes"):
            parser.error(f"settings are KEY=VALUE with KEY in {co.SEARCH_SETTINGS + ('hidden', 'stage_sizes')}; "
                         f"got {item!r}")
        try:
            setting[key] = json.loads(value)  # numbers and lists
        except json.JSONDecodeError:
            setting[key] = value  # plain words, e.g. model=resnet
    if setting["model"] == "resnet":
        setting.pop("hidden", None)
        setting.setdefault("stage_sizes", [1, 1, 1])
    runs = [dict(setting, mode=m, seed=int(s)) for s in args.seeds.split(",") for m in args.modes.split(",")]
    for r in runs:  # every setting is checked before any training
        try:
            co.check_search_setting(r)
        except ValueError as err:
            parser.error(str(err))
    if args.suite_iter < 0:
        parser.error(f"--suite-iter must be >= 0; got {args.suite_iter}")
    ds = data.load_dataset(setting["dataset"])
    device = jax.devices()[0]
    for r in runs:
        rec = co.search_run(r, dataset=ds, progress=args.progress, suite_iter=args.suite_iter)
        rec.update(xla_flags=os.environ["XLA_FLAGS"], device=getattr(device, "device_kind", device.platform))
        co.append_search_records(args.out, [rec])
        print(json.dumps({k: rec[k] for k in ("mode", "seed", "robust_acc")}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
