"""Run settings of the catastrophic-overfitting search and append them to the chapter's record.

Every run is ``ntknb.chapters.ch06_overfitting.search.search_run`` (FGSM-AT / PGD-AT / standard training with
per-epoch PGD test accuracy and FGSM training accuracy); chapter 06 tabulates the file with
``ntknb.chapters.ch06_overfitting.search.search_table``. Defaults are the setting of the chapter's
``parameters`` cell (``notebooks/06_catastrophic_overfitting.py``: ``model_name`` read as ``model``,
``resnet_stages`` as ``stage_sizes``, see ``--help``); override with KEY=VALUE:

    NTKNB_DATA_DIR=../shared/data .venv/bin/python scripts/co_search.py clean_epochs=1 width=16 \\
        hidden=64 epochs=22 --modes fgsm --seeds 1,2,3

XLA runs single-threaded on CPU unless XLA_FLAGS is set: the recorded runs were made that way,
and a rerun reproduces them exactly only with the same threading (multi-threaded reductions
round differently, and training amplifies the difference). Each record stores its XLA_FLAGS and,
for runs made since the GPU runs, the device it ran on (e.g. "cpu", "NVIDIA H200"). Records are
checked and appended atomically (``ntknb.records.append_search_records``).
"""

import argparse
import dataclasses
import json
import os
import sys

SINGLE_THREADED = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
os.environ.setdefault("XLA_FLAGS", SINGLE_THREADED)  # before jax is imported

import jax  # noqa: E402

from ntknb import data, records  # noqa: E402
from ntknb.book.params import load_notebook, notebook_parameters, resolve_notebook  # noqa: E402
from ntknb.chapters.ch06_overfitting import search as co  # noqa: E402

#: The chapter whose parameters cell gives the default setting, and its names of the settings that differ.
CHAPTER = "06_catastrophic_overfitting"
CELL_NAMES = {"model": "model_name", "stage_sizes": "resnet_stages"}
#: The settings a run takes: :data:`ntknb.records.SEARCH_SETTINGS` plus the CNN's and the ResNet's own.
KEYS = records.SEARCH_SETTINGS + ("hidden", "stage_sizes")


def base_setting() -> dict:
    """The default setting: every search setting but ``mode`` and ``seed`` from the chapter's parameters cell."""
    cell = notebook_parameters(load_notebook(resolve_notebook(CHAPTER)))
    return {k: cell[CELL_NAMES.get(k, k)].default for k in KEYS if k not in ("mode", "seed")}


def main(argv=None) -> int:
    base = base_setting()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("settings", nargs="*", metavar="KEY=VALUE",
                        help=f"override a setting (JSON value); defaults {json.dumps(base)}")
    parser.add_argument("--modes", default="fgsm", help="comma-separated: standard, fgsm, pgd")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds")
    parser.add_argument("--out", default=str(records.SEARCH_FILE), help="JSON-lines file to extend")
    parser.add_argument("--suite-iter", type=int, default=0,
                        help="if > 0, also evaluate each final network with the standard evaluation (APGD-CE/"
                             "APGD-DLR/PGD, this many iterations) on its n_test points")
    parser.add_argument("--progress", action="store_true", help="show a progress bar per run (on stderr)")
    args = parser.parse_args(argv)
    setting = dict(base)
    for item in args.settings:
        key, sep, value = item.partition("=")
        if not sep or key not in KEYS:
            parser.error(f"settings are KEY=VALUE with KEY in {KEYS}; got {item!r}")
        try:
            setting[key] = json.loads(value)  # numbers and lists
        except json.JSONDecodeError:
            setting[key] = value  # plain words, e.g. model=resnet
    setting.pop("hidden" if setting["model"] == "resnet" else "stage_sizes")  # the other model's own setting
    runs = [dict(setting, mode=m, seed=int(s)) for s in args.seeds.split(",") for m in args.modes.split(",")]
    for r in runs:  # every setting is checked before any training
        try:
            records.check_search_setting(r)
        except ValueError as err:
            parser.error(str(err))
    if args.suite_iter < 0:
        parser.error(f"--suite-iter must be >= 0; got {args.suite_iter}")
    ds = data.load_dataset(setting["dataset"])
    device = jax.devices()[0]
    for r in runs:
        rec = dataclasses.replace(co.search_run(r, dataset=ds, progress=args.progress, suite_iter=args.suite_iter),
                                  xla_flags=os.environ["XLA_FLAGS"],
                                  device=getattr(device, "device_kind", device.platform))
        records.append_search_records(args.out, [rec])
        print(json.dumps({"mode": rec.mode, "seed": rec.seed, "robust_acc": list(rec.robust_acc)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
