"""Benchmark: a chapter run with a cold persistent compilation cache against the same run with the
cache warm (:mod:`ntknb.compile_cache`), and with the cache off.

Each run is a fresh process of ``benchmarks/profile_chapter.py`` on the chapter at a preset
(default: the CI preset, about a minute), in this order: off, cold (a new, empty cache folder),
warm (the same folder again); ``--repeats`` rounds, each with its own folder. Prints per run the
wall time, the backend compilations and the persistent-cache hits, the compile seconds (a hit's
are its read) and their share of the run, and the ratios off / warm and cold / warm, with the
1-minute load average before and after (the machine may be shared).

Run: .venv/bin/python benchmarks/bench_compile_cache.py [05_bn_buffers] [--preset ci] [--repeats 1]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def profile(notebook: str, preset: str, cache: str) -> dict:
    """One fresh-process profile of ``notebook`` at ``preset`` with ``NTKNB_JAX_CACHE=cache``."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "profile.json"
        env = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}
        env["NTKNB_JAX_CACHE"] = cache
        cmd = [sys.executable, str(HERE / "profile_chapter.py"), notebook, "--json", str(out)]
        if preset != "none":
            cmd[3:3] = ["-f", str(ROOT / "notebooks" / f"{notebook}.{preset}.yaml")]
        subprocess.run(cmd, env=env, cwd=ROOT, check=True, capture_output=True, text=True)
        data = json.loads(out.read_text())
    total = data["rows"][-1]
    return dict(wall_s=data["wall_s"], compiles=total["compiles"], cache_hits=total["cache_hits"],
                compile_s=total["compile_s"], trace_s=total["trace_s"], compile_share=data["compile_share"],
                load=(data["load_before"][0], data["load_after"][0]))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("notebook", nargs="?", default="05_bn_buffers")
    ap.add_argument("--preset", default="ci", help="notebooks/<notebook>.<preset>.yaml; 'none': the defaults")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--json", default=None, help="also write the results to this file")
    args = ap.parse_args()
    rounds = []
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory(prefix="ntknb-jax-cache-") as folder:
            runs = {"off": profile(args.notebook, args.preset, "off"),
                    "cold": profile(args.notebook, args.preset, folder),
                    "warm": profile(args.notebook, args.preset, folder)}
        for name, r in runs.items():
            print(f"{args.notebook} {name:4s}: {r['wall_s']:6.1f} s, {r['compiles']} compilations "
                  f"({r['cache_hits']} cache hits), {r['compile_s']:5.1f} s compiling "
                  f"({100 * r['compile_share']:4.1f} %), {r['trace_s']:4.1f} s tracing and lowering "
                  f"(load {r['load'][0]:.2f} -> {r['load'][1]:.2f})", flush=True)
        ratios = {"off/warm": runs["off"]["wall_s"] / runs["warm"]["wall_s"],
                  "cold/warm": runs["cold"]["wall_s"] / runs["warm"]["wall_s"]}
        print("  wall-time ratios: " + ", ".join(f"{k} {v:.2f}" for k, v in ratios.items()), flush=True)
        rounds.append(dict(runs, ratios=ratios))
    if args.json:
        Path(args.json).write_text(json.dumps({"notebook": args.notebook, "preset": args.preset, "rounds": rounds},
                                              indent=1))


if __name__ == "__main__":
    main()
