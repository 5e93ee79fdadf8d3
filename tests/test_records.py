"""Tests for ntknb.records: typed recorded runs, checked reads, atomic appends, every stored file."""

import json
import os

import pytest

from ntknb import paths, records

RUN = dict(dataset="toy", model="cnn", width=2, hidden=4, n_train=16, n_test=8, n_monitor=8, batch_size=8,
           learning_rate=0.05, momentum=0.9, weight_decay=0.0, eps=0.05, attack_steps=1, eval_attack_steps=1,
           clean_epochs=1, epochs=2, mode="fgsm", seed=0, robust_acc=[0.1, 0.2], clean_acc=[0.5, 0.6],
           fgsm_train_acc=[0.0, 0.1, 0.2])


def test_search_record_round_trip():
    rec = records.SearchRecord.from_json(RUN)
    assert rec.to_json() == RUN and records.SearchRecord.from_json(rec.to_json()) == rec
    gpu = dict(RUN, suite_robust_acc=0.25, suite_iter=20, device="NVIDIA H200")
    assert records.SearchRecord.from_json(gpu).to_json() == gpu


@pytest.mark.parametrize("change, field", [
    (dict(eps="0.05"), "'eps'"), (dict(robust_acc=[0.1]), "epochs=2"), (dict(hidden=None), "'hidden'"),
    (dict(stage_sizes=[1]), "stage_sizes"), (dict(mode="trades"), "mode"), (dict(width=0), "'width'"),
    (dict(suite_iter=20), "suite_robust_acc")])
def test_search_record_errors_name_the_field(change, field):
    with pytest.raises(ValueError, match=field):
        records.SearchRecord.from_json(dict(RUN, **change))


def test_load_names_file_line_and_field(tmp_path):
    path = tmp_path / "runs.jsonl"
    path.write_text(json.dumps(RUN) + "\n\n" + json.dumps(dict(RUN, seed="1")) + "\n")
    with pytest.raises(records.RecordError, match=r"runs.jsonl, line 3: field 'seed'"):
        records.load_search_records(path)
    path.write_text("[1]\n")
    with pytest.raises(records.RecordError, match="line 1: a record must be a JSON object"):
        records.load_records(path)
    path.write_text('{"a": 1}\n')
    with pytest.raises(records.RecordError, match=r"line 1: field\(s\) \['b'\] missing"):
        records.load_records(path, fields=("a", "b"))
    assert records.load_records(tmp_path / "none.jsonl", missing_ok=True) == []
    with pytest.raises(FileNotFoundError):
        records.load_records(tmp_path / "none.jsonl")


def test_append_is_atomic_and_checked(tmp_path, monkeypatch):
    path = tmp_path / "search.jsonl"
    records.append_search_records(path, [RUN])
    records.append_search_records(path, [records.SearchRecord.from_json(dict(RUN, seed=1))])
    assert [r.seed for r in records.load_search_records(path)] == [0, 1]
    before = path.read_bytes()
    with pytest.raises(records.RecordError, match="new record 1"):  # checked before anything is written
        records.append_search_records(path, [RUN, {"model": "cnn"}])
    with pytest.raises(records.RecordError, match="NaN|Out of range"):
        records.append_records(path, [{"x": float("nan")}])

    def broken_replace(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)  # the write fails after the temporary file is written
    with pytest.raises(OSError, match="disk full"):
        records.append_search_records(path, [RUN])
    monkeypatch.undo()
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["search.jsonl"]  # no partial line, no leftover


def test_seed_checks_checked_and_counted_once(tmp_path):
    rec = {"seeds": [7, 8], "parameters": {"seed": 7}, "claims": [dict(id="a", verdict="reproduced", measured=1,
                                                                         low=0, high=2)]}
    path = tmp_path / ("x" + records.SEED_CHECK_SUFFIX)
    records.append_records(path, [rec, rec], records.check_seed_check)
    assert records.load_seed_checks(path) == [rec]
    with pytest.raises(records.RecordError, match=r"claims\[0\]' lacks \['low', 'high'\]"):
        records.append_records(path, [dict(rec, claims=[dict(id="a", verdict="x", measured=1)])],
                               records.check_seed_check)
    assert records.seed_check_file("02_eigenfeatures") == paths.DATA / "02_eigenfeatures_seed_check.jsonl"


#: Every record file under notebooks/data/ and its reader.
READERS = {"06_settings_search.jsonl": records.load_search_records, "cifar10_search.jsonl": records.load_search_records,
           "06_co_ladder.jsonl": records.load_ladder_records, "04_pgd_at_settings.jsonl": records.load_settings_records,
           "attempts.jsonl": records.load_records}


@pytest.mark.parametrize("path", sorted(paths.DATA.rglob("*.jsonl")), ids=lambda p: p.name)
def test_every_record_file_loads(path):
    if path.name.endswith(records.SEED_CHECK_SUFFIX):
        assert records.load_seed_checks(path)
        return
    got = READERS[path.name](path)
    raw = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    assert [r.to_json() if isinstance(r, records.SearchRecord) else r for r in got] == raw  # the same values
