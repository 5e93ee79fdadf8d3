"""Benchmark: an epoch of :func:`ntknb.training.fit` as one compiled ``lax.scan`` over its batches
(today's code) against the per-step loop it replaced (one jitted step dispatched per mini-batch,
kept here as the baseline: :func:`per_step_fit`), on the networks of chapters 04, 05 and 06 at
a chapter preset (their training configurations, models and data subsamples).

First it checks, for every setup, that both give bit-identical results after ``--check-epochs``
epochs (parameters, optimizer state, BatchNorm state and the per-epoch history except its wall
times; ``np.array_equal``). Then it times ``--epochs`` epochs of training only (no monitor, no
callbacks) each way, after a warm-up run (compilation), best of ``--repeats`` interleaved rounds
(:func:`_timing.best_wall_and_cpu`), and prints the ratios per-step / scan of wall and of CPU
seconds with the 1-minute load average before and after (the machine may be shared: the CPU
ratio is the steadier one there).

Run: .venv/bin/python benchmarks/bench_training_epoch.py [--preset none] [--only ch05.buffer,ch06.pgd]
(the defaults time one epoch of four setups at the chapters' defaults, about 2 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import ntknb  # noqa: F401  (compat shim before neural_tangents)

import jax
import jax.numpy as jnp
import numpy as np

from ntknb import training
from _timing import best_wall_and_cpu  # benchmarks/_timing.py (scripts' folder is on sys.path)

ROOT = Path(__file__).resolve().parents[1]


def chapter_params(stem: str, preset: str | None):
    """The chapter's checked ``Params`` at its defaults with ``notebooks/<stem>.<preset>.yaml`` applied."""
    from ntknb import chapters
    from ntknb.book import params as book_params

    overrides = [("file", str(ROOT / "notebooks" / f"{stem}.{preset}.yaml"))] if preset else []
    _, _, params, injected = book_params.prepare(stem, overrides)
    values = {name: p.default for name, p in params.items()}
    values.update(injected)
    return chapters.schema_for(stem).from_values(values)


def setups(preset: str | None, chapters=("ch04", "ch05", "ch06")) -> dict:
    """``{name: (apply_fn, params, state, x_train, labels_train, x_test, labels_test, config)}``: the
    training runs of one replica (the first seed) of ``chapters`` (of 04, 05 and 06) at ``preset``."""
    from ntknb import batchnorm, data, models
    from ntknb.chapters import ch04_kernel_dynamics as ch04, ch05_bn_buffers as ch05
    from ntknb.chapters.ch06_overfitting import runs as ch06

    out = {}
    if "ch04" in chapters:
        p = chapter_params("04_at_kernel_dynamics", preset)
        t = ch04.load_data(p, p.seed).task
        m = ch04.make_model(p)
        apply_fn = training.flax_apply_fn(m)
        p0, s0 = models.init_model(m, t.x_train.shape[1:], seed=p.seed)
        split = (t.x_train, t.labels_train, t.x_test[:p.n_monitor], t.labels_test[:p.n_monitor])
        for mode in ("standard", "pgd", "trades"):
            out[f"ch04.{mode}"] = (apply_fn, p0, s0, *split, ch04.base_config(p, mode, p.seed))
        cheap = ch04.base_config(p, "pgd", p.seed).replace(clean_epochs=min(p.cheap_at_clean_epochs))
        out["ch04.cheap"] = (apply_fn, p0, s0, *split, cheap)
        lin = training.linearized_apply_fn(apply_fn, p0, s0, centered=True)
        out["ch04.loo_at"] = (lin, p0, s0, *split, ch04.loo_config(p, "pgd", p.seed))

    if "ch05" in chapters:
        p = chapter_params("05_bn_buffers", preset)
        ds = data.downsample(data.load_dataset(p.dataset), p.downsample)
        t = data.make_task(ds, n_train=p.n_train, n_test=p.n_test, seed=p.seed)
        m = ch05.make_model(p)
        p0, s0 = models.init_model(m, t.x_train.shape[1:], seed=p.seed)
        b = p.eval_batch_size
        for arm in ch05.ARMS:
            out[f"ch05.{arm}"] = (batchnorm.bn_apply_fn(m, arm), p0, s0, t.x_train, t.labels_train,
                                  np.asarray(t.x_test[:b], np.float32), np.asarray(t.labels_test[:b]),
                                  ch05.train_config(p, p.seed))

    if "ch06" in chapters:
        p = chapter_params("06_catastrophic_overfitting", preset)
        t = data.make_task(data.load_dataset(p.dataset), n_train=p.n_train, n_test=p.n_test, seed=p.seed)
        m = ch06.make_model(p)
        p0, s0 = models.init_model(m, t.x_train.shape[1:], seed=p.seed)
        for variant in ch06.LABEL:
            out[f"ch06.{variant}"] = (training.flax_apply_fn(m), p0, s0, t.x_train, t.labels_train,
                                      t.x_test[:p.n_monitor], t.labels_test[:p.n_monitor],
                                      ch06.variant_config(p, variant, p.seed))
    return out


def per_step_fit(apply_fn, params, state, x_train, labels_train, x_test, labels_test, config, monitor=True):
    """The per-step training loop :func:`ntknb.training.fit` ran before its epochs became one scan:
    each mini-batch gathered outside the step, one ``jax.jit`` of :func:`ntknb.training._make_step`
    dispatched per batch (the same data order, keys, schedule and modes). Returns
    ``(params, state, opt_state, history)`` with ``history`` as ``fit``'s (``monitor=False``: no
    per-epoch evaluation, accuracies NaN)."""
    x_train, labels_train = training._check_split(x_train, labels_train, "train")
    n, bs = x_train.shape[0], config.batch_size
    steps_per_epoch = n // bs
    tx = config.optimizer_transform(steps_per_epoch)
    opt_state = tx.init(params)
    steps = {m: jax.jit(training._make_step(apply_fn, tx, config, m))
             for m in {config.epoch_mode(e) for e in range(1, config.epochs + 1)}}
    key0 = jax.random.PRNGKey(config.seed)
    evaluate = training.make_evaluator(apply_fn, config.eps, config.eval_attack_steps, config.eval_batch_size)
    eval_key = jax.random.fold_in(key0, 2**31 - 1)
    x_dev, y_dev = jnp.asarray(x_train), jnp.asarray(labels_train)
    history = []
    for epoch in range(1, config.epochs + 1):
        mode = config.epoch_mode(epoch)
        order = np.random.default_rng([config.seed, epoch]).permutation(n)
        t0 = time.perf_counter()
        losses = []
        for b in range(steps_per_epoch):
            idx = jnp.asarray(order[b * bs:(b + 1) * bs])
            key = jax.random.fold_in(key0, (epoch - 1) * steps_per_epoch + b)
            params, state, opt_state, loss = steps[mode](params, state, opt_state, x_dev[idx], y_dev[idx], key)
            losses.append(loss)
        train_loss = float(jnp.mean(jnp.stack(losses)))
        seconds = time.perf_counter() - t0
        acc = (evaluate(params, state, x_test, labels_test, jax.random.fold_in(eval_key, epoch)) if monitor
               else (np.nan, np.nan))
        history.append(training.EpochRecord(epoch, mode, config.learning_rate_at(epoch), train_loss, *acc, seconds))
    return params, state, opt_state, history


def scan_fit(apply_fn, params, state, x_train, labels_train, x_test, labels_test, config, monitor=True):
    """:func:`ntknb.training.fit`, returned as :func:`per_step_fit` returns (``monitor=False``: its
    monitor on one test point, the least ``fit`` allows)."""
    if not monitor:
        x_test, labels_test, config = x_test[:1], labels_test[:1], config.replace(eval_batch_size=1)
    r = training.fit(apply_fn, params, state, x_train, labels_train, x_test, labels_test, config, progress=False)
    return r.params, r.state, r.opt_state, r.history


def differences(a, b) -> list:
    """Names of the leaves of two pytrees that are not bit-identical (``np.array_equal``)."""
    la, ta = jax.tree_util.tree_flatten_with_path(a)
    lb, tb = jax.tree_util.tree_flatten_with_path(b)
    if ta != tb:
        return ["<tree structure>"]
    return [jax.tree_util.keystr(pa) for (pa, x), (_, y) in zip(la, lb)
            if not np.array_equal(np.asarray(x), np.asarray(y))]


def check(setup, epochs: int) -> dict:
    """Train ``setup`` for ``epochs`` epochs both ways (with the monitor); the leaves that differ."""
    apply_fn, p0, s0, xtr, ytr, xte, yte, cfg = setup
    cfg = cfg.replace(epochs=epochs, lr_decay_epochs=tuple(e for e in cfg.lr_decay_epochs if e < epochs),
                      clean_epochs=min(cfg.clean_epochs, epochs))
    ref = per_step_fit(apply_fn, p0, s0, xtr, ytr, xte, yte, cfg)
    new = scan_fit(apply_fn, p0, s0, xtr, ytr, xte, yte, cfg)
    strip = lambda h: [{k: v for k, v in vars(r).items() if k != "seconds"} for r in h]  # noqa: E731
    out = {what: differences(a, b) for what, a, b in zip(("params", "state", "opt_state"), ref[:3], new[:3])}
    out["history"] = [] if strip(ref[3]) == strip(new[3]) else [str(strip(ref[3])), str(strip(new[3]))]
    out["max_abs_param_diff"] = max((float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
                                     for a, b in zip(jax.tree_util.tree_leaves(ref[0]), jax.tree_util.tree_leaves(new[0]))),
                                    default=0.0)
    return out


def epoch_runs(setup, epochs: int) -> dict:
    """``{"per-step": fn, "scan": fn}``: each trains ``epochs`` epochs of ``setup`` from its initial
    weights (training only: no monitor, no callbacks) and waits for the result."""
    apply_fn, p0, s0, xtr, ytr, _, _, cfg = setup
    n, bs = xtr.shape[0], cfg.batch_size
    spe = n // bs
    tx = cfg.optimizer_transform(spe)
    o0 = tx.init(p0)
    key0 = jax.random.PRNGKey(cfg.seed)
    x_dev, y_dev = jnp.asarray(xtr), jnp.asarray(ytr)
    modes = [cfg.epoch_mode(e) for e in range(1, epochs + 1)]
    steps = {m: jax.jit(training._make_step(apply_fn, tx, cfg, m)) for m in set(modes)}
    scans = {m: training._make_epoch(apply_fn, tx, cfg, m) for m in set(modes)}

    def per_step():
        p, s, o = p0, s0, o0
        for epoch, m in enumerate(modes, 1):
            order = training.epoch_order(cfg.seed, epoch, n, bs)
            for b in range(spe):
                p, s, o, _ = steps[m](p, s, o, x_dev[order[b]], y_dev[order[b]],
                                      jax.random.fold_in(key0, (epoch - 1) * spe + b))
        jax.block_until_ready(p)

    def scan():
        p, s, o = p0, s0, o0
        for epoch, m in enumerate(modes, 1):
            p, s, o, _ = scans[m](p, s, o, x_dev, y_dev, jnp.asarray(training.epoch_order(cfg.seed, epoch, n, bs)),
                                  training.epoch_keys(key0, epoch, spe))
        jax.block_until_ready(p)

    return {"per-step": per_step, "scan": scan}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", default="none",
                    help="chapter preset (notebooks/<stem>.<preset>.yaml); 'none' (default): the chapters' defaults")
    ap.add_argument("--only", default="ch05.buffer,ch05.batch,ch06.fgsm,ch06.pgd",
                    help="comma-separated setups ('all': every one)")
    ap.add_argument("--epochs", type=int, default=1, help="epochs timed per call")
    ap.add_argument("--check-epochs", type=int, default=0,
                    help="epochs of the bit-identity check (default 0: none; the whole check: "
                         "--preset ci --only all --check-epochs 2 --repeats 1)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", default=None, help="also write the results to this file")
    args = ap.parse_args()
    names = None if args.only == "all" else args.only.split(",")
    all_setups = setups(None if args.preset == "none" else args.preset,
                        ("ch04", "ch05", "ch06") if names is None else {n.split(".")[0] for n in names})
    names = list(all_setups) if names is None else names
    rows = []
    for name in names:
        row = {"setup": name, "load_before": os.getloadavg()[0]}
        if args.check_epochs:
            diff = check(all_setups[name], args.check_epochs)
            row["identical"] = not any(diff[k] for k in ("params", "state", "opt_state", "history"))
            row["max_abs_param_diff"] = diff["max_abs_param_diff"]
        t = best_wall_and_cpu(epoch_runs(all_setups[name], args.epochs), args.repeats)
        row.update({f"{k}_wall_s": v[0] for k, v in t.items()}, **{f"{k}_cpu_s": v[1] for k, v in t.items()},
                   ratio_wall=t["per-step"][0] / t["scan"][0], ratio_cpu=t["per-step"][1] / t["scan"][1],
                   load_after=os.getloadavg()[0])
        rows.append(row)
        print(f"{name:16s} identical={row.get('identical')}  per-step {t['per-step'][0]:.3f} s "
              f"(CPU {t['per-step'][1]:.3f})  scan {t['scan'][0]:.3f} s (CPU {t['scan'][1]:.3f})  ratio wall "
              f"{row['ratio_wall']:.2f}, CPU {row['ratio_cpu']:.2f}  (load {row['load_before']:.2f} -> "
              f"{row['load_after']:.2f})", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"preset": args.preset, "epochs": args.epochs, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
