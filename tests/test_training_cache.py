"""The persistent compilation cache setting (:mod:`ntknb.compile_cache`): where it points, how it is turned
off, that JAX's own setting wins, and that a rerun with a warm cache compiles nothing it cached and trains to
the same weights bit for bit."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ntknb import compile_cache

ROOT = Path(__file__).resolve().parents[1]

#: A tiny PGD-AT fit in a fresh process: prints the cache folder, the persistent-cache hits, the backend
#: compilations (a hit counts as one too) and a checksum of the trained weights.
SCRIPT = r"""
import hashlib, json, numpy as np
import ntknb, jax
from ntknb import models, training
hits, compiles = [], []
jax.monitoring.register_event_listener(lambda e, **k: hits.append(e) if e == "/jax/compilation_cache/cache_hits" else None)
jax.monitoring.register_event_duration_secs_listener(
    lambda e, s, **k: compiles.append(s) if e == "/jax/core/compile/backend_compile_duration" else None)
rng = np.random.default_rng(0)
x = rng.random((16, 8, 8, 1)).astype(np.float32); y = np.arange(16) % 2
m = models.CNN(num_classes=2, width=2, hidden=8)
p, s = models.init_model(m, (8, 8, 1))
cfg = training.TrainConfig(mode="pgd", epochs=2, batch_size=8, eps=0.1, attack_steps=2, eval_attack_steps=1)
r = training.fit(training.flax_apply_fn(m), p, s, x, y, x, y, cfg, progress=False)
w = np.concatenate([np.ravel(a) for a in jax.tree_util.tree_leaves(r.params)])
print(json.dumps({"dir": jax.config.jax_compilation_cache_dir, "hits": len(hits), "compiles": len(compiles),
                  "weights": hashlib.sha256(w.tobytes()).hexdigest()}))
"""


def _run(env_changes, script=SCRIPT):
    env = {k: v for k, v in os.environ.items() if k not in (compile_cache.CACHE_ENV, "JAX_COMPILATION_CACHE_DIR")}
    env.update(env_changes)
    out = subprocess.run([sys.executable, "-c", script], env=env, cwd=ROOT, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_off_by_default_and_user_names_the_users_cache_folder_never_the_checkout(tmp_path):
    assert compile_cache.cache_dir({}) is None  # off unless asked for (module docstring: a NaN seen warm)
    user = {compile_cache.CACHE_ENV: "user"}
    assert compile_cache.cache_dir({**user, "HOME": str(tmp_path)}) == tmp_path / ".cache" / "ntknb" / "jax"
    assert compile_cache.cache_dir({**user, "HOME": "/h", "XDG_CACHE_HOME": str(tmp_path)}) == tmp_path / "ntknb" / "jax"
    default = compile_cache.cache_dir(user)
    assert default.parts[-3:] == (".cache", "ntknb", "jax") or default.parts[-2:] == ("ntknb", "jax")
    assert not default.resolve().is_relative_to(ROOT.resolve())


@pytest.mark.parametrize("value", ["off", "OFF", " 0 ", "false", "no", "", "none"])
def test_off_values_turn_the_cache_off(value):
    assert compile_cache.cache_dir({compile_cache.CACHE_ENV: value}) is None


def test_a_path_names_the_folder(tmp_path):
    assert compile_cache.cache_dir({compile_cache.CACHE_ENV: str(tmp_path / "c")}) == tmp_path / "c"
    assert compile_cache.cache_dir({compile_cache.CACHE_ENV: "~/x", "HOME": str(tmp_path)}) == Path("~/x").expanduser()


def test_warm_cache_compiles_nothing_again_and_trains_to_the_same_weights(tmp_path):
    off = _run({compile_cache.CACHE_ENV: "off"})
    cold = _run({compile_cache.CACHE_ENV: str(tmp_path / "c")})
    warm = _run({compile_cache.CACHE_ENV: str(tmp_path / "c")})
    assert off["dir"] is None and cold["dir"] == warm["dir"] == str(tmp_path / "c")
    assert off["hits"] == 0 and cold["hits"] == 0 and warm["hits"] > 0
    assert warm["compiles"] == warm["hits"] == cold["compiles"]  # every program of the rerun came from the cache
    assert off["weights"] == cold["weights"] == warm["weights"]
    assert any((tmp_path / "c").iterdir())


def test_jax_own_setting_wins(tmp_path):
    got = _run({"JAX_COMPILATION_CACHE_DIR": str(tmp_path / "j"), compile_cache.CACHE_ENV: str(tmp_path / "n")},
               "import json, ntknb, jax; print(json.dumps({'dir': jax.config.jax_compilation_cache_dir}))")
    assert got["dir"] == str(tmp_path / "j") and not (tmp_path / "n").exists()


def test_a_folder_that_cannot_be_made_leaves_the_cache_off_with_a_warning(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    script = ("import json, warnings\nwith warnings.catch_warnings(record=True) as w:\n    warnings.simplefilter('always')\n"
              "    import ntknb, jax\nprint(json.dumps({'dir': jax.config.jax_compilation_cache_dir, "
              "'warnings': [str(x.message) for x in w]}))")
    got = _run({compile_cache.CACHE_ENV: str(blocker / "jax")}, script)
    assert got["dir"] is None
    assert any(compile_cache.CACHE_ENV in m and str(blocker / "jax") in m for m in got["warnings"])
