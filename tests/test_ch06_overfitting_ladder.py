"""Tests for ntknb.chapters.ch06_overfitting.ladder: the protocol file, one (reduced) ladder run, rung status."""

import copy
from pathlib import Path

import numpy as np
import pytest

import ntknb  # noqa: F401
from ntknb import data
from ntknb.chapters.ch06_overfitting import ladder as lad

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


@pytest.fixture(scope="module")
def protocol():
    return lad.load_protocol(NOTEBOOKS / lad.PROTOCOL_FILES[0])


def test_the_registered_protocol_loads_with_never_used_seeds_and_the_rule(protocol):
    assert protocol["recipe"]["model"] == "tiny_cnn" and protocol["recipe"]["filters"] == 4
    seeds = [s for r in protocol["ladder"]["rungs"] for s in r["seeds"]]
    assert len(seeds) == len(set(seeds)) and min(seeds) >= 11000  # none of the chapter's earlier seeds
    rule = lad.collapse_rule(protocol)
    assert (rule.drop_fraction, rule.fgsm_gap, rule.clean_margin) == (0.25, 0.2, 0.1)
    with pytest.raises(ValueError, match="rung"):
        lad.rung(protocol, "eps99")


def test_the_second_protocol_keeps_the_first_ones_recipe_monitor_and_rule_with_the_injected_feature(protocol):
    second = lad.load_protocol(NOTEBOOKS / lad.PROTOCOL_FILES[1])
    assert second["id"] != protocol["id"] and second["follows"] == protocol["id"]
    for section in ("recipe", "monitor", "rule"):
        assert second[section] == protocol[section]
    first_seeds = {s for r in protocol["ladder"]["rungs"] for s in r["seeds"]}
    for r in second["ladder"]["rungs"]:
        assert r["beta_255"] == r["eps_255"] and not first_seeds & set(r["seeds"])


def test_a_rung_with_a_feature_injects_it_into_training_and_test_points(protocol):
    second = lad.load_protocol(NOTEBOOKS / lad.PROTOCOL_FILES[1])
    second["monitor"].update(n_final=32, n_monitor=16, monitor_iter=3, final_iter=4)
    ds = _fake_cifar()
    feat = lad.injection(lad.rung(second, "feat8"), ds)
    assert feat.beta == 8 / 255 and feat.image_shape == ds.image_shape
    assert lad.injection(lad.rung(protocol, "eps10"), ds) is None
    rec = lad.ladder_run(second, "feat8", 11100, ds, n_train=128, epochs=1)
    assert rec["beta"] == 8 / 255 and rec["protocol"] == "co-ladder-2"
    assert lad.ladder_rows([rec])[0][2] == "8/255"
    text = lad.ladder_text([protocol, second], [dict(rec, reduced=False)])
    assert "Protocol `co-ladder-2`: rung `feat8` (ε = 8/255, feature β = 8/255): 0 of 1" in text
    assert "Protocol `co-ladder-1`: rung `eps10` (ε = 10/255): not run" in text
    summary = lad.ladder_summary([protocol, second], [dict(rec, reduced=False)])
    assert summary["ladder_n_runs"] == 1 and summary["ladder_passed"] == "none"


def test_load_protocol_refuses_a_malformed_file(tmp_path, protocol):
    bad = tmp_path / "p.yaml"
    bad.write_text("- a list\n")
    with pytest.raises(ValueError, match="mapping"):
        lad.load_protocol(bad)
    bad.write_text("id: x\nrecipe: {}\nmonitor: {}\nrule: {}\nladder: {rungs: [{name: a, seeds: [1]}, "
                   "{name: b, seeds: [1]}]}\n")
    with pytest.raises(ValueError, match="seeds of its own"):
        lad.load_protocol(bad)


def _fake_cifar(n_train=160, n_test=48, side=8):
    rng = np.random.default_rng(0)
    prov = data.Provenance("cifar10", "synthetic", "none", "", lossy=False)
    return data.Dataset("cifar10", rng.uniform(size=(n_train, side, side, 3)).astype(np.float32),
                        rng.integers(0, 10, n_train), rng.uniform(size=(n_test, side, side, 3)).astype(np.float32),
                        rng.integers(0, 10, n_test), data.CIFAR10_CLASSES, prov)


def test_a_reduced_ladder_run_is_a_complete_record_and_never_counts(protocol):
    p = copy.deepcopy(protocol)
    p["monitor"].update(n_final=32, n_monitor=16, monitor_iter=3, final_iter=4)
    ds = _fake_cifar()
    rec = lad.ladder_run(p, "eps10", 11000, ds, n_train=128, epochs=2)
    assert rec["reduced"] and rec["setting"]["n_train"] == 128 and len(rec["monitor"]) == 3
    assert rec["final"]["n_points"] == 32 and 0 <= rec["final"]["suite_acc"] <= rec["final"]["clean_acc"]
    assert set(rec["judgement"]) >= {"ended_collapsed", "peak", "collapse_epoch", "failed"}
    assert len(lad.ladder_rows([rec])[0]) == len(lad.LADDER_COLUMNS)
    assert len(lad.monitor_rows(rec)) == 3
    assert lad.rung_status(p, "eps10", [rec])["runs"] == 0  # reduced runs are never evidence
    with pytest.raises(ValueError, match="seed"):
        lad.ladder_run(p, "eps10", 11010, ds, n_train=128, epochs=1)


def _rec(p, rung, seed, collapsed):
    return {"protocol": p["id"], "rung": rung, "seed": seed, "reduced": False,
            "judgement": {"ended_collapsed": collapsed}}


def test_rung_status_passes_fails_or_stays_open(protocol):
    p = protocol
    seeds = lad.rung(p, "eps12")["seeds"]
    st = lad.rung_status(p, "eps12", [_rec(p, "eps12", s, True) for s in seeds[:4]])
    assert (st["status"], st["collapsed"], st["seeds_left"]) == ("passed", 4, seeds[4:])
    assert st["rate"].low < 1 and st["rate"].high == 1.0
    st = lad.rung_status(p, "eps12", [_rec(p, "eps12", s, False) for s in seeds[:2]])
    assert st["status"] == "failed"  # 2 not collapsed of 5: 4 of 5 is out of reach
    st = lad.rung_status(p, "eps12", [_rec(p, "eps12", seeds[0], False), _rec(p, "eps10", 11000, True)])
    assert (st["status"], st["runs"]) == ("open", 1)
