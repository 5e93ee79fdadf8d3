"""Profile a chapter: where its wall time goes, phase by phase, and how much of it XLA compiles.

Runs the chapter notebook's code in this process (the py:percent notebook's code cells in order,
the preset's values injected after its ``parameters`` cell as ``ntknb run -f`` does, working
directory ``notebooks/``, figures closed after each cell, cell output discarded) with the
library's heavy entry points wrapped by timers:

* ``fit`` (:func:`ntknb.training.fit`) and its parts: ``compile`` (the epoch's lowering and
  compilation, :func:`ntknb.training._compiled_epoch`), ``updates`` (the compiled epochs:
  parameter updates), ``monitor`` (the per-epoch PGD evaluator of
  :func:`ntknb.training.make_evaluator`) and ``callbacks`` (kernel trackers, collapse monitors);
* ``train_linearized`` (:func:`ntknb.ntk_dynamics.train_linearized`), ``standard evaluation``
  (:func:`ntknb.evaluation.robust_evaluation`), ``masking checks``
  (:func:`ntknb.masking.gradient_masking_checks`), ``empirical NTK``
  (:func:`ntknb.kernels.empirical_ntk`), the BatchNorm evaluations of :mod:`ntknb.batchnorm`
  and ``data`` (:func:`ntknb.data.load_dataset`).

A phase called inside another is a row of its own (``fit > callbacks > empirical NTK``); each
row's ``self`` seconds exclude its sub-rows, so the rows' self seconds and ``other`` (the
notebook's own code) add up to the run's wall time. XLA compilations are counted with
``jax.monitoring`` (JAX 0.5.3 records ``/jax/core/compile/backend_compile_duration`` for every
backend compilation, a persistent-cache hit included, ``/jax/compilation_cache/cache_hits`` for
a hit, and ``/jax/core/compile/jaxpr_trace_duration`` / ``jaxpr_to_mlir_module_duration`` for
tracing and lowering, which a cache hit does not save: their time spans, which nest, are merged)
and charged to the row running when they happen.

Run (the running page's table comes from the quick presets)::

    .venv/bin/python benchmarks/profile_chapter.py 05_bn_buffers -f notebooks/05_bn_buffers.quick.yaml \\
        --json profile_05.json

``-f`` / ``-p NAME VALUE`` as ``ntknb run``; ``--markdown`` prints the table as Markdown.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import inspect
import io
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("MPLBACKEND", "Agg")

import ntknb  # noqa: E402,F401  (compat shim before neural_tangents)

import jax  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

#: (module, attribute, row label) of the entry points timed.
ENTRY_POINTS = [
    ("ntknb.training", "fit", "fit"),
    ("ntknb.ntk_dynamics", "train_linearized", "train_linearized"),
    ("ntknb.evaluation", "robust_evaluation", "standard evaluation"),
    ("ntknb.masking", "gradient_masking_checks", "masking checks"),
    ("ntknb.kernels", "empirical_ntk", "empirical NTK"),
    ("ntknb.batchnorm", "batch_mode_evaluation", "BN batch-mode evaluation"),
    ("ntknb.batchnorm", "evaluate_modes", "BN evaluate_modes"),
    ("ntknb.batchnorm", "adversarial_examples", "BN adversarial_examples"),
    ("ntknb.batchnorm", "batch_predictions", "BN batch_predictions"),
    ("ntknb.batchnorm", "bn_statistics_gap", "BN statistics gap"),
    ("ntknb.data", "load_dataset", "data"),
]

COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"
TRACE_EVENTS = ("/jax/core/compile/jaxpr_trace_duration", "/jax/core/compile/jaxpr_to_mlir_module_duration")
CACHE_HIT_EVENT = "/jax/compilation_cache/cache_hits"


class Profiler:
    """Nested wall-clock timers and compilation counters, one row per path of phase labels."""

    def __init__(self):
        self.rows: dict = {}
        self.stack: list = []  # [path, start, seconds spent in sub-rows]
        self.spans: dict = {}  # path -> [(start, end)] of tracing and lowering

    def _row(self, path):
        return self.rows.setdefault(path, dict(calls=0, wall=0.0, self=0.0, compiles=0, compile_s=0.0,
                                               cache_hits=0, trace_s=0.0))

    @contextlib.contextmanager
    def phase(self, label: str):
        path = (self.stack[-1][0] if self.stack else ()) + (label,)
        frame = [path, time.perf_counter(), 0.0]
        self.stack.append(frame)
        try:
            yield
        finally:
            self.stack.pop()
            elapsed = time.perf_counter() - frame[1]
            row = self._row(path)
            row["calls"] += 1
            row["wall"] += elapsed
            row["self"] += elapsed - frame[2]
            if self.stack:
                self.stack[-1][2] += elapsed

    def timed(self, label: str, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with self.phase(label):
                return jax.block_until_ready(fn(*args, **kwargs))
        wrapper.__profiled__ = fn
        return wrapper

    def _current(self):
        return self._row(self.stack[-1][0] if self.stack else ("other",))

    def on_duration(self, event: str, seconds: float, **_):
        if event == COMPILE_EVENT:
            row = self._current()
            row["compiles"] += 1
            row["compile_s"] += seconds

    def on_span(self, event: str, start: float, end: float, **_):
        """Tracing and lowering spans nest (a jitted function traced inside another): a row's
        ``trace_s`` is the length of the union of its spans."""
        if event in TRACE_EVENTS:
            self.spans.setdefault(self.stack[-1][0] if self.stack else ("other",), []).append((start, end))

    def merge_spans(self):
        for path, spans in self.spans.items():
            total, reach = 0.0, -float("inf")
            for start, end in sorted(spans):
                if end > reach:
                    total += end - max(start, reach)
                    reach = end
            self._row(path)["trace_s"] = total

    def on_event(self, event: str, **_):
        if event == CACHE_HIT_EVENT:
            self._current()["cache_hits"] += 1


def install(prof: Profiler) -> None:
    """Wrap :data:`ENTRY_POINTS` (in their modules and wherever a module holds the same function under
    that name) and fit's parts, and listen to JAX's compilation events."""
    import importlib

    from ntknb import training

    for module, attr, label in ENTRY_POINTS:
        mod = importlib.import_module(module)
        original = getattr(mod, attr)
        wrapped = prof.timed(label, original)
        for other in list(sys.modules.values()):
            if getattr(other, "__name__", "").startswith("ntknb") and getattr(other, attr, None) is original:
                setattr(other, attr, wrapped)

    fit = training.fit  # already wrapped: time its callbacks too
    signature = inspect.signature(fit.__profiled__)

    @functools.wraps(fit)
    def fit_with_callbacks(*args, **kwargs):
        bound = signature.bind(*args, **kwargs)
        bound.arguments["callbacks"] = [prof.timed("callbacks", cb) for cb in bound.arguments.get("callbacks", ())]
        return fit(*bound.args, **bound.kwargs)
    training.fit = fit_with_callbacks

    compiled_epoch, make_evaluator = training._compiled_epoch, training.make_evaluator

    def timed_compiled_epoch(*args, **kwargs):
        with prof.phase("compile"):
            return prof.timed("updates", compiled_epoch(*args, **kwargs))
    training._compiled_epoch = timed_compiled_epoch
    training.make_evaluator = lambda *a, **k: prof.timed("monitor", make_evaluator(*a, **k))

    jax.monitoring.register_event_duration_secs_listener(prof.on_duration)
    jax.monitoring.register_event_listener(prof.on_event)
    jax.monitoring.register_event_time_span_listener(prof.on_span)


def run_notebook(stem: str, overrides: list) -> dict:
    """Execute the chapter's code cells here; ``{"cells": n, "parameters": injected}``."""
    import matplotlib.pyplot as plt

    from ntknb.book import params as book_params
    from ntknb.book.run import inject_parameters

    path, nb, _, injected = book_params.prepare(stem, overrides)
    nb = inject_parameters(nb, injected)
    namespace = {"__name__": "__main__"}
    cwd = os.getcwd()
    os.chdir(path.parent)
    n = 0
    try:
        for i, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            source = "\n".join(line for line in cell.source.splitlines() if not line.lstrip().startswith(("%", "!")))
            with contextlib.redirect_stdout(io.StringIO()):
                exec(compile(source, f"{path.name}:cell{i}", "exec"), namespace)  # noqa: S102 - the chapter's code
            plt.close("all")
            n += 1
    finally:
        os.chdir(cwd)
    return {"cells": n, "parameters": injected}


def table(prof: Profiler, total: float) -> list:
    """The rows, largest self time first, with ``other`` (the notebook's own code) and the total."""
    rows = [dict(phase=" > ".join(path), **vals) for path, vals in prof.rows.items() if path != ("other",)]
    other = dict(prof.rows.get(("other",), {}))
    rows.sort(key=lambda r: -r["self"])
    rest = total - sum(r["self"] for r in rows)
    rows.append(dict(phase="other (notebook code)", calls=1, wall=rest, self=rest,
                     **{k: other.get(k, 0) for k in ("compiles", "compile_s", "cache_hits", "trace_s")}))
    for r in rows:
        r["share"] = r["self"] / total
    rows.append(dict(phase="total", calls=1, wall=total, self=total, share=1.0,
                     **{k: sum(r[k] for r in rows) for k in ("compiles", "compile_s", "cache_hits", "trace_s")}))
    return rows


def format_table(rows: list, markdown: bool = False) -> str:
    head = ["phase", "calls", "wall s", "self s", "share", "compilations", "compile s", "cache hits", "trace+lower s"]
    body = [[r["phase"], str(r["calls"]), f"{r['wall']:.1f}", f"{r['self']:.1f}", f"{100 * r['share']:.0f} %",
             str(r["compiles"]), f"{r['compile_s']:.1f}", str(r["cache_hits"]), f"{r['trace_s']:.1f}"] for r in rows]
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
        return "\n".join(lines + ["| " + " | ".join(b) + " |" for b in body])
    widths = [max(len(x) for x in col) for col in zip(head, *body)]
    fmt = lambda cells: "  ".join(c.ljust(w) if i == 0 else c.rjust(w)  # noqa: E731
                                  for i, (c, w) in enumerate(zip(cells, widths)))
    return "\n".join([fmt(head)] + [fmt(b) for b in body])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("notebook", help="chapter notebook, e.g. 05_bn_buffers")
    ap.add_argument("-f", dest="files", action="append", default=[], help="parameter file (YAML), as ntknb run")
    ap.add_argument("-p", dest="params", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"))
    ap.add_argument("--json", help="write the rows and the run's facts to this file")
    ap.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    args = ap.parse_args(argv)
    overrides = [("file", f) for f in args.files] + [("param", n, v) for n, v in args.params]

    prof = Profiler()
    install(prof)
    load0, t0 = os.getloadavg(), time.perf_counter()
    info = run_notebook(args.notebook, overrides)
    total = time.perf_counter() - t0
    prof.merge_spans()
    rows = table(prof, total)
    tot = rows[-1]
    facts = dict(notebook=args.notebook, overrides=[list(o) for o in overrides], parameters=info["parameters"],
                 wall_s=total, load_before=load0, load_after=os.getloadavg(), cpus=os.cpu_count(),
                 jax=jax.__version__, backend=jax.default_backend(),
                 compilation_cache_dir=jax.config.jax_compilation_cache_dir,
                 compile_share=tot["compile_s"] / total)
    print(format_table(rows, args.markdown))
    print(f"\n{args.notebook}: {total:.1f} s wall, {tot['compiles']} compilations ({tot['cache_hits']} from the "
          f"persistent cache), {tot['compile_s']:.1f} s compiling ({100 * facts['compile_share']:.1f} %), "
          f"{tot['trace_s']:.1f} s tracing and lowering; load {load0[0]:.2f} -> {facts['load_after'][0]:.2f} "
          f"on {facts['cpus']} CPUs; compilation cache: {facts['compilation_cache_dir'] or 'off'}")
    if args.json:
        Path(args.json).write_text(json.dumps(dict(facts, rows=rows), indent=1))


if __name__ == "__main__":
    main()
