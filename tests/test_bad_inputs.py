"""Bad and hostile inputs (issue 31), as tables a reader can extend.

Each row is ``(case id, inputs, expected message fragment, expected effect)``. Every command
here is refused before any work (``--dry-run`` or a check that runs before the kernel starts)
or handled as documented; none runs a real chapter. Effects: ``unchanged`` — every file under
the test's folder is byte-for-byte as before (nothing deleted, nothing written); ``accepted``
— the command succeeds and prints the fragment.
"""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ntknb import attacks, cli, gpu, runner, schema

ROOT = runner.REPO_ROOT

TINY = '''\
# %% tags=["parameters"]
n = 3  # an int
lr = 0.5
name = "abc"

# %%
print(n * lr, name)
'''

MARKER = {"ntknb_run": 1, "run_id": "r1", "pid": 1, "host": "h", "status": "done",
          "files": ["tiny.ipynb", "metrics.json", "parameters.yaml", "status.json"]}


def snapshot(folder: Path) -> dict:
    out = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            key = str(p.relative_to(folder))
            if p.is_symlink():
                out[key] = ("link", os.readlink(p))
            elif p.is_file():
                out[key] = p.read_bytes()
            elif p.is_dir():
                out[key] = "dir"
            else:
                out[key] = "special"
    return out


# ------------------------------------------------------------------ setups of the CLI rows


def _dl_folder(tmp):  # downloaded notebooks, no marker (issue 31, item 1)
    d = tmp / "dl"
    d.mkdir()
    for name in ("00_ntk_basics.ipynb", "01_transfer_attacks.ipynb"):
        (d / name).write_text('{"metadata": {"papermill": {}}}')
    return d


def _stray_status(tmp):
    d = tmp / "st"
    d.mkdir()
    (d / "status.json").write_text('{"ntknb_run": 1, "status": "done"}')
    (d / "tiny.ipynb").write_text("{}")
    return d


def _run_folder(tmp, extra=None):
    d = tmp / "prev"
    d.mkdir()
    for name in MARKER["files"]:
        (d / name).write_text("{}")
    (d / runner.RUN_MARKER).write_text(json.dumps(MARKER))
    if extra:
        extra(d)
    return d


def _user_file(tmp):
    return _run_folder(tmp, lambda d: (d / "notes.txt").write_text("mine"))


def _user_folder(tmp):
    return _run_folder(tmp, lambda d: (d / "figures").mkdir())


def _symlinked_member(tmp):
    def swap(d):
        (tmp / "elsewhere.json").write_text("{}")
        (d / "metrics.json").unlink()
        (d / "metrics.json").symlink_to(tmp / "elsewhere.json")
    return _run_folder(tmp, swap)


def _bad_marker(tmp):
    return _run_folder(tmp, lambda d: (d / runner.RUN_MARKER).write_text('{"ntknb_run": 1}'))


def _a_file(tmp):
    (tmp / "afile").write_text("x")
    return tmp / "afile"


def _a_symlink(tmp):
    (tmp / "real").mkdir()
    (tmp / "link").symlink_to(tmp / "real")
    return tmp / "link"


def _dangling(tmp):
    (tmp / "dangling").symlink_to(tmp / "nowhere")
    return tmp / "dangling"


def _long_name(tmp):
    return tmp / ("x" * 256)


def _where_the_notebook_is(tmp):
    return tmp


def _fifo(tmp):
    os.mkfifo(tmp / "fifo.yaml")
    return tmp / "fifo.yaml"


def _big(tmp):
    (tmp / "big.yaml").write_bytes(b"n: 1\n" + b"#" * runner.MAX_TEXT_BYTES)
    return tmp / "big.yaml"


def _latin1(tmp):
    (tmp / "latin1.yaml").write_bytes("name: caf\xe9\n".encode("latin-1"))
    return tmp / "latin1.yaml"


def _hash_in_quotes(tmp):
    (tmp / "q.yaml").write_text("name: 'abc # x'\n")
    return tmp / "q.yaml"


def _folder(tmp):
    (tmp / "adir").mkdir()
    return tmp / "adir"


def _fixed(path):
    return lambda tmp: Path(path)


# (case id, argv after `ntknb run NB` ({out} / {file} = what the setup returns), setup,
#  expected fragment, effect)
CLI_CASES = [
    # --out: only what a marker proves is an earlier run is ever replaced
    ("out-downloaded-notebooks", ["--out", "{out}"], _dl_folder, "no .ntknb-run.json marker", "unchanged"),
    ("out-stray-status-json", ["--out", "{out}"], _stray_status, "no .ntknb-run.json marker", "unchanged"),
    ("out-run-plus-user-file", ["--out", "{out}"], _user_file, "notes.txt", "unchanged"),
    ("out-run-plus-user-folder", ["--out", "{out}"], _user_folder, "figures", "unchanged"),
    ("out-run-member-symlinked", ["--out", "{out}"], _symlinked_member, "metrics.json", "unchanged"),
    ("out-invalid-marker", ["--out", "{out}"], _bad_marker, "no .ntknb-run.json marker", "unchanged"),
    ("out-is-a-file", ["--out", "{out}"], _a_file, "not a folder", "unchanged"),
    ("out-is-a-symlink", ["--out", "{out}"], _a_symlink, "symbolic link", "unchanged"),
    ("out-dangling-symlink", ["--out", "{out}"], _dangling, "dangling", "unchanged"),
    ("out-256-char-name", ["--out", "{out}"], _long_name, "bytes long", "unchanged"),
    ("out-holds-the-notebook", ["--out", "{out}"], _where_the_notebook_is, "holds the notebook being run",
     "unchanged"),
    ("out-notebooks", ["--out", "{out}"], _fixed(ROOT / "notebooks"), "notebooks", "unchanged"),
    ("out-inside-notebooks", ["--out", "{out}"], _fixed(ROOT / "notebooks" / "data" / "x"),
     "tracked folder notebooks/", "unchanged"),
    ("out-package", ["--out", "{out}"], _fixed(ROOT / "ntknb"), "tracked folder ntknb/", "unchanged"),
    ("out-tests-sub", ["--out", "{out}"], _fixed(ROOT / "tests" / "runs"), "tracked folder tests/", "unchanged"),
    ("out-checkout", ["--out", "{out}"], _fixed(ROOT), "checkout", "unchanged"),
    ("out-parent-of-checkout", ["--out", "{out}"], _fixed(ROOT.parent), "checkout", "unchanged"),
    # -f: regular files only, bounded reads, UTF-8
    ("file-dev-zero", ["-f", "/dev/zero"], None, "is a device", "unchanged"),
    ("file-dev-urandom", ["-f", "/dev/urandom"], None, "is a device", "unchanged"),
    ("file-fifo-no-writer", ["-f", "{out}"], _fifo, "is a FIFO", "unchanged"),
    ("file-folder", ["-f", "{out}"], _folder, "is a folder", "unchanged"),
    ("file-too-big", ["-f", "{out}"], _big, "larger than", "unchanged"),
    ("file-not-utf8", ["-f", "{out}"], _latin1, "not UTF-8", "unchanged"),
    ("file-missing", ["-f", "{out}"], _fixed("/nonexistent/p.yaml"), "cannot read parameter file", "unchanged"),
    ("file-quoted-hash-kept", ["-f", "{out}"], _hash_in_quotes, '"name": "abc # x"', "accepted"),
    # YAML numbers: decimal only (YAML 1.2 core), '#' kept, negative values passable
    ("p-octal-017", ["-p", "n", "017"], None, "only decimal numbers", "unchanged"),
    ("p-hex-0x10", ["-p", "n", "0x10"], None, "only decimal numbers", "unchanged"),
    ("p-octal-0o17", ["-p", "n", "0o17"], None, "only decimal numbers", "unchanged"),
    ("p-underscore", ["-p", "n", "1_000"], None, "only decimal numbers", "unchanged"),
    ("p-base-60", ["-p", "n", "1:30"], None, "only decimal numbers", "unchanged"),
    ("p-float-hex", ["-p", "lr", "0x1p-3"], None, "expects float", "unchanged"),
    ("p-str-keeps-017", ["-p", "name", "017"], None, '"name": "017"', "accepted"),
    ("p-hash-kept", ["-p", "name", "cifar10 # x"], None, '"name": "cifar10 # x"', "accepted"),
    ("p-quoted-hash-kept", ["-p", "name", "'cifar10 # x'"], None, '"name": "cifar10 # x"', "accepted"),
    ("p-negative-float", ["-p", "lr", "-1e-3"], None, '"lr": -0.001', "accepted"),
    ("p-negative-int", ["-p", "n", "-3"], None, '"n": -3', "accepted"),
    ("p-negative-dot", ["-p", "lr", "-.5"], None, '"lr": -0.5', "accepted"),
    ("p-value-like-option", ["-p", "name", "--out"], None, '"name": "--out"', "accepted"),
    # --cell-timeout: 0 used to mean "no limit"
    ("cell-timeout-0", ["--cell-timeout", "0"], None, "--cell-timeout must be", "unchanged"),
    ("cell-timeout-negative", ["--cell-timeout", "-5"], None, "--cell-timeout must be", "unchanged"),
]


@pytest.mark.parametrize("case, argv, setup, fragment, effect", CLI_CASES, ids=[c[0] for c in CLI_CASES])
def test_cli_bad_inputs(tmp_path, capsys, case, argv, setup, fragment, effect):
    nb = tmp_path / "tiny.py"
    nb.write_text(TINY)
    target = setup(tmp_path) if setup else None
    argv = [a.replace("{out}", str(target)) if target is not None else a for a in argv]
    watched = tmp_path if target is None or tmp_path in Path(os.path.abspath(target)).parents or \
        Path(target) == tmp_path else Path(target)
    before = snapshot(watched) if watched.is_dir() and watched != ROOT and watched != ROOT.parent else None
    code = cli.main(["run", str(nb), *argv, "--dry-run"])
    out, err = capsys.readouterr()
    if effect == "accepted":
        assert code == 0, err
        assert fragment in out, out
        return
    assert code == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ntknb: error: ") and "Traceback" not in err, err
    assert fragment in err, err
    if before is not None:
        assert snapshot(watched) == before


# ----------------------------------------------------------- rows needing more than --dry-run


@pytest.mark.skipif(not os.path.ismount("/dev/shm"), reason="needs a mount point to point --out at")
def test_out_mount_point_refused_before_work(tmp_path, capsys):
    nb = tmp_path / "tiny.py"
    nb.write_text(TINY)
    code = cli.main(["run", str(nb), "--out", "/dev/shm", "--dry-run"])
    assert code == 2 and "mount point" in capsys.readouterr().err


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into a read-only folder")
def test_out_read_only_refused_before_work(tmp_path, capsys):
    nb = tmp_path / "tiny.py"
    nb.write_text(TINY)
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        code = cli.main(["run", str(nb), "--out", str(ro), "--dry-run"])
        assert code == 2 and "not writable" in capsys.readouterr().err
    finally:
        ro.chmod(0o755)


def test_second_run_into_a_locked_out_is_refused(tmp_path, capsys):
    """A run into a folder another live run holds (its lock, O_EXCL) is refused before the kernel starts."""
    nb = tmp_path / "tiny.py"
    nb.write_text(TINY)
    lock = tmp_path / ".run.ntknb-lock"
    lock.write_text(json.dumps({"ntknb_run": 1, "run_id": "other", "pid": os.getpid(), "host": runner._HOST}))
    before = snapshot(tmp_path)
    code = cli.main(["run", str(nb), "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and "another `ntknb run`" in err and str(lock) in err, err
    assert snapshot(tmp_path) == before


def test_stale_lock_and_partials_of_dead_runs_are_cleaned_only_if_ours(tmp_path):
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = int(proc.stdout)
    out = tmp_path / "run"
    ours = tmp_path / ".run.ntknb-partial-abc"
    ours.mkdir()
    (ours / runner.RUN_MARKER).write_text(json.dumps(dict(MARKER, pid=dead, host=runner._HOST, files=[])))
    alive = tmp_path / ".run.ntknb-partial-live"
    alive.mkdir()
    (alive / runner.RUN_MARKER).write_text(json.dumps(dict(MARKER, pid=os.getpid(), host=runner._HOST, files=[])))
    foreign = tmp_path / ".run.ntknb-partial-foreign"  # no marker: not provably ours
    foreign.mkdir()
    (foreign / "keep.txt").write_text("mine")
    assert runner.clean_stale_partials(out) == [ours]
    assert alive.is_dir() and (foreign / "keep.txt").read_text() == "mine"
    lock = runner._OutLock(out, "new")
    (tmp_path / ".run.ntknb-lock").write_text(json.dumps({"pid": dead, "host": runner._HOST, "run_id": "x"}))
    lock.acquire()  # a stale lock is taken over
    assert json.loads((tmp_path / ".run.ntknb-lock").read_text())["run_id"] == "new"
    lock.release()
    assert not (tmp_path / ".run.ntknb-lock").exists()


def test_timings_are_kept_apart_from_results():
    results, timings = runner.split_timings({"acc": 0.5, "runtime_s": 12.0, "cpu_time_s": 3.0, "claims": []})
    assert results == {"acc": 0.5, "claims": []} and timings == {"runtime_s": 12.0, "cpu_time_s": 3.0}


# ------------------------------------------------------------------------------- seeds

SEED_CASES = [
    ("seed-max-plus-ntk-seeds", "00_ntk_basics", ["-p", "seed", "4294967295"], "seed + ntk_seeds <= 2**32"),
    ("seed-max-plus-n-seeds-05", "05_bn_buffers", ["-p", "seed", "4294967293"], "seed + n_seeds <= 2**32"),
    ("seed-max-plus-n-seeds-06", "06_catastrophic_overfitting", ["-p", "seed", "4294967294"],
     "seed + n_seeds <= 2**32"),
    ("seed-2-to-32", "00_ntk_basics", ["-p", "seed", "4294967296"], "2**32"),
    ("seed-negative", "05_bn_buffers", ["-p", "seed", "-1"], "seed"),
    ("seed-hex", "05_bn_buffers", ["-p", "seed", "0x10"], "only decimal numbers"),
]


@pytest.mark.parametrize("case, notebook, argv, fragment", SEED_CASES, ids=[c[0] for c in SEED_CASES])
def test_seed_bad_inputs(capsys, case, notebook, argv, fragment):
    code = cli.main(["run", notebook, *argv, "--dry-run"])
    err = capsys.readouterr().err
    assert code == 2 and fragment in err and len(err.strip().splitlines()) == 1, err


# What the run would refuse after loading the data (or after hours of work) is refused by
# --dry-run (issue 31, items 5 and 8): seeds a chapter derives with an offset, subsamples larger
# than the data's classes allow, unknown or repeated class names, unbounded widths, steps and
# epochs. (case id, notebook, argv, expected fragment; None: accepted, the boundary value.)
DRY_RUN_CASES = [
    # seeds the chapter derives: 04's probe sets (seed + n_seeds - 1 + 10**6), 05's probe (seed + 1000)
    ("seed-probe-offset-04", "04_at_kernel_dynamics", ["-p", "seed", "4293967294"], "[0, 4293967293]"),
    ("seed-probe-offset-04-max", "04_at_kernel_dynamics", ["-p", "seed", "4293967293"], None),
    ("seed-probe-offset-04-n-seeds", "04_at_kernel_dynamics", ["-p", "seed", "4293967293", "-p", "n_seeds", "4"],
     "seed + n_seeds - 1 + 10**6"),
    ("seed-probe-offset-05", "05_bn_buffers", ["-p", "seed", "4294966296"], "seed + 1000"),
    ("seed-probe-offset-05-max", "05_bn_buffers", ["-p", "seed", "4294966295"], None),
    ("n-train-beyond-mnist-00", "00_ntk_basics", ["-p", "n_train", "60000"], "at most 54210"),
    ("width-unbounded-00", "00_ntk_basics", ["-p", "train_widths", "[64, 100000]"], "train_widths"),
    ("lin-n-train-beyond-pair-00a", "00a_robustness_toy_models", ["-p", "lin_n_train", "20000"], "at most 10842"),
    ("attack-iters-unbounded-00a", "00a_robustness_toy_models", ["-p", "attack_iters", "20000"], "attack_iters"),
    ("mnist-n-train-beyond-01", "01_transfer_attacks", ["-p", "mnist_n_train", "60000"], "at most 54210"),
    ("cifar-n-test-odd-01", "01_transfer_attacks", ["-p", "cifar_n_test", "201"], "multiple of the number of classes 2"),
    ("sweep-width-unbounded-01", "01_transfer_attacks", ["-p", "sweep_widths", "[256, 100000]"], "sweep_widths"),
    ("train-steps-unbounded-01", "01_transfer_attacks", ["-p", "cifar_train_steps", "1000000"], "cifar_train_steps"),
    ("seed-probe-offset-06", "06_catastrophic_overfitting", ["-p", "seed", "4294966296"], "seed + 1000"),
    ("seed-probe-offset-06-max", "06_catastrophic_overfitting", ["-p", "seed", "4294966295"], None),
    ("n-train-beyond-mnist-06", "06_catastrophic_overfitting", ["-p", "n_train", "60000"], "at most 54210"),
    ("width-unbounded-06", "06_catastrophic_overfitting", ["-p", "width", "100000"], "width"),
    ("epochs-unbounded-06", "06_catastrophic_overfitting", ["-p", "epochs", "20000"], "epochs"),
    ("eval-iter-unbounded-06", "06_catastrophic_overfitting", ["-p", "eval_iter", "20000"], "eval_iter"),
    # subsample sizes beyond the data (class-balanced: k x the smallest class of the split)
    ("n-train-beyond-mnist-04", "04_at_kernel_dynamics", ["-p", "n_train", "60000"], "at most 54210"),
    ("n-train-mnist-max-04", "04_at_kernel_dynamics", ["-p", "n_train", "54210"], None),
    ("n-train-beyond-cifar-04", "04_at_kernel_dynamics", ["-p", "dataset", "cifar10", "-p", "n_train", "50010"],
     "at most 50000"),
    ("n-test-beyond-mnist-04", "04_at_kernel_dynamics", ["-p", "n_test", "10000"], "'n_test' must be at most 8920"),
    ("n-train-not-multiple-04", "04_at_kernel_dynamics", ["-p", "n_train", "1005"], "multiple of the number"),
    ("n-train-beyond-mnist-05", "05_bn_buffers", ["-p", "n_train", "55000"], "'n_train' must be at most 54210"),
    ("n-test-beyond-cifar-05", "05_bn_buffers", ["-p", "dataset", "cifar10", "-p", "n_test", "10010"],
     "'n_test' must be at most 10000"),
    ("n-train-beyond-pair-02", "02_eigenfeatures", ["-p", "n_train", "10002"], "'n_train' must be at most 10000"),
    ("n-test-heldout-beyond-pair-02", "02_eigenfeatures", ["-p", "n_heldout", "1700"], "n_test + n_heldout"),
    ("conv-n-train-beyond-pair-02", "02_eigenfeatures", ["-p", "conv_n_train", "12000"], "'conv_n_train'"),
    ("mnist-n-test-beyond-02", "02_eigenfeatures", ["-p", "mnist_n_test", "9000"], "at most 8920"),
    ("n-train-beyond-pair-03", "03_robust_only_kernels", ["-p", "n_train", "12000"], "'n_train' must be at most"),
    ("n-select-eval-beyond-pair-03", "03_robust_only_kernels", ["-p", "n_eval", "1900"], "n_select + n_eval"),
    ("mnist-n-train-beyond-03", "03_robust_only_kernels", ["-p", "mnist_n_train", "60000"], "at most 54210"),
    ("mnist-n-select-eval-odd-03", "03_robust_only_kernels", ["-p", "mnist_n_eval", "205"], "mnist_n_select"),
    ("n-pool-beyond-cifar-00b", "00b_kip_distillation", ["-p", "n_pool", "54000"], "'n_pool' must be at most 50000"),
    ("n-test-beyond-mnist-00b", "00b_kip_distillation", ["-p", "n_test", "9000"], "'n_test' must be at most 8920"),
    ("n-pool-mnist-only-00b", "00b_kip_distillation",
     ["-p", "datasets", "[mnist]", "-p", "advkip_datasets", "[mnist]", "-p", "n_pool", "54000"], None),
    # class names (chapters 02 and 03: a pair of CIFAR-10 classes)
    ("classes-unknown-03", "03_robust_only_kernels", ["-p", "classes", "[airplane, dgo]"], "unknown class 'dgo'"),
    ("classes-duplicate-03", "03_robust_only_kernels", ["-p", "classes", "[cat, cat]"], "duplicate classes"),
    ("classes-valid-03", "03_robust_only_kernels", ["-p", "classes", "[cat, dog]"], None),
    ("classes-unknown-02", "02_eigenfeatures", ["-p", "classes", "[airplane, Airplane]"], "unknown class 'Airplane'"),
    ("classes-duplicate-02", "02_eigenfeatures", ["-p", "classes", "[ship, ship]"], "duplicate classes"),
    # widths, steps and epochs: generous but finite
    ("width-04", "04_at_kernel_dynamics", ["-p", "width", "100000"], "'width' must be an integer in [1, 65536]"),
    ("hidden-04", "04_at_kernel_dynamics", ["-p", "hidden", "100000"], "'hidden'"),
    ("epochs-04", "04_at_kernel_dynamics", ["-p", "epochs", "20000"], "'epochs' must be an integer in [2, 10000]"),
    ("attack-steps-04", "04_at_kernel_dynamics", ["-p", "attack_steps", "20000"], "'attack_steps'"),
    ("eval-iter-04", "04_at_kernel_dynamics", ["-p", "eval_iter", "20000"], "'eval_iter'"),
    ("loo-epochs-04", "04_at_kernel_dynamics", ["-p", "loo_epochs", "20000"], "'loo_epochs'"),
    ("width-05", "05_bn_buffers", ["-p", "width", "70000"], "'width' must be an integer in [1, 65536]"),
    ("stage-sizes-05", "05_bn_buffers", ["-p", "stage_sizes", "[1, 1000]"], "'stage_sizes[1]'"),
    ("epochs-05", "05_bn_buffers", ["-p", "epochs", "10001"], "'epochs'"),
    ("eval-attack-steps-05", "05_bn_buffers", ["-p", "eval_attack_steps", "10001"], "'eval_attack_steps'"),
    ("net-width-00b", "00b_kip_distillation", ["-p", "net_width", "70000"], "'net_width'"),
    ("kip-steps-00b", "00b_kip_distillation", ["-p", "kip_steps", "200000"], "'kip_steps'"),
    ("net-steps-00b", "00b_kip_distillation", ["-p", "net_steps", "200000"], "'net_steps'"),
    ("attack-iters-00b", "00b_kip_distillation", ["-p", "attack_iters", "20000"], "'attack_iters'"),
    ("n-seeds-00b", "00b_kip_distillation", ["-p", "n_seeds", "1000"], "'n_seeds'"),
    ("at-steps-03", "03_robust_only_kernels", ["-p", "at_steps", "200000"], "'at_steps'"),
    ("pgd-steps-03", "03_robust_only_kernels", ["-p", "pgd_steps", "20000"], "'pgd_steps'"),
    ("eval-iters-03", "03_robust_only_kernels", ["-p", "eval_iters", "20000"], "'eval_iters'"),
]


@pytest.mark.parametrize("case, notebook, argv, fragment", DRY_RUN_CASES, ids=[c[0] for c in DRY_RUN_CASES])
def test_dry_run_refuses_what_the_run_would(capsys, case, notebook, argv, fragment):
    code = cli.main(["run", notebook, *argv, "--dry-run"])
    err = capsys.readouterr().err
    if fragment is None:
        assert code == 0, err
        return
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert fragment in err, err


def test_schema_seed_rule_applies_to_every_subclass():
    import dataclasses

    @dataclasses.dataclass(frozen=True)
    class P(schema.Params):
        seed: int = schema.param(schema.Int(min=0))
        n_seeds: int = schema.param(schema.Int(min=1))

    P(seed=2**32 - 3, n_seeds=3)
    with pytest.raises(ValueError, match="seed \\+ n_seeds <= 2\\*\\*32"):
        P(seed=2**32 - 2, n_seeds=3)
    with pytest.raises(ValueError, match="'seed'"):
        P(seed=2**32, n_seeds=1)


def test_schema_derived_seeds_bound_the_seed():
    import dataclasses

    @dataclasses.dataclass(frozen=True)
    class P(schema.Params):
        seed: int = schema.param(schema.Int(min=0))
        n_seeds: int = schema.param(schema.Int(min=1))

        def derived_seeds(self):
            return {"the probes (seed + n_seeds - 1 + 10**6)": self.seed + self.n_seeds - 1 + 10**6}

    P(seed=2**32 - 1 - 10**6 - 2, n_seeds=3)
    with pytest.raises(ValueError, match=r"'seed' must be an integer in \[0, 4293967293\].*seed \+ n_seeds - 1"):
        P(seed=2**32 - 10**6 - 2, n_seeds=3)


def test_robust_evaluation_refuses_seed_2_to_32():
    from ntknb import evaluation

    x = np.zeros((2, 3), np.float32)
    with pytest.raises(ValueError, match="seed"):
        evaluation.robust_evaluation(lambda v: v[:, :2], x, np.array([0, 1]), 0.1, seed=2**32)


# ----------------------------------------------------------------------- attacks.accuracy

ACCURACY_CASES = [
    ("nan-binary", np.array([[np.nan], [1.0]]), np.array([[1.0], [-1.0]]), "NaN or infinite"),
    ("nan-multiclass", np.array([[np.nan, 0.0], [1.0, 0.0]]), np.array([0, 1]), "NaN or infinite"),
    ("inf", np.array([[np.inf], [1.0]]), np.array([[1.0], [1.0]]), "NaN or infinite"),
    ("broadcast-1x1-labels", np.ones((4, 1)), np.ones((1, 1)), "one label per prediction"),
    ("fewer-labels", np.ones((4, 3)), np.array([0, 1]), "one label per prediction"),
    ("binary-labels-too-wide", np.ones((2, 1)), np.ones((2, 2)), "binary predictions"),
    ("empty-batch", np.zeros((0, 1)), np.zeros((0, 1)), "no predictions"),
    ("empty-multiclass", np.zeros((0, 3)), np.zeros((0,), np.int32), "no predictions"),
    ("3-d", np.zeros((2, 2, 2)), np.zeros((2,)), "must have shape"),
]


@pytest.mark.parametrize("case, f, y, fragment", ACCURACY_CASES, ids=[c[0] for c in ACCURACY_CASES])
def test_accuracy_bad_inputs(case, f, y, fragment):
    with pytest.raises(ValueError, match=fragment):
        attacks.accuracy(f, y)


def test_accuracy_is_an_exact_python_float():
    from ntknb.kernels import x64

    with x64():
        acc = attacks.accuracy(np.array([[1.0], [-1.0], [1.0]], np.float64), np.array([[1.0], [1.0], [1.0]]))
    assert type(acc) is float and acc == 2 / 3
    assert type(attacks.accuracy(np.array([[1.0]], np.float32), np.array([[1.0]]))) is float


# --------------------------------------------------------------------- the GPU recorder


def _gpu_folder(tmp, runs, metrics='{"acc": 0.5}', manifest_extra=None):
    src = tmp / "gpu-out"
    src.mkdir()
    manifest = {"started": "2026-01-01T00:00:00+00:00", "device": {"backend": "gpu", "devices": ["H100"]},
                "versions": {"jax": "0.4"}, "runs": {}}
    for name in runs:
        manifest["runs"][name] = {"preset": "x.gpu.yaml", "status": "done", "wall_s": 1.0}
        if "/" not in name and name not in ("", ".", ".."):
            (src / name).mkdir(exist_ok=True)
            (src / name / "metrics.json").write_text(metrics)
            (src / name / "parameters.yaml").write_text("seed: 1\n")
    manifest.update(manifest_extra or {})
    (src / "manifest.json").write_text(json.dumps(manifest))
    return src


def _nan(tmp):
    return _gpu_folder(tmp, ["ok"], metrics='{"acc": NaN}')


def _symlinked_metrics(tmp):
    src = _gpu_folder(tmp, ["ok"])
    (tmp / "other.json").write_text('{"acc": 1}')
    (src / "ok" / "metrics.json").unlink()
    (src / "ok" / "metrics.json").symlink_to(tmp / "other.json")
    return src


def _malformed(tmp):
    return _gpu_folder(tmp, ["ok"], manifest_extra={"runs": ["ok"]})


def _no_device(tmp):
    return _gpu_folder(tmp, ["ok"], manifest_extra={"device": "H100"})


def _not_json(tmp):
    src = _gpu_folder(tmp, ["ok"])
    (src / "manifest.json").write_text("{not json")
    return src


def _manifest_fifo(tmp):
    src = tmp / "gpu-out"
    src.mkdir()
    os.mkfifo(src / "manifest.json")
    return src


def _bad_wall(tmp):
    src = _gpu_folder(tmp, ["ok"])
    m = json.loads((src / "manifest.json").read_text())
    m["runs"]["ok"]["wall_s"] = "fast"
    (src / "manifest.json").write_text(json.dumps(m))
    return src


GPU_CASES = [
    ("name-parent-dirs", lambda t: _gpu_folder(t, ["../../../ntknb"]), "not a plain name"),
    ("name-absolute", lambda t: _gpu_folder(t, ["/tmp/victim"]), "not a plain name"),
    ("name-empty", lambda t: _gpu_folder(t, [""]), "not a plain name"),
    ("name-dot", lambda t: _gpu_folder(t, ["."]), "not a plain name"),
    ("name-dotdot", lambda t: _gpu_folder(t, [".."]), "not a plain name"),
    ("name-dot-file", lambda t: _gpu_folder(t, [".hidden"]), "not a plain name"),
    ("name-with-slash", lambda t: _gpu_folder(t, ["a/b"]), "not a plain name"),
    ("metrics-nan", _nan, "NaN"),
    ("metrics-symlink", _symlinked_metrics, "symbolic link"),
    ("manifest-runs-a-list", _malformed, "malformed"),
    ("manifest-device-a-string", _no_device, "malformed"),
    ("manifest-not-json", _not_json, "not valid JSON"),
    ("manifest-fifo", _manifest_fifo, "FIFO"),
    ("manifest-wall-not-number", _bad_wall, "wall_s"),
    ("manifest-missing", lambda t: (t / "gpu-out").mkdir() or t / "gpu-out", "missing"),
]


@pytest.mark.parametrize("case, setup, fragment", GPU_CASES, ids=[c[0] for c in GPU_CASES])
def test_gpu_record_bad_inputs(tmp_path, case, setup, fragment):
    src = setup(tmp_path)
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "keep").mkdir()
    (dest / "keep" / "run.json").write_text("{}")
    before = snapshot(tmp_path)
    with pytest.raises(gpu.RecordError, match=fragment):
        gpu.record(src, dest)
    assert snapshot(tmp_path) == before  # nothing deleted, no .NAME.tmp/ left


def test_gpu_record_missing_metrics_is_not_finished(tmp_path):
    src = _gpu_folder(tmp_path, ["ok"])
    (src / "ok" / "metrics.json").unlink()
    dest = tmp_path / "dest"
    assert gpu.record(src, dest) == []
    attempt = json.loads((dest / "attempts.jsonl").read_text())
    assert attempt["status"].startswith("incomplete") and not (dest / "ok").exists()


def test_gpu_record_cli_error_is_one_line(tmp_path, capsys):
    src = _gpu_folder(tmp_path, ["../x"])
    assert gpu.main(["record", str(src)]) == 2
    err = capsys.readouterr().err
    assert "not a plain name" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("out", [ROOT / "notebooks", ROOT / "notebooks" / "data" / "gpu", ROOT],
                         ids=["notebooks", "notebooks-data-gpu", "checkout"])
def test_gpu_run_out_in_sources_refused(out):
    before = sorted(p.name for p in (ROOT / "notebooks").iterdir())
    with pytest.raises(ValueError, match="--out"):
        gpu.run_presets(["01_transfer_attacks"], out, 60, runner=lambda *a: pytest.fail("ran"))
    assert sorted(p.name for p in (ROOT / "notebooks").iterdir()) == before


@pytest.mark.parametrize("name", ["../01_transfer_attacks", "/etc/passwd", ""])
def test_gpu_preset_names_are_plain(name):
    with pytest.raises(ValueError, match="not a plain name"):
        gpu.preset_path(name)


# ----------------------------------------------------------------------- the seed check

_spec = importlib.util.spec_from_file_location("seed_check", ROOT / "scripts" / "seed_check.py")
seed_check = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(seed_check)

SEED_CHECK_CASES = [
    ("notebooks-path-form", ["notebooks/05_bn_buffers", "990000"], "would run ntknb run 05_bn_buffers", 0),
    ("py-path-form", [str(ROOT / "notebooks" / "05_bn_buffers.py"), "990000"], "would run", 0),
    ("seed-0-defaults", ["05_bn_buffers", "0"], "of the defaults", 2),
    ("overlaps-defaults", ["05_bn_buffers", "2"], "of the defaults", 2),
    ("already-recorded", ["05_bn_buffers", "7000"], "seed_check.jsonl", 2),
    ("overlaps-recorded", ["05_bn_buffers", "6998"], "seed_check.jsonl", 2),
    ("not-a-chapter", ["tests/test_cli.py", "990000"], "not a chapter", 2),
    ("unknown-name", ["nope", "990000"], "no notebook named", 2),
    ("seed-hex", ["05_bn_buffers", "0x10"], "decimal integer", 2),
    ("seed-text", ["05_bn_buffers", "abc"], "decimal integer", 2),
    ("seed-too-large", ["05_bn_buffers", "4294967295"], "2**32", 2),
    ("seed-via-p", ["05_bn_buffers", "990000", "-p", "seed", "1"], "not with -p seed", 2),
]


@pytest.mark.parametrize("case, argv, fragment, code", SEED_CHECK_CASES, ids=[c[0] for c in SEED_CHECK_CASES])
def test_seed_check_bad_inputs(capsys, monkeypatch, case, argv, fragment, code):
    monkeypatch.chdir(ROOT)
    record = ROOT / "notebooks" / "data" / "05_bn_buffers_seed_check.jsonl"
    before = record.read_bytes()
    assert seed_check.main([*argv, "--dry-run"]) == code
    out, err = capsys.readouterr()
    assert fragment in (out if code == 0 else err), (out, err)
    assert "Traceback" not in err and record.read_bytes() == before


# ------------------------------------------------------------------------------ check-html


def test_check_html_honours_root_and_survives_non_utf8(tmp_path, capsys):
    from ntknb import book

    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: intro\n")
    html = tmp_path / "_build" / "html"
    html.mkdir(parents=True)
    (html / "intro.html").write_bytes(b"<html><body><main><p>caf\xe9</p></main></body></html>")
    code = book.main(["--root", str(tmp_path), "check-html"])
    out = capsys.readouterr().out
    assert code == 1 and out.startswith("intro: 1 problem(s)") and "not UTF-8" in out, out
    assert book.main(["--root", str(tmp_path / "missing"), "check-html"]) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_check_html_broken_pipe(tmp_path):
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: intro\n")
    proc = subprocess.Popen([sys.executable, "-m", "ntknb.book", "--root", str(tmp_path), "check-html"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    proc.wait(timeout=120)
    assert "Traceback" not in err and "BrokenPipe" not in err, err


def test_non_finite_params_refused_in_recorded_yaml(tmp_path):
    src = _gpu_folder(tmp_path, ["ok"])
    (src / "ok" / "parameters.yaml").write_text("lr: .nan\n")
    with pytest.raises(gpu.RecordError, match="not a finite number"):
        gpu.record(src, tmp_path / "dest")
