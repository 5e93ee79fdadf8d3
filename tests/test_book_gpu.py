"""ntknb.book.gpu: the GPU runbook's budget, the smoke test, the GPU presets."""

import json
from pathlib import Path

import pytest

from ntknb.book import gpu
from ntknb.book.params import prepare

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
GPU_PRESETS = sorted(NOTEBOOKS.glob("*" + gpu.PRESET_SUFFIX))


@pytest.mark.parametrize("preset", GPU_PRESETS, ids=[p.name for p in GPU_PRESETS])
def test_gpu_presets_pass_the_notebooks_parameter_checks(preset):
    notebook = NOTEBOOKS / preset.name.replace(gpu.PRESET_SUFFIX, ".py")
    _, _, params, injected = prepare(notebook, [("file", preset)])
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


@pytest.mark.slow
def test_smoke_test_passes_on_this_machine():
    res = gpu.smoke_test()
    assert res["ok"], res
    assert res["analytic_rel_err"] < 1e-3 and res["empirical_rel_err"] < 1e-3
