"""Tests of ntknb.exercises: the book's solutions pass their checks, wrong answers fail them.

The solutions are the ones the book shows: every ```` ```python ```` block of an Exercises
solution (in ``notebooks/NN_name.py`` and ``book/course.md``) that defines a function and
calls an ``exercises.check_*`` is executed here, and the check it ends with must pass.
"""

import re
import textwrap
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest

from ntknb import attacks, exercises, kernels, metrics

ROOT = Path(__file__).resolve().parents[1]
CHECKS = sorted(name for name in exercises.__all__ if name.startswith("check_"))
_FENCE = re.compile(r"^(\s*)```python\s*$")


def _markdown_lines(path: Path) -> list[str]:
    """The text of ``path`` as Markdown: a py:percent notebook's comment lines lose ``# ``."""
    lines = path.read_text().splitlines()
    if path.suffix != ".py":
        return lines
    return [line[2:] if line.startswith("# ") else line[1:] if line.startswith("#") else "" for line in lines]


def shown_solutions() -> list[tuple[str, str]]:
    """``(where, code)`` of every Python block in the book's exercise sources that defines a
    function and runs a check on it (a solution)."""
    found = []
    for path in [*sorted((ROOT / "notebooks").glob("0*.py")), ROOT / "book" / "course.md"]:
        lines = _markdown_lines(path)
        i = 0
        while i < len(lines):
            fence = _FENCE.match(lines[i])
            if fence:
                start, indent = i + 1, len(fence.group(1))
                i += 1
                while lines[i].strip() != "```":
                    i += 1
                code = textwrap.dedent("\n".join(line[indent:] for line in lines[start:i]))
                if "exercises.check_" in code and "\ndef " in f"\n{code}":
                    found.append((f"{path.name}:{start}", code))
            i += 1
    return found


def _run_solution(code: str):
    """Execute a solution block; return the value of its last line (the check's result)."""
    *body, last = code.rstrip().splitlines()
    namespace: dict = {}
    exec(compile("\n".join(body), "<solution>", "exec"), namespace)  # noqa: S102 - the book's own code
    return eval(last, namespace)  # noqa: S307


SOLUTIONS = shown_solutions()


def test_every_check_has_a_solution_in_the_book():
    shown = {name for _, code in SOLUTIONS for name in re.findall(r"exercises\.(check_\w+)", code)}
    assert shown == set(CHECKS)


@pytest.mark.parametrize("where,code", SOLUTIONS, ids=[w for w, _ in SOLUTIONS])
def test_shown_solution_passes(where, code):
    result = _run_solution(code)
    assert isinstance(result, exercises.CheckResult), where
    assert result.passed, f"{where}: {result}"
    assert result.max_error <= result.tolerance
    assert str(result).startswith("PASS ")


# Wrong answers: the common mistakes (a sign, a missing average, the wrong statistics).


def _twice_ntk(apply_fn, params, x1, x2):  # summed over the k = 2 outputs instead of averaged
    return 2 * kernels.empirical_ntk(apply_fn, params, x1, x2, batch_size=None)


def _predictor_without_normalization(k_tt, k_st, y, t):  # exp(-Theta t) instead of exp(-Theta t / N)
    return kernels.KernelPredictor.fit(k_tt, y, dtype=np.float64).predict(k_st, t * y.size)


def _towards_the_label(w, b, x, y, eps):  # increases the margin instead of decreasing it
    return x + eps * y[:, None] * np.sign(w)


def _kip_without_ridge(kernel_fn, xs, ys, xt, yt, reg):
    f = kernel_fn(xt, xs, "ntk") @ jnp.linalg.solve(kernel_fn(xs, xs, "ntk"), ys)
    return 0.5 * jnp.mean((f - yt) ** 2)


def _kernel_attack_wrong_sign(kernel_fn, x_train, alpha, x, y, eps):
    x_adv = attacks.kernel_fgsm(kernels.make_predict_fn(kernel_fn, x_train, alpha), x, y, eps)
    return jnp.clip(2 * x - x_adv, 0, 1)


def _eigenfeatures_increasing(k_tt, k_st, y):  # eigenvalues in increasing order
    return kernels.KernelPredictor.fit(k_tt, y, dtype=np.float64).eigen_features(k_st)[::-1]


def _subset_weights_all(k_tt, y, indices):  # every feature, not the subset
    return np.asarray(kernels.KernelPredictor.fit(k_tt, y, dtype=np.float64).weights())


def _unnormalized_distance(K1, K2):
    return 1 - np.sum(K1 * K2)


def _batch_norm_always_buffers(x, scale, bias, mean, var, use_buffers):
    return scale * (x - mean) / np.sqrt(var + 1e-5) + bias


def _fgsm_descends(loss_fn, x, y, eps):
    return jnp.clip(2 * x - attacks.fgsm(loss_fn, x, y, eps), 0, 1)


def _fgsm_at_clean_step(apply_fn, params, x, y, eps, lr):  # trains on the clean points
    return exercises.fgsm_at_step(apply_fn, params, x, y, 0.0, lr)


def _alignment_of_the_whole_batch(loss_fn, x, y, eta):  # one cosine of the batch's gradients, not one a point
    import jax

    g0 = jax.grad(lambda xx: jnp.sum(loss_fn(xx, y)))(x).ravel()
    g1 = jax.grad(lambda xx: jnp.sum(loss_fn(xx, y)))(jnp.clip(x + eta, 0, 1)).ravel()
    return jnp.full(x.shape[0], g0 @ g1 / (jnp.linalg.norm(g0) * jnp.linalg.norm(g1)))


WRONG = {
    "check_empirical_ntk": _twice_ntk,
    "check_kernel_predictor": _predictor_without_normalization,
    "check_linear_worst_case": _towards_the_label,
    "check_kip_loss": _kip_without_ridge,
    "check_kernel_attack": _kernel_attack_wrong_sign,
    "check_eigenfeatures": _eigenfeatures_increasing,
    "check_subset_weights": _subset_weights_all,
    "check_kernel_distance": _unnormalized_distance,
    "check_batch_norm": _batch_norm_always_buffers,
    "check_fgsm": _fgsm_descends,
    "check_fgsm_at_step": _fgsm_at_clean_step,
    "check_gradient_alignment": _alignment_of_the_whole_batch,
}


def test_every_check_has_a_wrong_answer():
    assert set(WRONG) == set(CHECKS)


@pytest.mark.parametrize("name", CHECKS)
def test_wrong_answer_fails(name):
    result = getattr(exercises, name)(WRONG[name])
    assert not result.passed and not result
    assert result.max_error > result.tolerance
    assert str(result).startswith(f"FAIL {name}: largest error")


def test_reference_functions_pass():
    assert exercises.check_kernel_distance(metrics.kernel_distance).passed
    assert exercises.check_fgsm(lambda loss_fn, x, y, eps: attacks.fgsm(loss_fn, x, y, eps)).passed
    assert exercises.check_fgsm_at_step(exercises.fgsm_at_step).passed


def test_a_raising_function_fails_with_its_error():
    def broken(K1, K2):
        raise KeyError("oops")

    result = exercises.check_kernel_distance(broken)
    assert not result.passed and result.max_error == np.inf
    assert "raised KeyError" in result.message and "oops" in result.message


def test_a_wrong_shape_fails_saying_so():
    result = exercises.check_kernel_attack(lambda kernel_fn, x_train, alpha, x, y, eps: x[:, 0])
    assert not result.passed
    assert "has shape (4, 2, 1), expected (4, 2, 2, 1)" in result.message


def test_wrong_parameter_structure_fails():
    result = exercises.check_fgsm_at_step(lambda apply_fn, params, x, y, eps, lr: params[0])
    assert not result.passed and "structure" in result.message


@pytest.mark.parametrize("kwargs,match", [
    (dict(student_fn=3), "student_fn must be a callable"),
    (dict(student_fn=metrics.kernel_distance, n_problems=0), "n_problems"),
    (dict(student_fn=metrics.kernel_distance, seed=1.5), "seed"),
])
def test_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        exercises.check_kernel_distance(**kwargs)


def test_fgsm_at_step_rejects_a_negative_eps():
    with pytest.raises(ValueError, match="eps"):
        exercises.fgsm_at_step(lambda p, x: x, {}, np.zeros((1, 2)), np.zeros((1, 2)), -1.0, 0.1)
