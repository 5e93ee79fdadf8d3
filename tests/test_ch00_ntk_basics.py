"""Tests for ntknb.chapters.ch00_ntk_basics (chapter 00): schema and the values it glues."""

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from ntknb.book.params import load_notebook, notebook_parameters
from ntknb.chapters import ch00_ntk_basics as ch

NB = Path(__file__).resolve().parents[1] / "notebooks" / "00_ntk_basics.py"


def params(**changes):
    defaults = {n: p.default for n, p in notebook_parameters(load_notebook(NB)).items()}
    return ch.Params.from_values({**defaults, **changes})


def test_params_rules():
    p = params()
    for change, name in [(dict(modes=[p.n_train + 1]), r"modes\[0\]"), (dict(probe_size=p.n_train + 1), "probe_size"),
                         (dict(ntk_widths=[64]), "ntk_widths"), (dict(train_widths=[0, 8]), r"train_widths\[0\]"),
                         (dict(lr_fraction=1.0), "lr_fraction"), (dict(depth=6), "depth")]:
        with pytest.raises(ValueError, match=f"'{name}'"):
            params(**change)


def test_spectral_values_measure_the_deviation_in_units_of_the_target():
    p = params(modes=[1, 3])
    gd = np.array([[2.0, 1.0, 4.0], [1.0, 0.5, 2.0]])
    sp = ch.SpectralStudy(measured=gd + np.array([[0, 0, 0], [0.2, 0, 0.4]]), theory_gd=gd, theory_flow=gd * 0.5,
                          idx=np.array([0, 2]), scale=gd[0, [0, 2]], eigenvalues=np.array([8.0, 4.0, 2.0]))
    v = ch.spectral_values(p, sp)
    assert v["spectral_max_dev"] == pytest.approx(0.1) and v["lambda_ratio"] == 4.0
    assert v["spectral_max_dev_flow"] == pytest.approx(0.5)  # (2.0 - 1.0) / 2.0 at t = 0
    assert (v["mode_first"], v["mode_last"]) == (1, 3)


def test_lazy_values_accuracies_and_agreement():
    p = params(train_widths=[8, 16])
    outs = {8: np.array([[1.0, 0.0], [0.0, 1.0]]), 16: np.array([[1.0, 0.0], [1.0, 0.0]])}
    nets = {w: SimpleNamespace(run=SimpleNamespace(params=["p0", "p1"]), outputs=lambda q, x, o=o: o,
                               relative_weight_change=lambda i: 0.01) for w, o in outs.items()}
    s = ch.LazyStudy(kernel=None, lr=0.5, steps=np.array([0, 4]), f_kernel=np.stack([outs[8], outs[8]]), nets=nets,
                     gaps={8: np.array([1.0, 0.2]), 16: np.array([1.0, 0.1])})
    v = ch.lazy_values(p, s, SimpleNamespace(x_test=None, labels_test=np.array([0, 1])))
    assert (v["clean_acc_net"], v["clean_acc_kernel"], v["agreement"]) == (0.5, 1.0, 0.5)
    assert (v["lazy_gap_final_widest"], v["lazy_gap_final_narrowest"], v["t_final"]) == (0.1, 0.2, 2.0)
    assert ch.summary_text(-0.5, v).splitlines()[2].endswith("0.50 / 1.00")


def _claims_for(p, errors, g, f):
    """Claims of fake studies: ``g`` maps each width of ``p.train_widths`` to the network's test outputs."""
    nets = {w: SimpleNamespace(run=SimpleNamespace(params=["p0", "p1"]), outputs=lambda q, x, o=g[w]: o)
            for w in p.train_widths}
    s = ch.LazyStudy(kernel=None, lr=0.5, steps=np.array([0, 4]), f_kernel=np.stack([f, f]), nets=nets, gaps={})
    return {c.id: c for c in ch.claims(p, errors, s, SimpleNamespace(x_test=None))}


def _outputs(p, f, gap_of_width, rng):
    """Network outputs at a relative distance ``gap_of_width(w)`` (about) from ``f``, per width."""
    noise = {w: rng.normal(size=f.shape) for w in p.train_widths}  # independent per width
    return {w: f + gap_of_width(w) * np.linalg.norm(f) / np.linalg.norm(e) * e for w, e in noise.items()}


def test_the_register_declares_the_chapter_s_claims():
    specs = ch.claim_specs()
    assert list(specs) == ["ch00.ntk_error_slope", "ch00.lazy_gap_width_trend", "ch00.agreement"]
    assert [(s.direction, s.threshold) for s in specs.values()] == [("less", -0.25), ("less", 0.0), ("greater", 0.9)]
    assert all(s.source == "kernels_data_physics" and s.justification and not s.preconditions for s in specs.values())


def test_claims_are_well_formed_and_follow_the_thresholds():
    from ntknb.claims import Claim

    specs = ch.claim_specs()
    p = params(ntk_widths=[64, 256, 1024], ntk_seeds=3, train_widths=[256, 1024, 4096])
    w = np.asarray(p.ntk_widths, float)
    errors = np.stack([w ** -0.5 * c for c in (1.0, 1.1, 0.9)], axis=1) * np.array([[1.0, 1.02, 0.98]] * 3)
    rng = np.random.default_rng(0)
    f = rng.normal(size=(400, 10))
    cs = _claims_for(p, errors, _outputs(p, f, lambda m: 3.0 * m ** -0.5, rng), f)  # gap 0.19 -> 0.047
    assert list(cs) == list(specs)
    for c in cs.values():
        assert Claim.from_json(c.to_json()) == c and c.n_seeds >= 1
        assert (c.direction, c.threshold, c.claim) == (specs[c.id].direction, specs[c.id].threshold, specs[c.id].claim)
    slope = cs["ch00.ntk_error_slope"]
    assert slope.n_seeds == 3 and slope.n_test is None and slope.measured == pytest.approx(-0.5, abs=0.02)
    assert slope.verdict == "reproduced"
    trend = cs["ch00.lazy_gap_width_trend"]
    assert trend.measured == pytest.approx(-0.5, abs=0.01) and trend.low < trend.measured < trend.high
    assert trend.verdict == "reproduced" and trend.n_test == 400 and trend.n_seeds == 1
    assert cs["ch00.agreement"].verdict == "reproduced" and cs["ch00.agreement"].n_test == 400


def test_claim_verdicts_flip_when_the_measured_interval_crosses_the_threshold():
    p = params(ntk_widths=[64, 256, 1024], ntk_seeds=3, train_widths=[256, 1024])
    w = np.asarray(p.ntk_widths, float)
    flat = np.stack([w ** -0.05 * c for c in (1.0, 1.1, 0.9)], axis=1) * np.array([[1.0, 1.02, 0.98]] * 3)
    rng = np.random.default_rng(0)
    f = rng.normal(size=(400, 10))
    cs = _claims_for(p, flat, _outputs(p, f, lambda m: 0.5 * (m / 256) ** 0.3, rng), f)  # gap grows with width
    assert cs["ch00.ntk_error_slope"].verdict == "contradicted"
    assert cs["ch00.lazy_gap_width_trend"].verdict == "contradicted" and cs["ch00.agreement"].verdict == "contradicted"
    one = params(ntk_widths=[64, 256], ntk_seeds=1, train_widths=[8, 16])
    same = _claims_for(one, flat[:2, :1], {8: f + 0.1 * rng.normal(size=f.shape), 16: f + 0.1 * rng.normal(size=f.shape)}, f)
    assert same["ch00.ntk_error_slope"].verdict == "inconclusive"  # one initialisation: no interval
    assert same["ch00.lazy_gap_width_trend"].verdict == "inconclusive"  # the same gap at both widths


def test_lazy_gap_slope_interval_is_the_fit_of_the_glued_gaps():
    rng = np.random.default_rng(2)
    f = rng.normal(size=(60, 3))
    widths = [100, 400, 1600]
    g = [f + c * rng.normal(size=f.shape) for c in (0.4, 0.2, 0.1)]
    iv = ch.lazy_gap_slope_interval(widths, g, f, seed=3)
    gaps = [np.linalg.norm(x - f) / np.linalg.norm(f) for x in g]
    from ntknb import lazy

    assert iv.estimate == pytest.approx(lazy.loglog_slope(widths, gaps)[0]) and iv.n == 60
    assert iv.low < iv.estimate < iv.high < 0
    with pytest.raises(ValueError, match="'widths'"):
        ch.lazy_gap_slope_interval([100], g[:1], f)
    with pytest.raises(ValueError, match="'train_widths'"):
        params(train_widths=[1024, 256])
    with pytest.raises(ValueError, match="'train_widths'"):
        params(train_widths=[1024])


def test_lazy_gap_interval_is_the_glued_ratio():
    rng = np.random.default_rng(1)
    f = rng.normal(size=(50, 3))
    g = f + 0.2 * rng.normal(size=f.shape)
    iv = ch.lazy_gap_interval(g, f)
    assert iv.estimate == pytest.approx(np.linalg.norm(g - f) / np.linalg.norm(f))
    assert iv.low < iv.estimate < iv.high and iv.n == 50
