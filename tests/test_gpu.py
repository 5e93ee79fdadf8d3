"""ntknb.gpu: the GPU runbook's budget and records, the smoke test, the GPU presets."""

import json
from pathlib import Path

import pytest
import yaml

from ntknb import gpu, runner

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
GPU_PRESETS = sorted(NOTEBOOKS.glob("*" + gpu.PRESET_SUFFIX))


@pytest.mark.parametrize("preset", GPU_PRESETS, ids=[p.name for p in GPU_PRESETS])
def test_gpu_presets_pass_the_notebooks_parameter_checks(preset):
    notebook = NOTEBOOKS / preset.name.replace(gpu.PRESET_SUFFIX, ".py")
    _, _, params, injected = runner.prepare(notebook, [("file", preset)])
    assert injected and set(injected) <= set(params)


def test_at_least_three_chapters_have_gpu_presets():
    assert len(GPU_PRESETS) >= 3


def test_preset_path_names_the_known_presets():
    with pytest.raises(ValueError, match="no GPU preset for 'nope'.*06_catastrophic_overfitting"):
        gpu.preset_path("nope")


class FakeClock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_run_presets_gives_each_run_what_is_left_of_the_budget(tmp_path):
    clock = FakeClock()
    names = [p.name.replace(gpu.PRESET_SUFFIX, "") for p in GPU_PRESETS][:3]
    seen = []

    def runner_(name, out, timeout_s, kernel):
        seen.append((name, timeout_s, kernel))
        out.mkdir()
        clock.t += {0: 50, 1: 200}.get(len(seen) - 1, 0)  # 2nd run uses its whole cap
        return 0 if len(seen) == 1 else 124

    manifest = gpu.run_presets(names, tmp_path / "out", budget_s=260, min_run_s=30,
                               max_run_s={names[1]: 200}, kernel="k", runner=runner_,
                               clock=clock, archive=tmp_path / "out.tar.gz")
    runs = manifest["runs"]
    assert [s[1] for s in seen] == [260, 200]  # third: 10 s left < min_run_s
    assert runs[names[0]]["status"] == "done" and runs[names[0]]["wall_s"] == 50
    assert runs[names[1]]["status"] == "timeout"
    assert runs[names[2]]["status"] == "skipped"
    on_disk = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert on_disk["runs"] == runs and on_disk["device"]["device_count"] >= 1
    assert (tmp_path / "out.tar.gz").is_file()


def test_run_presets_refuses_bad_input_before_running(tmp_path):
    def never(*a):
        raise AssertionError("ran")

    with pytest.raises(ValueError, match="no GPU preset"):
        gpu.run_presets(["nope"], tmp_path, 100, runner=never)
    with pytest.raises(ValueError, match="budget_s"):
        gpu.run_presets([], tmp_path, float("nan"), runner=never)


def _fake_run_folder(tmp_path, status="done"):
    out = tmp_path / "runs"
    (out / "06_catastrophic_overfitting").mkdir(parents=True)
    run = out / "06_catastrophic_overfitting"
    (run / "metrics.json").write_text(json.dumps({"co_fgsm_collapsed_count": 2, "n_seeds": 3}))
    (run / "parameters.yaml").write_text(yaml.safe_dump({"eps": 0.03, "dataset": "cifar10"}))
    manifest = {"started": "2026-11-26T15:00:00+00:00", "matmul_precision": "highest",
                "device": {"backend": "gpu", "device_count": 1, "devices": ["NVIDIA H200"]},
                "versions": {"jax": "0.11.2"},
                "runs": {"06_catastrophic_overfitting": {"status": status, "wall_s": 201.5,
                                                          "preset": "x.gpu.yaml"}}}
    (out / "manifest.json").write_text(json.dumps(manifest))
    return out


def test_record_then_load_round_trip(tmp_path):
    out = _fake_run_folder(tmp_path)
    dest = tmp_path / "gpu"
    assert gpu.record(out, dest) == ["06_catastrophic_overfitting"]
    rec = gpu.load_recorded("06_catastrophic_overfitting", dest)
    assert rec.device == "NVIDIA H200" and rec.wall_s == 201.5 and rec.date == "2026-11-26"
    assert rec.get("co_fgsm_collapsed_count") == 2 and rec.parameters["dataset"] == "cifar10"
    assert gpu.load_recorded("01_transfer_attacks", dest) is None
    rows = gpu.comparison_rows({"n_seeds": 3}, rec, [("n_seeds", "seeds"), ("absent", "x")])
    assert rows == [["seeds", 3, 3], ["x", None, None]]


def test_record_keeps_unfinished_runs_as_attempts_only(tmp_path):
    out = _fake_run_folder(tmp_path, status="timeout")
    dest = tmp_path / "gpu"
    assert gpu.record(out, dest) == []
    assert gpu.load_recorded("06_catastrophic_overfitting", dest) is None
    (attempt,) = [json.loads(line) for line in (dest / "attempts.jsonl").read_text().splitlines()]
    assert attempt["status"] == "timeout" and attempt["device"] == "NVIDIA H200"
    assert attempt["parameters"]["dataset"] == "cifar10" and attempt["cells"] == []


def test_attempts_record_each_cells_time(tmp_path):
    import nbformat

    out = _fake_run_folder(tmp_path, status="timeout")
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("x = 1\ny = 2", metadata={"papermill": {"status": "completed", "duration": 1.26}}),
        nbformat.v4.new_code_cell("train()", outputs=[nbformat.v4.new_output("stream", name="stdout", text="epoch 1\repoch 2\n")],
                                  metadata={"papermill": {"status": "interrupted", "duration": 80.0}}),
        nbformat.v4.new_code_cell("plot()", metadata={"papermill": {"status": "pending"}}),
    ])
    nbformat.write(nb, out / "06_catastrophic_overfitting" / "06_catastrophic_overfitting.ipynb")
    gpu.record(out, tmp_path / "gpu")
    attempt = json.loads((tmp_path / "gpu" / "attempts.jsonl").read_text())
    assert attempt["cells"] == [
        {"cell": 0, "status": "completed", "duration_s": 1.3, "source": "x = 1", "last_output": ""},
        {"cell": 1, "status": "interrupted", "duration_s": 80.0, "source": "train()", "last_output": "epoch 2"},
    ]


def test_recorded_runs_in_the_book_name_a_gpu_device():
    if not gpu.RECORD_DIR.is_dir():
        return
    for folder in sorted(p for p in gpu.RECORD_DIR.glob("*") if p.is_dir()):
        rec = gpu.load_recorded(folder.name)
        assert rec is not None, folder
        assert any(tag in rec.device for tag in ("H100", "H200")), rec.device
        assert (NOTEBOOKS / f"{folder.name}.py").is_file()


@pytest.mark.slow
def test_smoke_test_passes_on_this_machine():
    res = gpu.smoke_test()
    assert res["ok"], res
    assert res["analytic_rel_err"] < 1e-3 and res["empirical_rel_err"] < 1e-3


def test_recorded_section_shows_both_columns_and_glues_the_gpu_values(tmp_path, monkeypatch):
    from ntknb import report

    glued = {}
    monkeypatch.setattr("myst_nb.glue", lambda name, value, display=False: glued.update({name: value}))
    out = _fake_run_folder(tmp_path)
    dest = tmp_path / "gpu"
    gpu.record(out, dest)
    report.glue("n_seeds", 3)
    html = gpu.recorded_section("06_catastrophic_overfitting",
                                [("n_seeds", "seeds"), ("co_fgsm_collapsed_count", "collapsed")],
                                root=dest).data
    assert "<td>seeds</td><td>3</td><td>3</td>" in html
    assert "<td>collapsed</td><td>&ndash;</td><td>2</td>" in html and "NVIDIA H200" in html
    assert glued["gpu_device"] == "NVIDIA H200" and glued["gpu_co_fgsm_collapsed_count"] == 2
    assert glued["gpu_wall_min"] == pytest.approx(201.5 / 60)
    assert "eps = 0.03" in glued["gpu_setting"]


def test_recorded_section_without_a_record_says_how_to_make_one(tmp_path, monkeypatch):
    monkeypatch.setattr("myst_nb.glue", lambda *a, **k: None)
    html = gpu.recorded_section("06_catastrophic_overfitting", [], root=tmp_path).data
    assert "scripts/gpu_runs" in html
