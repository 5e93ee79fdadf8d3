"""Tests for ntknb.metrics on hand-made matrices."""

import numpy as np
import pytest

from ntknb import metrics


def test_frobenius_norm():
    assert metrics.frobenius_norm([[3.0, 0.0], [0.0, 4.0]]) == pytest.approx(5.0)


def test_kernel_distance_scale_invariant_and_orthogonal():
    K = np.array([[2.0, 1.0], [1.0, 2.0]])
    assert metrics.kernel_distance(K, 5 * K) == pytest.approx(0.0, abs=1e-12)
    A = np.diag([1.0, 0.0])
    B = np.diag([0.0, 1.0])
    assert metrics.kernel_distance(A, B) == pytest.approx(1.0)
    # hand computation: Tr(I Kᵀ) = 4, ‖I‖ = √2, ‖K‖ = √10
    assert metrics.kernel_distance(np.eye(2), K) == pytest.approx(1 - 4 / (np.sqrt(2) * np.sqrt(10)))


def test_kernel_distance_rejects_shape_mismatch_and_zero():
    with pytest.raises(ValueError, match="shape"):
        metrics.kernel_distance(np.eye(2), np.eye(3))
    with pytest.raises(ValueError, match="zero"):
        metrics.kernel_distance(np.zeros((2, 2)), np.eye(2))


def test_distance_matrix_and_consecutive():
    Ks = [np.eye(2), 3 * np.eye(2), np.diag([1.0, 0.0])]
    D = metrics.distance_matrix(Ks)
    assert D.shape == (3, 3)
    np.testing.assert_allclose(D, D.T)
    np.testing.assert_allclose(np.diag(D), 0)
    assert D[0, 1] == pytest.approx(0.0, abs=1e-12)
    assert D[0, 2] == pytest.approx(1 - 1 / np.sqrt(2))
    np.testing.assert_allclose(metrics.consecutive_distances(Ks), [D[0, 1], D[1, 2]], atol=1e-12)


def test_polar_coordinates_eq12():
    K0 = np.eye(2)
    K1 = np.diag([2.0, 1.0])
    Kf = np.diag([3.0, 1.0])
    r, theta = metrics.polar_coordinates([K0, K1, Kf])
    np.testing.assert_allclose(r, [0.0, 0.5, 1.0])
    assert theta[0] == pytest.approx(0.0, abs=1e-6)
    # cos θ_1 = Tr(K1 K0)/(‖K1‖‖K0‖) = 3 / (√5 √2)
    assert theta[1] == pytest.approx(np.arccos(3 / (np.sqrt(5) * np.sqrt(2))))
    with pytest.raises(ValueError, match="final kernel"):
        metrics.polar_coordinates([K0, K0])


def test_top_eigenspace_and_concentration():
    U, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(4, 4)))
    lam = np.array([4.0, 3.0, 2.0, 1.0])
    K = (U * lam) @ U.T
    K2 = metrics.top_eigenspace(K, 2)
    np.testing.assert_allclose(K2, (U[:, :2] * lam[:2]) @ U[:, :2].T, atol=1e-12)
    assert metrics.concentration(K, 2) == pytest.approx((16 + 9) / 30)
    assert metrics.concentration(K, 4) == pytest.approx(1.0)
    np.testing.assert_allclose(metrics.eigenvalues(K), lam)
    with pytest.raises(ValueError, match="p must"):
        metrics.concentration(K, 5)


def test_effective_rank():
    assert metrics.effective_rank(np.eye(5)) == pytest.approx(5.0)
    assert metrics.effective_rank(np.ones((3, 3))) == pytest.approx(1.0)
    # p = (2/3, 1/3): exp(H)
    p = np.array([2 / 3, 1 / 3])
    assert metrics.effective_rank(np.diag([2.0, 1.0])) == pytest.approx(np.exp(-np.sum(p * np.log(p))))


def test_specialization_matrix_hand_made():
    # 4 points, 2 classes: labels 0,0,1,1; logit 0's kernel is the class-0 block, logit 1's the class-1 block.
    labels = np.array([0, 0, 1, 1])
    y0 = (labels == 0).astype(float)
    y1 = (labels == 1).astype(float)
    K = np.zeros((4, 4, 2))
    K[:, :, 0] = np.outer(y0, y0) + 0.1 * np.eye(4)
    K[:, :, 1] = np.outer(y1, y1) + 0.1 * np.eye(4)
    # A(Θ^{ii}, Y_j Y_jᵀ) = Y_jᵀ Θ Y_j / (‖Θ‖_F n_j)
    A = np.array([[y @ K[:, :, i] @ y / (np.linalg.norm(K[:, :, i]) * y.sum()) for y in (y0, y1)] for i in range(2)])
    M_expected = A / A.mean(axis=0, keepdims=True)
    M = metrics.specialization_matrix(K, labels)
    np.testing.assert_allclose(M, M_expected)
    assert M[0, 0] > 1 and M[1, 1] > 1 and M[0, 1] < 1
    assert metrics.kernel_specialization(K, labels) == pytest.approx(np.trace(M_expected) / 2)
    # full (n, n, k, k) input gives the same as its diagonal blocks
    full = np.zeros((4, 4, 2, 2))
    full[:, :, 0, 0], full[:, :, 1, 1] = K[:, :, 0], K[:, :, 1]
    full[:, :, 0, 1] = 7.0  # off-diagonal blocks are ignored
    np.testing.assert_allclose(metrics.specialization_matrix(full, labels), M)


def test_specialization_is_one_without_specialization():
    labels = np.array([0, 1, 0, 1])
    K = np.stack([np.eye(4) + 1.0] * 2, axis=-1)
    np.testing.assert_allclose(metrics.specialization_matrix(K, labels), 1.0)
    assert metrics.kernel_specialization(K, labels) == pytest.approx(1.0)


def test_specialization_rejects_bad_labels():
    K = np.ones((3, 3, 2))
    with pytest.raises(ValueError, match="labels"):
        metrics.specialization_matrix(K, np.array([0, 1]))
    with pytest.raises(ValueError, match="labels"):
        metrics.specialization_matrix(K, np.array([0, 1, 2]))


def test_lazy_epoch():
    d = [0.5, 0.2, 0.04, 0.03, 0.01]  # d(K0,K1), ..., d(K4,K5)
    assert metrics.lazy_epoch(d, 0.05) == 2.0  # after epoch 2 every step is < 0.05
    assert metrics.lazy_epoch(d, 0.6) == 0.0
    assert np.isnan(metrics.lazy_epoch([0.5, 0.01, 0.3], 0.05))
    assert metrics.lazy_epoch([0.5, 0.01, 0.3], 0.05, until=2) == 1.0
    with pytest.raises(ValueError, match="threshold"):
        metrics.lazy_epoch(d, 0.0)


def test_logit_matrix_layout_and_concentration():
    rng = np.random.default_rng(0)
    n, k = 3, 2
    K = rng.normal(size=(n, n, k, k))
    M = metrics.logit_matrix(K)
    assert M.shape == (6, 6)
    for i in range(n):
        for j in range(n):
            for a in range(k):
                for b in range(k):
                    assert M[i * k + a, j * k + b] == K[i, j, a, b]
    # a kernel that is the identity over logits: Θ = K_x ⊗ I_k has the spectrum of K_x, each k times
    Kx = np.diag([4.0, 2.0, 1.0])
    full = np.einsum("ij,ab->ijab", Kx, np.eye(k))
    assert metrics.concentration(metrics.logit_matrix(full), 2) == pytest.approx(32 / 42)
    with pytest.raises(ValueError, match="shape"):
        metrics.logit_matrix(Kx)
